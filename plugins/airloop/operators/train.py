"""TrainModelOperator: train, export to ONNX, prove parity, register the challenger."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airloop.execution import AirloopBaseOperator
from airloop.links import MlflowRunLink, ModelVersionLink

if TYPE_CHECKING:
    from datetime import date

    from airflow.sdk import Context

    from include.lake import Lake


class TrainModelOperator(AirloopBaseOperator):
    """Train the model of ``model`` on the validated days ending at the resolved end date.

    The end date is, in order: ``data_end`` if given; the newest partition named by the
    triggering drift events; the run's logical date (capped at the newest validated day);
    the newest validated day. Overrides (``window_days``, ``search_budget``, ``estimator``)
    default to the spec. A parity failure or an unsupported estimator fails the task and
    registers nothing. On success the version gets alias ``challenger`` and the model's
    ``challenger`` asset event carries ``{version, run_id, metrics}``. The step ``train``; the
    end date, reason, lineage tags and drift decisions are resolved here from the run context
    first (:class:`~airloop.execution.AirloopBaseOperator`).
    """

    template_fields = ("data_end", "window_days", "search_budget", "estimator", "reason")
    operator_extra_links = (MlflowRunLink(), ModelVersionLink())
    ui_color = "#fdebd0"
    step = "train"
    emits = "challenger"

    def __init__(
        self,
        *,
        data_end: str | None = None,
        window_days: int | str | None = None,
        search_budget: int | str | None = None,
        estimator: str | None = None,
        reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_end = data_end
        self.window_days = window_days
        self.search_budget = search_budget
        self.estimator = estimator
        self.reason = reason

    def resolve_end_date(self, context: Context, lake: Lake) -> date:
        """The training window's last day: :func:`include.training.window.training_end`."""
        from datetime import date

        from airloop.context import event_partitions, logical_day
        from include.lake import Zone
        from include.steps import none_if_blank
        from include.training.window import training_end

        requested = none_if_blank(self.data_end)
        return training_end(
            lambda: lake.list_partitions(Zone.VALIDATED, self.model),
            model=self.model,
            requested=None if requested is None else date.fromisoformat(str(requested)),
            event_days=event_partitions(context),
            logical_day=logical_day(context),
            where=lake.uri,
        )

    def execute(self, context: Context) -> dict[str, Any]:

        from airloop.context import drift_decision_ids, event_trigger, run_tags, trigger_reason
        from include.steps import TrainParams

        end = self.resolve_end_date(context, self.lake_hook.lake)
        trigger, break_day = event_trigger(context)
        params = TrainParams(
            spec=self.model,
            end=end,
            reason=trigger_reason(context, self.reason),
            tags=run_tags(context, "train"),
            decisions=drift_decision_ids(context),
            window_days=self.window_days,
            search_budget=self.search_budget,
            estimator=self.estimator,
            trigger=trigger,
            break_day=break_day,
        )
        result = self.run_step_or_skip(context, params)
        tracking_uri = self.mlflow_hook.tracking_uri()
        self.report_links = {
            "mlflow_run": f"{tracking_uri}/#/experiments/{result['experiment_id']}/runs/{result['run_id']}",
            "model_version": f"{tracking_uri}/#/models/{self.model}/versions/{result['version']}",
        }
        self.emit(
            context,
            version=result["version"],
            run_id=result["run_id"],
            metrics={k: round(float(v), 6) for k, v in result["metrics"].items()},
            end_date=end.isoformat(),
        )
        return result
