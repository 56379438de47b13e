"""Alerts reach people: real messages through the real provider code to a local SMTP server
(aiosmtpd) and a local HTTP receiver on 127.0.0.1, with the Airflow connections given by
``AIRFLOW_CONN_<ID>`` variables; what arrived is read back. One message per model, kind and day
(the repeats in the next message's digest); the SMTP password and the webhook tokens are in
neither the logs (through Airflow's secrets masker, as in a task log) nor the lake record."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from airloop.notifiers.alerts import AlertNotifier, deliver
from airloop.operators.breaker import BreakerResetOperator
from include.alerts import drift, rollback
from include.lake import Lake
from include.monitoring.decision import DriftVerdict, Signal
from include.spec import get_spec
from tests.http_receiver import http_receiver

SMTP_PASSWORD = "smtp-Pa55word-4f8e21"
SLACK_TOKEN = "T0AIRLOOP/B0ALERTS/slack-secret-9c2d7a"
WEBHOOK_TOKEN = "Bearer hook-secret-71b3e0"
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SECRETS = (SMTP_PASSWORD, SLACK_TOKEN, WEBHOOK_TOKEN.split()[1], "slack-secret-9c2d7a")


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == SMTP_PASSWORD.encode())


@pytest.fixture()
def mailbox() -> Iterator[tuple[_Mailbox, int]]:
    from aiosmtpd.controller import Controller

    from devstack.stack import free_port

    box = _Mailbox()
    port = free_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=box.authenticate, auth_require_tls=False
    )
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture()
def receiver() -> Iterator[tuple[list[dict[str, Any]], int]]:
    with http_receiver() as received:
        yield received


@pytest.fixture()
def channels(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mailbox: tuple[_Mailbox, int],
    receiver: tuple[list[dict[str, Any]], int],
) -> dict[str, Any]:
    """The flights spec with three channels, and their connections as ``AIRFLOW_CONN_*`` variables."""
    box, smtp_port = mailbox
    received, http_port = receiver
    monkeypatch.delenv("AIRLOOP_EXECUTION", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALERTS_SMTP",
        json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port, "login": "airloop", "password": SMTP_PASSWORD,
            "extra": {"from_email": "airloop@example.org", "disable_ssl": True, "disable_tls": True, "retry_limit": 0},
        }),
    )  # fmt: skip
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALERTS_SLACK",
        json.dumps({"conn_type": "slackwebhook", "host": f"127.0.0.1:{http_port}", "schema": "http",
                    "password": SLACK_TOKEN}),
    )  # fmt: skip
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALERTS_WEBHOOK",
        json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": http_port, "schema": "http",
                    "extra": {"Authorization": WEBHOOK_TOKEN}}),
    )  # fmt: skip
    spec = yaml.safe_load(get_spec("flights").path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
    spec["alerts"] = {
        "runbook_url": "https://docs.example.org/operations.md",
        "channels": [
            {"conn_id": "alerts_smtp", "kind": "smtp", "to": ["oncall@example.org"],
             "events": ["drift_retrain", "breaker_reset", "rollback"]},
            {"conn_id": "alerts_slack", "kind": "slack"},
            {"conn_id": "alerts_webhook", "kind": "webhook", "endpoint": "/hooks/airloop",
             "events": ["drift_retrain", "breaker_reset", "task_failure"]},
        ],
    }  # fmt: skip
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "flights.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    monkeypatch.setenv("AIRLOOP_SPECS_DIR", str(specs))
    return {"mailbox": box, "received": received, "lake": Lake((tmp_path / "lake").as_uri())}


@pytest.fixture()
def logs() -> Iterator[tuple[list[str], list[str]]]:
    """Every log line at DEBUG of this process but the test SMTP server's: as a task log shows
    them, through Airflow's secrets masker (the stdlib filter; ``redact`` for the providers'
    structlog events, as the task log's ``mask_logs`` does), and the airloop modules' own lines
    unmasked."""
    from airflow.sdk._shared.secrets_masker import _secrets_masker, redact
    from structlog.testing import capture_logs

    masked: list[str] = []
    own: list[str] = []

    class _Collect(logging.Handler):
        def __init__(self, into: list[str]) -> None:
            super().__init__(logging.DEBUG)
            self.into = into

        def emit(self, record: logging.LogRecord) -> None:
            self.into.append(record.getMessage() + (str(record.exc_info[1]) if record.exc_info else ""))

    through_masker = _Collect(masked)
    through_masker.addFilter(lambda r: r.name != "mail.log")
    through_masker.addFilter(_secrets_masker())
    unmasked = _Collect(own)
    unmasked.addFilter(lambda r: r.name.startswith(("airloop", "include")))
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(unmasked)  # first: it sees the record before the masker rewrites it
    root.addHandler(through_masker)
    with capture_logs() as events:
        yield masked, own
    masked += [str(redact(event)) for event in events]
    root.removeHandler(through_masker)
    root.removeHandler(unmasked)
    root.setLevel(old_level)


def _context(dag_id: str, run_id: str, task_id: str, **more: Any) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=1)
    return {"ti": ti, "run_id": run_id, **more}


def _summary(partition: str) -> dict[str, Any]:
    verdict = DriftVerdict(
        model="flights", partition=partition, state="retrain", decision_id=f"d-{partition}", score=0.31,
        reasons=("realized ROC AUC dropped 0.071 below the reference 0.684 on 2 of the last 3 days",),
        signals=(Signal("performance_drop", 0.0712, 0.02, True),), trigger="performance_drop",
        window_alerts=2, window_days=3,
    )  # fmt: skip
    return {
        "partition": partition, "model_version": 4, "verdict": verdict.to_dict(), "score": 0.31,
        "report_uri": "file:///l/r.html", "performance": {"roc_auc": 0.613, "label_day": partition},
    }  # fmt: skip


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_drift_retrain_reaches_each_channel_once_a_day_with_its_figures(
    channels: dict[str, Any], logs: tuple[list[str], list[str]]
) -> None:
    box, received, lake = channels["mailbox"], channels["received"], channels["lake"]
    link = "http://airflow.example/airloop/reports/flights/drift/ds=2013-03-05.html"
    (alert,) = drift("flights", _summary("2013-03-05"), link=link)
    record = deliver(alert, _context("flights__monitor", "scheduled__2013-03-05", "monitor"), lake=lake, now=NOW)

    # e-mail: through the SMTP provider, logged in with the connection's password
    assert box.logins == [(b"airloop", SMTP_PASSWORD.encode())]
    (mail,) = box.messages
    assert mail["Subject"] == "[airloop] flights: Drift retrain 2013-03-05"
    assert mail["To"] == "oncall@example.org" and mail["From"] == "airloop@example.org"
    body = mail.get_body().get_content()
    assert "trigger: &quot;performance_drop&quot;" in body and "psi_score: 0.31" in body
    assert "realized_roc_auc: 0.613" in body and "dropped 0.071 below the reference 0.684" in body
    assert f"Link: {link}" in body
    assert "Runbook: https://docs.example.org/operations.md#drift-retrain" in body

    # Slack (incoming webhook, the token in the URL path) and the JSON webhook (token in a header)
    slack, hook = sorted(received, key=lambda r: r["path"] != f"/{SLACK_TOKEN}")
    assert slack["path"] == f"/{SLACK_TOKEN}"
    assert "[airloop] flights: Drift retrain 2013-03-05" in slack["body"]["text"]
    assert "#drift-retrain" in slack["body"]["text"]
    assert hook["path"] == "/hooks/airloop" and hook["headers"]["Authorization"] == WEBHOOK_TOKEN
    payload = hook["body"]
    assert (payload["model"], payload["kind"], payload["partition"]) == ("flights", "drift_retrain", "2013-03-05")
    assert payload["figures"]["signals"]["performance_drop"] == {"value": 0.0712, "threshold": 0.02, "held_by": None}
    assert payload["figures"]["window_alert_days"] == "2/3" and payload["figures"]["model_version"] == 4
    assert payload["runbook"] == "https://docs.example.org/operations.md#drift-retrain" and payload["link"] == link
    assert payload["occurrence"] == "flights__monitor/scheduled__2013-03-05/monitor/2013-03-05"
    assert [c["status"] for c in record["channels"]] == ["sent", "sent", "sent"]

    # the same task rerun: nothing sent again, nothing counted
    deliver(alert, _context("flights__monitor", "scheduled__2013-03-05", "monitor"), lake=lake, now=NOW)
    # the next day's partition, the same calendar day: a repeat, counted for the digest
    (later,) = drift("flights", _summary("2013-03-06"), link=link)
    repeat = deliver(later, _context("flights__monitor", "scheduled__2013-03-06", "monitor"), lake=lake, now=NOW)
    assert [c["status"] for c in repeat["channels"]] == ["repeat", "repeat", "repeat"]
    assert len(box.messages) == 1 and len(received) == 2

    # a rollback the same day (another kind) is sent, with the repeat as its digest where subscribed
    ctx = _context("flights__rollback", "manual__1", "rollback")
    back = rollback("flights", {"version": 3, "previous_version": 4, "reason": "v4 misses the weather join"})
    deliver(back, ctx, lake=lake, now=NOW)
    assert len(box.messages) == 2 and len(received) == 3  # the webhook does not take rollbacks
    text = box.messages[1].get_body().get_content()
    assert "rolled back from v4 to v3" in text and "#rollback" in text
    assert "drift_retrain: 1 more (2013-03-06)" in text
    assert "drift_retrain: 1 more (2013-03-06)" in received[2]["body"]["text"]

    # the lake records: the alert and each channel's status, no secret
    names = sorted(p.rsplit("/", 1)[-1] for p in lake.list_files(lake.path("reports", "flights", "alerts")))
    assert names == [
        "flights__monitor__scheduled__2013-03-05__monitor__drift_retrain.json",
        "flights__monitor__scheduled__2013-03-06__monitor__drift_retrain.json",
        "flights__rollback__manual__1__rollback__rollback.json",
    ]
    stored = [lake.read_bytes(p).decode() for p in lake.list_files(lake.path("reports", "flights"))]
    _assert_no_secret(*stored)
    masked, own = logs
    assert any('"POST /hooks/airloop HTTP/1.1" 200' in line for line in masked)  # the providers' lines are in
    _assert_no_secret(*masked, *own)
    # the senders registered every secret with Airflow's masker: a line that held one shows ***
    from airflow.sdk._shared.secrets_masker import redact

    line = f"POST http://127.0.0.1/{SLACK_TOKEN} Authorization: {WEBHOOK_TOKEN} login {SMTP_PASSWORD}"
    assert redact(line) == "POST http://127.0.0.1/*** Authorization: *** login ***"


def test_breaker_reset_operator_alerts_through_its_lake(channels: dict[str, Any]) -> None:
    """The operator path: the step runs for real, then the base operator's ``alert`` sends."""
    box, received, lake = channels["mailbox"], channels["received"], channels["lake"]
    op = BreakerResetOperator(
        task_id="breaker_reset", model="flights", by="ana", reason="feed fixed", lake_uri=lake.uri
    )
    context = {
        "dag_run": SimpleNamespace(run_after=NOW, run_type="manual"),
        "ti": SimpleNamespace(dag_id="flights__breaker_reset", run_id="manual__r", task_id="breaker_reset"),
        "run_id": "manual__r",
    }
    op.execute(context)  # type: ignore[arg-type]
    (mail,) = box.messages
    assert mail["Subject"] == "[airloop] flights: Breaker reset"
    assert "by: &quot;ana&quot;" in mail.get_body().get_content()
    hook = next(r for r in received if r["path"] == "/hooks/airloop")["body"]
    assert hook["kind"] == "breaker_reset" and hook["figures"]["reason"] == "feed fixed"
    assert hook["figures"]["ledger_uri"].startswith(lake.uri + "/reports/flights/ledger/")
    assert lake.exists(
        lake.report_path("flights", "alerts", "flights__breaker_reset__manual__r__breaker_reset__breaker_reset.json")
    )


def test_task_failure_goes_out_once_and_not_after_an_operators_own_alert(channels: dict[str, Any]) -> None:
    received = channels["received"]
    context = _context("flights__train", "scheduled__2013-03-05", "train", logical_date="2013-03-05T00:00:00+00:00")
    context["exception"] = RuntimeError("InsufficientDataError: 2 labelled days in the window")
    AlertNotifier(model="flights", message="flights__train task failed").notify(context)
    hooks = [r["body"] for r in received if r["path"] == "/hooks/airloop"]
    assert [(h["kind"], h["partition"], h["figures"]["task_id"]) for h in hooks] == [
        ("task_failure", "2013-03-05", "train")
    ]
    assert "InsufficientDataError: 2 labelled days" in hooks[0]["headline"]
    alerted = _context("flights__validate", "scheduled__2013-03-05", "validate")
    alerted["exception"] = type("ContractViolation", (Exception,), {"alerted": True})("broke its contract")
    AlertNotifier(model="flights", message="flights__validate task failed").notify(alerted)
    assert len(received) == 2  # slack + webhook for the train failure; nothing for the validate one


def test_a_failing_channel_is_recorded_masked_and_the_others_still_get_it(
    channels: dict[str, Any], monkeypatch: pytest.MonkeyPatch, logs: tuple[list[str], list[str]]
) -> None:
    from devstack.stack import free_port

    dead = free_port()  # nothing listens there
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALERTS_SLACK",
        json.dumps({"conn_type": "slackwebhook", "host": f"127.0.0.1:{dead}", "schema": "http",
                    "password": SLACK_TOKEN}),
    )  # fmt: skip
    lake = channels["lake"]
    (alert,) = drift("flights", _summary("2013-03-05"))
    record = deliver(alert, _context("flights__monitor", "r", "monitor"), lake=lake, now=NOW)
    status = {c["conn_id"]: c["status"] for c in record["channels"]}
    assert status["alerts_smtp"] == "sent" and status["alerts_webhook"] == "sent"
    assert status["alerts_slack"].startswith("failed: ")
    _assert_no_secret(json.dumps(record), *[lake.read_bytes(p).decode() for p in lake.list_files(lake.path("reports"))])
    masked, own = logs
    assert any("not sent to alerts_slack" in line for line in own)
    _assert_no_secret(*masked, *own)


def test_approval_needed_links_to_the_required_action(
    channels: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The approval operator's HITL notifier, called as HITL calls it once the request is written."""
    from airloop.notifiers.alerts import ApprovalNeededNotifier
    from airloop.operators.promote import PromotionApprovalOperator
    from include.registry.gate import Check, GateDecision

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:8080")
    checks = [Check("min_roc_auc", 0.6, 0.71, True, "0.71 >= 0.6"), Check("max_regression", 0.01, -0.02, True, "")]
    decision = GateDecision("g-1", True, True, "enabled", False, True, checks, "PROMOTE: 2/2 checks passed",
                            {"challenger_roc_auc": 0.71, "champion_roc_auc": 0.69, "gain": 0.02})  # fmt: skip
    report = {"challenger_version": 7, "champion_version": 5, "evaluation_days": ["2013-03-01", "2013-03-07"],
              "evaluation_rows": 5400, "decision": decision.to_dict()}  # fmt: skip
    op = PromotionApprovalOperator(task_id="approve", model="flights", report=report)
    (notifier,) = [n for n in op.notifiers if isinstance(n, ApprovalNeededNotifier)]
    ti = SimpleNamespace(dag_id="flights__promote", run_id="asset_triggered__1", task_id="approve", map_index=-1)
    notifier({"task": op, "ti": ti, "task_instance": ti, "run_id": "asset_triggered__1"})
    slack = next(r["body"]["text"] for r in channels["received"] if r["path"] == f"/{SLACK_TOKEN}")
    assert "[airloop] flights: Approval needed 2013-03-07" in slack
    assert "challenger v7 passed the gate and waits for approval" in slack
    assert "gain: 0.02" in slack and "champion_roc_auc: 0.69" in slack
    link = "http://airflow.example:8080/dags/flights__promote/runs/asset_triggered__1/tasks/approve/required_actions"
    assert f"Link: {link}?map_index=-1" in slack
    assert "#approval-needed" in slack
    assert len(channels["received"]) == 1 and channels["mailbox"].messages == []  # the others do not subscribe


def test_each_operator_that_knows_an_event_records_its_alert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wiring, with each step's result given (no channel: the shipped flights spec): the
    monitor, promote and rollback operators call the base operator's ``alert`` with their event."""
    from airflow.sdk.exceptions import AirflowSkipException
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airloop.execution import AirloopBaseOperator
    from airloop.operators.monitor import MonitorDriftOperator
    from airloop.operators.promote import PromoteModelOperator, RollbackOperator

    lake = Lake((tmp_path / "lake").as_uri())
    results: dict[str, Any] = {
        "monitor": {**_summary("2013-03-05"), "report_uri": f"{lake.uri}/reports/flights/drift/ds=2013-03-05.html"},
        "promote": {"promoted": False, "action": "reject", "version": 7, "champion": 5},
        "rollback": {"version": 3, "previous_version": 5, "reason": "v5 misses the weather join"},
    }
    monkeypatch.setattr(AirloopBaseOperator, "run_step", lambda self, context, params: results[self.step])
    monkeypatch.setattr(AirloopBaseOperator, "step_params", lambda self, **values: None)
    report = {"decision": {"summary": "REJECT: 2/3 checks passed", "promote": False, "decision_id": "g", "checks": [
        {"name": "max_regression", "threshold": 0.01, "observed": 0.03, "passed": False, "detail": "0.03 > 0.01"}]},
        "report_json_uri": f"{lake.uri}/reports/flights/gate/g.json", "evaluation_days": ["2013-03-05"],
        "report_html_uri": f"{lake.uri}/reports/flights/gate/g.html"}  # fmt: skip
    common = {"model": "flights", "lake_uri": lake.uri}
    run = SimpleNamespace(run_after=NOW)
    MonitorDriftOperator(task_id="monitor", ds="2013-03-05", **common).on_partition(
        _context("flights__monitor", "m", "monitor")  # type: ignore[arg-type]
    )
    with pytest.raises(AirflowSkipException):
        PromoteModelOperator(task_id="promote", report=report, **common).execute(
            _context("flights__promote", "p", "promote", dag_run=run)  # type: ignore[arg-type]
        )
    RollbackOperator(task_id="rollback", reason="v5 misses the weather join", **common).execute(
        _context("flights__rollback", "r", "rollback", dag_run=run, outlet_events=OutletEventAccessors())  # type: ignore[arg-type]
    )
    folder = lake.path("reports", "flights", "alerts")
    records = {json.loads(lake.read_bytes(p))["kind"]: json.loads(lake.read_bytes(p)) for p in lake.list_files(folder)}
    assert sorted(records) == ["drift_retrain", "gate_reject", "rollback"]
    assert records["drift_retrain"]["link"].endswith("/airloop/reports/flights/drift/ds=2013-03-05.html")
    assert records["gate_reject"]["figures"]["failed_checks"] == {
        "max_regression": {"observed": 0.03, "threshold": 0.01}
    }
    assert records["gate_reject"]["link"].endswith("/airloop/reports/flights/gate/g.html")
    assert records["rollback"]["figures"] == {
        "version": 3,
        "previous_version": 5,
        "reason": "v5 misses the weather join",
    }
    assert all(r["channels"] == [] for r in records.values())  # no channel: log and lake only
