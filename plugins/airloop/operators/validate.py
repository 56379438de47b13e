"""ValidateDataOperator: the data contract gate between ``landing/`` and ``validated/``."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airloop.assets import model_asset
from airloop.execution import StepOperator
from airloop.hooks.lake import LakeHook
from airloop.links import DataDocsLink, ValidationJsonLink, report_url
from airloop.notifiers.alerts import AlertNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context


class ContractViolation(AirflowFailException):
    """The partition broke its data contract; retrying cannot help (it is quarantined)."""


class ValidateDataOperator(StepOperator):
    """Validate the landing partition of ``ds`` against the model's contract.

    Waits for the partition with a deferrable trigger (no worker slot held). Then:

    * **pass**: publish it atomically to ``validated/`` and emit the model's ``validated``
      asset event with ``extra`` = ``{partition, rows, warnings, report_uri}``;
    * **fail**: move the landing files to ``quarantine/<model>/ds=<ds>/<run id>__try<n>/``
      with the reports beside them (never deleted, never overwritten) and fail without
      retries, listing the failed rules; the DAG's failure notifier fires.

    :param model: spec name.
    :param ds: the day (templated).
    :param lake_uri: lake root (default ``AIRLOOP_LAKE_URI``).
    :param lake_conn_id: AWS connection of an ``s3://`` lake.
    :param deferrable: wait in the triggerer (default) instead of failing at once when the
        partition is not there yet.
    :param poke_interval: seconds between checks while waiting.
    :param wait_timeout: how long to wait for the landing partition.
    :param execution: ``local`` or ``docker`` (``airloop validate``; the wait stays in the worker
        or triggerer, see :class:`~airloop.execution.StepOperator`).
    """

    template_fields = ("ds",)
    operator_extra_links = (DataDocsLink(), ValidationJsonLink())
    ui_color = "#d5f5e3"

    def __init__(
        self,
        *,
        model: str,
        ds: str = "{{ ds }}",
        lake_uri: str | None = None,
        lake_conn_id: str | None = None,
        deferrable: bool = True,
        poke_interval: float = 30.0,
        wait_timeout: timedelta = timedelta(hours=12),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [model_asset(model, "validated")])
        super().__init__(**kwargs)
        self.model = model
        self.ds = ds
        self.lake_uri = lake_uri
        self.lake_conn_id = lake_conn_id
        self.deferrable = deferrable
        self.poke_interval = poke_interval
        self.wait_timeout = wait_timeout
        self.report_links: dict[str, str] = {}

    @cached_property
    def hook(self) -> LakeHook:
        return LakeHook(lake_uri=self.lake_uri, aws_conn_id=self.lake_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import date

        from include.lake import Zone

        ds = date.fromisoformat(self.ds)
        if self.hook.lake.has_partition(Zone.LANDING, self.model, ds):
            return self._validate(context)
        if not self.deferrable:
            raise FileNotFoundError(
                f"{self.model} {self.ds}: no landing partition at "
                f"{self.hook.lake.to_uri(self.hook.lake.partition_file(Zone.LANDING, self.model, ds))}"
            )
        from airloop.triggers.lake import defer_until_partition

        defer_until_partition(self, self.hook.lake, Zone.LANDING)
        raise AssertionError("defer() returned")  # pragma: no cover - defer always raises

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        from airloop.triggers.lake import fail_unless_arrived

        fail_unless_arrived(
            self, event, "landing", f"land it (e.g. rerun {self.model}__ingest for {self.ds}) and clear this task"
        )
        return self._validate(context)

    def _validate(self, context: Context) -> dict[str, Any]:
        from datetime import date

        ti = context["ti"]
        run_key = f"{context['run_id']}__try{ti.try_number}"

        def local() -> dict[str, Any]:
            from include.spec import get_spec
            from include.steps import validate_step

            return validate_step(get_spec(self.model), self.hook.lake, date.fromisoformat(self.ds), run_key)

        argv = ["validate", "--spec", self.model, "--ds", self.ds, "--run-key", run_key]
        result = self.run_step(context, argv, local, lake_hook=self.hook)
        self._record_links(result)
        self.log.info("%s %s: %s", self.model, self.ds, result["summary"])
        if not result["passed"]:
            raise ContractViolation(
                f"{self.model} {self.ds} broke its data contract: {'; '.join(result['failures'])}. "
                f"The partition is quarantined at {result['quarantine_uri']}. "
                f"Report: {self.report_links.get('data_docs', 'n/a')}"
            )
        if result.get("anomalous"):  # scored, kept out of training and references: a human should know
            AlertNotifier(self.model, f"{self.model} {self.ds}: {result['summary']}").notify(context)
        context["outlet_events"][model_asset(self.model, "validated")].extra = {
            "partition": self.ds,
            "rows": result["validated_rows"],
            "warnings": result["warnings"],
            "report_uri": result["report_json_uri"],
        }
        summary = {k: v for k, v in result.items() if k != "validated_rows"}
        return summary

    def _record_links(self, result: dict[str, Any]) -> None:
        lake = self.hook.lake
        for key, uri in (
            ("data_docs", result.get("data_docs_uri")),
            ("validation_json", result.get("report_json_uri")),
        ):
            if uri:
                path = uri.split("://", 1)[1]
                self.report_links[key] = report_url(lake.relative(path))
