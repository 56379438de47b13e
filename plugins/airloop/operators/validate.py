"""ValidateDataOperator: the data contract gate between ``landing/`` and ``validated/``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airloop.links import DataDocsLink, ValidationJsonLink
from airloop.operators.base import PartitionWaitOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class ContractViolation(AirflowFailException):
    """The partition broke its data contract; retrying cannot help (it is quarantined). The
    operator sent the ``contract_failure`` alert: the failure callback sends no second one."""

    alerted = True


class ValidateDataOperator(PartitionWaitOperator):
    """Validate the landing partition of ``ds`` against the model's contract.

    Waits for the partition with a deferrable trigger (no worker slot held). Then:

    * **pass**: publish it atomically to ``validated/`` and emit the model's ``validated``
      asset event with ``extra`` = ``{partition, rows, warnings, report_uri}``;
    * **fail**: move the landing files to ``quarantine/<model>/ds=<ds>/<run id>__try<n>/``
      with the reports beside them (never deleted, never overwritten) and fail without
      retries, listing the failed rules, after a ``contract_failure`` alert
      (:meth:`~airloop.execution.AirloopBaseOperator.alert`);
    * **anomalous** (passed, a category's share out of ``contract.mix``): published, and an
      ``anomalous_partition`` alert.

    :param ds: the day (templated).
    :param deferrable: wait in the triggerer (default) instead of failing at once when the
        partition is not there yet.
    :param poke_interval: seconds between checks while waiting.
    :param wait_timeout: how long to wait for the landing partition
        (:class:`~airloop.operators.base.PartitionWaitOperator`).

    The step ``validate`` (the wait stays in the worker or triggerer); ``model``, lake and
    execution arguments: see :class:`~airloop.execution.AirloopBaseOperator`.
    """

    operator_extra_links = (DataDocsLink(), ValidationJsonLink())
    ui_color = "#d5f5e3"
    step = "validate"
    emits = "validated"
    wait_zone = "landing"
    wait_hint = "land it (e.g. rerun {model}__ingest for {ds}) and clear this task"

    def __init__(self, *, deferrable: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import date

        lake, ds = self.lake_hook.lake, date.fromisoformat(self.ds)
        if not self.deferrable and not lake.has_partition(self.wait_zone, self.model, ds):
            raise FileNotFoundError(
                f"{self.model} {self.ds}: no landing partition at "
                f"{lake.to_uri(lake.partition_file(self.wait_zone, self.model, ds))}"
            )
        result: dict[str, Any] = super().execute(context)
        return result

    def on_partition(self, context: Context) -> dict[str, Any]:
        from include import alerts

        run_key = f"{context['run_id']}__try{context['ti'].try_number}"
        result = self.run_step(context, self.step_params(run_key=run_key))
        self.link_report("data_docs", result.get("data_docs_uri"))
        self.link_report("validation_json", result.get("report_json_uri"))
        self.log.info("%s %s: %s", self.model, self.ds, result["summary"])
        if not result["passed"]:
            self.alert(context, alerts.contract_failure(self.model, self.ds, result))
            raise ContractViolation(
                f"{self.model} {self.ds} broke its data contract: {'; '.join(result['failures'])}. "
                f"The partition is quarantined at {result['quarantine_uri']}. "
                f"Report: {self.report_links.get('data_docs', 'n/a')}"
            )
        if result.get("anomalous"):  # scored, kept out of training and references: a human should know
            self.alert(context, alerts.anomalous_partition(self.model, self.ds, result))
        self.emit(
            context,
            partition=self.ds,
            rows=result["validated_rows"],
            warnings=result["warnings"],
            report_uri=result["report_json_uri"],
        )
        summary = {k: v for k, v in result.items() if k != "validated_rows"}
        return summary
