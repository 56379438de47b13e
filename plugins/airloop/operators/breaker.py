"""The retrain circuit breaker's human reset, as an operator of the ``<model>__breaker_reset`` DAG."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airloop.execution import StepOperator
from airloop.hooks.lake import LakeHook

if TYPE_CHECKING:
    from airflow.sdk import Context


class BreakerResetOperator(StepOperator):
    """Record a human reset of the retrain circuit breaker in the model's ledger.

    The next monitor run reads it (``include.monitoring.monitor.loop_state``): the gate rejections
    before it no longer hold automatic retrains. ``by`` and ``reason`` are required; the ledger
    time is the run's ``run_after``, so a retried task records the reset once.
    ``execution="docker"`` runs ``airloop breaker reset`` in the project image.
    """

    template_fields = ("by", "reason")
    ui_color = "#fad7a0"

    def __init__(
        self,
        *,
        model: str,
        by: str = "",
        reason: str = "",
        lake_uri: str | None = None,
        lake_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.by = by
        self.reason = reason
        self.lake_uri = lake_uri
        self.lake_conn_id = lake_conn_id

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook(lake_uri=self.lake_uri, aws_conn_id=self.lake_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        by, reason, now = str(self.by or ""), str(self.reason or ""), context["dag_run"].run_after
        dag_id, run_id = context["ti"].dag_id, str(context["run_id"])

        def local() -> dict[str, Any]:
            from include.registry.ledger import record_breaker_reset

            uri = record_breaker_reset(
                self.lake_hook.lake, self.model, by=by, reason=reason, time=now, dag_id=dag_id, run_id=run_id
            )
            return {"model": self.model, "action": "breaker_reset", "by": by, "reason": reason, "ledger_uri": uri}

        argv = ["breaker", "reset", "--spec", self.model, f"--by={by}", f"--reason={reason}", "--now", now.isoformat()]
        return self.run_step(context, argv, local, lake_hook=self.lake_hook)
