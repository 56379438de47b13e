"""The reference profile a trained model ships with: what its data and scores looked like.

The drift monitor (``include.monitoring.drift``) compares each scored day against this
profile, so both sides must bin values the same way (:func:`bin_fractions` is the rule, and
``bin_rule`` in the profile states it). Conventions:

* numeric features: ``spec.drift.bins`` equal-frequency bins from the reference quantiles,
  duplicates removed, with ``-inf`` / ``+inf`` as the outer edges. Bin ``i`` holds
  ``edges[i] <= x < edges[i+1]`` (``+inf`` falls in the last bin). Fractions are over the
  non-null values; the null rate is kept apart (a null-rate jump is drift of its own).
* categorical features: frequencies of the 50 most frequent categories (ties broken by
  name) and ``__other__`` for the rest, over the non-null values; null rate apart; the
  names pooled into ``__other__`` as ``other_categories`` (unless there are over 1,000).
* scores: the same decile binning of the positive-class probability, plus a sorted
  2,000-value sample (evenly spaced order statistics: deterministic, no RNG) for a KS test.

Rows: the features (and label rate) are profiled from the whole training window, a uniform
sample of at most :data:`REFERENCE_MAX_ROWS` rows drawn with the training seed
(:func:`sample_rows`); the scores are the model's out-of-sample scores on the holdout (in-sample
scores are overconfident). A reference of the holdout days alone described whatever those few
days held: when they fell in an anomaly (one segment only), every normal day after read as 100%
unseen categories. Days flagged anomalous are not in the window at all (``include.quality.anomaly``).

Everything is plain Python floats/ints/str/lists (numpy types cast), NaN statistics become
``None``. The infinite outer edges are floats: Python's ``json`` writes them as
``-Infinity``/``Infinity`` and reads them back exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from include.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PROFILE_VERSION = 1
TOP_CATEGORIES = 50
MAX_OTHER_NAMES = 1000
OTHER_CATEGORY = "__other__"
SCORE_SAMPLE_SIZE = 2000
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
CALIBRATOR_KEY = "calibrator"


def reference_profile(
    frame: pd.DataFrame,
    spec: ModelSpec,
    scores: Sequence[float] | np.ndarray,
    *,
    window: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Profile of the features (and label, if present) and of the model's ``scores`` on ``frame``.

    Pass the holdout and its out-of-sample scores: in-sample (train) scores are
    overconfident and would make every later day look drifted. ``window`` (a
    :func:`sample_rows` sample of the whole training window) is what the features and the label
    are profiled from; without it, ``frame``.
    """
    import numpy as np

    score_values = np.asarray(scores, dtype="float64").reshape(-1)
    if len(score_values) != len(frame):
        raise ValueError(f"{spec.name}: {len(score_values)} scores for {len(frame)} rows")
    if len(frame) == 0:
        raise ValueError(f"{spec.name}: cannot profile an empty frame")
    bins = spec.drift.bins
    features = spec.dataset.features
    score_rows = len(frame)
    frame = window if window is not None else frame
    if len(frame) == 0:
        raise ValueError(f"{spec.name}: cannot profile an empty window")
    profile: dict[str, Any] = {
        "version": PROFILE_VERSION,
        "model": spec.name,
        "spec_hash": spec.spec_hash(),
        "n_rows": len(frame),
        "score_rows": score_rows,
        "bins": bins,
        "bin_rule": "edges[i] <= x < edges[i+1]",
        "numeric": {col: numeric_profile(frame[col], bins) for col in features.numeric},
        "categorical": {col: categorical_profile(frame[col]) for col in features.categorical},
        "score": score_profile(score_values, bins, spec.training.threshold),
    }
    label = spec.dataset.target.name
    if label in frame.columns:
        labels = frame[label].dropna()
        profile["label"] = {"rows": len(labels), "positive_rate": _float(labels.mean()) if len(labels) else None}
    return profile


def add_calibrator(
    profile: dict[str, Any],
    scores: Sequence[float] | np.ndarray,
    labels: Any,
    days: Any = None,
    min_rows: int = 1,
) -> dict[str, Any]:
    """Store under ``calibrator`` the CBPE calibrator of the model's held-out ``scores`` and their
    ``labels`` (:func:`include.monitoring.cbpe.fit_calibrator`; ``days``: each row's day, so the
    reference estimate is a day's): the monitor estimates each day's AUC from its scores with it
    before the labels arrive. Nothing is stored when the rows cannot calibrate (too few, one
    class). Returns ``profile``."""
    from include.monitoring.cbpe import fit_calibrator

    calibrator = fit_calibrator(scores, labels, days, min_rows)
    if calibrator is not None:
        profile[CALIBRATOR_KEY] = calibrator
    return profile


def decile_edges(values: np.ndarray, bins: int = 10) -> list[float]:
    """Equal-frequency edges of the finite ``values``: ``[-inf, q1, ..., q(bins-1), +inf]``, unique."""
    import numpy as np

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [-math.inf, math.inf]
    inner = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    return [-math.inf, *(float(v) for v in inner), math.inf]


def bin_fractions(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    """Fraction of the non-NaN ``values`` in each bin of ``edges`` (see the module rule)."""
    import numpy as np

    values = np.asarray(values, dtype="float64")
    present = values[~np.isnan(values)]
    n_bins = len(edges) - 1
    if present.size == 0:
        return [0.0] * n_bins
    index = np.searchsorted(np.asarray(edges[1:-1], dtype="float64"), present, side="right")
    counts = np.bincount(index, minlength=n_bins)
    return [float(c) / present.size for c in counts]


def numeric_profile(series: pd.Series, bins: int = 10) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    values = np.asarray(pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
    finite = values[np.isfinite(values)]
    edges = decile_edges(values, bins)
    stats: dict[str, Any] = {
        "null_rate": float(np.isnan(values).mean()) if len(values) else 0.0,
        "non_finite_rate": float(np.isinf(values).mean()) if len(values) else 0.0,
        "edges": edges,
        "fractions": bin_fractions(values, edges),
        "mean": None,
        "std": None,
        "min": None,
        "max": None,
        "quantiles": {},
    }
    if finite.size:
        stats.update(
            mean=_float(finite.mean()),
            std=_float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
            min=_float(finite.min()),
            max=_float(finite.max()),
            quantiles={
                f"p{round(q * 100):02d}": _float(v)
                for q, v in zip(QUANTILES, np.quantile(finite, QUANTILES), strict=True)
            },
        )
    return stats


def categorical_profile(series: pd.Series, top: int = TOP_CATEGORIES) -> dict[str, Any]:
    """Top categories, their frequencies and ``__other__`` (exactly 0.0 when nothing was pooled);
    ``other_categories`` lists the pooled names (when there are at most
    :data:`MAX_OTHER_NAMES`), so a monitor can tell a pooled rare category from a new one."""
    present = series.dropna().astype(str)
    counts = present.value_counts()
    # Sort by count, then name: equal counts must not depend on hash or input order.
    ordered = sorted(((str(name), int(count)) for name, count in counts.items()), key=lambda item: (-item[1], item[0]))
    kept, pooled = ordered[:top], ordered[top:]
    total = len(present)
    frequencies = {name: count / total for name, count in kept} if total else {}
    # From counts, not 1 - sum(fractions): no rounding crumb when nothing is pooled.
    frequencies[OTHER_CATEGORY] = sum(count for _, count in pooled) / total if total else 0.0
    profile: dict[str, Any] = {
        "null_rate": float(series.isna().mean()) if len(series) else 0.0,
        "n_categories": len(ordered),
        "categories": [name for name, _ in kept],
        "frequencies": frequencies,
    }
    if len(pooled) <= MAX_OTHER_NAMES:
        profile["other_categories"] = sorted(name for name, _ in pooled)
    return profile


def score_profile(scores: np.ndarray, bins: int = 10, threshold: float = 0.5) -> dict[str, Any]:
    import numpy as np

    finite = np.sort(scores[np.isfinite(scores)])
    edges = decile_edges(finite, bins)
    if finite.size > SCORE_SAMPLE_SIZE:
        # Evenly spaced order statistics keep the empirical CDF's shape, reproducibly.
        positions = np.linspace(0, finite.size - 1, SCORE_SAMPLE_SIZE).round().astype(int)
        sample = finite[positions]
    else:
        sample = finite
    return {
        "n": int(finite.size),
        "mean": _float(finite.mean()) if finite.size else None,
        "positive_rate": float((finite >= threshold).mean()) if finite.size else None,
        "threshold": float(threshold),
        "edges": edges,
        "fractions": bin_fractions(finite, edges),
        "sample": [float(v) for v in sample],
    }


def _float(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number
