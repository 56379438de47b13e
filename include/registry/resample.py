"""The gate's resampling, shared by its AUC figures (:mod:`include.registry.gate`) and its
fairness figures (:mod:`include.registry.fairness`): checked inputs, the bootstrap's row-count
replicates and their percentile interval."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

CONFIDENCE = 0.95


class GateInputError(ValueError):
    """The gate was given inputs it cannot judge (one-class holdout, mismatched arrays, bad mode)."""


def bootstrap_weights(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Yield ``n_boot`` row-count vectors (resampling n rows with replacement)."""
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def validated_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if len(s) != len(y):
        raise GateInputError(f"{len(s)} scores for {len(y)} labels")
    if len(s) == 0:
        raise GateInputError("no rows to evaluate")
    if not np.all(np.isfinite(s)):
        raise GateInputError(f"{int(np.sum(~np.isfinite(s)))} scores are NaN or infinite")
    if not np.all((y == 0) | (y == 1)):
        raise GateInputError("labels must be 0/1 (or booleans)")
    return s, y.astype(np.int64)
