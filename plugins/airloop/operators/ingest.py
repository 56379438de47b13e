"""ReplayIngestOperator: land one day of a model's history (features, and late labels)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airloop.assets import model_asset
from airloop.execution import StepOperator
from airloop.hooks.lake import LakeHook

if TYPE_CHECKING:
    from airflow.sdk import Context


class ReplayIngestOperator(StepOperator):
    """Land the rows of ``ds`` in ``landing/`` and the labels of ``ds - label_delay`` in ``labels/``.

    :param model: spec name.
    :param ds: the day to land (templated; defaults to the run's logical date).
    :param lake_uri: lake root (defaults to ``AIRLOOP_LAKE_URI``).
    :param lake_conn_id: AWS connection for an ``s3://`` lake (defaults to ``AIRLOOP_LAKE_CONN_ID`` or ``aws_default``).
    :param execution: ``local`` or ``docker`` (``airloop ingest``; see :class:`~airloop.execution.StepOperator`).

    Emits the model's ``landing`` asset event with ``extra`` = partition, rows, label figures.
    """

    template_fields = ("ds",)
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        model: str,
        ds: str = "{{ ds }}",
        lake_uri: str | None = None,
        lake_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [model_asset(model, "landing")])
        super().__init__(**kwargs)
        self.model = model
        self.ds = ds
        self.lake_uri = lake_uri
        self.lake_conn_id = lake_conn_id

    @cached_property
    def hook(self) -> LakeHook:
        return LakeHook(lake_uri=self.lake_uri, aws_conn_id=self.lake_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import date

        def local() -> dict[str, Any]:
            from include.spec import get_spec
            from include.steps import ingest_step

            return ingest_step(get_spec(self.model), self.hook.lake, date.fromisoformat(self.ds))

        summary = self.run_step(context, ["ingest", "--spec", self.model, "--ds", self.ds], local, lake_hook=self.hook)
        context["outlet_events"][model_asset(self.model, "landing")].extra = {
            "partition": summary["ds"],
            "rows": summary["rows"],
            "label_partition": summary["label_ds"],
            "label_rows": summary["label_rows"],
        }
        return summary
