"""PromotionApprovalOperator: how it parks, wakes, waits again or ends a request by itself.

Airflow's side is stood in for at its two seams: the Task SDK call that writes the request
(``upsert_hitl_detail``) and the registry read (``_current_challenger``). The real scheduler runs the same operator in
tests/system/test_approval_system.py (timeout) and tests/system/test_ui_browser.py (approve, reject).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSkipException, TaskAwaitingInput

from airloop.operators.promote import RECHECK, PromotionApprovalOperator

TI_ID = uuid.uuid4()


def _report(promote: bool = True, version: int = 7) -> dict[str, Any]:
    return {
        "challenger_version": version,
        "champion_version": 5,
        "evaluation_days": ["2013-03-06", "2013-03-07"],
        "evaluation_rows": 5400,
        "decision": {
            "promote": promote,
            "summary": "PROMOTE: 1/1 checks passed",
            "checks": [{"name": "min_roc_auc", "threshold": 0.6, "observed": 0.71, "passed": True}],
        },
    }


def _op(**kwargs: Any) -> PromotionApprovalOperator:
    op = PromotionApprovalOperator(task_id="approve", model="flights", report=_report(), **kwargs)
    op.notifiers = []  # the approval_needed alert has its own test (tests/plugins/test_alerts.py)
    return op


def _context() -> Any:
    return {"task_instance": SimpleNamespace(id=TI_ID)}


@pytest.fixture()
def hitl(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The HITL request the task writes (through its supervisor, to the Execution API)."""
    import airflow.providers.standard.operators.hitl as hitl_operator

    record: dict[str, Any] = {"request": None}

    def upsert(**fields: Any) -> None:
        record["request"] = fields

    monkeypatch.setattr(hitl_operator, "upsert_hitl_detail", upsert)
    return record


def _timeout_event() -> dict[str, Any]:
    return {"error": "The Human-in-the-loop response timeout has passed without a response.", "error_type": "timeout"}


def test_the_request_parks_until_the_next_check_and_remembers_its_deadline(hitl: dict[str, Any]) -> None:
    before = datetime.now(UTC)
    with pytest.raises(TaskAwaitingInput) as parked:
        _op(approval_timeout=timedelta(hours=72)).execute(_context())
    assert parked.value.method_name == "execute_complete" and parked.value.timeout == RECHECK == timedelta(minutes=5)
    deadline = datetime.fromisoformat(parked.value.kwargs["deadline"])
    assert before + timedelta(hours=72) <= deadline <= datetime.now(UTC) + timedelta(hours=72)
    request = hitl["request"]
    assert request["options"] == ["Approve", "Reject"] and request["ti_id"] == TI_ID
    assert (
        "challenger v7 vs champion v5" in request["body"] and "| min_roc_auc | 0.6 | 0.71 | PASS |" in request["body"]
    )
    assert f"Without an answer by {deadline:%Y-%m-%d %H:%M} UTC the challenger is rejected" in request["body"]

    with pytest.raises(TaskAwaitingInput) as short:  # a deadline before the next check: wake at the deadline
        _op(approval_timeout=timedelta(seconds=20)).execute(_context())
    assert timedelta(seconds=18) <= short.value.timeout <= timedelta(seconds=20)


def test_nothing_to_approve_when_the_gate_rejected(hitl: dict[str, Any]) -> None:
    op = PromotionApprovalOperator(task_id="approve", model="flights", report=_report(promote=False))
    with pytest.raises(AirflowSkipException, match="nothing to approve"):
        op.execute(_context())
    assert hitl["request"] is None


def test_a_persons_answer_is_returned_as_given(hitl: dict[str, Any]) -> None:
    at = datetime(2013, 3, 8, 9, tzinfo=UTC)
    event = {"chosen_options": ["Reject"], "params_input": {"comment": "not before the audit"},
             "responded_at": at, "responded_by_user": {"id": "alice", "name": "alice"}, "timedout": False}  # fmt: skip
    result = _op().execute_complete(_context(), event, deadline=None)
    assert result["chosen_options"] == ["Reject"] and result["params_input"] == {"comment": "not before the audit"}
    assert result["responded_by_user"] == {"id": "alice", "name": "alice"} and "ended" not in result


def test_no_answer_yet_and_still_the_challenger_waits_again(
    hitl: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    op = _op(approval_timeout=timedelta(hours=72))
    monkeypatch.setattr(op, "_current_challenger", lambda: 7)
    deadline = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    with pytest.raises(TaskAwaitingInput) as parked:
        op.execute_complete(_context(), _timeout_event(), deadline=deadline)
    assert parked.value.kwargs == {"deadline": deadline}  # the same deadline, not a new one
    assert timedelta(minutes=1) < parked.value.timeout <= timedelta(minutes=2)  # wakes at the deadline


@pytest.mark.parametrize(
    ("current", "past_deadline", "ended", "comment"),
    [
        (7, True, "timeout", "no decision in time"),
        (None, True, "timeout", "no decision in time"),  # the registry did not answer: the deadline holds
        (8, False, "superseded", "superseded by v8"),
        (8, True, "superseded", "superseded by v8"),
    ],
)
def test_the_request_ends_itself_with_a_reject_and_the_reason(
    hitl: dict[str, Any], monkeypatch: pytest.MonkeyPatch, current: int | None, past_deadline: bool, ended: str,
    comment: str,
) -> None:  # fmt: skip
    op = _op(approval_timeout=timedelta(hours=72))
    monkeypatch.setattr(op, "_current_challenger", lambda: current)
    deadline = datetime.now(UTC) + (timedelta(seconds=-1) if past_deadline else timedelta(hours=1))
    result = op.execute_complete(_context(), _timeout_event(), deadline=deadline.isoformat())
    assert (result["chosen_options"], result["params_input"], result["ended"]) == (
        ["Reject"],
        {"comment": comment},
        ended,
    )
    assert result["responded_by_user"] is None


def test_an_unreachable_registry_reads_as_no_newer_challenger_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: connections are refused
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", f'{{"conn_type": "http", "host": "127.0.0.1", "port": {port}}}')
    started = time.monotonic()
    assert _op()._current_challenger() is None
    assert time.monotonic() - started < 5


def test_the_recheck_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="recheck interval must be positive"):
        PromotionApprovalOperator(task_id="approve", model="flights", report=None, recheck=timedelta(0))
