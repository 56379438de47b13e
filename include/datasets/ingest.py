"""Replay ingest: land one day of history as if it had just arrived.

For logical date ``ds`` the run lands that day's feature rows in ``landing/`` and the
labels of the day ``label_delay_days`` earlier in ``labels/`` (labels arrive late in real
life; the rest of the loop must never see them early). Both writes are atomic partition
overwrites, so a rerun of a day produces the same partitions.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date, timedelta

from include.datasets.source import read_day
from include.lake import Lake, Zone
from include.spec import ModelSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    model: str
    ds: str
    rows: int
    landing_uri: str
    label_ds: str | None
    label_rows: int
    unlabeled_rows: int
    labels_uri: str | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class OutOfRangeError(ValueError):
    pass


def landing_columns(spec: ModelSpec) -> list[str]:
    """What lands: keys, time, features and the pass-through sensitive columns of
    ``gate.fairness``; never the target's source column."""
    return spec.landed_columns


def label_table(spec: ModelSpec, label_ds: date):  # type: ignore[no-untyped-def]
    """Keys and the 0/1 label of one day's rows that have a label; plus the unlabeled count."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ds = spec.dataset
    source_col = ds.target.source_column
    raw = read_day(spec, label_ds, columns=[*ds.key_columns, source_col])
    values = raw.column(source_col)
    has_label = pc.is_valid(values)
    if pa.types.is_floating(values.type):
        has_label = pc.and_(has_label, pc.invert(pc.is_nan(values)))
    labeled = raw.filter(has_label)
    label = ds.target.apply(labeled.column(source_col).to_numpy(zero_copy_only=False)).astype("int8")
    table = labeled.drop_columns([source_col]).append_column(ds.target.name, pa.array(label))
    return table, raw.num_rows - labeled.num_rows


def land_day(spec: ModelSpec, lake: Lake, ds: date) -> IngestResult:
    """Land the features of ``ds`` and the labels of ``ds - label_delay_days``."""
    dataset = spec.dataset
    if not dataset.start <= ds <= dataset.end + timedelta(days=dataset.label_delay_days):
        raise OutOfRangeError(f"{spec.name}: {ds} is outside the source's range {dataset.start}..{dataset.end}")
    rows = 0
    landing_uri = lake.to_uri(lake.partition_file(Zone.LANDING, spec.name, ds))
    if ds <= dataset.end:
        features = read_day(spec, ds, columns=landing_columns(spec))
        rows = lake.write_partition(Zone.LANDING, spec.name, ds, features).rows
    label_ds = ds - timedelta(days=dataset.label_delay_days)
    label_rows = unlabeled = 0
    labels_uri = None
    if label_ds >= dataset.start:
        labels, unlabeled = label_table(spec, label_ds)
        info = lake.write_partition(Zone.LABELS, spec.name, label_ds, labels)
        label_rows, labels_uri = info.rows, info.uri
        if unlabeled:
            log.info(
                "%s %s: %s rows have no label (e.g. cancelled) and were not labelled", spec.name, label_ds, unlabeled
            )
    result = IngestResult(
        model=spec.name,
        ds=ds.isoformat(),
        rows=rows,
        landing_uri=landing_uri,
        label_ds=label_ds.isoformat() if label_ds >= dataset.start else None,
        label_rows=label_rows,
        unlabeled_rows=unlabeled,
        labels_uri=labels_uri,
    )
    log.info(
        "landed %s: %s rows; labels for %s: %s rows (%s unlabeled)", ds, rows, result.label_ds, label_rows, unlabeled
    )
    return result
