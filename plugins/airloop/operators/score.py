"""Batch scoring operators: pin the champion, score shards (mapped), publish the day atomically."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airloop.operators.base import DayOperator, PartitionWaitOperator, SignalOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class PinChampionOperator(PartitionWaitOperator):
    """Wait for the validated partition, resolve ``@champion`` to a version ONCE, plan shards.

    Every later task of the run scores with the version returned here, even if the alias moves
    mid-run. Returns one dict per shard: ``{ds, version, run_key, index, start, end, n_shards}``.
    """

    ui_color = "#fcf3cf"
    step = "pin"
    wait_zone = "validated"
    wait_hint = "did {model}__validate pass for that day? Clear this task once it did"

    def on_partition(self, context: Context) -> list[dict[str, Any]]:
        result = self.run_step(context, self.step_params(run_key=str(context["run_id"])))
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


class BatchScoreOperator(DayOperator):
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


class PublishPredictionsOperator(DayOperator):
    """Commit all shards of the run as the day's predictions (one atomic file + manifest).

    :param plan: the shards planned by :class:`PinChampionOperator` (its ``.output``).
    """

    template_fields = ("ds", "plan")
    ui_color = "#f7dc6f"
    step = "publish"
    emits = "predictions"

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Context) -> dict[str, Any]:
        from include.steps import PublishParams

        first = self.plan[0]
        params = PublishParams(spec=self.model, ds=first["ds"], run_key=first["run_key"], n_shards=first["n_shards"])
        manifest = self.run_step(context, params)
        self.emit(
            context,
            partition=first["ds"],
            rows=manifest["rows_scored"],
            rejects=manifest["rows_rejected"],
            version=first["version"],
        )
        return manifest


class ShadowScoreOperator(DayOperator):
    """Score ``@challenger`` into ``shadow/`` and record its agreement with the champion's day."""

    ui_color = "#fef9e7"
    step = "shadow"

    def execute(self, context: Context) -> dict[str, Any]:
        return self.run_step_or_skip(context, self.step_params(run_id=str(context["run_id"])))


class RegateChallengerOperator(SignalOperator):
    """Emit the model's ``challenger`` asset event again when the shadow task says the pending
    challenger now has its clean shadow days (``regate_due``): the promote DAG gates it again.
    Skipped otherwise, so no event.

    :param summary: the shadow task's result (its ``.output``).
    """

    ui_color = "#fdebd0"
    emits = "challenger"

    def execute(self, context: Context) -> dict[str, Any]:
        summary = self.summary or {}
        if not summary.get("regate_due"):
            raise AirflowSkipException("no pending challenger with enough clean shadow days")
        extra = {"version": summary["challenger_version"], "regate": True, "partition": summary["ds"]}
        self.emit(context, **extra)
        return extra
