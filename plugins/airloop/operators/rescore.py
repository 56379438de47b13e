"""Re-scoring after a rollback: plan the affected days, re-score each with the restored version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from airloop.execution import AirloopBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class RescorePlanOperator(AirloopBaseOperator):
    """The days to re-score after a rollback, one dict per day for the mapped re-score task.

    In a run the ``champion`` asset triggered, each triggering event whose ``extra`` says
    ``rollback: true`` names a rollback (``version`` restored, ``previous_version`` rolled back);
    a run triggered only by promotions is skipped (nothing to repair). A manual run takes
    ``version`` and ``previous_version`` (empty: the newest rollback in the ledger). The days
    come from the ledger and the prediction manifests (:func:`include.scoring.rescore.plan_rescore`):
    an event is a wake-up call, the lake says what is still to do.

    :param version: the restored version (templated; manual runs).
    :param previous_version: the rolled-back version (templated; manual runs).
    """

    template_fields = ("version", "previous_version")
    ui_color = "#fadbd8"
    step = "rescore-plan"

    def __init__(self, *, version: Any = None, previous_version: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version = version
        self.previous_version = previous_version

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airloop.context import is_asset_triggered, rollback_events

        pairs: list[tuple[Any, Any]] = list(rollback_events(context))
        if not pairs:
            if is_asset_triggered(context):
                raise AirflowSkipException(
                    "the champion event came from a promotion, not a rollback: nothing to re-score"
                )
            pairs = [(self.version, self.previous_version)]
        days: dict[str, dict[str, Any]] = {}
        for version, previous in pairs:  # oldest first: a later rollback's plan of a day wins
            plan = self.run_step(context, self.step_params(version=version, previous_version=previous))
            self.log.info(
                "rollback v%s -> v%s (%s): v%s champion since %s; %s day(s) to re-score",
                plan["previous_version"],
                plan["version"],
                plan["reason"],
                plan["previous_version"],
                plan["since"],
                len(plan["days"]),
            )
            days.update({day["ds"]: day for day in plan["days"]})
        return [days[ds] for ds in sorted(days)]


class RescoreDayOperator(AirloopBaseOperator):
    """Re-score one day with the restored version (pinned) and keep the old predictions as
    superseded (:func:`include.scoring.rescore.rescore_day`). Mapped over the plan's days.

    Emits ``<model>.predictions`` with ``extra = {partition, rows, rejects, version, rescored,
    supersedes}`` (``rescored`` false when a rerun found the day already done); skipped (no
    event) when the day no longer carries the rolled-back version.

    :param day: one dict of :class:`RescorePlanOperator`'s output (``ds``, ``version``,
        ``replaces``, ``reason``).
    """

    template_fields = ("day",)
    ui_color = "#f9e79f"
    step = "rescore"
    emits = "predictions"

    def __init__(self, *, day: dict[str, Any] | Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.day = day

    def execute(self, context: Context) -> dict[str, Any]:
        run_id = str(context["run_id"])
        params = self.step_params(**self.day, run_key=run_id, run_id=run_id, now=context["dag_run"].run_after)
        result = self.run_step_or_skip(context, params)
        supersedes = result.get("supersedes") or {}
        self.log.info(
            "%s %s: %s rows re-scored with v%s, v%s kept in %s",
            self.model,
            result["ds"],
            result["rows_scored"],
            result["model_version"],
            supersedes.get("model_version"),
            supersedes.get("archive"),
        )
        self.emit(
            context,
            partition=result["ds"],
            rows=result["rows_scored"],
            rejects=result["rows_rejected"],
            version=result["model_version"],
            rescored=bool(result["rescored"]),  # False: this run had already re-scored the day
            supersedes=supersedes.get("model_version"),
        )
        return {k: result[k] for k in ("ds", "model_version", "rows_scored", "rows_rejected", "supersedes", "rescored")}
