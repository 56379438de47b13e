"""Fairness figures of the gate: Fairlearn's per-group metrics and disparities, with bootstrap intervals.

For each sensitive column of ``gate.fairness`` and each model, :func:`measure_fairness` builds a
Fairlearn :class:`~fairlearn.metrics.MetricFrame` of four metrics per group at the spec's threshold:

- ``selection_rate``: share of rows predicted positive (Fairlearn's ``selection_rate``);
- ``tpr`` and ``fpr``: Fairlearn's ``selection_rate`` weighted by the label (the positives' share
  predicted positive) and by its complement (the negatives'): the true and false positive rates;
- ``calibration_gap``: mean predicted probability minus observed positive rate (calibration in
  the large: > 0 over-predicts the group).

The disparities are the MetricFrame's ``difference()`` (largest minus smallest group value) and
``ratio()``: ``demographic_parity_difference`` and ``_ratio`` of the selection rate,
``max_tpr_gap``, ``max_fpr_gap``, ``max_calibration_gap``, and ``equalized_odds_difference``, the
larger of the TPR and FPR gaps (Fairlearn's ``worst_case``). They equal
``fairlearn.metrics.demographic_parity_difference`` and friends on the same rows (the tests check it).

Bootstrap: the replicates of :func:`include.registry.resample.bootstrap_weights` (the AUC's, same seed)
weight the rows; every metric above is a weighted mean within a group, so the rows are first
summed into cells (group, label, predicted label) with their weights and the score-weighted
sum, and one MetricFrame over every replicate's cells (the replicate is Fairlearn's *control
feature*) gives each replicate's disparities exactly, in about a second for 200 replicates
instead of a minute row by row. The champion is measured on the same replicates, so the
interval of the challenger's disparity minus the champion's is paired.

Groups with fewer than ``min_group_rows`` rows are in the per-group table, marked not judged,
and left out of the disparities (a group of 12 rows would swing them by noise alone).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from include.registry.resample import GateInputError, bootstrap_weights, percentile_interval, validated_scores
from include.reports.format import jsonable

if TYPE_CHECKING:
    from include.spec import FairnessSpec

# The disparities, the per-group metric each is a spread of, and whether a higher value is fairer.
DISPARITIES: dict[str, str] = {
    "demographic_parity_difference": "selection_rate",
    "demographic_parity_ratio": "selection_rate",
    "equalized_odds_difference": "tpr|fpr",
    "max_tpr_gap": "tpr",
    "max_fpr_gap": "fpr",
    "max_calibration_gap": "calibration_gap",
}
HIGHER_IS_FAIRER = frozenset({"demographic_parity_ratio"})
# Compared with the champion when the spec sets no limit.
DEFAULT_COMPARED = ("demographic_parity_difference", "equalized_odds_difference")
GROUP_METRICS = ("selection_rate", "tpr", "fpr", "calibration_gap")
_CELLS = 4  # per group: (label 0/1) x (predicted 0/1)


@dataclass(frozen=True)
class GroupFigures:
    """One group of one sensitive column for one model. ``judged``: it has ``min_group_rows``."""

    column: str
    group: str
    rows: int
    positives: int
    selection_rate: float
    tpr: float
    fpr: float
    calibration_gap: float
    judged: bool


@dataclass(frozen=True)
class Disparity:
    """One disparity on one column: the point value, its bootstrap interval, and the groups at
    its two ends (``metric`` of ``low_group`` and ``high_group``: what the reason names)."""

    column: str
    name: str
    value: float
    lower: float
    upper: float
    metric: str
    low_group: str | None
    low_value: float
    high_group: str | None
    high_value: float

    @property
    def judged(self) -> float:
        """What a limit is compared with: the bound that favours the model (the lower bound of a
        difference, the upper bound of a ratio), so a disparity fails only when it is there with
        95% confidence, not by noise."""
        return self.upper if self.name in HIGHER_IS_FAIRER else self.lower

    def breaks(self, limit: float) -> bool:
        """The :attr:`judged` bound is past ``limit``: over it for a difference, under it for a
        ratio (a disparity without an interval breaks nothing)."""
        bound = self.judged
        if not math.isfinite(bound):
            return False
        return bound < limit if self.name in HIGHER_IS_FAIRER else bound > limit


@dataclass(frozen=True)
class FairnessShift:
    """Challenger minus champion of one disparity on the same bootstrap replicates."""

    column: str
    name: str
    challenger: float
    champion: float
    delta: float
    lower: float
    upper: float

    @property
    def less_fair(self) -> bool:
        """The whole interval lies on the less fair side of zero."""
        if self.name in HIGHER_IS_FAIRER:
            return math.isfinite(self.upper) and self.upper < 0.0
        return math.isfinite(self.lower) and self.lower > 0.0


@dataclass(frozen=True)
class FairnessEvaluation:
    """One model's fairness figures on the gate's evaluation rows."""

    groups: tuple[GroupFigures, ...]
    disparities: tuple[Disparity, ...]

    def disparity(self, column: str, name: str) -> Disparity | None:
        return next((d for d in self.disparities if d.column == column and d.name == name), None)

    def too_small(self) -> list[GroupFigures]:
        return [g for g in self.groups if not g.judged]


@dataclass(frozen=True)
class FairnessReport:
    """What the gate's fairness checks read and the gate report shows."""

    columns: tuple[str, ...]
    limits: dict[str, float]
    min_group_rows: int
    allow_less_fair: bool
    bootstrap_samples: int
    threshold: float
    challenger: FairnessEvaluation
    champion: FairnessEvaluation | None = None
    shifts: tuple[FairnessShift, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (NaN as ``None``); :meth:`from_dict` reverses it."""
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FairnessReport:
        def evaluation(raw: Mapping[str, Any] | None) -> FairnessEvaluation | None:
            if raw is None:
                return None
            groups = tuple(GroupFigures(**_with_nan(g, GROUP_METRICS)) for g in raw["groups"])
            numbers = ("value", "lower", "upper", "low_value", "high_value")
            disparities = tuple(Disparity(**_with_nan(d, numbers)) for d in raw["disparities"])
            return FairnessEvaluation(groups, disparities)

        challenger = evaluation(data["challenger"])
        assert challenger is not None
        shift_numbers = ("challenger", "champion", "delta", "lower", "upper")
        return cls(
            columns=tuple(data["columns"]),
            limits=dict(data["limits"]),
            min_group_rows=int(data["min_group_rows"]),
            allow_less_fair=bool(data["allow_less_fair"]),
            bootstrap_samples=int(data["bootstrap_samples"]),
            threshold=float(data["threshold"]),
            challenger=challenger,
            champion=evaluation(data.get("champion")),
            shifts=tuple(FairnessShift(**_with_nan(s, shift_numbers)) for s in data.get("shifts") or ()),
        )

    @property
    def compared(self) -> tuple[str, ...]:
        """The disparities compared with the champion: those the spec limits, else the default pair."""
        return tuple(self.limits) or DEFAULT_COMPARED


def _with_nan(raw: Mapping[str, Any], numbers: tuple[str, ...]) -> dict[str, Any]:
    """``raw`` with the ``None`` of each of ``numbers`` back to NaN (JSON has no NaN)."""
    out: dict[str, Any] = dict(raw)
    for key in numbers:
        out[key] = math.nan if out.get(key) is None else float(out[key])
    return out


# --------------------------------------------------------------------------- measuring
def _metric_functions(threshold: float) -> dict[str, Any]:
    """The MetricFrame's metrics over cells whose ``y_pred`` is the cell's mean score (a cell's
    rows share their predicted label, so thresholding the mean gives it back exactly)."""
    from fairlearn.metrics import selection_rate

    def predicted(y_pred: Any) -> np.ndarray:
        return np.asarray(y_pred) >= threshold

    def rate(y_true: Any, y_pred: Any, sample_weight: Any) -> float:
        return float(selection_rate(y_true, predicted(y_pred), sample_weight=sample_weight))

    def tpr(y_true: Any, y_pred: Any, sample_weight: Any) -> float:
        weights = np.asarray(sample_weight) * np.asarray(y_true)
        return float(selection_rate(y_true, predicted(y_pred), sample_weight=weights)) if weights.sum() else math.nan

    def fpr(y_true: Any, y_pred: Any, sample_weight: Any) -> float:
        weights = np.asarray(sample_weight) * (1 - np.asarray(y_true))
        return float(selection_rate(y_true, predicted(y_pred), sample_weight=weights)) if weights.sum() else math.nan

    def calibration_gap(y_true: Any, y_pred: Any, sample_weight: Any) -> float:
        return float(np.average(np.asarray(y_pred) - np.asarray(y_true), weights=sample_weight))

    return {"selection_rate": rate, "tpr": tpr, "fpr": fpr, "calibration_gap": calibration_gap}


def _cell_frame(
    scores: np.ndarray,
    labels: np.ndarray,
    group_index: np.ndarray,
    n_groups: int,
    threshold: float,
    weights: list[np.ndarray],
) -> Any:
    """A MetricFrame over the cells (group, label, predicted label) of every weighting in
    ``weights`` (one control level each): its per-replicate figures equal those of the rows."""
    from fairlearn.metrics import MetricFrame

    cell = group_index * _CELLS + labels * 2 + (scores >= threshold)
    size = n_groups * _CELLS
    totals = np.stack([np.bincount(cell, weights=w, minlength=size) for w in weights])
    score_sums = np.stack([np.bincount(cell, weights=w * scores, minlength=size) for w in weights])
    present = totals > 0
    mean_scores = np.divide(score_sums, totals, out=np.zeros_like(totals), where=present)
    cells = np.tile(np.arange(size), len(weights))
    replicate = np.repeat(np.arange(len(weights)), size)
    keep = present.ravel()
    metrics = _metric_functions(threshold)
    weight = totals.ravel()[keep]
    return MetricFrame(
        metrics=metrics,
        y_true=((cells // 2) % 2)[keep],
        y_pred=mean_scores.ravel()[keep],
        sensitive_features=(cells // _CELLS)[keep],
        control_features=replicate[keep],
        sample_params={name: {"sample_weight": weight} for name in metrics},
    )


def _disparity_table(frame: Any, n_levels: int) -> dict[str, np.ndarray]:
    """Each disparity per control level (replicate) of a cell MetricFrame."""
    difference = frame.difference().reindex(range(n_levels))
    ratio = frame.ratio().reindex(range(n_levels))
    tpr, fpr = difference["tpr"].to_numpy(float), difference["fpr"].to_numpy(float)
    return {
        "demographic_parity_difference": difference["selection_rate"].to_numpy(float),
        "demographic_parity_ratio": ratio["selection_rate"].to_numpy(float),
        "equalized_odds_difference": np.fmax(tpr, fpr),
        "max_tpr_gap": tpr,
        "max_fpr_gap": fpr,
        "max_calibration_gap": difference["calibration_gap"].to_numpy(float),
    }


@dataclass(frozen=True)
class _Column:
    name: str
    codes: np.ndarray  # group names, by index
    index: np.ndarray  # group index of each row
    rows: np.ndarray  # rows per group
    judged_rows: np.ndarray  # mask of rows in judged groups
    judged: np.ndarray  # mask of judged groups


def _column(name: str, values: np.ndarray, n: int, min_group_rows: int) -> _Column:
    text = np.asarray(values).astype(str)
    if len(text) != n:
        raise GateInputError(f"sensitive column {name!r} has {len(text)} values for {n} rows")
    codes, index = np.unique(text, return_inverse=True)
    rows = np.bincount(index, minlength=len(codes))
    judged = rows >= min_group_rows
    return _Column(name, codes, index, rows, judged[index], judged)


def _evaluate_model(
    scores: np.ndarray,
    labels: np.ndarray,
    columns: list[_Column],
    threshold: float,
    weights: list[np.ndarray],
) -> tuple[FairnessEvaluation, dict[tuple[str, str], np.ndarray]]:
    """The figures of one model, and every disparity per weighting (index 0: the rows as they are)."""
    groups: list[GroupFigures] = []
    disparities: list[Disparity] = []
    replicates: dict[tuple[str, str], np.ndarray] = {}
    ones = [np.ones(len(labels))]
    for col in columns:
        table = _cell_frame(scores, labels, col.index, len(col.codes), threshold, ones).by_group
        for gi, code in enumerate(col.codes):
            row = table.loc[(0, gi)] if (0, gi) in table.index else None
            groups.append(
                GroupFigures(
                    column=col.name,
                    group=str(code),
                    rows=int(col.rows[gi]),
                    positives=int(labels[col.index == gi].sum()),
                    **{m: math.nan if row is None else float(row[m]) for m in GROUP_METRICS},
                    judged=bool(col.judged[gi]),
                )
            )
        judged_groups = np.flatnonzero(col.judged)
        if len(judged_groups) < 2:
            continue
        mask = col.judged_rows
        remap = np.full(len(col.codes), -1)
        remap[judged_groups] = np.arange(len(judged_groups))
        frame = _cell_frame(
            scores[mask],
            labels[mask],
            remap[col.index[mask]],
            len(judged_groups),
            threshold,
            [w[mask] for w in weights],
        )
        table = _disparity_table(frame, len(weights))
        point_groups = frame.by_group.loc[0]
        for name, values in table.items():
            replicates[(col.name, name)] = values
            low, high = percentile_interval(values[1:]) if len(values) > 1 else (math.nan, math.nan)
            metric = DISPARITIES[name]
            if metric == "tpr|fpr":
                metric = "tpr" if table["max_tpr_gap"][0] >= table["max_fpr_gap"][0] else "fpr"
            spread = point_groups[metric].dropna()
            low_at = int(spread.idxmin()) if len(spread) else None
            high_at = int(spread.idxmax()) if len(spread) else None
            disparities.append(
                Disparity(
                    column=col.name,
                    name=name,
                    value=float(values[0]),
                    lower=low,
                    upper=high,
                    metric=metric,
                    low_group=None if low_at is None else str(col.codes[judged_groups[low_at]]),
                    low_value=math.nan if low_at is None else float(spread[low_at]),
                    high_group=None if high_at is None else str(col.codes[judged_groups[high_at]]),
                    high_value=math.nan if high_at is None else float(spread[high_at]),
                )
            )
    return FairnessEvaluation(tuple(groups), tuple(disparities)), replicates


def measure_fairness(
    policy: FairnessSpec,
    sensitive: Mapping[str, np.ndarray],
    labels: np.ndarray,
    challenger_scores: np.ndarray,
    champion_scores: np.ndarray | None,
    threshold: float,
    n_boot: int,
    seed: int,
) -> FairnessReport:
    """Fairness figures of the challenger (and the champion, paired) on the evaluation rows.

    ``sensitive`` maps each of ``policy.sensitive`` to its values per row; the bootstrap is the
    gate's (:func:`include.registry.resample.bootstrap_weights` with ``n_boot`` and ``seed``)."""
    challenger_scores, labels = validated_scores(challenger_scores, labels)
    if champion_scores is not None:
        champion_scores, _ = validated_scores(champion_scores, labels)
    n = len(labels)
    missing = [c for c in policy.sensitive if c not in sensitive]
    if missing:
        raise GateInputError(f"no values for the sensitive columns {missing}")
    columns = [_column(c, sensitive[c], n, policy.min_group_rows) for c in policy.sensitive]
    weights = [np.ones(n), *bootstrap_weights(n, n_boot, seed)]
    challenger, ours = _evaluate_model(challenger_scores, labels, columns, threshold, weights)
    champion: FairnessEvaluation | None = None
    shifts: list[FairnessShift] = []
    report = FairnessReport(
        columns=tuple(policy.sensitive),
        limits=policy.limits(),
        min_group_rows=policy.min_group_rows,
        allow_less_fair=policy.allow_less_fair,
        bootstrap_samples=int(n_boot),
        threshold=float(threshold),
        challenger=challenger,
    )
    if champion_scores is not None:
        champion, theirs = _evaluate_model(champion_scores, labels, columns, threshold, weights)
        for column in policy.sensitive:
            for name in report.compared:
                if (column, name) not in ours or (column, name) not in theirs:
                    continue
                delta = ours[(column, name)] - theirs[(column, name)]
                low, high = percentile_interval(delta[1:]) if n_boot > 0 else (delta[0], delta[0])
                shifts.append(
                    FairnessShift(
                        column=column,
                        name=name,
                        challenger=float(ours[(column, name)][0]),
                        champion=float(theirs[(column, name)][0]),
                        delta=float(delta[0]),
                        lower=low,
                        upper=high,
                    )
                )
    return replace(report, champion=champion, shifts=tuple(shifts))
