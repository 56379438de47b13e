"""Gated promotion operators: evaluate the challenger, ask a human, move the champion alias."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk.exceptions import AirflowSkipException

from airloop.execution import AirloopBaseOperator
from airloop.links import GateReportLink, ModelCardLink
from include.names import CHALLENGER, NO_DECISION_IN_TIME

if TYPE_CHECKING:
    from datetime import datetime

    from airflow.sdk import Context

RECHECK = timedelta(minutes=5)  # how often a waiting approval checks for a newer challenger


def _utcnow() -> datetime:
    from airflow.sdk.timezone import utcnow

    return utcnow()


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

    The request does not wait forever, nor behind a newer challenger. The task waits in
    Airflow's ``awaiting_input`` state (no worker slot, no trigger) for at most ``recheck`` at a
    time; each time that passes without an answer it wakes for a moment and ends the request
    itself when :func:`include.registry.promotion.unanswered_approval` says so: ``@challenger``
    names a newer version (``superseded by vN``), or ``approval_timeout`` has passed since the
    request (:data:`~include.names.NO_DECISION_IN_TIME`). Otherwise it waits again. A registry that
    does not answer counts as "not superseded": the deadline still holds. Ending, it returns
    *Reject* with the reason as the comment and ``ended`` (``superseded`` or ``timeout``) for the
    promotion task. (It cannot write that answer into the HITL record: a task's supervisor only
    creates the request; updating it is the triggerer's and the UI's.)

    :param report: the gate report (the evaluate task's ``.output``).
    :param approval_timeout: how long the request waits for a human (the spec's
        ``gate.approval_timeout``); ``None``: forever (until superseded).
    :param recheck: how often a waiting request checks for a newer challenger.
    """

    template_fields = (*HITLOperator.template_fields, "report")
    APPROVE, REJECT = "Approve", "Reject"

    def __init__(
        self,
        *,
        model: str,
        report: Any,
        approval_timeout: timedelta | None = None,
        recheck: timedelta = RECHECK,
        **kwargs: Any,
    ) -> None:
        from airflow.sdk import Param

        kwargs.setdefault("subject", f"Promote the {model} challenger to champion?")
        from airloop.notifiers.alerts import ApprovalNeededNotifier

        # Airflow hands the DAG's Params (the gate's run mode) to every task as ``params``; the
        # approval form asks for the comment only.
        kwargs.pop("params", None)
        # HITL calls its notifiers once the request is in *Required actions*: the approval_needed alert
        kwargs["notifiers"] = [*kwargs.get("notifiers", []), ApprovalNeededNotifier(model=model)]
        super().__init__(
            options=[self.APPROVE, self.REJECT],
            params={"comment": Param("", type="string", title="Comment", description="Why (recorded in the ledger)")},
            **kwargs,
        )
        if recheck <= timedelta(0):
            raise ValueError(f"{model}: the approval's recheck interval must be positive, not {recheck}")
        self.model = model
        self.report = report
        self.approval_timeout = approval_timeout
        self.recheck = recheck

    def execute(self, context: Context) -> Any:
        from airflow.sdk.exceptions import TaskAwaitingInput

        report = self.report
        if not report or not report["decision"]["promote"]:
            raise AirflowSkipException("the gate did not pass the challenger: nothing to approve")
        decision = report["decision"]
        lines = [
            f"| {c['name']} | {c['threshold']} | {c['observed']} | {'PASS' if c['passed'] else 'FAIL'} |"
            for c in decision["checks"]
        ]
        deadline = None if self.approval_timeout is None else _utcnow() + self.approval_timeout
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
                "",
                "Without an answer by "
                + (f"{deadline:%Y-%m-%d %H:%M} UTC" if deadline else "(no deadline)")
                + " the challenger is rejected (no decision in time); a newer challenger ends this request.",
            ]
        )
        self.response_timeout = self._wait(deadline)
        try:
            return super().execute(context)
        except TaskAwaitingInput as parked:  # the same park, remembering the deadline across wake-ups
            raise TaskAwaitingInput(
                method_name=parked.method_name,
                kwargs={"deadline": deadline.isoformat() if deadline else None},
                timeout=parked.timeout,
            ) from None

    def execute_complete(self, context: Context, event: dict[str, Any], deadline: str | None = None) -> Any:
        """A human's answer (HITL's own path), or a wake-up after ``recheck`` without one."""
        if event.get("error_type") != "timeout":
            return super().execute_complete(context, event)
        from datetime import datetime

        from airflow.sdk.exceptions import TaskAwaitingInput

        from include.registry.promotion import unanswered_approval

        version = int(self.report["challenger_version"])
        end = datetime.fromisoformat(deadline) if deadline else None
        now = _utcnow()
        current = self._current_challenger()
        ended = unanswered_approval(version, current, end, now)
        if ended is None:
            self.log.info("no answer yet for v%s (challenger: v%s): waiting again", version, current)
            raise TaskAwaitingInput(
                method_name="execute_complete", kwargs={"deadline": deadline}, timeout=self._wait(end)
            )
        comment = f"superseded by v{current}" if ended == "superseded" else NO_DECISION_IN_TIME
        self.log.info("v%s: the request ends without a human answer: %s", version, comment)
        self.hitl_summary_extra.update({"chosen_options": [self.REJECT], "params_input": {"comment": comment}})
        return {
            "chosen_options": [self.REJECT],
            "params_input": {"comment": comment},
            "responded_at": now,
            "responded_by_user": None,
            "ended": ended,
        }

    def _wait(self, deadline: datetime | None) -> timedelta:
        """How long to wait before the next check: ``recheck``, or less to wake at the deadline."""
        if deadline is None:
            return self.recheck
        return max(min(self.recheck, deadline - _utcnow()), timedelta(seconds=1))

    def _current_challenger(self) -> int | None:
        """The version ``@challenger`` names; ``None`` when the registry cannot say (not superseded)."""
        from airloop.hooks.mlflow_hook import MlflowHook
        from include.dashboard import RegistryReader
        from include.registry.aliases import normalise_version

        try:
            # one request, no retries, 10 s at most: MLflow's client retries for minutes
            reader = RegistryReader(MlflowHook().tracking_uri(), budget_s=10.0)
            found = reader.get("registered-models/alias", name=self.model, alias=CHALLENGER)
            return None if found is None else normalise_version(found["model_version"]["version"])
        except Exception as exc:  # noqa: BLE001 - any failure: keep waiting, the deadline still holds
            self.log.warning("could not read %s@%s (%s): not superseded for now", self.model, CHALLENGER, exc)
            return None


class PromoteModelOperator(AirloopBaseOperator):
    """Act on the gate (and approval): CAS-move ``@champion``, tag, model card, ledger.

    Promotions of one model are serialized (the DAG's ``max_active_runs=1``) and the alias move
    is compare-and-set: if the champion changed since evaluation the task fails and moves
    nothing. A rejected challenger (by the gate, a person, or no decision in time) is recorded
    and the task is skipped, so no ``champion`` asset event is emitted; so is one that waited for
    approval while a newer ``@challenger`` was registered (``superseded``).

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
