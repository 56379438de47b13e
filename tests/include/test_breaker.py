"""The circuit breaker's state as the monitor rebuilds it from the ledger and the drift history,
and the human reset (``airloop breaker-reset``) that closes it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from include.cli import main
from include.lake import Lake
from include.monitoring.decision import DayDrift, LoopState, RealizedPerformance, Streak, decide
from include.monitoring.monitor import loop_state
from include.registry.ledger import LedgerEntry, append_entry, read_ledger
from include.spec import get_spec

SPEC = get_spec("flights")


LEGACY = object()  # an entry written before the ledger named the challenger's trigger


def _reject(lake: Lake, day: int, trigger: object = "breach") -> None:
    append_entry(
        lake,
        LedgerEntry(
            time=datetime(2013, 3, day, 6, tzinfo=UTC),
            action="reject",
            model="flights",
            version=day,
            previous_version=1,
            decision_id=f"gate{day}",
            figures={} if trigger is LEGACY else {"trigger": trigger},
        ),
    )


def _record(day: str, state: str, trigger: str | None = None) -> dict[str, object]:
    verdict: dict[str, object] = {"state": state}
    if trigger is not None:
        verdict["trigger"] = trigger
    return {"partition": day, "verdict": verdict}


def _reset(lake: Lake, now: str, reason: str = "challengers failed on a broken feed, fixed") -> int:
    return main(
        ["breaker-reset", "--spec", "flights", "--by", "ana", "--reason", reason, "--lake", lake.uri, "--now", now]
    )


def test_loop_state_reads_triggers_rejections_and_the_reset(tmp_path: Path) -> None:
    lake = Lake(tmp_path.as_uri())
    history = [
        _record("2013-03-01", "retrain"),  # written before verdicts named their trigger
        _record("2013-03-04", "retrain", "performance_drop"),
        _record("2013-03-05", "warn"),
        _record("2013-03-09", "retrain", "breach"),
        _record("2013-03-10", "retrain", "prediction_drift"),
    ]
    for day in (4, 9, 10):
        _reject(lake, day)  # three breach challengers rejected in a row
    _reject(lake, 11, trigger=None)  # a person's training: no breaker counts it
    state = loop_state(lake, "flights", history)
    assert state == LoopState(
        retrain_dates=(date(2013, 3, 1),),
        retrain_kinds=(
            (date(2013, 3, 4), "performance_drop"),
            (date(2013, 3, 9), "breach"),
            (date(2013, 3, 10), "data_drift"),
        ),
        rejections={"breach": Streak(3, date(2013, 3, 10))},
    )
    today = DayDrift("flights", "2013-03-12", "ok", 0.01, 5000)
    breach = RealizedPerformance("2013-03-11", auc=0.31, rows=5000, auc_high=0.33)
    held = decide([], today, state, SPEC.drift, realized=breach)
    assert held.circuit_open and held.trigger is None and held.needs_human
    assert any(r.startswith("breach circuit breaker open: the last 3 breach challengers") for r in held.reasons)

    assert _reset(lake, "2013-03-12T09:30:00+00:00") == 0
    assert _reset(lake, "2013-03-12T09:30:00+00:00") == 0  # a retried task: recorded once
    resets = [e for e in read_ledger(lake, "flights") if e["action"] == "breaker_reset"]
    assert [(e["approver"], e["reason"], e["time"]) for e in resets] == [
        ("ana", "challengers failed on a broken feed, fixed", "2013-03-12T09:30:00+00:00")
    ]
    assert resets[0]["summary"] == "circuit breaker reset by ana: challengers failed on a broken feed, fixed"
    after = loop_state(lake, "flights", history)
    assert after.rejections == {}
    verdict = decide([], today, after, SPEC.drift, realized=breach)
    assert (verdict.trigger, verdict.circuit_open) == ("breach", False)
    # a rejection after the reset counts from zero again
    _reject(lake, 14)
    assert loop_state(lake, "flights", history).rejections == {"breach": Streak(1, date(2013, 3, 14))}


def test_each_trigger_kind_has_its_own_breaker(tmp_path: Path) -> None:
    """Three rejected data-drift challengers stop data-drift retrains, not the answer to a breach;
    entries written before the ledger named the trigger count as data drift."""
    lake = Lake(tmp_path.as_uri())
    _reject(lake, 4, trigger="data_drift")
    _reject(lake, 5, trigger="prediction_drift")
    _reject(lake, 6, trigger=LEGACY)
    _reject(lake, 7, trigger="estimated_drop")
    state = loop_state(lake, "flights", [])
    assert state.rejections == {
        "data_drift": Streak(3, date(2013, 3, 6)),
        "performance_drop": Streak(1, date(2013, 3, 7)),
    }
    today = DayDrift("flights", "2013-03-12", "ok", 0.01, 5000)
    breach = RealizedPerformance("2013-03-11", auc=0.31, rows=5000, auc_high=0.33)
    verdict = decide([], today, state, SPEC.drift, realized=breach)
    assert (verdict.trigger, verdict.state, verdict.circuit_open, verdict.half_open) == (
        "breach",
        "retrain",
        True,
        False,
    )
    assert any(
        r.startswith("data_drift circuit breaker open: the last 3 data_drift challengers") for r in verdict.reasons
    )


def test_a_reset_without_a_reason_is_refused(tmp_path: Path) -> None:
    lake = Lake(tmp_path.as_uri())
    assert _reset(lake, "2013-03-12T09:30:00+00:00", reason="  ") == 2
    assert read_ledger(lake, "flights") == []
