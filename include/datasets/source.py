"""Prepare a spec's source once as a time-sorted Parquet file and read it a day at a time.

Builtin datasets are built by their module in this package; file sources are any CSV or
Parquet file with the spec's time column. Either way the prepared copy is cached under
the state folder (keyed by the source's identity) and written atomically, so concurrent
ingest tasks share one preparation and a crash never leaves a half-written cache.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.lake import default_state_dir
from include.spec import ModelSpec, SpecError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

BUILTINS = {"nycflights13": "include.datasets.nycflights13", "breast_cancer": "include.datasets.breast_cancer"}


class SourceError(ValueError):
    """The source data does not match its spec (names the file and column)."""


def _source_identity(spec: ModelSpec) -> tuple[str, str]:
    source = spec.dataset.source
    if source.kind == "builtin":
        if source.name not in BUILTINS:
            raise SpecError(
                f"{spec.path}: dataset.source.name: expected one of {sorted(BUILTINS)}, got {source.name!r}"
            )
        module = importlib.import_module(BUILTINS[source.name])
        version = getattr(module, "VERSION", "1")
        return f"builtin-{source.name}", f"{source.name}:{version}"
    path = spec.source_path()
    stat = path.stat()
    return f"file-{path.stem}", f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _load_raw(spec: ModelSpec) -> pd.DataFrame:
    import pandas as pd

    source = spec.dataset.source
    if source.kind == "builtin":
        module = importlib.import_module(BUILTINS[str(source.name)])
        return module.build()
    path = spec.source_path()
    fmt = source.format or path.suffix.lower().lstrip(".")
    try:
        return pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    except Exception as exc:
        raise SourceError(f"{path}: cannot read as {fmt}: {exc}") from exc


def _normalise(spec: ModelSpec, frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    import pandas as pd

    ds = spec.dataset
    needed = [*ds.key_columns, ds.time_column, *ds.features.all, *spec.passthrough_columns, ds.target.source_column]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise SourceError(f"{origin}: columns named in the spec are missing: {missing}")
    times = frame[ds.time_column]
    if not pd.api.types.is_datetime64_any_dtype(times):
        try:
            times = pd.to_datetime(times)
        except (ValueError, TypeError) as exc:
            raise SourceError(f"{origin}: column {ds.time_column!r}: not parseable as a time: {exc}") from None
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    frame = frame[list(dict.fromkeys(needed))].copy()
    frame[ds.time_column] = times.astype("datetime64[us]")
    if frame[ds.time_column].isna().any():
        raise SourceError(f"{origin}: column {ds.time_column!r}: {int(times.isna().sum())} rows have no time")
    return frame.sort_values(ds.time_column, kind="stable").reset_index(drop=True)


def prepared_source(spec: ModelSpec, cache_dir: Path | None = None) -> Path:
    """Path of the prepared, time-sorted Parquet copy of the source (built on first use)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stem, identity = _source_identity(spec)
    # Only the dataset section and the pass-through columns shape the prepared copy: editing the
    # contract must not re-prepare it (no pass-through column: the digest of before they existed).
    shape = spec.dataset.model_dump_json() + "".join(f"|{c}" for c in spec.passthrough_columns)
    digest = hashlib.sha256(f"{identity}|{shape}".encode()).hexdigest()[:12]
    cache_dir = cache_dir or default_state_dir() / "cache"
    target = cache_dir / f"{spec.name}-{stem}-{digest}.parquet"
    if target.is_file():
        return target
    started = time.perf_counter()
    frame = _normalise(spec, _load_raw(spec), str(spec.path))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp-{os.getpid()}")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp, row_group_size=16384)
    os.replace(tmp, target)
    log.info("prepared %s rows of %s in %.1fs -> %s", len(frame), identity, time.perf_counter() - started, target)
    return target


def read_day(spec: ModelSpec, ds: date, columns: list[str] | None = None) -> pa.Table:
    """The source rows whose time column falls on ``ds`` (local day of the time column)."""
    import pyarrow.dataset as pads

    dataset = pads.dataset(prepared_source(spec), format="parquet")
    start = datetime.combine(ds, datetime.min.time())
    field = pads.field(spec.dataset.time_column)
    day_filter = (field >= start) & (field < start + timedelta(days=1))
    return dataset.to_table(columns=columns, filter=day_filter)
