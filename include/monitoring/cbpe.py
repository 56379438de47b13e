"""Label-free performance estimation: the expected ROC AUC of a day from its scores alone.

Confidence-based performance estimation (CBPE), as NannyML describes it: if the model's scores,
once calibrated, are the probabilities that each row is positive, then the confusion matrix at
every threshold has an *expected* value (a row scored ``p`` is a true positive with probability
``p``, a false positive with ``1 - p``), and so has the ROC curve and its area. Summed over all
thresholds, that area is the ROC AUC with the calibrated probabilities as soft labels:
``sum over pairs p_i * (1 - p_j) * [s_i > s_j] / (sum p * sum (1 - p))``, ties counting half
(:func:`include.monitoring.drift.expected_auc`, the same code as the realized AUC).

* **At training time** :func:`fit_calibrator` fits an isotonic regression of the holdout labels on
  the holdout scores (out-of-sample, as for the reference profile) and keeps it as two JSON lists,
  the step function's ``x`` and ``y`` (read back with ``numpy.interp``: no scikit-learn at
  monitor time). It also stores the estimate on the holdout itself (``reference_auc``: the
  estimated drop compares like with like: given the holdout rows' days, the mean of the days'
  estimates, as a monitored day is one day; :func:`include.monitoring.drift.daily_auc`) and the
  holdout's realized AUC.
* **At monitor time** :func:`estimate_performance` calibrates the day's scores and returns the
  expected AUC with an interval: the realized AUC the day would show if its labels were drawn
  from the calibrated probabilities (``n_boot`` seeded draws, percentile interval). The scores
  are known exactly; what is uncertain is the labels, so the draws are over labels, not rows
  (a bootstrap over rows of the soft-label AUC is 10x too narrow: on flights it missed the
  realized AUC of a same-month day by many widths).

**When the estimate is not valid.** CBPE assumes that the calibration learnt on the holdout
still holds, i.e. that P(label | score) did not change. It sees *covariate shift* (the mix of
rows changes, the relation does not): the estimate follows the realized AUC. It cannot see
*concept drift* (the relation between features and label changes): under a label inversion the
scores, hence the estimate, do not move while the realized AUC falls to ``1 - AUC``
(``tests/include/test_cbpe.py`` measures both). Only labels catch a concept break: the realized
performance trigger of :mod:`include.monitoring.decision`. ``valid`` is also false with fewer
than ``min_rows`` rows, without both expected classes, or without a calibrator (models trained
before it existed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

CALIBRATOR_KIND = "isotonic"
MIN_CALIBRATION_ROWS = 50
CONCEPT_NOTE = "assumes the holdout's calibration still holds: blind to concept drift (a label flip)"


def fit_calibrator(scores: Any, labels: Any, days: Any = None, min_rows: int = 1) -> dict[str, Any] | None:
    """Isotonic calibration of ``scores`` to ``labels`` (held out), JSON-able; ``None`` when the
    rows cannot calibrate (fewer than :data:`MIN_CALIBRATION_ROWS` or one class). With ``days``
    (each row's day), the reference estimate is the mean of the days' with ``min_rows`` rows."""
    from sklearn.isotonic import IsotonicRegression

    from include.monitoring.drift import _clean_scores_labels, daily_auc, expected_auc

    if days is not None:  # the days of the rows _clean_scores_labels keeps
        raw = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(labels, dtype=np.float64).ravel()
        days = np.asarray(days).ravel()[~(np.isnan(raw[0]) | np.isnan(raw[1]))]
    s, y = _clean_scores_labels(scores, labels)
    if s.shape[0] < MIN_CALIBRATION_ROWS or np.unique(y).size < 2:
        return None
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    calibrator: dict[str, Any] = {
        "kind": CALIBRATOR_KIND,
        "x": [float(v) for v in iso.X_thresholds_],
        "y": [float(v) for v in iso.y_thresholds_],
        "rows": int(s.shape[0]),
    }
    calibrated = calibrate(calibrator, s)
    daily = None if days is None else daily_auc(s, calibrated, days, min_rows)
    calibrator["reference_auc"] = expected_auc(s, calibrated) if daily is None else daily.mean
    calibrator["reference_days"] = None if daily is None else daily.days
    calibrator["realized_auc"] = expected_auc(s, y)
    return calibrator


def calibrate(calibrator: Mapping[str, Any], scores: Any) -> np.ndarray:
    """Calibrated probabilities of ``scores`` (clipped to the calibrator's range at both ends)."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    result: np.ndarray = np.interp(values, np.asarray(calibrator["x"]), np.asarray(calibrator["y"]))
    return result


def estimate_performance(
    calibrator: Mapping[str, Any] | None,
    scores: Any,
    *,
    min_rows: int = 1,
    n_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Expected ROC AUC of the day's ``scores`` with a bootstrap interval over rows:
    ``{"auc", "low", "high", "rows", "reference_auc", "valid", "note"}`` (NaN-free: ``None``)."""
    from include.monitoring.drift import expected_auc

    values = np.asarray(scores, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    rows = int(values.shape[0])
    result: dict[str, Any] = {
        "auc": None,
        "low": None,
        "high": None,
        "rows": rows,
        "reference_auc": None if calibrator is None else _plain(calibrator.get("reference_auc")),
        "valid": False,
        "note": "",
    }
    if calibrator is None:
        result["note"] = "the model's reference profile has no calibrator (trained before CBPE)"
        return result
    if rows < min_rows:
        result["note"] = f"{rows} scored rows, at least {min_rows} needed"
        return result
    probabilities = calibrate(calibrator, values)
    expected_positives = float(probabilities.sum())
    if expected_positives < 1.0 or rows - expected_positives < 1.0:
        result["note"] = f"calibrated scores expect {expected_positives:.1f} positives of {rows}: one class"
        return result
    low, high = _label_draw_interval(values, probabilities, n_boot, seed, confidence)
    result.update(
        auc=_plain(expected_auc(values, probabilities)),
        low=_plain(low),
        high=_plain(high),
        valid=True,
        note=CONCEPT_NOTE,
    )
    return result


def _label_draw_interval(
    scores: np.ndarray, probabilities: np.ndarray, n_boot: int, seed: int, confidence: float
) -> tuple[float, float]:
    """Percentile interval of the realized AUC over ``n_boot`` label draws ``y ~ Bernoulli(p)``."""
    from include.monitoring.drift import bootstrap_auc_interval

    return bootstrap_auc_interval(scores, probabilities, _draw_labels, n_boot, seed, confidence)


def _draw_labels(rng: np.random.Generator, b: int, p_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``b`` label draws ``y ~ Bernoulli(p)`` over all rows (unit weights)."""
    n = int(p_sorted.shape[0])
    return np.ones((b, n)), (rng.random((b, n)) < p_sorted).astype(np.float64)


def _plain(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


__all__ = ["CONCEPT_NOTE", "calibrate", "estimate_performance", "fit_calibrator"]
