"""ValidateDataOperator: the data contract gate between ``landing/`` and ``validated/``."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airloop.assets import model_asset
from airloop.execution import AirloopBaseOperator
from airloop.links import DataDocsLink, ValidationJsonLink
from airloop.notifiers.alerts import AlertNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context


class ContractViolation(AirflowFailException):
    """The partition broke its data contract; retrying cannot help (it is quarantined)."""


class ValidateDataOperator(AirloopBaseOperator):
    """Validate the landing partition of ``ds`` against the model's contract.

    Waits for the partition with a deferrable trigger (no worker slot held). Then:

    * **pass**: publish it atomically to ``validated/`` and emit the model's ``validated``
      asset event with ``extra`` = ``{partition, rows, warnings, report_uri}``;
    * **fail**: move the landing files to ``quarantine/<model>/ds=<ds>/<run id>__try<n>/``
      with the reports beside them (never deleted, never overwritten) and fail without
      retries, listing the failed rules; the DAG's failure notifier fires.

    :param ds: the day (templated).
    :param deferrable: wait in the triggerer (default) instead of failing at once when the
        partition is not there yet.
    :param poke_interval: seconds between checks while waiting.
    :param wait_timeout: how long to wait for the landing partition.

    The step ``validate`` (the wait stays in the worker or triggerer); ``model``, lake and
    execution arguments: see :class:`~airloop.execution.AirloopBaseOperator`.
    """

    template_fields = ("ds",)
    operator_extra_links = (DataDocsLink(), ValidationJsonLink())
    ui_color = "#d5f5e3"
    step = "validate"

    def __init__(
        self,
        *,
        model: str,
        ds: str = "{{ ds }}",
        deferrable: bool = True,
        poke_interval: float = 30.0,
        wait_timeout: timedelta = timedelta(hours=12),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [model_asset(model, "validated")])
        super().__init__(model=model, **kwargs)
        self.ds = ds
        self.deferrable = deferrable
        self.poke_interval = poke_interval
        self.wait_timeout = wait_timeout

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import date

        from include.lake import Zone

        ds = date.fromisoformat(self.ds)
        if self.lake_hook.lake.has_partition(Zone.LANDING, self.model, ds):
            return self._validate(context)
        if not self.deferrable:
            raise FileNotFoundError(
                f"{self.model} {self.ds}: no landing partition at "
                f"{self.lake_hook.lake.to_uri(self.lake_hook.lake.partition_file(Zone.LANDING, self.model, ds))}"
            )
        from airloop.triggers.lake import defer_until_partition

        defer_until_partition(self, self.lake_hook.lake, Zone.LANDING)
        raise AssertionError("defer() returned")  # pragma: no cover - defer always raises

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        from airloop.triggers.lake import fail_unless_arrived

        fail_unless_arrived(
            self, event, "landing", f"land it (e.g. rerun {self.model}__ingest for {self.ds}) and clear this task"
        )
        return self._validate(context)

    def _validate(self, context: Context) -> dict[str, Any]:
        from include.steps import ValidateParams

        run_key = f"{context['run_id']}__try{context['ti'].try_number}"
        result = self.run_step(context, ValidateParams(spec=self.model, ds=self.ds, run_key=run_key))
        self.link_report("data_docs", result.get("data_docs_uri"))
        self.link_report("validation_json", result.get("report_json_uri"))
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
