"""What the promotion records for each way an approval ends: a person's reject, no decision in time,
a newer challenger; and when a waiting request ends by itself (``unanswered_approval``).

The registry is an in-memory stand-in for the three MLflow calls these paths make (read the
aliases, set version tags): the promotion itself (alias move, model card) is covered against a
real MLflow server by the system tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from include.lake import Lake
from include.monitoring.monitor import loop_state
from include.names import NO_DECISION_IN_TIME
from include.registry import promotion
from include.registry.ledger import read_ledger
from include.registry.promotion import apply_decision, superseded_by, unanswered_approval
from include.spec import get_spec

SPEC = get_spec("flights")
NOW = datetime(2013, 3, 8, 6, tzinfo=UTC)


class FakeRegistry:
    """``get_registered_model(name).aliases`` and ``set_model_version_tag``, in memory."""

    def __init__(self, **aliases: int) -> None:
        self.aliases = {alias: str(version) for alias, version in aliases.items()}
        self.tags: dict[str, dict[str, str]] = {}

    def get_registered_model(self, name: str) -> Any:
        return SimpleNamespace(name=name, aliases=dict(self.aliases))

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.tags.setdefault(version, {})[key] = value


def _report(version: int = 7, champion: int = 5, decision_id: str = "g-7") -> dict[str, Any]:
    return {
        "model": "flights",
        "challenger_version": version,
        "champion_version": champion,
        "evaluation_days": ["2013-03-06", "2013-03-07"],
        "decision": {"decision_id": decision_id, "promote": True, "summary": "PROMOTE: 7/7 checks passed"},
        "challenger": {"roc_auc": 0.71},
        "comparison": {"gain": 0.02},
        "challenger_tags": {"airloop.trigger": "data_drift"},
        "report_json_uri": "file:///lake/reports/flights/gate/g-7.json",
    }


def _apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: FakeRegistry, approval: dict[str, Any], **report: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    monkeypatch.setattr(promotion, "_client", lambda uri: registry)
    lake = Lake((tmp_path / "lake").as_uri())
    outcome = apply_decision(
        SPEC, lake, "http://mlflow.invalid", _report(**report), approval=approval, now=NOW, dag_id="d", run_id="r"
    )
    return outcome, read_ledger(lake, "flights")


def _human(option: str, comment: str, user: str = "alice") -> dict[str, Any]:
    return {
        "chosen_options": [option],
        "params_input": {"comment": comment},
        "responded_by_user": {"id": user, "name": user},
    }


def test_a_person_rejecting_is_recorded_with_who_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = FakeRegistry(champion=5, challenger=7)
    outcome, ledger = _apply(tmp_path, monkeypatch, registry, _human("Reject", "holiday traffic, wait a week"))
    assert outcome == {"promoted": False, "action": "approval_rejected", "version": 7, "champion": 5, "approval": None}
    (entry,) = ledger
    assert (entry["action"], entry["approver"], entry["reason"]) == (
        "approval_rejected",
        "alice",
        "holiday traffic, wait a week",
    )
    assert entry["figures"]["approval"] is None
    assert registry.tags["7"] == {
        "airloop.gate": "approval_rejected",
        "airloop.rejected_by": "alice",
        "airloop.reject_reason": "holiday traffic, wait a week",
    }
    assert registry.aliases["champion"] == "5"


def test_no_decision_in_time_rejects_with_that_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = FakeRegistry(champion=5, challenger=7)
    ended = {"chosen_options": ["Reject"], "params_input": {"comment": NO_DECISION_IN_TIME}, "responded_by_user": None,
             "ended": "timeout"}  # fmt: skip
    outcome, ledger = _apply(tmp_path, monkeypatch, registry, ended)
    assert outcome["action"] == "approval_rejected" and not outcome["promoted"] and outcome["approval"] == "timeout"
    (entry,) = ledger
    assert (entry["approver"], entry["reason"], entry["figures"]["approval"]) == (
        None,
        "no decision in time",
        "timeout",
    )
    assert registry.tags["7"]["airloop.reject_reason"] == "no decision in time"
    assert registry.tags["7"]["airloop.rejected_by"] == ""


@pytest.mark.parametrize(
    "approval",
    [
        pytest.param(_human("Approve", "looks good", "bob"), id="approved-after-the-newer-one-came"),
        pytest.param(
            {
                "chosen_options": ["Reject"],
                "params_input": {"comment": "superseded by v8"},
                "responded_by_user": None,
                "ended": "superseded",
            },
            id="ended-by-the-waiting-task",
        ),  # fmt: skip
    ],
)
def test_a_newer_challenger_supersedes_whatever_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, approval: dict[str, Any]
) -> None:
    registry = FakeRegistry(champion=5, challenger=8)  # v8 was registered while v7 waited
    outcome, ledger = _apply(tmp_path, monkeypatch, registry, approval)
    ended = approval.get("ended")  # set when the waiting task ended the request itself
    assert outcome == {"promoted": False, "action": "superseded", "version": 7, "champion": 5, "approval": ended}
    (entry,) = ledger
    assert (entry["action"], entry["version"], entry["reason"]) == ("superseded", 7, "superseded by v8")
    assert registry.tags["7"] == {
        "airloop.gate": "superseded",
        "airloop.gate_decision_id": "g-7",
        "airloop.superseded_by": "8",
    }
    assert registry.aliases == {"champion": "5", "challenger": "8"}  # nothing moved


def test_a_timeout_counts_toward_the_breaker_and_a_supersede_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake_path = tmp_path
    timeout = {"chosen_options": ["Reject"], "params_input": {}, "responded_by_user": None, "ended": "timeout"}
    _apply(lake_path, monkeypatch, FakeRegistry(champion=5, challenger=7), timeout, version=7, decision_id="g-7")
    _apply(lake_path, monkeypatch, FakeRegistry(champion=5, challenger=9), _human("Approve", ""), version=8,
           decision_id="g-8")  # fmt: skip
    lake = Lake((tmp_path / "lake").as_uri())
    assert [e["action"] for e in read_ledger(lake, "flights")] == ["approval_rejected", "superseded"]
    assert loop_state(lake, "flights", []).streak("data_drift").count == 1


def test_without_approval_the_challenger_alias_is_not_consulted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No one waited, so nothing is stale: a rejected gate is recorded as before, whatever ``@challenger`` says."""
    registry = FakeRegistry(champion=5, challenger=8)
    monkeypatch.setattr(promotion, "_client", lambda uri: registry)
    lake = Lake((tmp_path / "lake").as_uri())
    report = _report()
    report["decision"] = {**report["decision"], "promote": False, "mode": "enabled"}
    outcome = apply_decision(SPEC, lake, "u", report, approval=None, now=NOW, dag_id="d", run_id="r")
    assert outcome["action"] == "reject"


def test_a_waiting_request_ends_when_superseded_or_past_its_deadline() -> None:
    deadline = NOW + timedelta(hours=72)
    assert unanswered_approval(7, 7, deadline, NOW) is None  # still the challenger, time left: wait
    assert unanswered_approval(7, None, deadline, NOW) is None  # registry silent: not superseded
    assert unanswered_approval(7, 8, deadline, NOW) == "superseded"
    assert unanswered_approval(7, 7, deadline, deadline) == "timeout"
    assert unanswered_approval(7, 8, deadline, deadline + timedelta(seconds=1)) == "superseded"  # the telling reason
    assert unanswered_approval(7, 7, None, NOW + timedelta(days=365)) is None  # no deadline
    assert (superseded_by(7, 8), superseded_by(7, 7), superseded_by(7, None)) == (8, None, None)
