"""Batch scoring operators: pin the champion, score shards (mapped), publish the day atomically."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airloop.assets import model_asset
from airloop.execution import StepOperator
from airloop.hooks.lake import LakeHook
from airloop.hooks.mlflow_hook import MlflowHook

if TYPE_CHECKING:
    from airflow.sdk import Context


class _ScoringOperator(StepOperator):
    """Shared plumbing; ``execution="docker"`` runs ``airloop pin|score|publish|shadow`` in the
    project image (:class:`~airloop.execution.StepOperator`); waits stay in the worker/triggerer."""

    template_fields: tuple[str, ...] = ("ds",)

    def __init__(
        self,
        *,
        model: str,
        ds: str = "{{ ds }}",
        lake_uri: str | None = None,
        lake_conn_id: str | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.ds = ds
        self.lake_uri = lake_uri
        self.lake_conn_id = lake_conn_id
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook(lake_uri=self.lake_uri, aws_conn_id=self.lake_conn_id)

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)


class PinChampionOperator(_ScoringOperator):
    """Wait for the validated partition, resolve ``@champion`` to a version ONCE, plan shards.

    Every later task of the run scores with the version returned here, even if the alias moves
    mid-run. Returns one dict per shard: ``{ds, version, run_key, index, start, end, n_shards}``.
    """

    ui_color = "#fcf3cf"

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
        from datetime import date

        tracking_uri = self.mlflow_hook.tracking_uri()
        run_key = str(context["run_id"])

        def local() -> dict[str, Any]:
            from include.spec import get_spec
            from include.steps import pin_step

            lake = self.lake_hook.lake
            return pin_step(get_spec(self.model), lake, tracking_uri, date.fromisoformat(self.ds), run_key)

        argv = ["pin", "--spec", self.model, "--ds", self.ds, f"--run-key={run_key}"]
        result = self.run_step(context, argv, local, lake_hook=self.lake_hook, tracking_uri=tracking_uri)
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


class BatchScoreOperator(_ScoringOperator):
    """Score one shard of the day with onnxruntime (streaming, bounded memory).

    :param shard: a dict from :class:`PinChampionOperator` (mapped: one task per shard).
    """

    template_fields = ("ds", "shard")
    ui_color = "#f9e79f"

    def __init__(self, *, shard: dict[str, Any] | Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard = shard

    def execute(self, context: Context) -> dict[str, Any]:
        shard = self.shard
        tracking_uri = self.mlflow_hook.tracking_uri()
        run_id = str(context["run_id"])

        def local() -> dict[str, Any]:
            from include.spec import get_spec
            from include.steps import score_step

            return score_step(get_spec(self.model), self.lake_hook.lake, tracking_uri, shard, run_id)

        argv = ["score", "--spec", self.model, "--ds", str(shard["ds"])]
        for flag in ("version", "index", "start", "end", "n_shards"):
            argv += [f"--{flag.replace('_', '-')}", str(int(shard[flag]))]
        argv += [f"--run-key={shard['run_key']}", f"--run-id={run_id}"]
        report = self.run_step(context, argv, local, lake_hook=self.lake_hook, tracking_uri=tracking_uri)
        self.log.info(
            "shard %s/%s: %s rows scored, %s rejected, %.0f rows/s",
            shard["index"] + 1,
            shard["n_shards"],
            report["rows_scored"],
            report["rows_rejected"],
            report["rows_per_s"],
        )
        return report


class PublishPredictionsOperator(_ScoringOperator):
    """Commit all shards of the run as the day's predictions (one atomic file + manifest)."""

    ui_color = "#f7dc6f"

    def __init__(self, *, plan_task_id: str = "pin_champion", **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [model_asset(kwargs["model"], "predictions")])
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import date

        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        first = plan[0]

        def local() -> dict[str, Any]:
            from include.spec import get_spec
            from include.steps import publish_step

            lake, spec = self.lake_hook.lake, get_spec(self.model)
            return publish_step(spec, lake, date.fromisoformat(first["ds"]), first["run_key"], first["n_shards"])

        argv = ["publish", "--spec", self.model, "--ds", str(first["ds"]), f"--run-key={first['run_key']}"]
        argv += ["--n-shards", str(int(first["n_shards"]))]
        manifest = self.run_step(context, argv, local, lake_hook=self.lake_hook)
        context["outlet_events"][model_asset(self.model, "predictions")].extra = {
            "partition": first["ds"],
            "rows": manifest["rows_scored"],
            "rejects": manifest["rows_rejected"],
            "version": first["version"],
        }
        return manifest


class ShadowScoreOperator(_ScoringOperator):
    """Score ``@challenger`` into ``shadow/`` and record its agreement with the champion's day."""

    ui_color = "#fef9e7"

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import date

        tracking_uri = self.mlflow_hook.tracking_uri()
        run_id = str(context["run_id"])

        def local() -> dict[str, Any]:
            from include.spec import get_spec
            from include.steps import shadow_step

            lake = self.lake_hook.lake
            return shadow_step(get_spec(self.model), lake, tracking_uri, date.fromisoformat(self.ds), run_id)

        argv = ["shadow", "--spec", self.model, "--ds", self.ds, f"--run-id={run_id}"]
        result = self.run_step(context, argv, local, lake_hook=self.lake_hook, tracking_uri=tracking_uri)
        if result.get("skipped"):
            raise AirflowSkipException(result["skipped"])
        return result
