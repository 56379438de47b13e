"""Gated promotion operators: evaluate the challenger, ask a human, move the champion alias."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk.exceptions import AirflowSkipException

from airloop.assets import model_asset
from airloop.execution import StepOperator
from airloop.hooks.lake import LakeHook
from airloop.hooks.mlflow_hook import MlflowHook
from airloop.links import GateReportLink, ModelCardLink, report_url

if TYPE_CHECKING:
    from airflow.sdk import Context


class _RegistryOperator(StepOperator):
    """Shared plumbing: spec, lake and MLflow from hooks (connections, never credentials in code).

    ``execution="docker"`` runs ``airloop evaluate|promote|rollback`` in the project image
    (:class:`~airloop.execution.StepOperator`).
    """

    def __init__(
        self,
        *,
        model: str,
        lake_uri: str | None = None,
        lake_conn_id: str | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.lake_uri = lake_uri
        self.lake_conn_id = lake_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.report_links: dict[str, str] = {}

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook(lake_uri=self.lake_uri, aws_conn_id=self.lake_conn_id)

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def _link(self, key: str, uri: str | None) -> None:
        if uri:
            self.report_links[key] = report_url(self.lake_hook.lake.relative(uri.split("://", 1)[1]))


class EvaluateChallengerOperator(_RegistryOperator):
    """Evaluate ``@challenger`` against ``@champion`` on the same fresh labelled days and decide.

    Returns the gate report (decision with every check, versions, evaluation days, report URIs)
    as XCom for the approval and promotion tasks. Moves nothing.

    :param mode: ``enabled`` | ``dry_run`` | ``disabled`` (templated; empty: the spec's gate mode).
    """

    template_fields = ("mode",)
    operator_extra_links = (GateReportLink(),)
    ui_color = "#e8daef"

    def __init__(self, *, mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode

    def execute(self, context: Context) -> dict[str, Any]:
        tracking_uri = self.mlflow_hook.tracking_uri()
        report_key = str(context["run_id"])

        def local() -> dict[str, Any]:
            from include.spec import get_spec
            from include.steps import evaluate_step

            lake = self.lake_hook.lake
            return evaluate_step(
                get_spec(self.model), lake, tracking_uri, mode=self.mode or None, report_key=report_key
            )

        argv = ["evaluate", "--spec", self.model, f"--report-key={report_key}"]
        if self.mode:
            argv += ["--mode", str(self.mode)]
        report = self.run_step(context, argv, local, lake_hook=self.lake_hook, tracking_uri=tracking_uri)
        self._link("gate_report", report["report_html_uri"])
        self.log.info("%s", report["decision"]["summary"])
        return report


class PromotionApprovalOperator(HITLOperator):
    """A human approves or rejects a challenger the gate passed (Airflow's HITL, 3.1+).

    Skipped when the gate rejected the challenger (nothing to approve). Unlike
    ``ApprovalOperator`` it does not skip downstream on *Reject*: the promotion task records
    who rejected and why in the ledger and on the version.
    """

    def __init__(self, *, model: str, evaluate_task_id: str = "evaluate", **kwargs: Any) -> None:
        from airflow.sdk import Param

        kwargs.setdefault("subject", f"Promote the {model} challenger to champion?")
        super().__init__(
            options=["Approve", "Reject"],
            params={"comment": Param("", type="string", title="Comment", description="Why (recorded in the ledger)")},
            **kwargs,
        )
        self.model = model
        self.evaluate_task_id = evaluate_task_id

    def execute(self, context: Context) -> Any:
        report = context["ti"].xcom_pull(task_ids=self.evaluate_task_id)
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


class PromoteModelOperator(_RegistryOperator):
    """Act on the gate (and approval): CAS-move ``@champion``, tag, model card, ledger.

    Promotions of one model are serialized (the DAG's ``max_active_runs=1``) and the alias move
    is compare-and-set: if the champion changed since evaluation the task fails and moves
    nothing. A rejected challenger is recorded and the task is skipped, so no ``champion``
    asset event is emitted.
    """

    operator_extra_links = (ModelCardLink(), GateReportLink())
    ui_color = "#d2b4de"

    def __init__(
        self, *, evaluate_task_id: str = "evaluate", approve_task_id: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("outlets", [model_asset(kwargs["model"], "champion")])
        super().__init__(**kwargs)
        self.evaluate_task_id = evaluate_task_id
        self.approve_task_id = approve_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        import json

        ti = context["ti"]
        report = ti.xcom_pull(task_ids=self.evaluate_task_id)
        approval = ti.xcom_pull(task_ids=self.approve_task_id) if self.approve_task_id else None
        if self.approve_task_id and report["decision"]["promote"] and approval is None:
            raise RuntimeError(f"{self.model}: approval required but no response was recorded")
        self._link("gate_report", report.get("report_html_uri"))
        tracking_uri = self.mlflow_hook.tracking_uri()
        now, run_id = context["dag_run"].run_after, str(context["run_id"])

        def local() -> dict[str, Any]:
            from include.registry.promotion import apply_decision
            from include.spec import get_spec

            return apply_decision(
                get_spec(self.model),
                self.lake_hook.lake,
                tracking_uri,
                report,
                approval=approval,
                now=now,
                dag_id=ti.dag_id,
                run_id=run_id,
            )

        argv = ["promote", "--spec", self.model, "--report-uri", report["report_json_uri"], "--now", now.isoformat()]
        argv += [f"--dag-id={ti.dag_id}", f"--run-id={run_id}"]
        if approval is not None:
            argv.append(f"--approval={json.dumps(approval, default=str)}")
        outcome = self.run_step(context, argv, local, lake_hook=self.lake_hook, tracking_uri=tracking_uri)
        if not outcome["promoted"]:
            raise AirflowSkipException(
                f"{self.model}: not promoted ({outcome['action']}): {report['decision']['summary']}"
            )
        self._link("model_card", outcome.get("model_card"))
        context["outlet_events"][model_asset(self.model, "champion")].extra = {
            "version": outcome["version"],
            "previous_version": outcome["champion"],
            "decision_id": report["decision"]["decision_id"],
        }
        return outcome


class RollbackOperator(_RegistryOperator):
    """Move ``@champion`` back to ``target_version`` (default: the one it replaced), with a reason."""

    template_fields = ("target_version", "reason")
    ui_color = "#f5b7b1"

    def __init__(self, *, target_version: int | str | None = None, reason: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [model_asset(kwargs["model"], "champion")])
        super().__init__(**kwargs)
        self.target_version = target_version
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        target = None if self.target_version in (None, "", "None") else int(self.target_version)  # type: ignore[arg-type]
        tracking_uri = self.mlflow_hook.tracking_uri()
        reason, now = str(self.reason or ""), context["dag_run"].run_after
        dag_id, run_id = context["ti"].dag_id, str(context["run_id"])

        def local() -> dict[str, Any]:
            from include.spec import get_spec
            from include.steps import rollback_step

            return rollback_step(
                get_spec(self.model),
                self.lake_hook.lake,
                tracking_uri,
                target_version=target,
                reason=reason,
                now=now,
                dag_id=dag_id,
                run_id=run_id,
            )

        argv = ["rollback", "--spec", self.model, f"--reason={reason}", "--now", now.isoformat()]
        argv += [f"--dag-id={dag_id}", f"--run-id={run_id}"]
        if target is not None:
            argv += ["--target-version", str(target)]
        outcome = self.run_step(context, argv, local, lake_hook=self.lake_hook, tracking_uri=tracking_uri)
        context["outlet_events"][model_asset(self.model, "champion")].extra = {
            "version": outcome["version"],
            "previous_version": outcome["previous_version"],
            "decision_id": f"rollback:{context['run_id']}",
        }
        return outcome
