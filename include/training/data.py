"""Assemble a training set from the lake: validated features joined with labels that have arrived.

For a training as of ``end`` the window is ``[end - window_days + 1, end]``. A validated day
``D`` of the window contributes rows only if its labels have *arrived* by ``end``, i.e.
``D + label_delay_days <= end``, and its label partition exists. A label partition that is
already in the lake for a later day (a replay that ran ahead, a backfill, a planted file) is
ignored and counted: training as of ``end`` sees exactly what a run on ``end`` could have
seen. Features and labels are joined per day (inner join on the key columns), so a label
can only ever attach to the features of its own day.

The split is by time: the most recent ``holdout_days`` labelled days are the holdout, the
earlier labelled days train. Both frames are sorted by the time column and then the keys,
so every read of the same partitions yields identical frames (and an identical hash).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from include.lake import Lake, Zone
from include.quality.anomaly import exclude_anomalous
from include.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class InsufficientDataError(ValueError):
    """The window does not hold enough labelled data to train; the message says what is missing."""


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Train and holdout frames (keys, time, features, label) with their provenance.

    ``counts`` holds: ``rows`` (labelled rows used), ``positives``, ``train_rows``,
    ``train_positives``, ``holdout_rows``, ``holdout_positives``, ``dropped_unlabeled``
    (validated rows of used days without a label, e.g. cancelled flights),
    ``days_validated`` (validated days in the window), ``days_used``,
    ``days_awaiting_labels`` / ``rows_awaiting_labels`` (validated days whose labels are not
    due yet), ``days_missing_labels`` (labels due but absent), ``future_label_partitions_ignored``
    (label partitions present in the lake but not yet arrived as of ``end``) and
    ``duplicate_label_keys`` (dropped duplicates in label files).
    """

    model: str
    train: pd.DataFrame = field(repr=False)
    holdout: pd.DataFrame = field(repr=False)
    window: tuple[date, date]
    days_used: tuple[date, ...] = field(repr=False)
    train_days: tuple[date, ...] = field(repr=False)
    holdout_days: tuple[date, ...] = field(repr=False)
    counts: dict[str, int]
    data_hash: str
    source_uri: str

    def window_text(self) -> str:
        return f"{self.window[0].isoformat()}..{self.window[1].isoformat()}"

    def summary(self) -> dict[str, Any]:
        """A small JSON-able description (no data)."""
        return {
            "model": self.model,
            "window": [self.window[0].isoformat(), self.window[1].isoformat()],
            "train_days": [self.train_days[0].isoformat(), self.train_days[-1].isoformat()],
            "holdout_days": [self.holdout_days[0].isoformat(), self.holdout_days[-1].isoformat()],
            "counts": dict(self.counts),
            "data_hash": self.data_hash,
            "source_uri": self.source_uri,
        }


def assemble_training_data(
    spec: ModelSpec,
    lake: Lake,
    end: date,
    window_days: int | None = None,
    holdout_days: int | None = None,
) -> TrainingData:
    """Join validated features of the window with the labels that have arrived by ``end``
    and split them by time; raises :class:`InsufficientDataError` with what is missing.

    Stages: :func:`_plan_days` (which days can be used) -> :func:`_read_labelled` (join each
    day's features and labels) -> :func:`_split_by_time` -> counts and hash."""
    window_days = window_days if window_days is not None else spec.training.window_days
    holdout_days = holdout_days if holdout_days is not None else spec.training.holdout_days
    if window_days < 2 or holdout_days < 1 or holdout_days >= window_days:
        raise ValueError(
            f"{spec.name}: need window_days >= 2 and 1 <= holdout_days < window_days, "
            f"got window_days={window_days}, holdout_days={holdout_days}"
        )
    plan = _plan_days(spec, lake, end, window_days, holdout_days)
    read = _read_labelled(spec, lake, plan)
    split = _split_by_time(spec, plan, read.frames, holdout_days)
    train, holdout, label = split.train, split.holdout, spec.dataset.target.name
    counts = {
        **read.counts,
        "rows": len(train) + len(holdout),
        "positives": int(train[label].sum() + holdout[label].sum()),
        "train_rows": len(train),
        "train_positives": int(train[label].sum()),
        "holdout_rows": len(holdout),
        "holdout_positives": int(holdout[label].sum()),
        "days_validated": len(plan.validated),
        "days_used": len(plan.usable),
        "days_awaiting_labels": len(plan.awaiting),
        "days_missing_labels": len(plan.missing),
        "future_label_partitions_ignored": plan.future_ignored,
    }
    data_hash = frame_hash(train, holdout)
    log.info(
        "%s: %s labelled rows from %s days (%s train / %s holdout, %.1f%% positive), %s dropped unlabeled, "
        "read in %.2f s (%.0f rows/s)",
        plan.where,
        counts["rows"],
        len(plan.usable),
        counts["train_rows"],
        counts["holdout_rows"],
        100.0 * counts["positives"] / max(counts["rows"], 1),
        counts["dropped_unlabeled"],
        read.seconds,
        counts["rows"] / max(read.seconds, 1e-9),
    )
    return TrainingData(
        model=spec.name,
        train=train,
        holdout=holdout,
        window=(plan.start, end),
        days_used=tuple(plan.usable),
        train_days=tuple(split.train_days),
        holdout_days=tuple(split.holdout_days),
        counts=counts,
        data_hash=data_hash,
        source_uri=lake.to_uri(lake.path(Zone.VALIDATED.value, spec.name)),
    )


@dataclass(frozen=True)
class _DayPlan:
    """The window's days by what they can give as of ``end``."""

    start: date
    where: str
    """``<model>: window <start>..<end>``, the prefix of every message."""
    validated: list[date]
    usable: list[date]
    """Validated, labels due and present: these days train or hold out."""
    awaiting: list[date]
    """Validated, labels not due yet as of ``end``."""
    missing: list[date]
    """Validated, labels due but absent."""
    future_ignored: int
    """Label partitions already in the lake for days not yet arrived as of ``end``."""


def _plan_days(spec: ModelSpec, lake: Lake, end: date, window_days: int, holdout_days: int) -> _DayPlan:
    """Sort the window's validated days by label arrival; raises :class:`InsufficientDataError`
    when fewer than ``holdout_days + 1`` days have labels."""
    delay = spec.dataset.label_delay_days
    start = end - timedelta(days=window_days - 1)
    where = f"{spec.name}: window {start}..{end}"
    validated = exclude_anomalous(lake, spec.name, lake.list_partitions(Zone.VALIDATED, spec.name, start, end))
    if not validated:
        raise InsufficientDataError(
            f"{where}: no validated partitions (looked under {lake.to_uri(lake.path(Zone.VALIDATED.value, spec.name))})"
        )
    label_days = set(lake.list_partitions(Zone.LABELS, spec.name, start, end))
    last_arrived = end - timedelta(days=delay)  # labels of later days are not due yet as of ``end``
    future_ignored = sorted(d for d in label_days if d > last_arrived)
    if future_ignored:
        log.info(
            "%s: ignoring %s label partitions not yet arrived as of %s (%s..%s)",
            where,
            len(future_ignored),
            end,
            future_ignored[0],
            future_ignored[-1],
        )

    due = [d for d in validated if d <= last_arrived]
    awaiting = [d for d in validated if d > last_arrived]
    missing = [d for d in due if d not in label_days]
    usable = [d for d in due if d in label_days]
    if missing:
        log.warning("%s: labels are due but missing for %s days: %s", where, len(missing), _days_text(missing))
    if not usable:
        raise InsufficientDataError(
            f"{where}: no labels yet: {len(validated)} validated days, labels arrive {delay} days late "
            f"(last labelled day that can have arrived: {last_arrived}); "
            f"{len(missing)} due label partitions are missing"
        )
    if len(usable) <= holdout_days:
        raise InsufficientDataError(
            f"{where}: only {len(usable)} labelled days ({_days_text(usable)}); need more than "
            f"holdout_days={holdout_days} so that some days are left to train on"
        )
    return _DayPlan(start, where, validated, usable, awaiting, missing, len(future_ignored))


@dataclass(frozen=True, eq=False)
class _Read:
    frames: dict[date, pd.DataFrame]
    """One joined frame per usable day."""
    counts: dict[str, int]
    """``dropped_unlabeled``, ``duplicate_label_keys``, ``rows_awaiting_labels``."""
    seconds: float


def _read_labelled(spec: ModelSpec, lake: Lake, plan: _DayPlan) -> _Read:
    """Each usable day's features inner-joined with its labels (null labels and duplicate label
    keys dropped and counted); the rows of days still awaiting labels are counted, not read."""
    dataset = spec.dataset
    keys = list(dataset.key_columns)
    label = dataset.target.name
    feature_columns = list(dict.fromkeys([*keys, dataset.time_column, *dataset.features.all]))
    started = time.perf_counter()
    frames: dict[date, pd.DataFrame] = {}
    counts = {"dropped_unlabeled": 0, "duplicate_label_keys": 0, "rows_awaiting_labels": 0}
    for day in plan.usable:
        features = lake.read_table(Zone.VALIDATED, spec.name, day, columns=feature_columns).to_pandas()
        labels = lake.read_table(Zone.LABELS, spec.name, day, columns=[*keys, label]).to_pandas()
        labels = labels[labels[label].notna()]  # a null label is no label: the row counts as unlabeled
        duplicated = labels.duplicated(keys, keep="last")
        if duplicated.any():
            counts["duplicate_label_keys"] += int(duplicated.sum())
            labels = labels[~duplicated]
        joined = features.merge(labels, on=keys, how="inner", validate="many_to_one")
        counts["dropped_unlabeled"] += len(features) - len(joined)
        joined[label] = joined[label].astype("int8")
        frames[day] = joined
    for day in plan.awaiting:
        counts["rows_awaiting_labels"] += lake.parquet_file(
            lake.partition_file(Zone.VALIDATED, spec.name, day)
        ).metadata.num_rows
    return _Read(frames=frames, counts=counts, seconds=time.perf_counter() - started)


@dataclass(frozen=True, eq=False)
class _Split:
    train: pd.DataFrame
    holdout: pd.DataFrame
    train_days: list[date]
    holdout_days: list[date]


def _split_by_time(spec: ModelSpec, plan: _DayPlan, frames: dict[date, pd.DataFrame], holdout_days: int) -> _Split:
    """The last ``holdout_days`` usable days hold out, the earlier ones train; each side must
    hold both classes."""
    dataset = spec.dataset
    keys, label = list(dataset.key_columns), dataset.target.name
    holdout_list, train_list = plan.usable[-holdout_days:], plan.usable[:-holdout_days]
    train = _concat([frames[d] for d in train_list], dataset.time_column, keys)
    holdout = _concat([frames[d] for d in holdout_list], dataset.time_column, keys)
    for name, frame, days in (("train", train, train_list), ("holdout", holdout, holdout_list)):
        classes = sorted(int(c) for c in frame[label].unique())
        if len(frame) == 0 or len(classes) < 2:
            raise InsufficientDataError(
                f"{plan.where}: the {name} split ({_days_text(days)}, {len(frame)} rows) has "
                f"{'no rows' if len(frame) == 0 else f'a single class {classes}'}; "
                "a classifier needs both classes (widen the window or check the label rule)"
            )
    return _Split(train=train, holdout=holdout, train_days=train_list, holdout_days=holdout_list)


def frame_hash(*frames: pd.DataFrame) -> str:
    """sha256 over column names, dtypes and pandas' per-row hashes of each frame, in order.

    Content-based (not file-based): the same rows give the same hash whichever lake, path or
    Parquet writer they came from. ~0.1 s per million rows.
    """
    import pandas as pd

    digest = hashlib.sha256()
    for frame in frames:
        header = json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()] + [len(frame)])
        digest.update(header.encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _concat(frames: list[pd.DataFrame], time_column: str, keys: list[str]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values([time_column, *keys], kind="stable").reset_index(drop=True)


def _days_text(days: list[date]) -> str:
    if not days:
        return "none"
    return days[0].isoformat() if len(days) == 1 else f"{days[0]}..{days[-1]} ({len(days)} days)"
