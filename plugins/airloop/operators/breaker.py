"""The retrain circuit breaker's human reset, as an operator of the ``<model>__breaker_reset`` DAG."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airloop.execution import AirloopBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class BreakerResetOperator(AirloopBaseOperator):
    """Record a human reset of the retrain circuit breaker in the model's ledger.

    The next monitor run reads it (``include.monitoring.monitor.loop_state``): the gate rejections
    before it no longer hold automatic retrains. ``by`` and ``reason`` are required; the ledger
    time is the run's ``run_after``, so a retried task records the reset once.
    """

    template_fields = ("by", "reason")
    ui_color = "#fad7a0"
    step = "breaker-reset"

    def __init__(self, *, by: str = "", reason: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.by = by
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        from airloop.context import ledger_fields
        from include.alerts import breaker_reset

        params = self.step_params(by=str(self.by or ""), reason=str(self.reason or ""), **ledger_fields(context))
        result = self.run_step(context, params)
        self.alert(context, breaker_reset(self.model, result))
        return result
