"""Gated promotion operators: evaluate the challenger, ask a human, move the champion alias."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk.exceptions import AirflowSkipException

from airloop.execution import AirloopBaseOperator
from airloop.links import GateReportLink, ModelCardLink

if TYPE_CHECKING:
    from airflow.sdk import Context


class EvaluateChallengerOperator(AirloopBaseOperator):
    """Evaluate ``@challenger`` against ``@champion`` on the same fresh labelled days and decide.

    Returns the gate report (decision with every check, versions, evaluation days, report URIs)
    as XCom for the approval and promotion tasks. Moves nothing.

    :param mode: ``enabled`` | ``dry_run`` | ``disabled`` (templated; empty: the spec's gate mode).
    """

    template_fields = ("mode",)
    operator_extra_links = (GateReportLink(),)
    ui_color = "#e8daef"
    step = "evaluate"

    def __init__(self, *, mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode

    def execute(self, context: Context) -> dict[str, Any]:
        report = self.run_step(context, self.step_params(report_key=str(context["run_id"])))
        self.link_report("gate_report", report["report_html_uri"])
        self.log.info("%s", report["decision"]["summary"])
        return report


class PromotionApprovalOperator(HITLOperator):
    """A human approves or rejects a challenger the gate passed (Airflow's HITL, 3.1+).

    Skipped when the gate rejected the challenger (nothing to approve). Once the request is
    written, :class:`~airloop.notifiers.alerts.ApprovalNeededNotifier` sends the
    ``approval_needed`` alert with the gate's figures and a link to the request. Unlike
    ``ApprovalOperator`` it does not skip downstream on *Reject*: the promotion task records
    who rejected and why in the ledger and on the version.

    :param report: the gate report (the evaluate task's ``.output``).
    """

    template_fields = (*HITLOperator.template_fields, "report")

    def __init__(self, *, model: str, report: Any, **kwargs: Any) -> None:
        from airflow.sdk import Param

        kwargs.setdefault("subject", f"Promote the {model} challenger to champion?")
        from airloop.notifiers.alerts import ApprovalNeededNotifier

        # Airflow hands the DAG's Params (the gate's run mode) to every task as ``params``; the
        # approval form asks for the comment only.
        kwargs.pop("params", None)
        # HITL calls its notifiers once the request is in *Required actions*: the approval_needed alert
        kwargs["notifiers"] = [*kwargs.get("notifiers", []), ApprovalNeededNotifier(model=model)]
        super().__init__(
            options=["Approve", "Reject"],
            params={"comment": Param("", type="string", title="Comment", description="Why (recorded in the ledger)")},
            **kwargs,
        )
        self.model = model
        self.report = report

    def execute(self, context: Context) -> Any:
        report = self.report
        if not report or not report["decision"]["promote"]:
            raise AirflowSkipException("the gate did not pass the challenger: nothing to approve")
        decision = report["decision"]
        lines = [
            f"| {c['name']} | {c['threshold']} | {c['observed']} | {'PASS' if c['passed'] else 'FAIL'} |"
            for c in decision["checks"]
        ]
        self.body = "\n".join(
            [
                f"**{self.model}**: challenger v{report['challenger_version']} vs champion "
                f"{('v' + str(report['champion_version'])) if report['champion_version'] else '(none)'}",
                "",
                decision["summary"],
                "",
                f"Evaluated on {report['evaluation_rows']} rows of {', '.join(report['evaluation_days'])}.",
                "",
                "| check | threshold | observed | status |",
                "| --- | --- | --- | --- |",
                *lines,
            ]
        )
        return super().execute(context)


class PromoteModelOperator(AirloopBaseOperator):
    """Act on the gate (and approval): CAS-move ``@champion``, tag, model card, ledger.

    Promotions of one model are serialized (the DAG's ``max_active_runs=1``) and the alias move
    is compare-and-set: if the champion changed since evaluation the task fails and moves
    nothing. A rejected challenger is recorded and the task is skipped, so no ``champion``
    asset event is emitted.

    :param report: the gate report (the evaluate task's ``.output``).
    :param approval: the approval task's ``.output`` when the spec requires approval; given, a
        passed gate without a recorded response fails the task.
    """

    template_fields = ("report", "approval")
    operator_extra_links = (ModelCardLink(), GateReportLink())
    ui_color = "#d2b4de"
    step = "promote"
    emits = "champion"

    def __init__(self, *, report: Any, approval: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.report = report
        self.approval = approval
        self.approval_required = approval is not None  # an upstream's output, resolved at run time

    def execute(self, context: Context) -> dict[str, Any]:
        from airloop.context import ledger_fields
        from include import alerts
        from include.steps import PromoteParams

        report, approval = self.report, self.approval
        if self.approval_required and report["decision"]["promote"] and approval is None:
            raise RuntimeError(f"{self.model}: approval required but no response was recorded")
        self.link_report("gate_report", report.get("report_html_uri"))
        params = PromoteParams(
            spec=self.model, report_uri=report["report_json_uri"], approval=approval, **ledger_fields(context)
        )
        outcome = self.run_step(context, params)
        self.link_report("model_card", outcome.get("model_card"))
        self.alert(context, alerts.gate(self.model, report, outcome))
        if not outcome["promoted"]:
            raise AirflowSkipException(
                f"{self.model}: not promoted ({outcome['action']}): {report['decision']['summary']}"
            )
        self.emit(
            context,
            version=outcome["version"],
            previous_version=outcome["champion"],
            decision_id=report["decision"]["decision_id"],
        )
        return outcome


class RollbackOperator(AirloopBaseOperator):
    """Move ``@champion`` back to ``target_version`` (default: the one it replaced), with a reason.

    Emits ``<model>.champion`` with ``extra = {version, previous_version, decision_id,
    rollback: true, reason}``: the ``rollback`` flag wakes ``<model>__rescore``, which re-scores
    the days the rolled-back version scored (:class:`~airloop.operators.rescore.RescorePlanOperator`).
    """

    template_fields = ("target_version", "reason")
    ui_color = "#f5b7b1"
    step = "rollback"
    emits = "champion"

    def __init__(self, *, target_version: int | str | None = None, reason: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_version = target_version
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        from airloop.context import ledger_fields
        from include.alerts import rollback

        params = self.step_params(reason=str(self.reason or ""), **ledger_fields(context))
        outcome = self.run_step(context, params)
        self.alert(context, rollback(self.model, outcome))
        self.emit(
            context,
            version=outcome["version"],
            previous_version=outcome["previous_version"],
            decision_id=f"rollback:{context['run_id']}",
            rollback=True,
            reason=outcome["reason"],
        )
        return outcome
