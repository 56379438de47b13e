"""include.alerts: the messages carry model, partition, the deciding figures and the runbook
anchor; the rate limit sends one message per model, kind and day and reports the rest once; the
runbook has a section for every alert kind; the spec's ``alerts`` section is strict."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from include.alerts import (
    TITLES,
    Alert,
    AlertError,
    anchor,
    approval_needed,
    contract_failure,
    drift,
    gate,
    load_rate_state,
    rate_limit,
    runbook_link,
    save_rate_state,
)
from include.lake import Lake
from include.monitoring.decision import DriftVerdict, Signal
from include.names import ALERT_KINDS
from include.registry.gate import Check, GateDecision
from include.spec import SpecError, get_spec, parse_spec
from tests.test_docs_links import slug

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 12, 7)


def _verdict(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "model": "flights",
        "partition": "2013-03-05",
        "state": "retrain",
        "reasons": ("realized ROC AUC 0.61 dropped 0.07 below the reference 0.68 on 2 of the last 3 days",),
        "decision_id": "d-123",
        "score": 0.31,
        "top_features": ("dep_hour", "origin"),
        "window_alerts": 2,
        "window_days": 3,
        "signals": (
            Signal("performance_drop", 0.0712, 0.02, True, None, "drop 0.071 > 0.02"),
            Signal("data_drift", 0.31, 0.25, True, "no_impact", "psi 0.31"),
            Signal("breach", 0.61, 0.5, False),
        ),
        "trigger": "performance_drop",
    }
    values.update(overrides)
    return DriftVerdict(**values).to_dict()


def _summary(verdict: dict[str, Any]) -> dict[str, Any]:
    return {
        "partition": verdict["partition"],
        "model_version": 4,
        "verdict": verdict,
        "score": verdict["score"],
        "report_uri": "file:///lake/reports/flights/drift/ds=2013-03-05.html",
        "performance": {"roc_auc": 0.6123456, "label_day": "2013-03-04"},
    }


def test_drift_retrain_carries_the_verdicts_figures() -> None:
    (alert,) = drift("flights", _summary(_verdict()), link="http://x/report.html")
    assert alert.kind == "drift_retrain" and alert.model == "flights" and alert.partition == "2013-03-05"
    assert alert.figures["trigger"] == "performance_drop" and alert.figures["psi_score"] == 0.31
    assert alert.figures["realized_roc_auc"] == 0.6123  # rounded to 4 places
    assert alert.figures["window_alert_days"] == "2/3"
    # only the fired signals, with their value, threshold and what held them
    assert alert.figures["signals"] == {
        "performance_drop": {"value": 0.0712, "threshold": 0.02, "held_by": None},
        "data_drift": {"value": 0.31, "threshold": 0.25, "held_by": "no_impact"},
    }
    text = alert.text(runbook_link("docs/operations.md", alert.kind))
    assert text.startswith("[airloop] flights: Drift retrain 2013-03-05\n")
    assert "Runbook: docs/operations.md#drift-retrain" in text and "Link: http://x/report.html" in text
    assert "dropped 0.07 below the reference 0.68" in text


def test_breach_and_open_breaker_are_two_alerts_and_quiet_days_none() -> None:
    breaker = "breach circuit breaker open: the last 3 breach challengers were rejected by the gate (limit 3)"
    verdict = _verdict(state="warn", trigger=None, breach=True, circuit_open=True, reasons=("AUC 0.41", breaker))
    kinds = [(a.kind, a.reasons) for a in drift("flights", _summary(verdict))]
    assert kinds == [("performance_breach", ("AUC 0.41", breaker)), ("breaker_open", (breaker,))]
    half = _verdict(state="retrain", circuit_open=True, half_open=True)
    assert [a.kind for a in drift("flights", _summary(half))] == ["drift_retrain", "breaker_half_open"]
    assert drift("flights", _summary(_verdict(state="ok", trigger=None))) == []
    assert [a.kind for a in drift("flights", _summary(_verdict(state="warn", trigger=None)))] == ["drift_warn"]


def _report(promote: bool) -> dict[str, Any]:
    checks = [
        Check("min_roc_auc", 0.6, 0.71, True, "0.71 >= 0.6"),
        Check("max_regression", 0.01, 0.034, promote, "regression 0.034 over 0.01"),
    ]
    decision = GateDecision(
        decision_id="g-9",
        promote=promote,
        would_promote=promote,
        mode="enabled",
        first_model=False,
        approval_required=False,
        checks=checks,
        summary="REJECT: 1/2 checks passed" if not promote else "PROMOTE: 2/2 checks passed",
        figures={"challenger_roc_auc": 0.7100001, "champion_roc_auc": 0.744, "gain": -0.034, "worst_slice": None},
    )
    return {
        "challenger_version": 7,
        "champion_version": 5,
        "evaluation_days": ["2013-03-01", "2013-03-07"],
        "evaluation_rows": 5400,
        "decision": decision.to_dict(),
    }


def test_gate_reject_names_the_failed_checks_and_the_gates_figures() -> None:
    alert = gate("flights", _report(False), {"promoted": False, "action": "reject", "version": 7, "champion": 5})
    assert alert is not None and alert.kind == "gate_reject" and alert.partition == "2013-03-07"
    assert alert.figures["failed_checks"] == {"max_regression": {"observed": 0.034, "threshold": 0.01}}
    assert alert.figures["challenger_roc_auc"] == 0.71 and alert.figures["gain"] == -0.034
    assert "worst_slice" not in alert.figures  # unknown figures are left out
    assert alert.figures["evaluation_days"] == "2013-03-01..2013-03-07 (2 days)"
    assert alert.reasons == ("max_regression: regression 0.034 over 0.01",)
    promoted = gate("flights", _report(True), {"promoted": True, "action": "promote", "version": 7, "champion": 5})
    assert promoted is not None and promoted.kind == "promotion" and "v7 promoted" in promoted.headline
    pending = {"promoted": False, "action": "pending", "version": 7, "champion": 5}
    assert gate("flights", _report(False), pending) is None
    expired = {"promoted": False, "action": "approval_rejected", "version": 7, "champion": 5, "approval": "timeout"}
    alert = gate("flights", _report(True), expired)
    assert alert is not None and alert.kind == "approval_expired" and alert.reasons == ("no decision in time",)
    assert "v7 passed the gate but nobody approved it in time" in alert.headline
    assert alert.figures["challenger_roc_auc"] == 0.71
    by_a_person = {**expired, "approval": None}  # rejected by the approver: they know
    superseded = {**expired, "action": "superseded", "approval": "superseded"}  # the newer one asks again
    assert gate("flights", _report(True), by_a_person) is None and gate("flights", _report(True), superseded) is None
    assert approval_needed("flights", _report(True)).figures["failed_checks"] == {}


def test_contract_failure_lists_the_rules_and_the_quarantine() -> None:
    result = {
        "rows": 120,
        "errors": ["unique:flight_id"],
        "warnings": [],
        "failures": ["unique:flight_id (5 duplicates)"],
        "quarantine_uri": "file:///lake/quarantine/flights/ds=2013-01-09/run__try1",
    }
    alert = contract_failure("flights", "2013-01-09", result)
    payload = alert.payload(runbook_link("https://docs.example/ops.md", alert.kind))
    assert payload["runbook"] == "https://docs.example/ops.md#contract-failure"
    assert payload["figures"]["failed_rules"] == ["unique:flight_id"]
    assert payload["reasons"] == ["unique:flight_id (5 duplicates)"]
    assert "quarantined at file:///lake/quarantine/flights/ds=2013-01-09/run__try1" in payload["headline"]


def test_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(AlertError, match="unknown alert kind 'drift'"):
        Alert("flights", "drift", None, "x")  # type: ignore[arg-type]


def _alert(
    kind: str = "drift_warn", occurrence: str = "dag/run1/monitor/2013-03-01", part: str = "2013-03-01"
) -> Alert:
    return Alert("flights", kind, part, "h", occurrence=occurrence)  # type: ignore[arg-type]


def test_rate_limit_one_per_model_kind_and_day_the_rest_in_the_next_digest() -> None:
    state: dict[str, Any] = {}
    first, state = rate_limit(state, _alert(), DAY)
    assert first.send and first.digest == ()
    again, state = rate_limit(state, _alert(), DAY)  # the same task rerun: nothing new
    assert (again.send, again.outcome) == (False, "duplicate")
    second, state = rate_limit(state, _alert(occurrence="dag/run2/monitor/2013-03-02", part="2013-03-02"), DAY)
    third, state = rate_limit(state, _alert(occurrence="dag/run3/monitor/2013-03-03", part="2013-03-03"), DAY)
    assert (second.outcome, third.outcome) == ("repeat", "repeat")
    rerun, state = rate_limit(state, _alert(occurrence="dag/run3/monitor/2013-03-03", part="2013-03-03"), DAY)
    assert rerun.outcome == "duplicate" and len(state["suppressed"]) == 2  # a rerun is not counted twice
    other, state = rate_limit(state, _alert("rollback", "dag/r/rollback/-", ""), DAY)  # another kind: sent
    assert other.send and [e.partition for e in other.digest] == ["2013-03-02", "2013-03-03"]
    assert Alert.text(_alert(), "rb", other.digest).endswith("  - drift_warn: 2 more (2013-03-02, 2013-03-03)")
    next_day, state = rate_limit(state, _alert(occurrence="dag/run4/monitor/2013-03-04"), date(2026, 12, 8))
    assert next_day.send and next_day.digest == ()  # reported once only


def test_rate_limit_forgets_after_keep_days() -> None:
    _, state = rate_limit({}, _alert(), DAY)
    _, state = rate_limit(state, _alert(occurrence="dag/run2/monitor/x"), DAY)
    _, state = rate_limit(state, _alert("rollback", "r"), date(2027, 2, 1))
    assert list(state["sent"]) == ["rollback@2027-02-01"] and state["suppressed"] == []


def test_rate_state_round_trips_through_the_lake(tmp_path: Path) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    assert load_rate_state(lake, "flights") == {"sent": {}, "suppressed": []}
    _, state = rate_limit({}, _alert(), DAY)
    uri = save_rate_state(lake, "flights", state)
    assert uri.endswith("/reports/flights/alert-state/rate_limit.json")
    assert load_rate_state(lake, "flights") == state


def test_every_alert_kind_has_its_runbook_section() -> None:
    """docs/operations.md: one heading per alert kind under ``## Alerts``, its anchor the kind's."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    headings = re.findall(r"^### (.+)$", section, re.M)
    assert {slug(h) for h in headings} == {anchor(k) for k in ALERT_KINDS}
    assert sorted(headings) == sorted(TITLES.values())
    for heading, body in zip(headings, re.split(r"^### .+$", section, flags=re.M)[1:], strict=True):
        for part in ("**Means**", "**Check**", "**Do**"):
            assert part in body, f"runbook section {heading!r} lacks {part}"


def test_spec_alerts_default_to_no_channel_and_refuse_bad_channels(tmp_path: Path) -> None:
    spec = get_spec("flights")
    assert spec.alerts.channels == [] and spec.alerts.runbook_url == "docs/operations.md"
    data = spec.model_dump(mode="json", exclude={"path"})
    data["alerts"] = {"channels": [{"conn_id": "ops_mail", "kind": "smtp", "events": ["rollback"]}]}
    with pytest.raises(
        SpecError, match=r"alerts.channels.0: expected 'to' \(one or more addresses\) on the smtp channel 'ops_mail'"
    ):
        parse_spec(data, tmp_path / "flights.yaml")
    data["alerts"] = {"channels": [{"conn_id": "ops", "kind": "slack", "events": ["drift"]}]}
    with pytest.raises(SpecError, match=r"alerts.channels.0.events.0: expected input should be"):
        parse_spec(data, tmp_path / "flights.yaml")
    data["alerts"] = {"channels": [{"conn_id": "ops", "kind": "slack", "token": "xoxb"}]}
    with pytest.raises(SpecError, match=r"alerts.channels.0.token: unknown field"):
        parse_spec(data, tmp_path / "flights.yaml")
    data["alerts"] = {"channels": [{"conn_id": "ops", "kind": "webhook", "endpoint": "/hook"}]}
    parsed = parse_spec(data, tmp_path / "flights.yaml")
    assert parsed.alerts.channels[0].wants("task_failure")  # default: every kind
    assert parsed.spec_hash() == spec.spec_hash()  # where alerts go is not the model's content
