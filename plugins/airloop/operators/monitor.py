"""Drift monitoring operators: measure and decide every day; signal a retrain only when decided."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from airloop.assets import model_asset
from airloop.execution import StepOperator
from airloop.hooks.lake import LakeHook
from airloop.hooks.mlflow_hook import MlflowHook
from airloop.links import DriftReportLink, report_url

if TYPE_CHECKING:
    from airflow.sdk import Context


class MonitorDriftOperator(StepOperator):
    """Measure the day's drift against the champion's reference and decide (ok/warn/retrain/...).

    Waits (deferrable) for the day's predictions. Always writes the day's drift record; alerts
    through :class:`~airloop.notifiers.alerts.AlertNotifier` on ``warn``, ``retrain`` and an
    open circuit breaker. Returns the record's summary (verdict included) for ``signal_retrain``.
    ``execution="docker"`` runs ``airloop monitor`` in the project image; the wait and the
    alert stay in the worker (:class:`~airloop.execution.StepOperator`).
    """

    template_fields = ("ds",)
    operator_extra_links = (DriftReportLink(),)
    ui_color = "#d4e6f1"

    def __init__(
        self,
        *,
        model: str,
        ds: str = "{{ ds }}",
        lake_uri: str | None = None,
        lake_conn_id: str | None = None,
        mlflow_conn_id: str | None = None,
        poke_interval: float = 30.0,
        wait_timeout: timedelta = timedelta(hours=12),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.ds = ds
        self.lake_uri = lake_uri
        self.lake_conn_id = lake_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.poke_interval = poke_interval
        self.wait_timeout = wait_timeout
        self.report_links: dict[str, str] = {}

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook(lake_uri=self.lake_uri, aws_conn_id=self.lake_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from airloop.triggers.lake import defer_until_partition
        from include.lake import Zone

        defer_until_partition(self, self.lake_hook.lake, Zone.PREDICTIONS)
        return self._monitor(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        from airloop.triggers.lake import fail_unless_arrived

        fail_unless_arrived(
            self, event, "predictions", f"did {self.model}__score run for that day? Clear this task once it did"
        )
        return self._monitor(context)

    def _monitor(self, context: Context) -> dict[str, Any]:
        from datetime import date

        from airloop.notifiers.alerts import AlertNotifier

        lake = self.lake_hook.lake
        tracking_uri = MlflowHook(self.mlflow_conn_id).tracking_uri()

        def local() -> dict[str, Any]:
            from include.spec import get_spec
            from include.steps import monitor_step

            return monitor_step(get_spec(self.model), lake, tracking_uri, date.fromisoformat(self.ds))

        argv = ["monitor", "--spec", self.model, "--ds", self.ds]
        summary = self.run_step(context, argv, local, lake_hook=self.lake_hook, tracking_uri=tracking_uri)
        if summary["report_uri"]:
            self.report_links["drift_report"] = report_url(lake.relative(summary["report_uri"].split("://", 1)[1]))
        verdict = summary["verdict"]
        if verdict["state"] in ("warn", "retrain") or verdict["circuit_open"]:
            what = (
                "circuit breaker open: retraining stopped, a human must look"
                if verdict["circuit_open"]
                else verdict["state"]
            )
            AlertNotifier(
                model=self.model,
                message=f"{self.model} {self.ds} drift {what}: {'; '.join(verdict['reasons'])}. "
                f"Report: {self.report_links.get('drift_report', 'n/a')}",
                runbook="docs/operations.md#drift",
            ).notify(context)
        return summary


class SignalRetrainOperator(StepOperator):
    """Emit the model's ``drift`` asset event, only when the day's verdict is ``retrain``.

    It only turns the monitor task's XCom into an asset event: it always runs in the worker
    (``execution`` is accepted, like on every airloop operator, and has nothing to move).
    """

    ui_color = "#aed6f1"

    def __init__(self, *, model: str, monitor_task_id: str = "monitor", **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [model_asset(model, "drift")])
        super().__init__(**kwargs)
        self.model = model
        self.monitor_task_id = monitor_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        summary = context["ti"].xcom_pull(task_ids=self.monitor_task_id)
        verdict = summary["verdict"]
        if verdict["state"] != "retrain":
            raise AirflowSkipException(f"verdict {verdict['state']}: no retrain ({'; '.join(verdict['reasons'])})")
        extra = {
            "partition": summary["partition"],
            "decision_id": verdict["decision_id"],
            "trigger": verdict.get("trigger"),  # the signal kind that decided (decision.PRIORITY)
            "score": summary["score"],
            "top_features": verdict["top_features"],
            "report_uri": summary["report_uri"],
        }
        context["outlet_events"][model_asset(self.model, "drift")].extra = extra
        return extra
