"""ReplayOperator: ``airloop replay`` from the Airflow UI, its report one click away."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airloop.execution import StepOperator
from airloop.hooks.lake import LakeHook
from airloop.links import ReplayReportLink, report_url

if TYPE_CHECKING:
    from airflow.sdk import Context


class ReplayOperator(StepOperator):
    """Replay ``start..end`` under the given retraining policies and publish the report.

    Runs :func:`include.steps.replay_step`: the loop's own step functions day by day, each
    policy in a scratch lake and MLflow store (the model's data and registry are not touched).
    The report (HTML, PNG charts, JSON) lands in ``reports/<model>/replay/`` and the task's
    *Replay report* link opens it. ``execution="docker"`` runs ``airloop replay --publish-key``.
    """

    template_fields: Sequence[str] = ("start", "end", "policies", "calendar_days", "search_budget", "window_days")
    operator_extra_links = (ReplayReportLink(),)
    ui_color = "#e8daef"

    def __init__(
        self,
        *,
        model: str,
        start: str,
        end: str,
        policies: Any = ("drift", "calendar", "frozen"),
        calendar_days: Any = 7,
        search_budget: Any = 2,
        window_days: Any = None,
        lake_uri: str | None = None,
        lake_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.start, self.end = start, end
        self.policies = policies
        self.calendar_days = calendar_days
        self.search_budget = search_budget
        self.window_days = window_days
        self.lake_uri = lake_uri
        self.lake_conn_id = lake_conn_id
        self.report_links: dict[str, str] = {}

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook(lake_uri=self.lake_uri, aws_conn_id=self.lake_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import date

        run_key = str(context["run_id"])
        policies = [self.policies] if isinstance(self.policies, str) else list(self.policies)
        window = None if self.window_days in (None, "", "None") else int(self.window_days)

        def local() -> dict[str, Any]:
            from include.replay import ReplaySettings
            from include.spec import get_spec
            from include.steps import replay_step

            settings = ReplaySettings(
                start=date.fromisoformat(self.start),
                end=date.fromisoformat(self.end),
                policies=tuple(policies),
                calendar_days=int(self.calendar_days),
                window_days=window,
                search_budget=int(self.search_budget),
            )
            return replay_step(get_spec(self.model), self.lake_hook.lake, settings, run_key)

        argv = ["replay", "--spec", self.model, "--from", self.start, "--to", self.end]
        argv += ["--policies", ",".join(policies), "--calendar-days", str(self.calendar_days)]
        argv += ["--budget", str(self.search_budget), "--publish-key", run_key]
        if window is not None:
            argv += ["--window-days", str(window)]
        result = self.run_step(context, argv, local, lake_hook=self.lake_hook)
        lake = self.lake_hook.lake
        self.report_links["replay_report"] = report_url(lake.relative(result["report_uri"].split("://", 1)[1]))
        for policy, summary in result["summary"].items():
            self.log.info(
                "%s: mean daily ROC AUC %s, %s retrains, %s promotions, %s s",
                policy, summary["mean_daily_auc"], summary["retrains"], summary["promotions"],
                summary["seconds"].get("total"),
            )  # fmt: skip
        return result
