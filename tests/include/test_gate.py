"""The promotion gate: metrics against known values, the paired bootstrap, the decision table, the card."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from include.monitoring.decision import DayDrift, LoopState, RealizedPerformance, decide
from include.registry.card import card_sections, model_card_html, model_card_markdown
from include.registry.gate import (
    ChampionPerformance,
    Comparison,
    Evaluation,
    GateInputError,
    SliceMetric,
    _AucRanker,
    compare,
    decide_promotion,
    evaluate,
    roc_auc,
)
from include.spec import DriftSpec, GateSpec


def _binormal(n: int, separation: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose true ROC AUC is Phi(separation / sqrt(2)), squashed into (0, 1)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    latent = rng.normal(0.0, 1.0, n) + separation * labels
    return 1.0 / (1.0 + np.exp(-latent)), labels


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


# --------------------------------------------------------------------------- evaluate
def test_perfect_model_has_auc_one_everywhere() -> None:
    labels = np.array([0, 1] * 100)
    scores = np.where(labels == 1, 0.9, 0.1) + np.linspace(0, 0.05, 200)
    ev = evaluate(scores, labels, None, threshold=0.5, n_boot=50, seed=0)
    assert ev.roc_auc == 1.0
    assert (ev.roc_auc_lower, ev.roc_auc_upper) == (1.0, 1.0)
    assert ev.pr_auc == pytest.approx(1.0)
    assert ev.accuracy == ev.recall == ev.precision == 1.0
    assert (ev.n, ev.positives) == (200, 100)


def test_random_model_is_near_one_half_with_an_interval_around_it() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 20_000)
    ev = evaluate(rng.random(20_000), labels, None, threshold=0.5, n_boot=200, seed=1)
    assert abs(ev.roc_auc - 0.5) < 0.015
    assert ev.roc_auc_lower < ev.roc_auc < ev.roc_auc_upper
    assert ev.roc_auc_lower < 0.5 + 0.015 and ev.roc_auc_upper > 0.5 - 0.015
    assert 0.01 < ev.roc_auc_upper - ev.roc_auc_lower < 0.03  # ~ 4 x 0.0041 standard error at n=20k


def test_binormal_scores_recover_the_theoretical_auc() -> None:
    scores, labels = _binormal(40_000, separation=1.0, seed=5)
    ev = evaluate(scores, labels, None, threshold=0.5, n_boot=100, seed=2)
    assert ev.roc_auc == pytest.approx(_phi(1.0 / math.sqrt(2.0)), abs=0.01)  # 0.7602
    assert ev.roc_auc_lower < _phi(1.0 / math.sqrt(2.0)) + 0.01


def test_metrics_match_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 3000)
    scores = np.round(np.clip(rng.random(3000) * 0.7 + 0.3 * labels, 0, 1), 2)  # many ties
    ev = evaluate(scores, labels, None, threshold=0.4, n_boot=10, seed=0)
    predicted = scores >= 0.4
    assert ev.roc_auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert ev.pr_auc == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert ev.log_loss == pytest.approx(log_loss(labels, np.clip(scores, 1e-15, 1 - 1e-15)), rel=1e-9)
    assert ev.brier == pytest.approx(brier_score_loss(labels, scores), abs=1e-12)
    assert ev.accuracy == pytest.approx(np.mean(predicted == labels))
    assert ev.recall == pytest.approx(predicted[labels == 1].mean())
    assert ev.precision == pytest.approx(labels[predicted].mean())


def test_weighted_auc_equals_auc_of_the_resampled_rows() -> None:
    """The O(n) bootstrap replicate is exactly roc_auc_score on the resampled rows."""
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.random(500) + 0.2 * labels, 1)
    ranker = _AucRanker(scores, labels)
    for _ in range(5):
        rows = rng.integers(0, 500, 500)
        counts = np.bincount(rows, minlength=500).astype(float)
        assert ranker.auc(counts) == pytest.approx(roc_auc_score(labels[rows], scores[rows]), abs=1e-12)
    assert math.isnan(roc_auc(scores[labels == 1], labels[labels == 1]))


def test_slices_are_scored_and_small_or_single_class_slices_are_skipped_and_counted() -> None:
    scores, labels = _binormal(1000, separation=2.0, seed=1)
    origin = np.array(["JFK"] * 500 + ["LGA"] * 470 + ["EWR"] * 30)  # EWR: 30 rows, skipped
    carrier = np.array(["AA"] * 900 + ["UA"] * 100)
    labels = labels.copy()
    labels[900:] = 0  # UA: one class, skipped
    ev = evaluate(scores, labels, {"origin": origin, "carrier": carrier}, threshold=0.5, n_boot=10, seed=0)
    by_name = {s.name: s for s in ev.slices}
    assert sorted(by_name) == ["carrier=AA", "origin=JFK", "origin=LGA"]
    assert ev.slices_skipped == 2
    jfk = by_name["origin=JFK"]
    assert jfk.n == 500 and jfk.positives == int(labels[:500].sum())
    assert jfk.roc_auc == pytest.approx(roc_auc_score(labels[:500], scores[:500]))


def test_evaluate_refuses_what_it_cannot_judge() -> None:
    with pytest.raises(GateInputError, match="single class"):
        evaluate(np.array([0.1, 0.2, 0.3]), np.array([1, 1, 1]), None, 0.5, 10, 0)
    with pytest.raises(GateInputError, match="3 scores for 2 labels"):
        evaluate(np.array([0.1, 0.2, 0.3]), np.array([0, 1]), None, 0.5, 10, 0)
    with pytest.raises(GateInputError, match="NaN"):
        evaluate(np.array([0.1, np.nan]), np.array([0, 1]), None, 0.5, 10, 0)
    with pytest.raises(GateInputError, match="slice column 'origin' has 1 values"):
        evaluate(np.array([0.1, 0.9]), np.array([0, 1]), {"origin": np.array(["x"])}, 0.5, 10, 0)


# --------------------------------------------------------------------------- compare
def test_paired_bootstrap_brackets_the_gain_and_is_narrower_than_unpaired() -> None:
    rng = np.random.default_rng(21)
    labels = rng.integers(0, 2, 5000)
    latent = rng.normal(0, 1, 5000) + 1.0 * labels
    champion_scores = 1 / (1 + np.exp(-(latent + rng.normal(0, 0.6, 5000))))  # the same signal, noisier
    challenger_scores = 1 / (1 + np.exp(-latent))
    challenger = evaluate(challenger_scores, labels, None, 0.5, 200, 1)
    champion = evaluate(champion_scores, labels, None, 0.5, 200, 1)
    comp = compare(challenger, champion, challenger_scores, champion_scores, labels, 200, 1)

    assert comp.gain == pytest.approx(challenger.roc_auc - champion.roc_auc)
    assert comp.gain_lower < comp.gain < comp.gain_upper
    assert comp.gain_lower > 0 and comp.prob_worse == 0.0
    paired_width = comp.gain_upper - comp.gain_lower
    unpaired_width = math.hypot(
        challenger.roc_auc_upper - challenger.roc_auc_lower, champion.roc_auc_upper - champion.roc_auc_lower
    )
    assert paired_width < 0.6 * unpaired_width


def test_identical_models_have_a_zero_gain_and_no_slice_drop() -> None:
    scores, labels = _binormal(2000, 1.0, 4)
    group = np.where(np.arange(2000) % 2 == 0, "a", "b")
    ev = evaluate(scores, labels, {"g": group}, 0.5, 50, 0)
    comp = compare(ev, ev, scores, scores, labels, 50, 0)
    assert (comp.gain, comp.gain_lower, comp.gain_upper, comp.prob_worse) == (0.0, 0.0, 0.0, 0.0)
    assert comp.worst_slice_drop == 0.0 and comp.worst_slice in ("g=a", "g=b")


def test_worst_slice_names_the_slice_where_the_challenger_got_worse() -> None:
    scores, labels = _binormal(4000, 2.0, 8)
    group = np.array(["a", "b", "c", "d"] * 1000)
    challenger_scores = scores.copy()
    in_b = group == "b"
    challenger_scores[in_b] = np.random.default_rng(0).random(int(in_b.sum()))  # random in slice b
    slices = {"g": group}
    challenger = evaluate(challenger_scores, labels, slices, 0.5, 20, 0)
    champion = evaluate(scores, labels, slices, 0.5, 20, 0)
    comp = compare(challenger, champion, challenger_scores, scores, labels, 20, 0)
    assert comp.worst_slice == "g=b"
    assert comp.worst_slice_drop == pytest.approx(champion.slice_auc()["g=b"] - challenger.slice_auc()["g=b"])
    assert comp.worst_slice_drop is not None and comp.worst_slice_drop > 0.3
    assert comp.slice_drops["g=a"] == pytest.approx(0.0)


def test_slice_auc_standard_error_matches_the_bootstrap() -> None:
    from include.registry.gate import _auc_standard_error

    scores, labels = _binormal(400, 1.0, 11)
    rng = np.random.default_rng(0)
    replicates = []
    for _ in range(600):
        pick = rng.integers(0, 400, 400)
        replicates.append(roc_auc_score(labels[pick], scores[pick]))
    metric = SliceMetric("g", "a", 400, int(labels.sum()), float(roc_auc_score(labels, scores)))
    assert _auc_standard_error(metric) == pytest.approx(float(np.std(replicates)), rel=0.15)


def test_slice_drop_is_judged_on_its_lower_bound_not_on_noise() -> None:
    scores, labels = _binormal(7000, 1.0, 5)
    small = (SliceMetric("carrier", "FL", 60, 10, 0.75), SliceMetric("carrier", "UA", 5000, 1000, 0.72))
    noisy = (SliceMetric("carrier", "FL", 60, 10, 0.60), SliceMetric("carrier", "UA", 5000, 1000, 0.71))
    comp = compare(_evaluation(0.7, noisy), _evaluation(0.7, small), scores, scores, labels, 0, 0)
    # a 0.15 drop on 60 rows is within noise; the 0.01 drop on 5,000 rows is the one to watch
    assert comp.slice_drops["carrier=FL"] == pytest.approx(0.15)
    assert comp.slice_drop_lowers["carrier=FL"] < 0 < comp.slice_drop_lowers["carrier=FL"] + 0.3
    check = _decide(comparison=comp).check("slice_regression")
    assert check.passed and check.observed == comp.worst_slice_drop_lower
    assert "95% lower bound" in check.detail
    # a confident drop on a big slice blocks
    worse = (SliceMetric("carrier", "FL", 60, 10, 0.75), SliceMetric("carrier", "UA", 5000, 1000, 0.64))
    comp = compare(_evaluation(0.7, worse), _evaluation(0.7, small), scores, scores, labels, 0, 0)
    assert comp.worst_slice == "carrier=UA" and comp.worst_slice_drop == pytest.approx(0.08)
    assert 0.05 < comp.judged_slice_drop < 0.08  # type: ignore[operator]
    check = _decide(comparison=comp).check("slice_regression")
    assert not check.passed and "carrier=UA" in check.detail


def test_compare_refuses_evaluations_of_other_rows() -> None:
    scores, labels = _binormal(200, 1.0, 0)
    ev = evaluate(scores, labels, None, 0.5, 10, 0)
    with pytest.raises(GateInputError, match="holdout size"):
        compare(ev, replace(ev, n=199), scores, scores, labels, 10, 0)


# --------------------------------------------------------------------------- decide_promotion
def _evaluation(auc: float, slices: tuple[SliceMetric, ...] = ()) -> Evaluation:
    return Evaluation(
        roc_auc=auc,
        roc_auc_lower=auc - 0.01,
        roc_auc_upper=auc + 0.01,
        pr_auc=0.6,
        log_loss=0.5,
        brier=0.18,
        accuracy=0.8,
        precision=0.6,
        recall=0.4,
        threshold=0.5,
        n=7000,
        positives=1500,
        bootstrap_samples=200,
        slices=slices,
    )


def _comparison(**overrides: Any) -> Comparison:
    base: dict[str, Any] = {
        "gain": 0.01,
        "gain_lower": -0.004,
        "gain_upper": 0.024,
        "prob_worse": 0.08,
        "bootstrap_samples": 200,
        "worst_slice": "origin=JFK",
        "worst_slice_drop": 0.02,
        "slice_drops": {"origin=JFK": 0.02, "origin=LGA": -0.01},
    }
    return Comparison(**{**base, **overrides})


GOOD_PARITY = {"mean_abs_diff": 2e-4, "label_agreement": 0.99995, "onnx_ms_per_1k_rows": 4.0}
POLICY = GateSpec(
    min_roc_auc=0.6,
    max_regression=0.01,
    max_slice_drop=0.05,
    parity_mean_abs_diff=1e-3,
    parity_label_agreement=0.999,
    latency_ms_per_1k=50.0,
)
ALL_CHECKS = [
    "min_roc_auc",
    "no_regression",
    "never_trade_down",
    "slice_regression",
    "parity_mean_abs_diff",
    "parity_label_agreement",
    "latency",
]


def _decide(**changes: Any) -> Any:
    args: dict[str, Any] = {
        "policy": POLICY,
        "challenger": _evaluation(0.75),
        "champion": _evaluation(0.74),
        "comparison": _comparison(),
        "parity": GOOD_PARITY,
        "shadow_clean_days": None,
    }
    args.update(changes)
    return decide_promotion(**args)


def test_baseline_passes_every_check_and_promotes() -> None:
    decision = _decide()
    assert [c.name for c in decision.checks] == ALL_CHECKS
    assert all(c.passed for c in decision.checks)
    assert decision.promote and decision.would_promote
    assert decision.mode == "enabled" and not decision.first_model
    assert decision.summary.startswith("PROMOTE: ROC AUC 0.7500 vs champion 0.7400, gain +0.0100")
    assert "7/7 checks passed" in decision.summary


@pytest.mark.parametrize(
    ("changes", "failing", "observed"),
    [
        pytest.param({"challenger": _evaluation(0.55)}, "min_roc_auc", 0.55, id="absolute-floor"),
        pytest.param({"comparison": _comparison(gain_lower=-0.0101)}, "no_regression", -0.0101, id="regression"),
        pytest.param({"comparison": _comparison(worst_slice_drop=0.051)}, "slice_regression", 0.051, id="slice"),
        pytest.param({"parity": {**GOOD_PARITY, "mean_abs_diff": 2e-3}}, "parity_mean_abs_diff", 2e-3, id="parity"),
        pytest.param(
            {"parity": {**GOOD_PARITY, "label_agreement": 0.998}}, "parity_label_agreement", 0.998, id="labels"
        ),
        pytest.param({"parity": {**GOOD_PARITY, "onnx_ms_per_1k_rows": 51.0}}, "latency", 51.0, id="latency"),
        pytest.param({"parity": {"mean_abs_diff": 2e-4, "label_agreement": 1.0}}, "latency", None, id="no-latency"),
    ],
)
def test_each_failing_check_alone_flips_that_check_and_the_verdict(
    changes: dict[str, Any], failing: str, observed: float | None
) -> None:
    decision = _decide(**changes)
    assert [c.name for c in decision.failed] == [failing]
    assert decision.check(failing).observed == observed
    assert not decision.promote and not decision.would_promote
    assert decision.summary.startswith("REJECT")
    assert f"failed: {failing}" in decision.summary


def test_no_regression_is_judged_on_the_lower_bound_not_the_point_estimate() -> None:
    # A positive point gain with a wide interval reaching below -max_regression is a rejection.
    decision = _decide(comparison=_comparison(gain=0.004, gain_lower=-0.02, gain_upper=0.03))
    assert not decision.check("no_regression").passed
    assert decision.check("no_regression").threshold == -0.01
    # A negative point gain whose lower bound stays within the tolerance is not.
    decision = _decide(comparison=_comparison(gain=-0.002, gain_lower=-0.009))
    assert decision.check("no_regression").passed and decision.promote


def test_slice_check_reports_the_worst_slice() -> None:
    check = _decide(comparison=_comparison(worst_slice="carrier=EV", worst_slice_drop=0.09)).check("slice_regression")
    assert not check.passed and "carrier=EV" in check.detail and check.observed == 0.09


def test_slice_check_passes_when_no_slice_is_comparable() -> None:
    check = _decide(comparison=_comparison(worst_slice=None, worst_slice_drop=None, slice_drops={})).check(
        "slice_regression"
    )
    assert check.passed and check.observed is None and "no slice" in check.detail


def test_min_gain_is_checked_only_when_positive() -> None:
    assert "min_gain" not in [c.name for c in _decide().checks]
    strict = POLICY.model_copy(update={"min_gain": 0.02})
    decision = _decide(policy=strict)
    assert [c.name for c in decision.failed] == ["min_gain"]
    assert decision.check("min_gain").observed == 0.01 and not decision.promote
    assert _decide(policy=strict, comparison=_comparison(gain=0.021)).promote


@pytest.mark.parametrize(
    ("clean_days", "passed", "detail"),
    [
        pytest.param(None, False, "no shadow record", id="absent"),
        pytest.param(2, False, "2 clean shadow days < 3", id="too-few"),
        pytest.param(3, True, "3 clean shadow days >= 3", id="enough"),
    ],
)
def test_shadow_days_are_required_when_the_policy_asks(clean_days: int | None, passed: bool, detail: str) -> None:
    decision = _decide(policy=POLICY.model_copy(update={"shadow_days": 3}), shadow_clean_days=clean_days)
    check = decision.check("shadow_days")
    assert (check.passed, check.threshold, check.observed) == (passed, 3, clean_days)
    assert check.detail.startswith(detail)
    assert decision.promote is passed
    assert "shadow_days" not in [c.name for c in _decide(shadow_clean_days=0).checks]


def test_first_model_is_judged_on_floors_parity_and_latency_only() -> None:
    policy = POLICY.model_copy(update={"shadow_days": 3, "min_gain": 0.05})
    decision = _decide(policy=policy, champion=None, comparison=None)
    assert decision.first_model and decision.promote
    assert [c.name for c in decision.checks] == [
        "min_roc_auc",
        "parity_mean_abs_diff",
        "parity_label_agreement",
        "latency",
    ]
    assert "first model (no champion)" in decision.summary
    assert decision.figures["champion_roc_auc"] is None and decision.figures["gain"] is None
    weak = _decide(policy=policy, champion=None, comparison=None, challenger=_evaluation(0.58))
    assert not weak.promote and [c.name for c in weak.failed] == ["min_roc_auc"]


def test_dry_run_never_promotes_but_records_the_verdict() -> None:
    dry = POLICY.model_copy(update={"mode": "dry_run"})
    decision = _decide(policy=dry)
    assert (decision.promote, decision.would_promote, decision.mode) == (False, True, "dry_run")
    assert decision.summary.startswith("DRY RUN (would promote)")
    failing = _decide(policy=dry, challenger=_evaluation(0.5))
    assert (failing.promote, failing.would_promote) == (False, False)
    assert failing.summary.startswith("DRY RUN (would reject)")
    overridden = _decide(mode_override="dry_run")
    assert overridden.mode == "dry_run" and not overridden.promote and overridden.would_promote


def test_disabled_gate_promotes_nothing_and_says_so() -> None:
    decision = _decide(policy=POLICY.model_copy(update={"mode": "disabled"}))
    assert not decision.promote and decision.mode == "disabled"
    assert [c.name for c in decision.failed] == ["gate_mode"]
    assert decision.check("gate_mode").detail == "gate disabled: nothing is promoted"
    assert decision.summary.startswith("DISABLED")
    assert _decide(mode_override="enabled", policy=POLICY.model_copy(update={"mode": "disabled"})).promote


def test_decision_id_is_a_deterministic_digest_of_the_inputs() -> None:
    first, again = _decide(), _decide()
    assert first.decision_id == again.decision_id and len(first.decision_id) == 16
    assert _decide(challenger=_evaluation(0.7501)).decision_id != first.decision_id
    assert _decide(context={"model": "flights", "version": 4}).decision_id != first.decision_id
    assert _decide(mode_override="dry_run").decision_id != first.decision_id


def test_decision_to_dict_is_plain_json() -> None:
    nan_eval = replace(_evaluation(0.75), roc_auc_lower=math.nan, roc_auc_upper=math.nan)
    payload = _decide(challenger=nan_eval, context={"model": "flights"}).to_dict()
    text = json.dumps(payload, allow_nan=False)
    back = json.loads(text)
    assert back["promote"] is True and back["context"] == {"model": "flights"}
    assert back["checks"][0] == {
        "name": "min_roc_auc",
        "threshold": 0.6,
        "observed": 0.75,
        "passed": True,
        "detail": "challenger ROC AUC 0.7500 >= 0.6000",
    }
    assert back["figures"]["challenger_roc_auc_lower"] is None


def test_evaluation_and_comparison_survive_a_json_round_trip() -> None:
    scores, labels = _binormal(600, 1.0, 2)
    group = np.where(np.arange(600) % 3 == 0, "x", "y")
    ev = evaluate(scores, labels, {"g": group}, 0.5, 0, 0)  # no bootstrap: NaN interval
    comp = compare(ev, ev, scores, scores, labels, 0, 0)
    ev_back = Evaluation.from_dict(json.loads(json.dumps(ev.to_dict(), allow_nan=False)))
    comp_back = Comparison.from_dict(json.loads(json.dumps(comp.to_dict(), allow_nan=False)))
    assert ev_back.slices == ev.slices and ev_back.roc_auc == ev.roc_auc and math.isnan(ev_back.roc_auc_lower)
    assert comp_back == comp
    assert _decide(challenger=ev_back, champion=ev_back, comparison=comp_back).decision_id == (
        _decide(challenger=ev, champion=ev, comparison=comp).decision_id
    )


def test_decide_refuses_inconsistent_inputs() -> None:
    with pytest.raises(GateInputError, match="no comparison"):
        _decide(comparison=None)
    with pytest.raises(GateInputError, match="unknown gate mode 'yolo'"):
        _decide(mode_override="yolo")


# --------------------------------------------------------------------------- never trade down, breach, pending
MEASURED = {"gain": -0.0042, "gain_lower": -0.0070, "gain_upper": -0.0011, "prob_worse": 0.995}
BROKEN_CHAMPION = ChampionPerformance(version=3, label_day="2013-03-04", roc_auc=0.31, roc_auc_upper=0.35, rows=912)


def test_measured_case_a_gain_interval_below_zero_is_rejected_whatever_max_regression_says() -> None:
    """Real dataset S: gain -0.0042 in [-0.0070, -0.0011] passed `no_regression` (max 0.01) and was promoted."""
    decision = _decide(challenger=_evaluation(0.7458), comparison=_comparison(**MEASURED))
    assert decision.check("no_regression").passed  # -0.0070 >= -0.01: the old rule let it through
    assert [c.name for c in decision.failed] == ["never_trade_down"]
    check = decision.check("never_trade_down")
    assert (check.threshold, check.observed) == (0.0, -0.0011)
    assert check.detail == (
        "AUC gain 95% interval [-0.0070, -0.0011] lies entirely below zero: measurably worse than the champion"
    )
    assert not decision.promote and not decision.pending and decision.breach is None
    assert decision.summary.startswith("REJECT") and "failed: never_trade_down" in decision.summary


def test_measured_case_with_the_champion_in_breach_is_promoted_and_says_why() -> None:
    decision = _decide(
        challenger=_evaluation(0.7458),
        comparison=_comparison(**MEASURED),
        realized=BROKEN_CHAMPION,
        breach_floor=0.6,
        basis="post_break",
    )
    assert decision.promote and not decision.failed and decision.breach_waived
    breach = (
        "champion v3 is in a performance breach: realized ROC AUC 0.3100, 95% upper bound 0.3500 on 2013-03-04 "
        "(912 labelled rows) < floor 0.6000"
    )
    assert decision.breach == breach
    check = decision.check("never_trade_down")
    assert check.passed and check.observed == -0.0011
    assert check.detail.startswith(f"waived, {breach}: AUC gain 95% interval [-0.0070, -0.0011] lies entirely")
    assert decision.summary.startswith("PROMOTE: ROC AUC 0.7458 vs champion 0.7400, gain -0.0042")
    assert decision.summary.endswith(
        f"; {breach}: comparisons with it are waived, the best candidate above the floor wins"
    )
    assert decision.figures["champion_realized_roc_auc"] == 0.31
    assert (
        decision.decision_id != _decide(challenger=_evaluation(0.7458), comparison=_comparison(**MEASURED)).decision_id
    )


def test_a_breach_waives_comparisons_but_never_the_floor_parity_or_latency() -> None:
    worse = _comparison(gain=-0.2, gain_lower=-0.25, gain_upper=-0.15, worst_slice_drop=0.3)
    decision = _decide(challenger=_evaluation(0.58), comparison=worse, realized=BROKEN_CHAMPION, basis="post_break")
    assert [c.name for c in decision.failed] == ["min_roc_auc"] and not decision.promote
    assert all(decision.check(n).passed for n in ("no_regression", "never_trade_down", "slice_regression"))
    slow = _decide(
        comparison=worse,
        realized=BROKEN_CHAMPION,
        parity={**GOOD_PARITY, "onnx_ms_per_1k_rows": 80.0},
        basis="post_break",
    )
    assert [c.name for c in slow.failed] == ["latency"]


# Flights drill, label inversion on 2013-07-15 (labels two days late): the champion's realized AUC
# on the break day was 0.286; the drift policy's challenger, judged on the usual evaluation days
# (mostly before the break, only one post-break day < min_post_break_rows), had gain -0.040 in
# [-0.048, -0.032] and was promoted because the breach waived the comparisons.
DRILL_TRADE_DOWN = {"gain": -0.040, "gain_lower": -0.048, "gain_upper": -0.032, "prob_worse": 1.0}
INVERTED_CHAMPION = ChampionPerformance(version=4, label_day="2013-07-16", roc_auc=0.286, roc_auc_upper=0.32, rows=931)


def test_a_breach_does_not_waive_comparisons_made_on_days_before_the_break() -> None:
    """The measured bad promotion: a challenger answering the break, judged on pre-break days, waits."""
    pending = _decide(comparison=_comparison(**DRILL_TRADE_DOWN), realized=INVERTED_CHAMPION, answers_break=True)
    assert (pending.promote, pending.pending, pending.waiting_for) == (False, True, "post_break_rows")
    assert not pending.breach_waived and pending.breach is not None
    assert [c.name for c in pending.failed] == ["no_regression", "never_trade_down"]
    assert not pending.check("never_trade_down").detail.startswith("waived")
    assert pending.summary.startswith(
        "PENDING (waiting for gate.min_post_break_rows 2,000 labelled rows after the break: the champion is in "
        "breach and the challenger could only be judged on days before it): ROC AUC 0.7500 vs champion 0.7400, "
        "gain -0.0400 [-0.0480, -0.0320]"
    )
    assert pending.summary.endswith("but the challenger was judged on days before the break: the comparisons stand")
    # the same challenger judged on enough post-break days: the breach waives the comparisons
    judged = _decide(
        comparison=_comparison(**DRILL_TRADE_DOWN), realized=INVERTED_CHAMPION, answers_break=True, basis="post_break"
    )
    assert (judged.promote, judged.pending, judged.breach_waived) == (True, False, True)
    # a challenger not trained for the break (a calendar retrain) is simply judged: it trades down, rejected
    calendar = _decide(comparison=_comparison(**DRILL_TRADE_DOWN), realized=INVERTED_CHAMPION)
    assert (calendar.promote, calendar.pending, calendar.waiting_for) == (False, False, None)
    assert calendar.summary.startswith("REJECT")
    # what the challenger fails beyond the comparisons is a rejection, not a wait
    bad_parity = _decide(
        comparison=_comparison(**DRILL_TRADE_DOWN),
        realized=INVERTED_CHAMPION,
        answers_break=True,
        parity={**GOOD_PARITY, "onnx_ms_per_1k_rows": 80.0},
    )
    assert (bad_parity.pending, bad_parity.summary.startswith("REJECT")) == (False, True)
    # not worse on the pre-break days: nothing to wait for, promoted over the broken champion
    better = _decide(realized=INVERTED_CHAMPION, answers_break=True)
    assert (better.promote, better.pending, better.breach_waived) == (True, False, False)
    dry = _decide(
        comparison=_comparison(**DRILL_TRADE_DOWN),
        realized=INVERTED_CHAMPION,
        answers_break=True,
        mode_override="dry_run",
    )
    assert dry.summary.startswith("DRY RUN (would wait for post-break labels)")


@pytest.mark.parametrize(
    ("floor", "realized", "in_breach"),
    [
        pytest.param(0.6, ChampionPerformance(3, "2013-03-04", 0.58, 0.65, 900), False, id="upper-bound-above-floor"),
        pytest.param(0.6, ChampionPerformance(3, "2013-03-04", 0.58, 0.599, 900), True, id="confidently-below"),
        pytest.param(0.6, ChampionPerformance(3, "2013-03-04", 0.58, None, 900), True, id="no-interval-point"),
        pytest.param(None, ChampionPerformance(3, "2013-03-04", 0.45, 0.48, 900), True, id="worse-than-random"),
        pytest.param(None, ChampionPerformance(3, "2013-03-04", 0.52, 0.58, 900), False, id="no-floor-above-random"),
        pytest.param(0.6, None, False, id="no-record"),
    ],
)
def test_breach_is_the_monitors_line_judged_on_the_upper_bound(
    floor: float | None, realized: ChampionPerformance | None, in_breach: bool
) -> None:
    """The gate waives its comparisons exactly where the monitor calls a breach: the spec's
    ``drift.breach_floor`` (``performance_floor``, never under 0.5), not the gate's ``min_roc_auc``."""
    drift = DriftSpec(performance_floor=floor)
    decision = _decide(
        comparison=_comparison(**MEASURED), realized=realized, breach_floor=drift.breach_floor, basis="post_break"
    )
    assert (decision.breach is not None, decision.promote) == (in_breach, in_breach)
    monitor = RealizedPerformance(
        label_day="2013-03-04",
        rows=900,
        auc=realized.roc_auc if realized else None,
        auc_high=realized.roc_auc_upper if realized else None,
    )
    quiet_day = DayDrift(model="flights", partition="2013-03-05", status="ok", score=0.01, n_rows=900)
    monitor_breach = decide([], quiet_day, LoopState(), drift, realized=monitor if realized else None).breach
    assert monitor_breach == in_breach


def test_an_interval_that_reaches_zero_is_not_a_trade_down() -> None:
    check = _decide(comparison=_comparison(gain=-0.003, gain_lower=-0.008, gain_upper=0.0)).check("never_trade_down")
    assert check.passed and "reaches zero" in check.detail


def test_first_model_ignores_the_realized_figures() -> None:
    decision = _decide(champion=None, comparison=None, realized=BROKEN_CHAMPION)
    assert decision.promote and decision.breach is None and "never_trade_down" not in [c.name for c in decision.checks]


def test_waiting_for_shadow_days_is_pending_not_rejected() -> None:
    policy = POLICY.model_copy(update={"shadow_days": 3})
    waiting = _decide(policy=policy, shadow_clean_days=1)
    assert (waiting.pending, waiting.promote, waiting.would_promote) == (True, False, False)
    assert waiting.summary.startswith("PENDING (waiting for 3 clean shadow days, re-gated when they exist)")
    assert waiting.to_dict()["pending"] is True
    # another failure besides the shadow days: nothing to wait for
    bad = _decide(policy=policy, shadow_clean_days=1, challenger=_evaluation(0.5))
    assert not bad.pending and bad.summary.startswith("REJECT")
    # the same challenger with its clean days is gated again under another decision id
    ready = _decide(policy=policy, shadow_clean_days=3)
    assert ready.promote and not ready.pending and ready.decision_id != waiting.decision_id
    dry = _decide(policy=policy, shadow_clean_days=1, mode_override="dry_run")
    assert dry.pending and dry.summary.startswith("DRY RUN (would wait for shadow days)")


def test_the_evaluation_basis_is_stated_and_hashed() -> None:
    basis = "judged on 3 labelled days after the break on 2013-03-01 (2,710 rows)"
    decision = _decide(evaluated_on=basis)
    assert decision.evaluated_on == basis and decision.summary.endswith(f"; {basis}")
    assert decision.decision_id != _decide().decision_id


# --------------------------------------------------------------------------- model card
def _card_inputs() -> dict[str, Any]:
    slices = (SliceMetric("origin", "JFK", 2400, 500, 0.7311), SliceMetric("origin", "EWR", 2600, 560, 0.7012))
    champion = _evaluation(0.74, (SliceMetric("origin", "JFK", 2400, 500, 0.7250),))
    decision = _decide(challenger=_evaluation(0.7532, slices), champion=champion)
    return {
        "model": "flights",
        "version": 7,
        "description": "Arrival delay over 15 minutes for flights departing New York in 2013.",
        "training_window": ("2013-01-01", "2013-01-28"),
        "holdout_window": ("2013-01-22", "2013-01-28"),
        "evaluation": _evaluation(0.7532, slices),
        "champion": champion,
        "comparison": _comparison(),
        "decision": decision,
        "estimator": "hist_gradient_boosting",
        "label_delay_days": 2,
        "owner": "airloop",
        "limitations": ["Weather features come from the origin airport only."],
        "lineage": {
            "run_id": "abc123",
            "data_hash": "d41d8cd9",
            "code_commit": "0f1e2d3",
            "dag_id": "train_flights",
            "dag_run_id": "scheduled__2013-01-29",
        },
    }


SECTIONS = [
    "Intended use",
    "Training data",
    "Metrics",
    "How the model decides",
    "Gate results",
    "Known limitations",
    "Lineage",
]


def test_model_card_markdown_has_every_section_and_the_figures() -> None:
    text = model_card_markdown(**_card_inputs())
    assert text.startswith("# Model card: flights v7\n")
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == SECTIONS
    assert "### Metrics per slice" in text
    assert "| ROC AUC | 0.7532 | 0.7400 |" in text
    assert "| origin=JFK | 2,400 | 500 | 0.7311 | 0.7250 | -0.0061 |" in text
    assert "| no_regression | -0.0100 | -0.0040 | pass |" in text
    assert "Training window: 2013-01-01 to 2013-01-28" in text
    assert "Labels arrive 2 day(s) after scoring" in text
    assert "float32 ONNX" in text and "mean |difference| 0.0002" in text
    assert "Weather features come from the origin airport only." in text
    assert "| run_id | abc123 |" in text and "| spec_hash | not recorded |" in text
    assert "| dag_run_id | scheduled__2013-01-29 |" in text
    # a run without explanation artifacts (a drill's lean retrain) says so
    assert "Not recorded: the training run logged no permutation importance." in text
    assert "Not recorded: the training run logged no calibration curve." in text


def test_model_card_html_is_self_contained_and_escaped() -> None:
    inputs = _card_inputs()
    inputs["description"] = "Delays <b>& more</b>"
    page = model_card_html(**inputs)
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
    assert "<td>0.7532</td>" in page and '<td class="pass">pass</td>' in page
    assert "Delays &lt;b&gt;&amp; more&lt;/b&gt;" in page
    lowered = page.lower()
    assert "<script" not in lowered and "http://" not in lowered and "https://" not in lowered
    assert "<link" not in lowered and "src=" not in lowered


def test_model_card_accepts_plain_dicts_and_no_decision() -> None:
    inputs = _card_inputs()
    inputs["evaluation"] = inputs["evaluation"].to_dict()
    inputs.pop("decision")
    inputs.pop("champion")
    inputs.pop("comparison")
    sections = {s.title: s for s in card_sections(**inputs)}
    assert ("p", "This model has not been through the gate.") in sections["Gate results"].blocks
    assert "| ROC AUC | 0.7532 |" in model_card_markdown(**inputs)


GATE_REPORT = {
    "model": "flights<script>",
    "challenger_version": 3,
    "champion_version": 2,
    "evaluation_rows": 12345,
    "evaluation_days": ["2013-01-26", "2013-01-27"],
    "decision": {
        "promote": False,
        "would_promote": False,
        "summary": "REJECT: gain -0.0061 < -0.0050 & more",
        "decision_id": "d3reject",
        "checks": [
            {"name": "no_regression", "threshold": -0.005, "observed": -0.0061, "passed": False, "detail": "<x>"},
            {"name": "parity_mean_abs", "threshold": 0.001, "observed": 0.000012, "passed": True, "detail": ""},
        ],
    },
}


def test_gate_report_html_shows_every_check_escaped() -> None:
    from include.registry.promotion import gate_report_html

    report = GATE_REPORT
    page = gate_report_html(report)
    assert "<h1>flights&lt;script&gt;: challenger v3 vs champion v2</h1>" in page and "<script" not in page
    assert '<div class="banner reject" id="verdict"><b>REJECT</b> &mdash; REJECT: gain -0.0061 < -0.0050' not in page
    assert "REJECT: gain -0.0061 &lt; -0.0050 &amp; more" in page
    assert "Evaluated on 12,345 labelled rows of 2013-01-26, 2013-01-27" in page
    assert (
        '<tr class="row-FAIL"><td>no_regression</td><td class="num">-0.0050</td><td class="num">-0.0061</td>'
        '<td class="FAIL">FAIL</td><td>&lt;x&gt;</td></tr>'
    ) in page
    assert '<td class="num">1.2e-05</td><td class="PASS">PASS</td>' in page  # fmt_number keeps tiny figures
    first = {**report, "champion_version": None, "decision": {**report["decision"], "promote": True}}
    assert "vs champion (none: first model)" in gate_report_html(first) and "<b>PROMOTE</b>" in gate_report_html(first)


def test_gate_report_html_shows_pending_breach_and_post_break_evaluation() -> None:
    from include.registry.promotion import gate_report_html

    report = {
        **GATE_REPORT,
        "evaluation_basis": "post_break",
        "decision": {
            **GATE_REPORT["decision"],
            "pending": True,
            "breach": "champion v3 realized ROC AUC 0.31 (upper 0.35) below the floor 0.6",
            "breach_waived": True,
            "evaluated_on": "post-break days 2013-03-02..2013-03-03 (2,400 rows)",
            "summary": "PENDING: 1 of 3 clean shadow days",
            "checks": [{"name": "shadow_days", "threshold": 3, "observed": 1, "passed": False, "detail": ""}],
        },
    }
    page = gate_report_html(report)
    assert '<div class="banner pending" id="verdict"><b>PENDING (waiting for clean shadow days)</b>' in page
    assert "<b>Champion in performance breach</b> &mdash; champion v3 realized ROC AUC 0.31 (upper 0.35)" in page
    assert "Judged on days after the break: the comparisons with the champion are waived" in page
    assert "days after the performance break the challenger answers" in page
    assert "post-break days 2013-03-02..2013-03-03 (2,400 rows)" in page
    holdout = {
        **report,
        "evaluation_basis": "holdout",
        "decision": {**report["decision"], "pending": False, "breach": None},
    }
    page = gate_report_html(holdout)
    assert "<b>REJECT</b>" in page and 'id="breach"' not in page and "days neither model trained on" in page
    waiting = {
        **report,
        "evaluation_basis": "holdout",
        "decision": {**report["decision"], "breach_waived": False, "waiting_for": "post_break_rows"},
    }
    page = gate_report_html(waiting)
    assert '<div class="banner pending" id="verdict"><b>PENDING (waiting for post-break labels)</b>' in page
    assert "judged on days before the break, where the champion still held: the comparisons stand" in page
