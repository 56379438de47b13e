"""ReplayOperator: ``airloop replay`` from the Airflow UI, its report one click away."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airloop.execution import AirloopBaseOperator
from airloop.links import ReplayReportLink

if TYPE_CHECKING:
    from airflow.sdk import Context


class ReplayOperator(AirloopBaseOperator):
    """Replay ``start..end`` under the given retraining policies and publish the report.

    Runs :func:`include.steps.replay_step`: the loop's own step functions day by day, each
    policy in a scratch lake and MLflow store (the model's data and registry are not touched).
    The report (HTML, PNG charts, JSON) lands in ``reports/<model>/replay/`` and the task's
    *Replay report* link opens it. The step ``replay``
    (:class:`~airloop.execution.AirloopBaseOperator`).
    """

    template_fields: Sequence[str] = ("start", "end", "policies", "calendar_days", "search_budget", "window_days")
    operator_extra_links = (ReplayReportLink(),)
    ui_color = "#e8daef"
    step = "replay"

    def __init__(
        self,
        *,
        start: str,
        end: str,
        policies: Any = ("drift", "calendar", "frozen"),
        calendar_days: Any = 7,
        search_budget: Any = 2,
        window_days: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start, self.end = start, end
        self.policies = policies
        self.calendar_days = calendar_days
        self.search_budget = search_budget
        self.window_days = window_days

    def execute(self, context: Context) -> dict[str, Any]:
        result = self.run_step(context, self.step_params(run_key=str(context["run_id"])))
        self.link_report("replay_report", result["report_uri"])
        for policy, summary in result["summary"].items():
            self.log.info(
                "%s: mean daily ROC AUC %s, %s retrains, %s promotions, %s s",
                policy, summary["mean_daily_auc"], summary["retrains"], summary["promotions"],
                summary["seconds"].get("total"),
            )  # fmt: skip
        return result
