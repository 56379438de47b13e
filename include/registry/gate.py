"""The promotion gate: evaluate a challenger, compare it with the champion, decide.

Three steps, each a plain function over arrays and small frozen value objects:

- :func:`evaluate` scores one model on the holdout: ROC AUC with a bootstrap confidence interval,
  PR AUC, log loss, Brier score, accuracy/precision/recall at the spec's threshold, and ROC AUC per
  value of every slice column (slices with fewer than :data:`MIN_SLICE_ROWS` rows or a single class
  are skipped and counted, not guessed).
- :func:`compare` runs a *paired* bootstrap of the AUC difference: each replicate resamples the same
  rows for both models, so the interval reflects the difference between the models and not the
  noise of the sample (unpaired intervals of two correlated AUCs are several times wider).
- :func:`decide_promotion` is a pure function of the policy and the figures: no I/O, no clock.
  It runs the named checks of :data:`CHECKS` (each returns a :class:`Check` with its numbers and
  its reason in words). Its ``decision_id`` is a digest of every input, so a rerun of the same
  gate gets the same id (the ledger uses it to stay idempotent).

With ``gate.fairness``, :func:`include.registry.fairness.measure_fairness` adds Fairlearn's
disparities per sensitive group on the same rows and bootstrap; ``fairness`` judges them against
their limits on their favourable bound, ``fairness_vs_champion`` on the paired interval against
the champion (docs/fairness.md).

No regression is judged on the *lower* bound of the paired gain: a challenger is promoted only if
we are confident it is not worse than the champion by more than ``max_regression``. Slice drops
are judged the same way, on the lower bound of each drop (:func:`_auc_standard_error`). And the
gate never trades down: a gain interval entirely below zero rejects, whatever ``max_regression``
tolerates (a replay promoted a challenger with gain -0.0042 in [-0.0070, -0.0011] before this),
unless the champion is in a performance breach (:func:`champion_breach`) *and* the challenger
was judged on labelled days after the break: then the comparative checks are waived and the
challenger wins if it clears the floor. A breach says nothing about days before the break, where
the champion still held: judged on those, the comparisons stand (a flights drill promoted a
challenger with gain -0.040 [-0.048, -0.032] on mostly pre-break days before this rule), and a
challenger trained to answer the break is ``pending`` until enough post-break rows are labelled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from include.names import GATE_MODES, RANDOM_AUC, GateMode
from include.registry.resample import (
    CONFIDENCE,
    GateInputError,
    bootstrap_weights,
    percentile_interval,
    validated_scores,
)
from include.reports.format import fmt_number, jsonable

if TYPE_CHECKING:
    from include.registry.fairness import Disparity, FairnessReport
    from include.spec import GateSpec

log = logging.getLogger(__name__)

MIN_SLICE_ROWS = 50
MODES = GATE_MODES
_MODE_BY_NAME: dict[str, GateMode] = {m: m for m in MODES}
_EPS = 1e-15


Basis = Literal["holdout", "post_break"]
Waiting = Literal["shadow_days", "post_break_rows"]
# the checks that compare with the champion: a breach judged on post-break days waives them
COMPARATIVE = frozenset({"no_regression", "never_trade_down", "min_gain", "slice_regression"})


# --------------------------------------------------------------------------- value objects
@dataclass(frozen=True)
class SliceMetric:
    column: str
    value: str
    n: int
    positives: int
    roc_auc: float

    @property
    def name(self) -> str:
        return f"{self.column}={self.value}"


@dataclass(frozen=True)
class Evaluation:
    """One model's figures on one holdout."""

    roc_auc: float
    roc_auc_lower: float
    roc_auc_upper: float
    pr_auc: float
    log_loss: float
    brier: float
    accuracy: float
    precision: float
    recall: float
    threshold: float
    n: int
    positives: int
    bootstrap_samples: int
    slices: tuple[SliceMetric, ...] = ()
    slices_skipped: int = 0

    def slice_auc(self) -> dict[str, float]:
        return {s.name: s.roc_auc for s in self.slices}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (NaN as ``None``); :meth:`from_dict` reverses it (XCom, reports)."""
        out = asdict(self)
        out["slices"] = [{**asdict(s), "name": s.name} for s in self.slices]
        return jsonable(out)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("roc_auc_lower", "roc_auc_upper"):
            values[key] = math.nan if values.get(key) is None else values[key]
        values["slices"] = tuple(
            SliceMetric(s["column"], s["value"], s["n"], s["positives"], s["roc_auc"]) for s in data.get("slices", [])
        )
        return cls(**values)


@dataclass(frozen=True)
class Comparison:
    """Challenger minus champion on the same rows (positive gain: the challenger is better)."""

    gain: float
    gain_lower: float
    gain_upper: float
    prob_worse: float  # share of bootstrap replicates where the challenger's AUC is lower
    bootstrap_samples: int
    worst_slice: str | None
    worst_slice_drop: float | None  # champion slice AUC - challenger slice AUC; None: no common slice
    slice_drops: dict[str, float] = field(default_factory=dict)
    # 95% lower bound of each drop (Hanley-McNeil standard errors): the gate judges this, so a
    # 60-row slice whose AUC wobbles by 0.15 between two equally good models does not block
    worst_slice_drop_lower: float | None = None
    slice_drop_lowers: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (NaN as ``None``); :meth:`from_dict` reverses it."""
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("gain_lower", "gain_upper", "prob_worse"):
            values[key] = math.nan if values.get(key) is None else values[key]
        values["slice_drops"] = dict(values.get("slice_drops") or {})
        values["slice_drop_lowers"] = dict(values.get("slice_drop_lowers") or {})
        return cls(**values)

    @property
    def judged_slice_drop(self) -> float | None:
        """What the gate compares with ``max_slice_drop``: the lower bound when known."""
        return self.worst_slice_drop if self.worst_slice_drop_lower is None else self.worst_slice_drop_lower


@dataclass(frozen=True)
class Check:
    name: str
    threshold: float | int | str | None
    observed: float | int | str | None
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChampionPerformance:
    """The champion's latest realized performance in production: one labelled day of a monitor
    record (``performance`` of ``reports/<model>/drift/ds=<date>.json``). A breach is judged on it."""

    version: int
    label_day: str
    roc_auc: float
    roc_auc_upper: float | None  # upper bound of the day's bootstrap interval; None: not computed
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass(frozen=True)
class GateDecision:
    """The verdict. ``promote`` is what to do; ``would_promote`` is the verdict of the checks
    (the same as ``promote`` when enabled, recorded for dry runs; False when disabled, since the
    ``gate_mode`` check fails). ``pending``: only ``shadow_days`` failed, so the challenger waits
    for its clean shadow days and is gated again, or a challenger answering a break waits for
    post-break labels (``waiting_for`` says which; not a rejection). ``breach``: why the champion
    is in a performance breach, or ``None``; ``breach_waived``: whether that waived the
    comparative checks (only when judged on days after the break). ``evaluated_on``: which rows
    the figures come from, in words."""

    decision_id: str
    promote: bool
    would_promote: bool
    mode: GateMode
    first_model: bool
    approval_required: bool
    checks: list[Check]
    summary: str
    figures: dict[str, float | int | str | None]
    context: dict[str, Any] = field(default_factory=dict)
    pending: bool = False
    breach: str | None = None
    evaluated_on: str | None = None
    waiting_for: Waiting | None = None
    breach_waived: bool = False

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; checks: {[c.name for c in self.checks]}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["checks"] = [c.to_dict() for c in self.checks]
        return jsonable(out)


# --------------------------------------------------------------------------- AUC machinery
class _AucRanker:
    """ROC AUC of one score vector under any row weighting, in O(n) per call after one sort.

    A bootstrap replicate is a vector of row counts; AUC is then the weighted Mann-Whitney
    statistic over the distinct score values (ties count one half), identical to
    ``roc_auc_score`` on the resampled rows but without re-sorting per replicate.
    """

    def __init__(self, scores: np.ndarray, labels: np.ndarray) -> None:
        self.groups_of_rows: np.ndarray
        _, self.groups_of_rows = np.unique(scores, return_inverse=True)
        self.n_groups = int(self.groups_of_rows.max()) + 1 if len(scores) else 0
        self.pos = labels.astype(np.float64)
        self.neg = 1.0 - self.pos

    def auc(self, weights: np.ndarray | None = None) -> float:
        pos_w = self.pos if weights is None else self.pos * weights
        neg_w = self.neg if weights is None else self.neg * weights
        p = np.bincount(self.groups_of_rows, weights=pos_w, minlength=self.n_groups)
        q = np.bincount(self.groups_of_rows, weights=neg_w, minlength=self.n_groups)
        total_p, total_q = p.sum(), q.sum()
        if total_p <= 0 or total_q <= 0:
            return math.nan
        neg_below = np.cumsum(q) - q
        # Elementwise sum, not np.dot: BLAS dot spins up threads and is 50x slower on a busy host.
        return float(np.sum(p * (neg_below + 0.5 * q)) / (total_p * total_q))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC (NaN when only one class is present)."""
    scores, labels = validated_scores(scores, labels)
    return _AucRanker(scores, labels).auc()


# --------------------------------------------------------------------------- evaluate / compare
def evaluate(
    scores: np.ndarray,
    labels: np.ndarray,
    slices: Mapping[str, np.ndarray] | None,
    threshold: float,
    n_boot: int,
    seed: int,
) -> Evaluation:
    """Figures of one model on a holdout; ``scores`` are positive-class probabilities."""
    from sklearn.metrics import average_precision_score

    scores, labels = validated_scores(scores, labels)
    n, positives = len(labels), int(labels.sum())
    if positives == 0 or positives == n:
        raise GateInputError(f"the holdout has a single class ({positives} positives in {n} rows): AUC is undefined")
    ranker = _AucRanker(scores, labels)
    auc = ranker.auc()
    boot = np.array([ranker.auc(w) for w in bootstrap_weights(n, n_boot, seed)]) if n_boot > 0 else np.array([])
    lower, upper = percentile_interval(boot) if n_boot > 0 else (math.nan, math.nan)

    clipped = np.clip(scores, _EPS, 1.0 - _EPS)
    log_loss = float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1.0 - clipped)))
    predicted = scores >= threshold
    true_pos = int(np.sum(predicted & (labels == 1)))
    slice_metrics, skipped = _slice_metrics(scores, labels, slices or {})
    return Evaluation(
        roc_auc=auc,
        roc_auc_lower=lower,
        roc_auc_upper=upper,
        pr_auc=float(average_precision_score(labels, scores)),
        log_loss=log_loss,
        brier=float(np.mean((scores - labels) ** 2)),
        accuracy=float(np.mean(predicted == (labels == 1))),
        precision=true_pos / int(predicted.sum()) if predicted.any() else 0.0,
        recall=true_pos / positives,
        threshold=float(threshold),
        n=n,
        positives=positives,
        bootstrap_samples=int(n_boot),
        slices=slice_metrics,
        slices_skipped=skipped,
    )


def _slice_metrics(
    scores: np.ndarray, labels: np.ndarray, slices: Mapping[str, np.ndarray]
) -> tuple[tuple[SliceMetric, ...], int]:
    found: list[SliceMetric] = []
    skipped = 0
    for column in sorted(slices):
        values = np.asarray(slices[column]).astype(str)
        if len(values) != len(labels):
            raise GateInputError(f"slice column {column!r} has {len(values)} values for {len(labels)} rows")
        for value in np.unique(values):
            mask = values == value
            n, positives = int(mask.sum()), int(labels[mask].sum())
            if n < MIN_SLICE_ROWS or positives in (0, n):
                skipped += 1
                continue
            auc = _AucRanker(scores[mask], labels[mask]).auc()
            found.append(SliceMetric(column=column, value=str(value), n=n, positives=positives, roc_auc=auc))
    return tuple(found), skipped


def compare(
    challenger: Evaluation,
    champion: Evaluation,
    challenger_scores: np.ndarray,
    champion_scores: np.ndarray,
    labels: np.ndarray,
    n_boot: int,
    seed: int,
) -> Comparison:
    """Paired bootstrap of ``AUC(challenger) - AUC(champion)`` on the same holdout rows."""
    challenger_scores, labels = validated_scores(challenger_scores, labels)
    champion_scores, _ = validated_scores(champion_scores, labels)
    if not (challenger.n == champion.n == len(labels)):
        raise GateInputError(
            f"evaluations and arrays disagree on the holdout size: challenger {challenger.n}, "
            f"champion {champion.n}, labels {len(labels)} (score both models on the same rows)"
        )
    ours, theirs = _AucRanker(challenger_scores, labels), _AucRanker(champion_scores, labels)
    gain = ours.auc() - theirs.auc()
    gains = np.array([ours.auc(w) - theirs.auc(w) for w in bootstrap_weights(len(labels), n_boot, seed)])
    lower, upper = percentile_interval(gains) if n_boot > 0 else (gain, gain)
    finite = gains[np.isfinite(gains)]
    prob_worse = float(np.mean(finite < 0)) if finite.size else math.nan

    mine = {s.name: s for s in challenger.slices}
    before = {s.name: s for s in champion.slices}
    common = sorted(set(mine) & set(before))
    drops = {name: before[name].roc_auc - mine[name].roc_auc for name in common}
    lowers = {
        name: drops[name] - _Z95 * math.hypot(_auc_standard_error(before[name]), _auc_standard_error(mine[name]))
        for name in common
    }
    worst = max(lowers, key=lambda k: (lowers[k], drops[k])) if lowers else None
    return Comparison(
        gain=float(gain),
        gain_lower=lower,
        gain_upper=upper,
        prob_worse=prob_worse,
        bootstrap_samples=int(n_boot),
        worst_slice=worst,
        worst_slice_drop=drops[worst] if worst is not None else None,
        slice_drops=drops,
        worst_slice_drop_lower=lowers[worst] if worst is not None else None,
        slice_drop_lowers=lowers,
    )


_Z95 = 1.959964


def _auc_standard_error(metric: SliceMetric) -> float:
    """Hanley & McNeil (1982) standard error of one ROC AUC from its counts.

    Treating the two models' slice AUCs as independent overstates the error of their
    difference (they score the same rows), so the lower bound errs toward letting a model
    through on noise, never toward blocking it on noise."""
    auc, pos, neg = metric.roc_auc, metric.positives, metric.n - metric.positives
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (pos - 1) * (q1 - auc * auc) + (neg - 1) * (q2 - auc * auc)) / (pos * neg)
    return math.sqrt(max(variance, 0.0))


# --------------------------------------------------------------------------- decide
_fmt = fmt_number


def _at_least(name: str, observed: float | None, threshold: float, what: str) -> Check:
    ok = observed is not None and math.isfinite(observed) and observed >= threshold
    sign = ">=" if ok else "<"
    detail = f"{what} {_fmt(observed)} {sign} {_fmt(threshold)}" if observed is not None else f"{what} not measured"
    return Check(name=name, threshold=threshold, observed=observed, passed=ok, detail=detail)


def _at_most(name: str, observed: float | None, threshold: float, what: str) -> Check:
    ok = observed is not None and math.isfinite(observed) and observed <= threshold
    sign = "<=" if ok else ">"
    detail = f"{what} {_fmt(observed)} {sign} {_fmt(threshold)}" if observed is not None else f"{what} not measured"
    return Check(name=name, threshold=threshold, observed=observed, passed=ok, detail=detail)


def _number(parity: Mapping[str, Any], key: str) -> float | None:
    value = parity.get(key)
    return None if value is None else float(value)


def champion_breach(floor: float, realized: ChampionPerformance | None) -> str | None:
    """Why the champion is in a performance breach, in words; ``None`` when it is not (or unknown).

    ``floor`` is the spec's ``drift.breach_floor``: the same line the monitor draws, so the gate
    waives its comparisons exactly when the monitor calls the champion's day a breach.

    Judged on the upper bound of the day's bootstrap interval when the record has one: one
    labelled day of ~900 rows moves the AUC by about ±0.045, and a breach waives the comparative
    checks, so it needs the champion to be below the floor with confidence."""
    if realized is None:
        return None
    judged = realized.roc_auc if realized.roc_auc_upper is None else realized.roc_auc_upper
    if not (math.isfinite(judged) and judged < floor):
        return None
    bound = "" if realized.roc_auc_upper is None else f", 95% upper bound {_fmt(realized.roc_auc_upper)}"
    return (
        f"champion v{realized.version} is in a performance breach: realized ROC AUC {_fmt(realized.roc_auc)}"
        f"{bound} on {realized.label_day} ({realized.rows:,} labelled rows) < floor {_fmt(floor)}"
    )


@dataclass(frozen=True)
class GateInputs:
    """What every check reads; ``breach`` is :func:`champion_breach` of the realized figures."""

    policy: GateSpec
    challenger: Evaluation
    champion: Evaluation | None
    comparison: Comparison | None
    parity: Mapping[str, Any]
    shadow_clean_days: int | None
    mode: GateMode
    breach: str | None = None
    fairness: FairnessReport | None = None


def _waived(check: Check, breach: str | None) -> Check:
    """A failed comparison with a champion in breach passes: against a broken champion the best
    candidate above the floor wins (the floor itself is never waived)."""
    if check.passed or breach is None:
        return check
    return replace(check, passed=True, detail=f"waived, {breach}: {check.detail}")


def check_floor(gate: GateInputs) -> Check:
    """The challenger's ROC AUC on the evaluation set is at least ``min_roc_auc``."""
    return _at_least("min_roc_auc", gate.challenger.roc_auc, gate.policy.min_roc_auc, "challenger ROC AUC")


def check_no_regression(gate: GateInputs) -> Check | None:
    """Not worse than the champion by more than ``max_regression``, judged on the lower bound."""
    comparison, champion = gate.comparison, gate.champion
    if comparison is None or champion is None:
        return None
    threshold = -gate.policy.max_regression
    ok = math.isfinite(comparison.gain_lower) and comparison.gain_lower >= threshold
    detail = (
        f"AUC gain {_fmt(comparison.gain, True)} (challenger {_fmt(gate.challenger.roc_auc)} vs champion "
        f"{_fmt(champion.roc_auc)}), {CONFIDENCE:.0%} lower bound {_fmt(comparison.gain_lower, True)} "
        f"{'>=' if ok else '<'} {_fmt(threshold, True)}"
    )
    return _waived(Check("no_regression", threshold, comparison.gain_lower, ok, detail), gate.breach)


def check_never_trade_down(gate: GateInputs) -> Check | None:
    """The gain interval is not entirely below zero, whatever ``max_regression`` tolerates: a
    challenger measurably worse than the champion is never promoted over a healthy champion."""
    comparison = gate.comparison
    if comparison is None or gate.champion is None:
        return None
    ok = math.isfinite(comparison.gain_upper) and comparison.gain_upper >= 0.0
    interval = f"[{_fmt(comparison.gain_lower, True)}, {_fmt(comparison.gain_upper, True)}]"
    detail = (
        f"AUC gain {CONFIDENCE:.0%} interval {interval} reaches zero: not measurably worse than the champion"
        if ok
        else f"AUC gain {CONFIDENCE:.0%} interval {interval} lies entirely below zero: measurably worse than the champion"
    )
    return _waived(Check("never_trade_down", 0.0, comparison.gain_upper, ok, detail), gate.breach)


def check_min_gain(gate: GateInputs) -> Check | None:
    """The point gain reaches ``min_gain`` (only when the policy asks for a positive gain)."""
    comparison = gate.comparison
    if comparison is None or gate.champion is None or gate.policy.min_gain <= 0:
        return None
    ok = comparison.gain >= gate.policy.min_gain
    detail = f"AUC gain {_fmt(comparison.gain, True)} {'>=' if ok else '<'} {_fmt(gate.policy.min_gain, True)}"
    return _waived(Check("min_gain", gate.policy.min_gain, comparison.gain, ok, detail), gate.breach)


def check_slice_regression(gate: GateInputs) -> Check | None:
    """The worst slice drop (its lower bound when known) is at most ``max_slice_drop``."""
    comparison, threshold = gate.comparison, gate.policy.max_slice_drop
    if comparison is None or gate.champion is None:
        return None
    judged = comparison.judged_slice_drop
    if comparison.worst_slice_drop is None or judged is None:
        detail = "no slice with enough rows and both classes in both models"
        return Check("slice_regression", threshold, None, True, detail)
    ok = judged <= threshold
    bound = "" if comparison.worst_slice_drop_lower is None else f", 95% lower bound {_fmt(judged)}"
    detail = (
        f"worst slice {comparison.worst_slice}: AUC drop {_fmt(comparison.worst_slice_drop)}{bound} "
        f"{'<=' if ok else '>'} {_fmt(threshold)}"
    )
    return _waived(Check("slice_regression", threshold, judged, ok, detail), gate.breach)


def check_parity_mean_abs_diff(gate: GateInputs) -> Check:
    """ONNX and scikit-learn probabilities agree within ``parity_mean_abs_diff`` (from training)."""
    observed = _number(gate.parity, "mean_abs_diff")
    return _at_most("parity_mean_abs_diff", observed, gate.policy.parity_mean_abs_diff, "ONNX vs sklearn mean |p diff|")


def check_parity_label_agreement(gate: GateInputs) -> Check:
    """ONNX and scikit-learn labels agree on at least ``parity_label_agreement`` of the rows."""
    observed = _number(gate.parity, "label_agreement")
    threshold = gate.policy.parity_label_agreement
    return _at_least("parity_label_agreement", observed, threshold, "ONNX vs sklearn label agreement")


def check_latency(gate: GateInputs) -> Check:
    """onnxruntime scores 1,000 rows within ``latency_ms_per_1k`` milliseconds."""
    observed = _number(gate.parity, "onnx_ms_per_1k_rows")
    return _at_most("latency", observed, gate.policy.latency_ms_per_1k, "ONNX ms per 1k rows")


def check_shadow_days(gate: GateInputs) -> Check | None:
    """At least ``shadow_days`` clean shadow days (only with a champion to shadow beside)."""
    required, clean = gate.policy.shadow_days, gate.shadow_clean_days
    if required <= 0 or gate.champion is None:
        return None
    if clean is None:
        return Check("shadow_days", required, None, False, "no shadow record for this challenger")
    ok = clean >= required
    return Check("shadow_days", required, clean, ok, f"{clean} clean shadow days {'>=' if ok else '<'} {required}")


def _disparity_words(d: Disparity) -> str:
    """``equalized_odds_difference on origin 0.21 [0.16, 0.26]``, with the two groups at its ends."""
    metric = {"selection_rate": "selection rate", "tpr": "TPR", "fpr": "FPR", "calibration_gap": "calibration gap"}
    ends = (
        f" (group {d.high_group}: {metric.get(d.metric, d.metric)} {_fmt(d.high_value)} vs {d.low_group} "
        f"{_fmt(d.low_value)})"
        if d.high_group is not None and d.low_group is not None
        else ""
    )
    return f"{d.name} on {d.column} {_fmt(d.value)} [{_fmt(d.lower)}, {_fmt(d.upper)}]{ends}"


def _too_small_words(report: FairnessReport) -> str:
    small = report.challenger.too_small()
    if not small:
        return ""
    groups = ", ".join(f"{g.column}={g.group} ({g.rows:,} rows)" for g in small)
    return f"; too small to judge (< min_group_rows {report.min_group_rows:,}): {groups}"


def check_fairness(gate: GateInputs) -> Check | None:
    """Every disparity the spec limits is within its limit on its 95% bound (the lower bound of a
    difference, the upper bound of ``demographic_parity_ratio``): a small group fails only when
    the disparity is there with confidence, not by noise. Groups under ``min_group_rows`` are
    named, not judged."""
    report = gate.fairness
    if report is None or not report.limits:
        return None
    failures: list[tuple[float, str, float, float]] = []
    judged: list[str] = []
    for d in report.challenger.disparities:
        limit = report.limits.get(d.name)
        if limit is None:
            continue
        bound = d.judged
        if not math.isfinite(bound):
            judged.append(f"{d.name} on {d.column} not measured (no bootstrap interval)")
            continue
        if d.breaks(limit):
            word = "under" if d.name == "demographic_parity_ratio" else "over"
            failures.append((abs(bound - limit), f"{_disparity_words(d)} {word} {_fmt(limit)}", bound, limit))
        else:
            judged.append(
                f"{d.name} on {d.column} {_fmt(d.value)} [{_fmt(d.lower)}, {_fmt(d.upper)}] within {_fmt(limit)}"
            )
    small = _too_small_words(report)
    if failures:
        failures.sort(key=lambda f: -f[0])
        _, _, observed, threshold = failures[0]
        return Check("fairness", threshold, observed, False, "; ".join(f[1] for f in failures) + small)
    detail = "; ".join(judged) if judged else "no column has two groups large enough to judge"
    return Check("fairness", None, None, True, detail + small)


def check_fairness_vs_champion(gate: GateInputs) -> Check | None:
    """The challenger is not measurably less fair than the champion: for each compared disparity
    the paired interval of challenger minus champion does not lie entirely on the less fair side
    of zero, unless ``gate.fairness.allow_less_fair``. Not waived by a champion's breach: a
    worse AUC does not excuse treating a group worse."""
    report = gate.fairness
    if report is None or gate.champion is None or report.champion is None:
        return None
    worse = [s for s in report.shifts if s.less_fair]
    if not worse:
        shown = "; ".join(
            f"{s.name} on {s.column} {_fmt(s.delta, True)} [{_fmt(s.lower, True)}, {_fmt(s.upper, True)}]"
            for s in report.shifts
        )
        return Check("fairness_vs_champion", 0.0, None, True, f"not measurably less fair than the champion: {shown}")
    words = "; ".join(
        f"{s.name} on {s.column} {_fmt(s.challenger)} vs champion {_fmt(s.champion)}, difference "
        f"{_fmt(s.delta, True)} [{_fmt(s.lower, True)}, {_fmt(s.upper, True)}]"
        for s in worse
    )
    first = worse[0]
    if report.allow_less_fair:
        return Check("fairness_vs_champion", 0.0, first.delta, True, f"allowed (allow_less_fair): less fair, {words}")
    return Check("fairness_vs_champion", 0.0, first.delta, False, f"measurably less fair than the champion: {words}")


def check_gate_mode(gate: GateInputs) -> Check | None:
    """A disabled gate lists one check that never passes."""
    if gate.mode != "disabled":
        return None
    return Check("gate_mode", "enabled", "disabled", False, "gate disabled: nothing is promoted")


CHECKS: tuple[Callable[[GateInputs], Check | None], ...] = (
    check_floor,
    check_no_regression,
    check_never_trade_down,
    check_min_gain,
    check_slice_regression,
    check_fairness,
    check_fairness_vs_champion,
    check_parity_mean_abs_diff,
    check_parity_label_agreement,
    check_latency,
    check_shadow_days,
    check_gate_mode,
)
"""The gate's checks in report order; each returns ``None`` where it does not apply."""


def decide_promotion(
    policy: GateSpec,
    challenger: Evaluation,
    champion: Evaluation | None,
    comparison: Comparison | None,
    parity: Mapping[str, Any],
    shadow_clean_days: int | None,
    mode_override: str | None = None,
    context: Mapping[str, Any] | None = None,
    *,
    realized: ChampionPerformance | None = None,
    breach_floor: float = RANDOM_AUC,
    evaluated_on: str | None = None,
    basis: Basis = "holdout",
    answers_break: bool = False,
    fairness: FairnessReport | None = None,
) -> GateDecision:
    """Judge a challenger against the policy; pure (same inputs, same decision and id).

    ``parity`` holds ``mean_abs_diff``, ``label_agreement`` and ``onnx_ms_per_1k_rows`` (a missing
    figure fails its check). ``context`` (model, versions, run ids) is recorded and hashed into
    ``decision_id`` but judged by nothing. Every applicable check of :data:`CHECKS` is listed, so
    a rejected challenger shows every reason at once. A first model (no champion) is judged on the
    absolute floor, parity and latency only. ``realized`` is the champion's latest realized
    performance: below ``breach_floor`` (:func:`champion_breach`) it waives the comparative checks
    when the challenger was judged on days after the break (``basis == "post_break"``).
    ``evaluated_on`` says in words which rows the figures come from (recorded in the summary).
    ``fairness``: the figures of :func:`include.registry.fairness.measure_fairness` on the same
    rows, judged by ``fairness`` and ``fairness_vs_champion`` (``None``: no fairness block).

    *Pending*, not rejected: a challenger whose only failed check is ``shadow_days``; and one
    trained to answer a break (``answers_break``) with the champion in breach, judged on days
    before the break for want of post-break rows, whose only failures are comparisons (and
    shadow days): it waits for ``gate.min_post_break_rows`` labelled rows after the break (the
    monitor's next breach day retrains with them; a pending challenger never counts toward a
    circuit breaker).
    """
    mode = _MODE_BY_NAME.get(mode_override or policy.mode)
    if mode is None:
        raise GateInputError(f"unknown gate mode {mode_override!r}: expected one of {list(MODES)}")
    if champion is not None and comparison is None:
        raise GateInputError("a champion exists but no comparison was given: run compare() first")
    breach = champion_breach(breach_floor, realized) if champion is not None else None
    waived = breach is not None and basis == "post_break"
    gate = GateInputs(
        policy, challenger, champion, comparison, parity, shadow_clean_days, mode, breach if waived else None, fairness
    )
    checks = [check for judge in CHECKS if (check := judge(gate)) is not None]
    would_promote = all(c.passed for c in checks)
    failed = {c.name for c in checks if not c.passed}
    waiting_for: Waiting | None = None
    if failed == {"shadow_days"}:
        waiting_for = "shadow_days"
    elif breach and not waived and answers_break and failed and failed <= COMPARATIVE | {"shadow_days"}:
        waiting_for = "post_break_rows"
    inputs = {
        "policy": policy.hashed(),
        "challenger": challenger.to_dict(),
        "champion": champion.to_dict() if champion else None,
        "comparison": comparison.to_dict() if comparison else None,
        "parity": dict(parity),
        "shadow_clean_days": shadow_clean_days,
        "mode_override": mode_override,
        "context": dict(context or {}),
        "realized": realized.to_dict() if realized else None,
        "breach_floor": breach_floor,
        "evaluated_on": evaluated_on,
        "basis": basis,
        "answers_break": answers_break,
    }
    if fairness is not None:
        inputs["fairness"] = fairness.to_dict()
    decision = GateDecision(
        decision_id=hashlib.sha256(json.dumps(jsonable(inputs), sort_keys=True).encode()).hexdigest()[:16],
        promote=would_promote and mode == "enabled",
        would_promote=would_promote,
        mode=mode,
        first_model=champion is None,
        approval_required=policy.approval_required,
        checks=checks,
        summary=_summary(gate, checks, waiting_for, evaluated_on, breach),
        figures=_figures(gate, realized),
        context=dict(context or {}),
        pending=waiting_for is not None,
        breach=breach,
        evaluated_on=evaluated_on,
        waiting_for=waiting_for,
        breach_waived=waived,
    )
    log.info("gate decision %s: %s", decision.decision_id, decision.summary)
    return decision


def _figures(gate: GateInputs, realized: ChampionPerformance | None) -> dict[str, float | int | str | None]:
    challenger, champion, comparison = gate.challenger, gate.champion, gate.comparison
    return {
        "challenger_roc_auc": challenger.roc_auc,
        "challenger_roc_auc_lower": challenger.roc_auc_lower,
        "challenger_roc_auc_upper": challenger.roc_auc_upper,
        "champion_roc_auc": champion.roc_auc if champion else None,
        "gain": comparison.gain if comparison else None,
        "gain_lower": comparison.gain_lower if comparison else None,
        "gain_upper": comparison.gain_upper if comparison else None,
        "worst_slice": comparison.worst_slice if comparison else None,
        "worst_slice_drop": comparison.worst_slice_drop if comparison else None,
        "mean_abs_diff": _number(gate.parity, "mean_abs_diff"),
        "label_agreement": _number(gate.parity, "label_agreement"),
        "onnx_ms_per_1k_rows": _number(gate.parity, "onnx_ms_per_1k_rows"),
        "shadow_clean_days": gate.shadow_clean_days,
        "holdout_rows": challenger.n,
        "champion_realized_roc_auc": realized.roc_auc if realized else None,
        "champion_realized_label_day": realized.label_day if realized else None,
    }


def _summary(
    gate: GateInputs, checks: list[Check], waiting_for: Waiting | None, evaluated_on: str | None, breach: str | None
) -> str:
    would_promote = all(c.passed for c in checks)
    waits = {
        "shadow_days": f"waiting for {gate.policy.shadow_days} clean shadow days, re-gated when they exist",
        "post_break_rows": (
            f"waiting for gate.min_post_break_rows {gate.policy.min_post_break_rows:,} labelled rows after the break: "
            "the champion is in breach and the challenger could only be judged on days before it"
        ),
    }
    if gate.mode == "disabled":
        verdict = "DISABLED (gate off, nothing promoted)"
    elif gate.mode == "dry_run":
        would = "promote" if would_promote else "wait for shadow days" if waiting_for == "shadow_days" else "reject"
        would = "wait for post-break labels" if waiting_for == "post_break_rows" else would
        verdict = f"DRY RUN (would {would})"
    elif waiting_for:
        verdict = f"PENDING ({waits[waiting_for]})"
    else:
        verdict = "PROMOTE" if would_promote else "REJECT"
    challenger, champion, comparison = gate.challenger, gate.champion, gate.comparison
    if champion is None or comparison is None:
        figures = f"first model (no champion): ROC AUC {_fmt(challenger.roc_auc)}"
    else:
        figures = (
            f"ROC AUC {_fmt(challenger.roc_auc)} vs champion {_fmt(champion.roc_auc)}, gain "
            f"{_fmt(comparison.gain, True)} [{_fmt(comparison.gain_lower, True)}, {_fmt(comparison.gain_upper, True)}]"
        )
    failed = [c for c in checks if not c.passed and c.name != "gate_mode"]
    judged = [c for c in checks if c.name != "gate_mode"]
    tail = f"{len(judged) - len(failed)}/{len(judged)} checks passed"
    if failed:
        tail += "; failed: " + "; ".join(f"{c.name} ({c.detail})" for c in failed)
    if breach and gate.breach:
        why_breach = f"{breach}: comparisons with it are waived, the best candidate above the floor wins"
    elif breach:
        why_breach = f"{breach}, but the challenger was judged on days before the break: the comparisons stand"
    else:
        why_breach = None
    why = [text for text in (evaluated_on, why_breach) if text]
    return f"{verdict}: {figures}; {tail}" + "".join(f"; {text}" for text in why)
