"""Harm-aware decisions: realized and estimated performance as triggers, drift without impact,
budgets per trigger kind, the breach and the half-open breaker, and the signals a verdict lists."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from include.monitoring.decision import (
    BUDGET,
    DayDrift,
    DriftVerdict,
    EstimatedPerformance,
    LoopState,
    RealizedPerformance,
    Streak,
    apply_verdict,
    decide,
)
from include.spec import DriftSpec

# Defaults (harm decides, drift warns), with drops judged on one day: persistence has its own test.
POLICY = DriftSpec(min_rows=500, window_m=2, window_n=3, performance_window_m=1, performance_window_n=1)
START = date(2024, 3, 1)
REFERENCE = 0.84


def day(offset: int, score: float = 0.02, *, prediction_psi: float | None = None) -> DayDrift:
    alert = score >= 0.25 or (prediction_psi or 0.0) >= 0.25
    top = ("carrier",) if score >= 0.25 else ()
    return DayDrift(
        model="m",
        partition=(START + timedelta(days=offset)).isoformat(),
        status="alert" if alert else "ok",
        score=score,
        n_rows=900,
        top_features=top if score >= 0.25 else ("__prediction__",) if alert else (),
        prediction_psi=prediction_psi,
    )


def labelled(
    offset: int, auc: float, half_width: float = 0.03, *, version: int = 1, serving: int = 1
) -> RealizedPerformance:
    """The realized AUC of the day ``offset`` (labels one day late) with its bootstrap interval."""
    return RealizedPerformance(
        label_day=(START + timedelta(days=offset)).isoformat(),
        auc=auc,
        rows=900,
        auc_high=auc + half_width,
        drop=REFERENCE - auc,
        drop_low=REFERENCE - auc - half_width,
        drop_high=REFERENCE - auc + half_width,
        reference_auc=REFERENCE,
        model_version=version,
        serving_version=serving,
    )


def signal(verdict: DriftVerdict, kind: str) -> dict[str, object]:
    return next(s for s in verdict.to_dict()["signals"] if s["kind"] == kind)


def test_sustained_drift_without_harm_warns_and_does_not_retrain() -> None:
    verdict = decide([day(9, 0.4)], day(10, 0.4), LoopState(), POLICY, realized=labelled(9, 0.84))
    assert verdict.state == "warn" and verdict.trigger is None
    assert signal(verdict, "data_drift") == {
        "kind": "data_drift",
        "value": 0.4,
        "threshold": 0.25,
        "fired": True,
        "held_by": "no_impact",
        "text": "feature drift: score 0.400, status alert (top: carrier); 2 of the last 2 days at alert level "
        "(need 2 of 3)",
    }
    assert any(r.startswith("drift without impact: data drift is sustained") for r in verdict.reasons)
    assert signal(verdict, "performance_drop")["fired"] is False
    # opting back in restores the old behaviour
    opted = POLICY.model_copy(update={"retrain_on": ["performance", "data_drift"]})
    assert decide([day(9, 0.4)], day(10, 0.4), LoopState(), opted).trigger == "data_drift"


def test_prediction_drift_counts_as_data_drift() -> None:
    verdict = decide([day(9, prediction_psi=0.5)], day(10, prediction_psi=0.5), LoopState(), POLICY)
    assert verdict.state == "warn"
    assert (signal(verdict, "prediction_drift")["fired"], signal(verdict, "prediction_drift")["held_by"]) == (
        True,
        "no_impact",
    )
    assert signal(verdict, "prediction_drift")["value"] == 0.5
    assert signal(verdict, "data_drift")["fired"] is False


def test_a_significant_drop_retrains_at_once_outside_the_window() -> None:
    verdict = decide([], day(10), LoopState(), POLICY, realized=labelled(9, 0.70))
    assert (verdict.state, verdict.trigger, verdict.breach) == ("retrain", "performance_drop", False)
    drop = signal(verdict, "performance_drop")
    assert drop["value"] == REFERENCE - 0.70 - 0.03 and drop["threshold"] == 0.02 and drop["held_by"] is None
    assert "drop 0.140 from the reference 0.840, interval (rows) [0.110, 0.170] entirely above 0.02" in str(
        drop["text"]
    )
    spread = replace(labelled(9, 0.70), day_sd=0.03)
    text = str(signal(decide([], day(10), LoopState(), POLICY, realized=spread), "performance_drop")["text"])
    assert "interval (rows and day-to-day spread 0.030) [0.110, 0.170] entirely above 0.02" in text


def test_one_bad_day_is_noise_two_of_three_are_a_drop() -> None:
    policy = DriftSpec(min_rows=500)  # performance_window_m, _n = 2, 3
    assert (policy.performance_window_m, policy.performance_window_n) == (2, 3)
    single = decide([day(8), day(9)], day(10), LoopState(), policy, realized=labelled(9, 0.70))
    assert single.state == "ok" and not signal(single, "performance_drop")["fired"]
    assert str(signal(single, "performance_drop")["text"]).endswith(
        "significant on 1 of the last 1 measured days (need 2 of 3)"
    )
    history = [replace(day(8), drop_low=0.11), replace(day(9), drop_low=0.0)]
    persistent = decide(history, day(10), LoopState(), policy, realized=labelled(9, 0.70))
    assert persistent.trigger == "performance_drop"
    assert str(signal(persistent, "performance_drop")["text"]).endswith(
        "significant on 2 of the last 3 measured days (need 2 of 3)"
    )
    # the same for the estimate, from the days' stored estimated drops
    estimate = EstimatedPerformance(auc=0.75, low=0.72, high=0.78, rows=900, reference_auc=REFERENCE, valid=True)
    assert decide([day(9)], day(10), LoopState(), policy, estimated=estimate).trigger is None
    assert (
        decide([replace(day(9), estimated_drop_low=0.05)], day(10), LoopState(), policy, estimated=estimate).trigger
        == "estimated_drop"
    )
    # a breach does not wait
    assert decide([day(9)], day(10), LoopState(), policy, realized=labelled(9, 0.31)).trigger == "breach"


def test_a_drop_whose_interval_reaches_the_threshold_does_not_fire() -> None:
    verdict = decide([], day(10), LoopState(), POLICY, realized=labelled(9, 0.83, half_width=0.02))
    assert verdict.state == "ok" and not signal(verdict, "performance_drop")["fired"]


def test_each_trigger_kind_has_its_own_budget() -> None:
    today = day(40)
    spent = LoopState(retrain_dates=(today.day - timedelta(days=2), today.day - timedelta(days=9)))
    # two data-drift retrains in the period spent the data-drift cap; a drop still retrains
    verdict = decide([], today, spent, POLICY, realized=labelled(39, 0.7))
    assert verdict.trigger == "performance_drop" and not verdict.capped
    # a drop retrain two days ago holds the next drop (cooldown 3 days) but not a breach
    state = LoopState().with_retrain(today.day - timedelta(days=2), "performance_drop")
    held = decide([], today, state, POLICY, realized=labelled(39, 0.7))
    assert held.state == "warn" and held.cooldown and signal(held, "performance_drop")["held_by"] == "cooldown"
    three = LoopState(retrain_kinds=tuple((today.day - timedelta(days=d), "performance_drop") for d in (4, 12, 20)))
    capped = decide([], today, three, POLICY, realized=labelled(39, 0.7))
    assert capped.capped and capped.needs_human and signal(capped, "performance_drop")["held_by"] == "cap"
    breach = decide([], today, three, POLICY, realized=labelled(39, 0.31))
    assert (breach.trigger, breach.breach, breach.needs_human) == ("breach", True, True)


def test_breach_below_the_floor_and_below_random() -> None:
    floored = POLICY.model_copy(update={"performance_floor": 0.6})
    assert decide([], day(10), LoopState(), POLICY, realized=labelled(9, 0.55)).trigger == "performance_drop"
    floor = decide([], day(10), LoopState(), floored, realized=labelled(9, 0.55))
    assert floor.trigger == "breach" and signal(floor, "breach")["threshold"] == 0.6
    assert "below the floor 0.6 (upper end of its interval 0.580)" in str(signal(floor, "breach")["text"])
    random = decide([], day(10), LoopState(), POLICY, realized=labelled(9, 0.31))
    assert "worse than random (upper end of its interval 0.340 < 0.5)" in str(signal(random, "breach")["text"])
    # the interval reaching the floor is no breach (a drop, it is)
    near = decide([], day(10), LoopState(), floored, realized=labelled(9, 0.58))
    assert (near.trigger, near.breach) == ("performance_drop", False)


def test_breach_is_held_while_a_retrain_answers_it() -> None:
    state = LoopState().with_retrain(START + timedelta(days=9), "breach")
    answered = decide([], day(10), state, POLICY, realized=labelled(9, 0.31))
    assert answered.state == "warn" and signal(answered, "breach")["held_by"] == "answered" and answered.needs_human
    # labels scored after that retrain still breaching: the answer was not enough, retrain again
    again = decide([], day(11), state, POLICY, realized=labelled(10, 0.31))
    assert again.trigger == "breach"


def test_labels_of_a_retired_version_do_not_trigger() -> None:
    verdict = decide([], day(10), LoopState(), POLICY, realized=labelled(9, 0.31, version=1, serving=2))
    assert verdict.state == "warn" and verdict.trigger is None
    assert signal(verdict, "breach")["held_by"] == "superseded"
    assert "scored by v1, v2 serves now" in str(signal(verdict, "breach")["text"])


def test_estimated_drop_triggers_and_an_invalid_estimate_does_not() -> None:
    estimate = EstimatedPerformance(auc=0.75, low=0.72, high=0.78, rows=900, reference_auc=REFERENCE, valid=True)
    verdict = decide([], day(10), LoopState(), POLICY, estimated=estimate)
    assert verdict.trigger == "estimated_drop"
    assert abs(float(signal(verdict, "estimated_drop")["value"]) - 0.06) < 1e-12  # type: ignore[arg-type]
    invalid = EstimatedPerformance(0.75, 0.72, 0.78, 900, REFERENCE, valid=False, note="no calibrator")
    quiet = decide([], day(10), LoopState(), POLICY, estimated=invalid)
    assert quiet.state == "ok" and signal(quiet, "estimated_drop")["text"] == "no valid estimate: no calibrator"


def test_open_breaker_holds_a_breach_until_the_half_open_probe() -> None:
    opened = START + timedelta(days=5)
    state = LoopState(rejections={"breach": Streak(3, opened)})
    held = decide([], day(10), state, POLICY, realized=labelled(9, 0.31))
    assert held.state == "warn" and held.circuit_open and not held.half_open
    assert signal(held, "breach")["held_by"] == "breaker"
    assert signal(held, "performance_drop")["held_by"] == "breaker"  # the same harm does not slip through as a drop
    probe = decide([], day(12), state, POLICY, realized=labelled(11, 0.31))  # 7 days after the rejection
    assert (probe.trigger, probe.circuit_open, probe.half_open) == ("breach", True, True)
    assert any("one probe retrain is allowed" in r for r in probe.reasons)
    # the probe is pending: no second probe; its rejection re-arms the timer; a reset closes it
    pending = apply_verdict(state, probe)
    assert decide([], day(13), pending, POLICY, realized=labelled(12, 0.31)).trigger is None
    rejected = pending.with_gate_result(accepted=False, day=START + timedelta(days=12), budget="breach")
    assert decide([], day(15), rejected, POLICY, realized=labelled(14, 0.31)).trigger is None
    assert decide([], day(19), rejected, POLICY, realized=labelled(18, 0.31)).trigger == "breach"
    assert decide([], day(14), pending, POLICY, realized=labelled(13, 0.31)).trigger is None
    assert decide([], day(14), pending.with_reset(), POLICY, realized=labelled(13, 0.31)).trigger == "breach"


def test_concept_break_with_early_drift_alarms_retrains_within_days() -> None:
    """Real dataset C, as measured: two early data-drift alarms spent the old shared cap, and the
    break waited 12 days. Now drift without harm does not retrain, and the drop retrains the day
    after the break (labels one day late)."""
    policy = POLICY.model_copy(update={"retrain_on": ["performance", "data_drift"]})  # even with drift opted in
    history: list[DayDrift] = []
    state = LoopState()
    retrains: list[tuple[int, str | None]] = []
    for offset in range(40):
        today = day(offset, 0.4 if offset in (2, 3, 9, 10) else 0.02)
        auc = 0.31 if offset - 1 >= 20 else 0.83
        verdict = decide(history, today, state, policy, realized=labelled(offset - 1, auc))
        state = apply_verdict(state, verdict)
        if verdict.retrain:
            accepted = verdict.trigger != "data_drift"
            state = state.with_gate_result(accepted=accepted, day=today.day, budget=BUDGET[verdict.trigger or ""])
            retrains.append((offset, verdict.trigger))
        history.append(today)
    assert retrains[:2] == [(3, "data_drift"), (10, "data_drift")]
    assert retrains[2] == (21, "breach")  # the first labelled day after the break


def test_a_small_day_never_retrains_but_still_flags_a_breach() -> None:
    small = DayDrift("m", day(10).partition, "insufficient_data", None, 40)
    verdict = decide([], small, LoopState(), POLICY, realized=labelled(9, 0.31))
    assert (verdict.state, verdict.trigger, verdict.breach, verdict.needs_human) == (
        "insufficient_data",
        None,
        True,
        True,
    )
    assert signal(verdict, "breach")["held_by"] == "insufficient_data"
    assert [s["kind"] for s in verdict.to_dict()["signals"]] == [
        "data_drift",
        "prediction_drift",
        "performance_drop",
        "estimated_drop",
        "breach",
    ]


def test_harm_on_a_retired_version_does_not_make_drift_impactful() -> None:
    retired = labelled(9, 0.31, version=1, serving=2)
    verdict = decide([day(9, 0.4)], day(10, 0.4), LoopState(), POLICY, realized=retired)
    assert verdict.trigger is None and signal(verdict, "data_drift")["held_by"] == "no_impact"


def test_a_retrain_answering_a_break_names_the_first_labelled_day_of_the_harm() -> None:
    """The break is where the unbroken run of significant drops began, whichever version scored
    those days, not today's labelled day: the flights drill's label inversion (2013-07-15) kept
    retraining on "one labelled day since the break", each time on the old concept."""

    def measured(offset: int, drop_low: float | None) -> DayDrift:
        return replace(day(offset), drop_low=drop_low)

    history = [
        measured(3, 0.01),  # the last healthy labelled day (labelled day 2)
        measured(4, 0.40),  # labelled day 3: the break
        measured(5, 0.35),
        measured(6, None),  # nothing measured that day: the run goes on
        measured(7, 0.45),
        replace(day(8), model="other", drop_low=0.0),  # another model's day decides nothing here
    ]
    verdict = decide(history, day(8), LoopState(), POLICY, realized=labelled(7, 0.30))
    assert verdict.trigger == "breach" and verdict.break_day == (START + timedelta(days=3)).isoformat()
    # a healthy day right before today: the break is today's labelled day
    fresh = decide([*history, measured(7, 0.0)], day(8), LoopState(), POLICY, realized=labelled(7, 0.30))
    assert fresh.break_day == (START + timedelta(days=7)).isoformat()
    # a drop retrain names it the same way; data drift names none
    drop = decide(history, day(8), LoopState(), POLICY, realized=labelled(7, 0.70))
    assert drop.trigger == "performance_drop" and drop.break_day == (START + timedelta(days=3)).isoformat()
    opted = POLICY.model_copy(update={"retrain_on": ["data_drift"]})
    assert decide([day(7, 0.4)], day(8, 0.4), LoopState(), opted).break_day is None
