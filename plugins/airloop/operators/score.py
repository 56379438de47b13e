"""Batch scoring operators: pin the champion, score shards (mapped), publish the day atomically."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airloop.assets import model_asset
from airloop.execution import AirloopBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class _DayOperator(AirloopBaseOperator):
    """A scoring step of one day ``ds`` (templated); waits stay in the worker/triggerer."""

    template_fields: tuple[str, ...] = ("ds",)

    def __init__(self, *, ds: str = "{{ ds }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ds = ds


class PinChampionOperator(_DayOperator):
    """Wait for the validated partition, resolve ``@champion`` to a version ONCE, plan shards.

    Every later task of the run scores with the version returned here, even if the alias moves
    mid-run. Returns one dict per shard: ``{ds, version, run_key, index, start, end, n_shards}``.
    """

    ui_color = "#fcf3cf"
    step = "pin"

    def __init__(
        self, *, poke_interval: float = 30.0, wait_timeout: timedelta = timedelta(hours=12), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.poke_interval = poke_interval
        self.wait_timeout = wait_timeout

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airloop.triggers.lake import defer_until_partition
        from include.lake import Zone

        defer_until_partition(self, self.lake_hook.lake, Zone.VALIDATED)
        return self._plan(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        from airloop.triggers.lake import fail_unless_arrived

        fail_unless_arrived(
            self, event, "validated", f"did {self.model}__validate pass for that day? Clear this task once it did"
        )
        return self._plan(context)

    def _plan(self, context: Context) -> list[dict[str, Any]]:
        from include.steps import PinParams

        result = self.run_step(context, PinParams(spec=self.model, ds=self.ds, run_key=str(context["run_id"])))
        if result.get("failed"):
            raise AirflowFailException(result["failed"])
        self.log.info(
            "%s %s: %s rows, champion v%s pinned, %s shard(s)",
            self.model,
            self.ds,
            result["rows"],
            result["version"],
            len(result["shards"]),
        )
        return list(result["shards"])


class BatchScoreOperator(_DayOperator):
    """Score one shard of the day with onnxruntime (streaming, bounded memory).

    :param shard: a dict from :class:`PinChampionOperator` (mapped over its ``.output``: one
        task per shard): the step's parameters but ``spec`` and ``run_id``.
    """

    template_fields = ("ds", "shard")
    ui_color = "#f9e79f"
    step = "score"

    def __init__(self, *, shard: dict[str, Any] | Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard = shard

    def execute(self, context: Context) -> dict[str, Any]:
        from include.steps import ScoreParams

        shard = self.shard
        report = self.run_step(context, ScoreParams(spec=self.model, run_id=str(context["run_id"]), **shard))
        self.log.info(
            "shard %s/%s: %s rows scored, %s rejected, %.0f rows/s",
            shard["index"] + 1,
            shard["n_shards"],
            report["rows_scored"],
            report["rows_rejected"],
            report["rows_per_s"],
        )
        return report


class PublishPredictionsOperator(_DayOperator):
    """Commit all shards of the run as the day's predictions (one atomic file + manifest).

    :param plan: the shards planned by :class:`PinChampionOperator` (its ``.output``).
    """

    template_fields = ("ds", "plan")
    ui_color = "#f7dc6f"
    step = "publish"

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [model_asset(kwargs["model"], "predictions")])
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Context) -> dict[str, Any]:
        from include.steps import PublishParams

        first = self.plan[0]
        params = PublishParams(spec=self.model, ds=first["ds"], run_key=first["run_key"], n_shards=first["n_shards"])
        manifest = self.run_step(context, params)
        context["outlet_events"][model_asset(self.model, "predictions")].extra = {
            "partition": first["ds"],
            "rows": manifest["rows_scored"],
            "rejects": manifest["rows_rejected"],
            "version": first["version"],
        }
        return manifest


class ShadowScoreOperator(_DayOperator):
    """Score ``@challenger`` into ``shadow/`` and record its agreement with the champion's day."""

    ui_color = "#fef9e7"
    step = "shadow"

    def execute(self, context: Context) -> dict[str, Any]:
        from include.steps import ShadowParams

        result = self.run_step(context, ShadowParams(spec=self.model, ds=self.ds, run_id=str(context["run_id"])))
        if result.get("skipped"):
            raise AirflowSkipException(result["skipped"])
        return result


class RegateChallengerOperator(AirloopBaseOperator):
    """Emit the model's ``challenger`` asset event again when the shadow task says the pending
    challenger now has its clean shadow days (``regate_due``): the promote DAG gates it again.
    Skipped otherwise, so no event. Runs no step.

    :param summary: the shadow task's result (its ``.output``).
    """

    template_fields = ("summary",)
    ui_color = "#fdebd0"

    def __init__(self, *, model: str, summary: Any, **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [model_asset(model, "challenger")])
        super().__init__(model=model, **kwargs)
        self.summary = summary

    def execute(self, context: Context) -> dict[str, Any]:
        summary = self.summary or {}
        if not summary.get("regate_due"):
            raise AirflowSkipException("no pending challenger with enough clean shadow days")
        extra = {"version": summary["challenger_version"], "regate": True, "partition": summary["ds"]}
        context["outlet_events"][model_asset(self.model, "challenger")].extra = extra
        return extra
