"""TrainModelOperator: train, export to ONNX, prove parity, register the challenger."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airloop.assets import model_asset
from airloop.execution import StepOperator
from airloop.hooks.lake import LakeHook
from airloop.hooks.mlflow_hook import MlflowHook
from airloop.links import MlflowRunLink, ModelVersionLink

if TYPE_CHECKING:
    from datetime import date

    from airflow.sdk import Context

    from include.lake import Lake


class TrainModelOperator(StepOperator):
    """Train the model of ``model`` on the validated days ending at the resolved end date.

    The end date is, in order: ``data_end`` if given; the newest partition named by the
    triggering drift events; the run's logical date (capped at the newest validated day);
    the newest validated day. Overrides (``window_days``, ``search_budget``, ``estimator``)
    default to the spec. A parity failure or an unsupported estimator fails the task and
    registers nothing. On success the version gets alias ``challenger`` and the model's
    ``challenger`` asset event carries ``{version, run_id, metrics}``. ``execution="docker"``
    runs ``airloop train --end <resolved end> ...`` in the project image
    (:class:`~airloop.execution.StepOperator`); the end date is resolved here first.
    """

    template_fields = ("data_end", "window_days", "search_budget", "estimator", "reason")
    operator_extra_links = (MlflowRunLink(), ModelVersionLink())
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        model: str,
        data_end: str | None = None,
        window_days: int | str | None = None,
        search_budget: int | str | None = None,
        estimator: str | None = None,
        reason: str | None = None,
        lake_uri: str | None = None,
        lake_conn_id: str | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [model_asset(model, "challenger")])
        super().__init__(**kwargs)
        self.model = model
        self.data_end = data_end
        self.window_days = window_days
        self.search_budget = search_budget
        self.estimator = estimator
        self.reason = reason
        self.lake_uri = lake_uri
        self.lake_conn_id = lake_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.report_links: dict[str, str] = {}

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook(lake_uri=self.lake_uri, aws_conn_id=self.lake_conn_id)

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def resolve_end_date(self, context: Context, lake: Lake) -> date:
        from datetime import date

        from airloop.context import event_partitions, logical_day
        from include.lake import Zone

        if self.data_end not in (None, "", "None"):
            return date.fromisoformat(str(self.data_end))
        validated = lake.list_partitions(Zone.VALIDATED, self.model)
        if not validated:
            raise FileNotFoundError(f"{self.model}: no validated partitions in {lake.uri}: nothing to train on")
        if partitions := event_partitions(context):
            return partitions[-1]
        day = logical_day(context)
        if day is not None:
            earlier = [d for d in validated if d <= day]
            if earlier:
                return earlier[-1]
        return validated[-1]

    @staticmethod
    def _int_or_none(value: Any) -> int | None:
        return None if value in (None, "", "None") else int(value)

    def execute(self, context: Context) -> dict[str, Any]:
        import json

        from airflow.sdk.exceptions import AirflowSkipException

        from airloop.context import drift_decision_ids, run_tags, trigger_reason

        lake = self.lake_hook.lake
        tracking_uri = self.mlflow_hook.tracking_uri()
        decisions = drift_decision_ids(context)
        end = self.resolve_end_date(context, lake)
        reason = trigger_reason(context, self.reason)
        tags = run_tags(context, "train")
        window_days = self._int_or_none(self.window_days)
        search_budget = self._int_or_none(self.search_budget)

        def local() -> dict[str, Any]:
            from include.spec import get_spec
            from include.steps import train_step

            return train_step(
                get_spec(self.model),
                lake,
                tracking_uri,
                end,
                reason=reason,
                run_tags=tags,
                decisions=decisions,
                window_days=window_days,
                search_budget=search_budget,
                estimator=self.estimator or None,
            )

        argv = [
            "train",
            "--spec",
            self.model,
            "--end",
            end.isoformat(),
            f"--reason={reason}",
            f"--tags={json.dumps(tags)}",
        ]
        for flag, value in (
            ("--decisions", ",".join(decisions)),
            ("--window-days", window_days),
            ("--search-budget", search_budget),
            ("--estimator", self.estimator),
        ):
            if value not in (None, ""):
                argv += [flag, str(value)]
        result = self.run_step(context, argv, local, lake_hook=self.lake_hook, tracking_uri=tracking_uri)
        if result.get("skipped"):
            raise AirflowSkipException(result["skipped"])
        self.report_links = {
            "mlflow_run": f"{tracking_uri}/#/experiments/{result['experiment_id']}/runs/{result['run_id']}",
            "model_version": f"{tracking_uri}/#/models/{self.model}/versions/{result['version']}",
        }
        context["outlet_events"][model_asset(self.model, "challenger")].extra = {
            "version": result["version"],
            "run_id": result["run_id"],
            "metrics": {k: round(float(v), 6) for k, v in result["metrics"].items()},
            "end_date": end.isoformat(),
        }
        return result
