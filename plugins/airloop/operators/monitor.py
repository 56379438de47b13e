"""Drift monitoring operators: measure and decide every day; signal a retrain only when decided."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from airloop.assets import model_asset
from airloop.execution import AirloopBaseOperator
from airloop.links import DriftReportLink

if TYPE_CHECKING:
    from airflow.sdk import Context


class MonitorDriftOperator(AirloopBaseOperator):
    """Measure the day's drift against the champion's reference and decide (ok/warn/retrain/...).

    Waits (deferrable) for the day's predictions. Always writes the day's drift record; alerts
    through :class:`~airloop.notifiers.alerts.AlertNotifier` on ``warn``, ``retrain`` and an
    open circuit breaker. Returns the record's summary (verdict included) for ``signal_retrain``.
    The step ``monitor``; the wait and the alert stay in the worker
    (:class:`~airloop.execution.AirloopBaseOperator`).
    """

    template_fields = ("ds",)
    operator_extra_links = (DriftReportLink(),)
    ui_color = "#d4e6f1"
    step = "monitor"

    def __init__(
        self,
        *,
        ds: str = "{{ ds }}",
        poke_interval: float = 30.0,
        wait_timeout: timedelta = timedelta(hours=12),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ds = ds
        self.poke_interval = poke_interval
        self.wait_timeout = wait_timeout

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
        from airloop.notifiers.alerts import AlertNotifier
        from include.steps import MonitorParams

        summary = self.run_step(context, MonitorParams(spec=self.model, ds=self.ds))
        self.link_report("drift_report", summary["report_uri"])
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


class SignalRetrainOperator(AirloopBaseOperator):
    """Emit the model's ``drift`` asset event, only when the day's verdict is ``retrain``.

    It only turns the monitor task's result into an asset event: it runs no step and always
    runs in the worker (``execution`` is accepted, like on every airloop operator, and has
    nothing to move).

    :param summary: the monitor task's result (its ``.output``).
    """

    template_fields = ("summary",)
    ui_color = "#aed6f1"

    def __init__(self, *, model: str, summary: Any, **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [model_asset(model, "drift")])
        super().__init__(model=model, **kwargs)
        self.summary = summary

    def execute(self, context: Context) -> dict[str, Any]:
        summary = self.summary
        verdict = summary["verdict"]
        if verdict["state"] != "retrain":
            raise AirflowSkipException(f"verdict {verdict['state']}: no retrain ({'; '.join(verdict['reasons'])})")
        extra = {
            "partition": summary["partition"],
            "decision_id": verdict["decision_id"],
            "trigger": verdict.get("trigger"),  # the signal kind that decided (decision.PRIORITY)
            "break_day": verdict.get("break_day"),  # set for a performance drop or breach
            "score": summary["score"],
            "top_features": verdict["top_features"],
            "report_uri": summary["report_uri"],
        }
        context["outlet_events"][model_asset(self.model, "drift")].extra = extra
        return extra
