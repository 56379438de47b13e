"""Training that follows a break: the days a retrain answering a performance break learns from,
and how much each of their rows weighs.

A retrain triggered by a realized performance drop or breach (``trigger`` in
:data:`BREAK_TRIGGERS`, with the ``break_day`` its drift event carries) must learn the concept
that holds since the break, not four weeks of the one that stopped holding:

- **since the break**: when the validated days from ``break_day`` whose labels have arrived by
  ``end`` hold at least ``training.min_rows_after_break`` labelled rows, the window is those days
  only (from ``break_day`` to ``end``, never longer than the usual window), with a holdout of
  ``min(holdout_days, labelled days // 2)`` days (at least 1) so that post-break days are left
  to train on;
- **recency weighted** otherwise: the usual window, each training row weighted
  ``0.5 ** (age / recency_half_life_days)`` where ``age`` is the number of days between the
  row's day and the last training day, then rescaled to a mean of 1 (the estimators'
  regularisation then sees the same total weight as unweighted rows). The search still ranks
  candidates unweighted, on the latest rows of the training split; the final fit is weighted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Literal

from include.lake import Lake, Zone
from include.names import BREAK_TRIGGERS, Tag

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from include.spec import ModelSpec, TrainingSpec

Rule = Literal["since_break", "recency_weighted"]


@dataclass(frozen=True)
class BreakPlan:
    """What a retrain after ``break_day`` trains on; ``reason`` says it in words."""

    break_day: date
    trigger: str
    rule: Rule
    window_days: int
    holdout_days: int | None  # None: the spec's
    half_life_days: float | None  # set for ``recency_weighted`` only
    rows_since_break: int
    days_since_break: int
    reason: str

    def tags(self) -> dict[str, str]:
        """Recorded on the training run and the model version (the gate reads ``break_day``)."""
        return {
            Tag.BREAK_DAY: self.break_day.isoformat(),
            Tag.TRIGGER: self.trigger,
            Tag.TRAINING_RULE: self.rule,
            Tag.TRAINING_RULE_REASON: self.reason,
        }


def plan_after_break(
    training: TrainingSpec,
    end: date,
    break_day: date,
    trigger: str,
    rows_by_day: Mapping[date, int],
    window_days: int | None = None,
) -> BreakPlan:
    """Choose the window (and weighting) of a retrain as of ``end`` answering a break on ``break_day``.

    ``rows_by_day`` holds the labelled rows of each day since the break whose labels have
    arrived by ``end`` (:func:`labelled_rows_since`); ``window_days`` is the usual window (the
    spec's when ``None``). Raises ``ValueError`` naming the rule an input breaks.
    """
    if trigger not in BREAK_TRIGGERS:
        raise ValueError(f"trigger {trigger!r}: a retrain after a break needs one of {list(BREAK_TRIGGERS)}")
    if break_day > end:
        raise ValueError(f"break_day {break_day} is after the training end {end}: the break cannot be trained on")
    usual = window_days or training.window_days
    days = sorted(d for d in rows_by_day if break_day <= d <= end)
    rows = sum(rows_by_day[d] for d in days)
    since = f"{len(days)} labelled days since the break on {break_day} hold {rows:,} rows"
    if rows >= training.min_rows_after_break and len(days) >= 2:
        return BreakPlan(
            break_day=break_day,
            trigger=trigger,
            rule="since_break",
            window_days=max(2, min((end - break_day).days + 1, usual)),
            holdout_days=max(1, min(training.holdout_days, len(days) // 2)),
            half_life_days=None,
            rows_since_break=rows,
            days_since_break=len(days),
            reason=f"{since} >= training.min_rows_after_break {training.min_rows_after_break:,}: "
            "trained on the days since the break only",
        )
    return BreakPlan(
        break_day=break_day,
        trigger=trigger,
        rule="recency_weighted",
        window_days=usual,
        holdout_days=None,
        half_life_days=training.recency_half_life_days,
        rows_since_break=rows,
        days_since_break=len(days),
        reason=f"{since} < training.min_rows_after_break {training.min_rows_after_break:,} (or fewer than 2 days): "
        f"trained on the usual {usual}-day window, a row's weight halving every "
        f"{training.recency_half_life_days:g} days before the last training day",
    )


def labelled_rows_since(spec: ModelSpec, lake: Lake, break_day: date, end: date) -> dict[date, int]:
    """Label rows per validated day from ``break_day`` whose labels have arrived by ``end``
    (``day + label_delay_days <= end``); counted from Parquet metadata, no data read."""
    last_arrived = end - timedelta(days=spec.dataset.label_delay_days)
    if last_arrived < break_day:
        return {}
    validated = set(lake.list_partitions(Zone.VALIDATED, spec.name, break_day, last_arrived))
    return {
        day: lake.parquet_file(lake.partition_file(Zone.LABELS, spec.name, day)).metadata.num_rows
        for day in lake.list_partitions(Zone.LABELS, spec.name, break_day, last_arrived)
        if day in validated
    }


def recency_weights(times: pd.Series, last_day: date, half_life_days: float) -> np.ndarray:
    """``0.5 ** (age / half_life_days)`` per row, ``age`` = days from the row's day to
    ``last_day`` (rows after it count as age 0), rescaled to a mean of 1."""
    import numpy as np
    import pandas as pd

    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
    if len(times) == 0:
        return np.ones(0)
    age = (pd.Timestamp(last_day) - pd.to_datetime(times).dt.normalize()).dt.days.to_numpy(dtype=np.float64)
    weights = np.power(0.5, np.maximum(age, 0.0) / half_life_days)
    return np.asarray(weights / weights.mean(), dtype=np.float64)
