"""ReplayIngestOperator: land one day of a model's history (features, and late labels)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airloop.operators.base import DayOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class ReplayIngestOperator(DayOperator):
    """Land the rows of ``ds`` in ``landing/`` and the labels of ``ds - label_delay`` in ``labels/``.

    :param ds: the day to land (templated; defaults to the run's logical date).

    The step ``ingest``; ``model``, lake, MLflow and execution arguments: see
    :class:`~airloop.execution.AirloopBaseOperator`. Emits the model's ``landing`` asset event
    with ``extra`` = partition, rows, label figures.
    """

    ui_color = "#d6eaf8"
    step = "ingest"
    emits = "landing"

    def execute(self, context: Context) -> dict[str, Any]:
        summary = self.run_step(context, self.step_params())
        self.emit(
            context,
            partition=summary["ds"],
            rows=summary["rows"],
            label_partition=summary["label_ds"],
            label_rows=summary["label_rows"],
        )
        return summary
