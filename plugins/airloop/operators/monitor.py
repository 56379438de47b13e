"""Drift monitoring operators: measure and decide every day; signal a retrain only when decided."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from airloop.links import DriftReportLink
from airloop.operators.base import PartitionWaitOperator, SignalOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class MonitorDriftOperator(PartitionWaitOperator):
    """Measure the day's drift against the champion's reference and decide (ok/warn/retrain/...).

    Waits (deferrable) for the day's predictions. Always writes the day's drift record; alerts
    (:func:`include.alerts.drift`) on ``warn``, ``retrain``, a performance breach and an open or
    half-open circuit breaker. Returns the record's summary (verdict included) for ``signal_retrain``.
    The step ``monitor``; the wait (:class:`~airloop.operators.base.PartitionWaitOperator`) and
    the alert stay in the worker (:class:`~airloop.execution.AirloopBaseOperator`).
    """

    operator_extra_links = (DriftReportLink(),)
    ui_color = "#d4e6f1"
    step = "monitor"
    wait_zone = "predictions"
    wait_hint = "did {model}__score run for that day? Clear this task once it did"

    def on_partition(self, context: Context) -> dict[str, Any]:
        from include.alerts import drift

        summary = self.run_step(context, self.step_params())
        self.link_report("drift_report", summary["report_uri"])
        self.alert(context, *drift(self.model, summary))
        return summary


class SignalRetrainOperator(SignalOperator):
    """Emit the model's ``drift`` asset event, only when the day's verdict is ``retrain``.

    :param summary: the monitor task's result (its ``.output``).
    """

    ui_color = "#aed6f1"
    emits = "drift"

    def execute(self, context: Context) -> dict[str, Any]:
        summary = self.summary
        verdict = summary["verdict"]
        if verdict["state"] != "retrain":
            raise AirflowSkipException(f"verdict {verdict['state']}: no retrain ({'; '.join(verdict['reasons'])})")
        extra = {
            "partition": summary["partition"],
            "decision_id": verdict["decision_id"],
            "trigger": verdict.get("trigger"),  # the signal kind that decided (decision.PRIORITY)
            "break_day": verdict.get("break_day"),  # set for a performance drop or breach
            "score": summary["score"],
            "top_features": verdict["top_features"],
            "report_uri": summary["report_uri"],
        }
        self.emit(context, **extra)
        return extra
