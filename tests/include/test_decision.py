"""The retrain policy as a decision table: each rule alone, then whole loops of drifting days."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from include.monitoring.decision import (
    DayDrift,
    DriftVerdict,
    LoopState,
    Streak,
    apply_verdict,
    decide,
    decision_id,
)
from include.spec import DriftSpec

POLICY = DriftSpec(
    warn=0.1,
    alert=0.25,
    min_rows=500,
    window_m=2,
    window_n=3,
    cooldown_days=7,
    max_retrains=2,
    max_retrains_period_days=30,
    circuit_breaker_rejections=3,
    retrain_on=["performance", "estimated_performance", "data_drift"],  # the data-drift rules alone
)
START = date(2024, 3, 1)
OK, WARN, ALERT = 0.02, 0.15, 0.4


def day(offset: int, score: float | None = ALERT, *, status: str | None = None, n_rows: int = 900) -> DayDrift:
    if status is None:
        status = "alert" if score is not None and score >= 0.25 else "warn" if score and score >= 0.1 else "ok"
    return DayDrift(
        model="flights",
        partition=(START + timedelta(days=offset)).isoformat(),
        status=status,  # type: ignore[arg-type]
        score=score,
        n_rows=n_rows,
        top_features=("temp",) if status in ("warn", "alert") else (),
    )


def run(history: list[DayDrift], today: DayDrift, state: LoopState | None = None) -> DriftVerdict:
    return decide(history, today, state or LoopState(), POLICY)


# --- Each rule alone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "today", "expected"),
    [
        pytest.param([], day(10, OK), "ok", id="quiet-day"),
        pytest.param([], day(10, WARN), "warn", id="warn-level"),
        pytest.param([], day(10, ALERT), "warn", id="one-alert-is-not-enough"),
        pytest.param([day(9, ALERT)], day(10, ALERT), "retrain", id="2-of-2"),
        pytest.param([day(8, ALERT), day(9, OK)], day(10, ALERT), "retrain", id="2-of-3-with-gap"),
        pytest.param([day(7, ALERT), day(8, OK), day(9, OK)], day(10, ALERT), "warn", id="old-alert-outside-window"),
        pytest.param([day(8, ALERT), day(9, ALERT)], day(10, OK), "ok", id="latest-must-violate-ok"),
        pytest.param([day(8, ALERT), day(9, ALERT)], day(10, WARN), "warn", id="latest-must-violate-warn"),
        pytest.param([day(9, ALERT)], day(10, 0.01, status="alert"), "retrain", id="status-alert-counts"),
        pytest.param([day(9, ALERT)], day(10, ALERT, n_rows=120), "insufficient_data", id="too-few-rows"),
        pytest.param(
            [day(9, ALERT)], day(10, None, status="insufficient_data", n_rows=0), "insufficient_data", id="empty-day"
        ),
        pytest.param(
            [day(8, ALERT, n_rows=40), day(9, OK)], day(10, ALERT), "warn", id="small-days-do-not-count-as-alerts"
        ),
        pytest.param([day(9, ALERT), day(9, OK)], day(10, ALERT), "warn", id="rerun-of-a-day-last-entry-wins"),
        pytest.param([day(11, ALERT), day(12, ALERT)], day(10, ALERT), "warn", id="later-days-ignored-on-backfill"),
    ],
)
def test_window_rules(history: list[DayDrift], today: DayDrift, expected: str) -> None:
    verdict = run(history, today)
    assert verdict.state == expected
    assert not (verdict.cooldown or verdict.capped or verdict.circuit_open)
    assert verdict.reasons and all(isinstance(r, str) and r for r in verdict.reasons)


def test_insufficient_data_is_never_an_alarm() -> None:
    verdict = run([day(8), day(9)], day(10, 3.0, n_rows=12))
    assert verdict.state == "insufficient_data" and not verdict.retrain and not verdict.needs_human
    assert "12 rows" in verdict.reasons[0] and "500" in verdict.reasons[0]


def test_window_counts_only_days_against_the_same_reference() -> None:
    old = DayDrift("flights", "2024-03-10", "alert", 0.4, 900, reference="v1")
    today = DayDrift("flights", "2024-03-11", "alert", 0.4, 900, reference="v2")
    assert decide([old], today, LoopState(), POLICY).state == "warn"
    assert decide(
        [old], DayDrift(**{**today.to_dict(), "reference": "v1", "top_features": ()}), LoopState(), POLICY
    ).retrain


def test_other_models_do_not_count() -> None:
    other = DayDrift("taxi", day(9).partition, "alert", 0.9, 900)
    assert run([other], day(10)).state == "warn"


@pytest.mark.parametrize(
    ("since", "expected", "cooldown"),
    [
        pytest.param(3, "warn", True, id="3-days-after-retrain"),
        pytest.param(6, "warn", True, id="6-days"),
        pytest.param(7, "retrain", False, id="cooldown-over"),
    ],
)
def test_cooldown(since: int, expected: str, cooldown: bool) -> None:
    state = LoopState(last_retrain=START + timedelta(days=10 - since))
    verdict = run([day(9)], day(10), state)
    assert (verdict.state, verdict.cooldown, verdict.capped) == (expected, cooldown, False)
    if cooldown:
        assert any("cooldown" in r and f"{since} days ago" in r for r in verdict.reasons)


def test_cooldown_does_not_flag_quiet_days() -> None:
    verdict = run([], day(10, OK), LoopState(last_retrain=START + timedelta(days=9)))
    assert verdict.state == "ok" and not verdict.cooldown


@pytest.mark.parametrize(
    ("retrain_days_ago", "expected", "capped"),
    [
        pytest.param((10, 20), "warn", True, id="two-in-period"),
        pytest.param((10, 30), "retrain", False, id="one-left-the-period"),
        pytest.param((10,), "retrain", False, id="one-in-period"),
        pytest.param((10, 20, 45, 60), "warn", True, id="old-ones-ignored-but-two-recent"),
    ],
)
def test_cap_per_period(retrain_days_ago: tuple[int, ...], expected: str, capped: bool) -> None:
    today = day(60)
    state = LoopState(retrain_dates=tuple(today.day - timedelta(days=d) for d in retrain_days_ago))
    verdict = run([day(59)], today, state)
    assert (verdict.state, verdict.capped, verdict.cooldown) == (expected, capped, False)
    assert verdict.needs_human is capped


def test_circuit_breaker() -> None:
    state = LoopState(rejections={"data_drift": Streak(3)})
    verdict = run([day(9)], day(10), state)
    assert verdict.state == "warn" and verdict.circuit_open and verdict.needs_human
    assert any("circuit breaker open" in r for r in verdict.reasons)
    # The breaker stays visible on quiet days; two rejections are not enough to open it.
    assert run([], day(10, OK), state).circuit_open
    assert run([day(9)], day(10), LoopState(rejections={"data_drift": Streak(2)})).retrain
    assert state.with_gate_result(accepted=True, day=None, budget="data_drift").rejections == {}
    # another kind's streak does not hold a data-drift retrain
    assert run([day(9)], day(10), LoopState(rejections={"performance_drop": Streak(5)})).retrain


def test_all_guards_are_reported_together() -> None:
    today = day(40)
    state = LoopState(retrain_dates=(today.day - timedelta(days=2), today.day - timedelta(days=9)),
                      rejections={"data_drift": Streak(5)})  # fmt: skip
    verdict = run([day(39)], today, state)
    assert verdict.state == "warn" and verdict.cooldown and verdict.capped and verdict.circuit_open


def test_decision_id_is_deterministic_and_reruns_decide_the_same() -> None:
    history = [day(9)]
    first = run(history, day(10))
    assert first.retrain and first.decision_id == decision_id("flights", day(10).partition, "retrain")
    # The rerun sees its own history entry and its own recorded retrain: same verdict, same id.
    rerun = run([*history, day(10)], day(10), apply_verdict(LoopState(), first))
    assert rerun == first
    assert run(history, day(10, OK)).decision_id != first.decision_id
    assert first.to_dict()["decision_id"] == first.decision_id


def test_day_drift_round_trips_through_json() -> None:
    item = day(3)
    assert DayDrift.from_dict(item.to_dict()) == item


# --- Whole loops -----------------------------------------------------------------------------------


def simulate(days: int, policy: DriftSpec, *, accept: bool = True) -> list[DriftVerdict]:
    """Apply each verdict: a retrain is recorded, its challenger judged by the gate the same day."""
    history: list[DayDrift] = []
    state = LoopState()
    verdicts = []
    for offset in range(days):
        today = day(offset, ALERT)
        verdict = decide(history, today, state, policy)
        state = apply_verdict(state, verdict)
        if verdict.retrain:
            state = state.with_gate_result(accepted=accept, day=None, budget="data_drift")
        history.append(today)
        verdicts.append(verdict)
    return verdicts


def test_twenty_drifting_days_retrain_at_most_the_cap() -> None:
    verdicts = simulate(20, POLICY)
    retrain_days = [i for i, v in enumerate(verdicts) if v.retrain]
    assert retrain_days == [1, 8]  # 2-of-3 on day 1; cooldown until day 8; then the cap (2 per 30 days)
    assert len(retrain_days) <= POLICY.max_retrains
    assert all(v.cooldown for v in verdicts[2:8]) and all(v.capped for v in verdicts[9:])
    assert verdicts[0].state == "warn" and verdicts[-1].needs_human


def test_no_cooldown_still_capped() -> None:
    policy = POLICY.model_copy(update={"cooldown_days": 0})
    verdicts = simulate(20, policy)
    assert [i for i, v in enumerate(verdicts) if v.retrain] == [1, 2]


def test_long_drift_respects_the_cap_in_every_period() -> None:
    verdicts = simulate(120, POLICY)
    retrain_days = [i for i, v in enumerate(verdicts) if v.retrain]
    for first in range(120):
        in_period = [d for d in retrain_days if first <= d < first + POLICY.max_retrains_period_days]
        assert len(in_period) <= POLICY.max_retrains


def test_rejected_challengers_open_the_breaker() -> None:
    policy = POLICY.model_copy(update={"cooldown_days": 1, "max_retrains": 10})
    verdicts = simulate(20, policy, accept=False)
    retrain_days = [i for i, v in enumerate(verdicts) if v.retrain]
    assert retrain_days == [1, 2, 3]  # three rejected challengers, then the breaker holds
    assert all(v.circuit_open and not v.retrain for v in verdicts[4:])
