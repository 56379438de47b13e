"""Sharded scoring of one big partition: plan row ranges, score each (in parallel tasks),
publish them as one ``data.parquet``.

Layout under ``<zone>/<model>/ds=D/``::

    _shards/<run_key>/shard-<i>.parquet            one shard's predictions (atomic)
    _shards/<run_key>/shard-<i>.rejects.parquet    its rejected rows (atomic, maybe empty)
    _rejects.parquet                               all rejects, published before data.parquet
    data.parquet                                   the day, published only complete
    _manifest.json                                 written after data.parquet

Everything a shard writes sits under ``_shards/``, which readers of the zone never see
(``_`` prefix, and ``Lake.list_partitions`` looks only for ``data.parquet``): until
:func:`publish_shards` runs, the day does not exist for them. Publishing streams the shards'
row groups, in shard order, into the lake's atomic partition writer, so the published file
holds the same rows in the same order as an unsharded run; the manifest (shard row counts,
sha256 of every shard file and of the published file, model version, run id) follows it,
then the shard folder is deleted. Publishing again is a no-op that returns the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from include.lake import Lake, LakeError, Zone, safe_key
from include.scoring.score import (
    MANIFEST_FILE,
    META_PREFIX,
    REASON_CODES_KEY,
    ScoreReport,
    read_output_metadata,
    rejects_file,
    rejects_path_for,
    score_partition,
)
from include.spec import ModelSpec

if TYPE_CHECKING:
    import pyarrow.parquet as pq

log = logging.getLogger(__name__)

SHARDS_DIR = "_shards"
MANIFEST_VERSION = 1


class MissingShardsError(LakeError):
    """Some shards of a run were never written; the message lists them."""


class ShardMismatchError(LakeError):
    """Shards of one run disagree (schema, model version, run id, row ranges)."""


class ManifestMismatchError(LakeError):
    """A published file does not match its manifest (checksum or row count)."""


# --------------------------------------------------------------------------- planning


def plan_shards(num_rows: int, shard_rows: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, end)`` row ranges covering ``num_rows`` rows, at most ``shard_rows``
    each, as even as possible (sizes differ by at most one row). An empty partition is one
    empty shard, so that publishing still produces an (empty) day."""
    if num_rows < 0 or shard_rows < 1:
        raise ValueError(f"need num_rows >= 0 and shard_rows >= 1, got {num_rows} and {shard_rows}")
    if num_rows == 0:
        return [(0, 0)]
    count = math.ceil(num_rows / shard_rows)
    base, extra = divmod(num_rows, count)
    ranges = []
    start = 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        ranges.append((start, end))
        start = end
    return ranges


def count_rows(lake: Lake, spec: ModelSpec, ds: date, zone: Zone = Zone.VALIDATED) -> int:
    """Rows of a partition, from its Parquet footer (no data read)."""
    import pyarrow.parquet as pq

    path = lake.partition_file(zone, spec.name, ds)
    try:
        with lake.fs.open_input_file(path) as handle:
            return int(pq.read_metadata(handle).num_rows)
    except FileNotFoundError:
        raise LakeError(f"no such partition: {lake.to_uri(path)}") from None


def _run_segment(run_key: str) -> str:
    return safe_key(run_key).replace("..", "_")


def shard_dir(lake: Lake, spec: ModelSpec, ds: date, run_key: str, zone: Zone = Zone.PREDICTIONS) -> str:
    return f"{lake.partition_dir(zone, spec.name, ds)}/{SHARDS_DIR}/{_run_segment(run_key)}"


def shard_path(lake: Lake, spec: ModelSpec, ds: date, run_key: str, index: int, zone: Zone = Zone.PREDICTIONS) -> str:
    return f"{shard_dir(lake, spec, ds, run_key, zone)}/shard-{index}.parquet"


def manifest_path(lake: Lake, spec: ModelSpec, ds: date, zone: Zone = Zone.PREDICTIONS) -> str:
    return f"{lake.partition_dir(zone, spec.name, ds)}/{MANIFEST_FILE}"


def score_shard(
    spec: ModelSpec,
    lake: Lake,
    ds: date,
    onnx_bytes: bytes,
    *,
    index: int,
    row_range: tuple[int, int],
    run_key: str,
    zone: Zone = Zone.PREDICTIONS,
    **options: Any,
) -> ScoreReport:
    """Score rows ``row_range`` of the partition into shard ``index`` of ``run_key`` (atomic;
    a retried shard simply overwrites itself). ``options``: the other keyword arguments of
    :func:`~include.scoring.score.score_partition` (``model_name``, ``model_version`` and
    ``run_id`` are required; ``source_zone``, ``batch_size``, ``threads``, ``reasons``)."""
    output_path = shard_path(lake, spec, ds, run_key, index, zone)
    return score_partition(
        spec, lake, ds, onnx_bytes, zone=zone, row_range=row_range, output_path=output_path, **options
    )


# --------------------------------------------------------------------------- publishing


def sha256_of(lake: Lake, path: str) -> str:
    digest = hashlib.sha256()
    with lake.fs.open_input_stream(path) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(lake: Lake, spec: ModelSpec, ds: date, zone: Zone = Zone.PREDICTIONS) -> dict[str, Any] | None:
    path = manifest_path(lake, spec, ds, zone)
    if not lake.exists(path):
        return None
    manifest: dict[str, Any] = json.loads(lake.read_bytes(path))
    return manifest


def _open(lake: Lake, path: str) -> tuple[Any, pq.ParquetFile]:
    import pyarrow.parquet as pq

    handle = lake.fs.open_input_file(path)
    return handle, pq.ParquetFile(handle, pre_buffer=False, buffer_size=1 << 20)


def _concatenate(lake: Lake, sources: list[str], writer: pq.ParquetWriter) -> int:
    """Append every row group of ``sources``, in order; one row group in memory at a time."""
    rows = 0
    for path in sources:
        handle, parquet = _open(lake, path)
        with handle:
            for group in range(parquet.metadata.num_row_groups):
                table = parquet.read_row_group(group, use_threads=False)
                writer.write_table(table)
                rows += table.num_rows
    return rows


def _schema_of(lake: Lake, path: str) -> Any:
    handle, parquet = _open(lake, path)
    with handle:
        return parquet.schema_arrow.remove_metadata()


def publish_shards(
    lake: Lake,
    spec: ModelSpec,
    ds: date,
    run_key: str,
    n_shards: int,
    zone: Zone = Zone.PREDICTIONS,
    annotations: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Publish shards ``0..n_shards-1`` of ``run_key`` as the day's ``data.parquet`` (and
    ``_rejects.parquet``), then write ``_manifest.json`` and delete the shard folder.
    ``annotations`` are extra manifest keys (a re-score records what it ``supersedes``).

    Idempotent: when the shard folder is gone and the manifest records this ``run_key``, the
    day is already published and the manifest is returned unchanged; the same holds when a
    duplicate delivery publishes the shards while this call reads them. Raises
    :class:`MissingShardsError` naming every missing shard, :class:`ShardMismatchError` if
    the shards do not belong together. Returns the manifest.
    """
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    model = spec.name
    folder = shard_dir(lake, spec, ds, run_key, zone)
    data_paths = [shard_path(lake, spec, ds, run_key, i, zone) for i in range(n_shards)]
    reject_paths = [rejects_path_for(p) for p in data_paths]
    present = [lake.exists(p) for p in data_paths]

    if not any(present) and (existing := _published(lake, spec, ds, run_key, n_shards, zone)) is not None:
        log.info("%s %s: shards of %s already published, nothing to do", model, ds, run_key)
        return existing
    missing = [f"shard-{i}" for i, ok in enumerate(present) if not ok]
    missing += [f"shard-{i} rejects" for i, p in enumerate(reject_paths) if present[i] and not lake.exists(p)]
    if missing:
        raise MissingShardsError(
            f"{model} {ds}: cannot publish run {run_key!r}: {len(missing)} of {n_shards} shard files missing "
            f"under {lake.to_uri(folder)}: {', '.join(missing)} (score them, then publish again)"
        )
    try:
        return _publish(lake, spec, ds, run_key, data_paths, zone, annotations or {})
    except FileNotFoundError:
        # A duplicate delivery of this publish finished first and deleted the shards under us:
        # the day it published is this one (same shards), so its manifest is the outcome.
        existing = _published(lake, spec, ds, run_key, n_shards, zone)
        if existing is None:
            raise
        log.info("%s %s: shards of %s published by a concurrent publish, nothing to do", model, ds, run_key)
        return existing


def _published(lake: Lake, spec: ModelSpec, ds: date, run_key: str, n_shards: int, zone: Zone) -> dict[str, Any] | None:
    """The manifest of the day when its published partition came from ``run_key``'s ``n_shards`` shards."""
    existing = read_manifest(lake, spec, ds, zone)
    if (
        existing is not None
        and existing.get("run_key") == run_key
        and existing.get("n_shards") == n_shards
        and lake.has_partition(zone, spec.name, ds)
    ):
        return existing
    return None


def _publish(
    lake: Lake,
    spec: ModelSpec,
    ds: date,
    run_key: str,
    data_paths: list[str],
    zone: Zone,
    annotations: Mapping[str, Any],
) -> dict[str, Any]:
    """Check the present shards belong together, publish them, write the manifest, delete them.

    Stages: :func:`_describe_shards` -> :func:`_shared_source` (nothing visible yet) ->
    :func:`_write_partition` (rejects, then the data file: the commit point) -> the manifest."""
    model = spec.name
    n_shards = len(data_paths)
    schema = _schema_of(lake, data_paths[0])
    shards = _describe_shards(lake, spec, ds, data_paths, schema)
    source = _shared_source(spec, ds, shards)
    reasons: dict[str, int] = {}
    for s in shards:
        for reason, count in s["reject_reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + count
    totals = {
        "rows_in": sum(s["rows_in"] for s in shards),
        "rows_scored": sum(s["rows"] for s in shards),
        "rows_rejected": sum(s["rows_rejected"] for s in shards),
    }
    metadata = {
        "model": model,
        "ds": ds.isoformat(),
        "model_name": str(source.model_name),
        "model_version": str(source.model_version),
        "run_id": str(source.run_id),
        **{k: str(v) for k, v in totals.items()},
        "reject_reasons": json.dumps(dict(sorted(reasons.items()))),
        "run_key": run_key,
        "n_shards": str(n_shards),
    }
    # Every shard has the same schema, so the same reason columns: shard-0 says how they were made.
    reason_codes = read_output_metadata(lake, data_paths[0]).get(REASON_CODES_KEY)
    if reason_codes is not None:
        metadata[REASON_CODES_KEY] = reason_codes
    total = _write_partition(lake, spec, ds, zone, data_paths, schema, metadata)
    data_path = lake.partition_file(zone, model, ds)
    rejects_path = rejects_file(lake, zone, model, ds)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "model": model,
        "ds": ds.isoformat(),
        "zone": Zone(zone).value,
        "run_key": run_key,
        "n_shards": n_shards,
        "model_name": source.model_name,
        "model_version": source.model_version,
        "run_id": source.run_id,
        "total_rows": total,
        **totals,
        "reject_reasons": dict(sorted(reasons.items())),
        "data_file": lake.relative(data_path),
        "data_sha256": sha256_of(lake, data_path),
        "rejects_file": lake.relative(rejects_path),
        "rejects_sha256": sha256_of(lake, rejects_path),
        "shards": [{k: v for k, v in s.items() if k not in ("model_name", "model_version", "run_id")} for s in shards],
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **annotations,
    }
    lake.write_bytes(manifest_path(lake, spec, ds, zone), json.dumps(manifest, indent=2).encode())
    try:
        lake.fs.delete_dir(shard_dir(lake, spec, ds, run_key, zone))
    except FileNotFoundError:  # a duplicate delivery of this publish got there first: same outcome
        log.info("%s %s: shard folder of %s already deleted by a concurrent publish", model, ds, run_key)
    log.info(
        "%s %s: published %s shards of %s as %s (%s rows, %s rejected)",
        model,
        ds,
        n_shards,
        run_key,
        lake.to_uri(data_path),
        total,
        totals["rows_rejected"],
    )
    return manifest


def _describe_shards(lake: Lake, spec: ModelSpec, ds: date, data_paths: list[str], schema: Any) -> list[dict[str, Any]]:
    """One manifest entry per shard, from its file and ``airloop.*`` metadata; every shard must
    have ``schema``."""
    import pyarrow.parquet as pq

    shards: list[dict[str, Any]] = []
    for i, path in enumerate(data_paths):
        meta = read_output_metadata(lake, path)
        if not _schema_of(lake, path).equals(schema):
            raise ShardMismatchError(f"{spec.name} {ds}: shard-{i} has a different schema than shard-0")
        with lake.fs.open_input_file(path) as handle:
            rows = int(pq.read_metadata(handle).num_rows)
        shards.append(
            {
                "index": i,
                "file": path.rsplit("/", 1)[-1],
                "rows": rows,
                "rows_in": int(meta.get("rows_in", rows)),
                "rows_rejected": int(meta.get("rows_rejected", 0)),
                "reject_reasons": json.loads(meta.get("reject_reasons", "{}")),
                "row_range": json.loads(meta.get("row_range", "null")),
                "model_name": meta.get("model_name"),
                "model_version": int(meta["model_version"]) if "model_version" in meta else None,
                "run_id": meta.get("run_id"),
                "sha256": sha256_of(lake, path),
                "bytes": lake.fs.get_file_info(path).size,
                "rejects_sha256": sha256_of(lake, rejects_path_for(path)),
            }
        )
    return shards


@dataclass(frozen=True)
class _Source:
    """The model version and scoring run that every shard of a day came from."""

    model_name: str | None
    model_version: int | None
    run_id: str | None


def _shared_source(spec: ModelSpec, ds: date, shards: list[dict[str, Any]]) -> _Source:
    """The one model and run of all shards, whose row ranges follow each other from row 0;
    :class:`ShardMismatchError` otherwise."""
    identity = {(s["model_name"], s["model_version"], s["run_id"]) for s in shards}
    if len(identity) != 1:
        raise ShardMismatchError(
            f"{spec.name} {ds}: shards come from different models or runs: {sorted(map(str, identity))}"
        )
    position = 0
    for s in shards:
        if s["row_range"] is not None:
            if s["row_range"][0] != position:
                raise ShardMismatchError(
                    f"{spec.name} {ds}: shard-{s['index']} covers rows {s['row_range']}, "
                    f"expected a range starting at {position}"
                )
            position = s["row_range"][1]
    return _Source(*identity.pop())


def _write_partition(
    lake: Lake, spec: ModelSpec, ds: date, zone: Zone, data_paths: list[str], schema: Any, metadata: dict[str, str]
) -> int:
    """Publish the concatenated rejects, then the concatenated data file with ``metadata``
    (``airloop.`` keys); returns the data file's rows."""

    reject_paths = [rejects_path_for(p) for p in data_paths]
    with lake.parquet_writer(rejects_file(lake, zone, spec.name, ds), _schema_of(lake, reject_paths[0])) as writer:
        _concatenate(lake, reject_paths, writer)
    with lake.partition_writer(zone, spec.name, ds, schema) as writer:
        total = _concatenate(lake, data_paths, writer)
        writer.add_key_value_metadata({META_PREFIX + k: v for k, v in metadata.items()})
    return total


def verify_partition(lake: Lake, spec: ModelSpec, ds: date, zone: Zone = Zone.PREDICTIONS) -> dict[str, Any]:
    """Check the published ``data.parquet`` against its manifest (sha256 and row count);
    raises :class:`ManifestMismatchError`, returns the manifest."""
    import pyarrow.parquet as pq

    manifest = read_manifest(lake, spec, ds, zone)
    data_path = lake.partition_file(zone, spec.name, ds)
    if manifest is None:
        raise ManifestMismatchError(f"{spec.name} {ds}: no {MANIFEST_FILE} next to {lake.to_uri(data_path)}")
    digest = sha256_of(lake, data_path)
    problems = []
    if digest != manifest["data_sha256"]:
        problems.append(f"sha256 {digest} != manifest {manifest['data_sha256']}")
    try:
        with lake.fs.open_input_file(data_path) as handle:
            rows = int(pq.read_metadata(handle).num_rows)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        problems.append(f"not readable as Parquet ({exc})")
    else:
        if rows != manifest["total_rows"]:
            problems.append(f"{rows} rows != manifest {manifest['total_rows']}")
    if problems:
        raise ManifestMismatchError(
            f"{spec.name} {ds}: {lake.to_uri(data_path)} does not match its manifest: " + "; ".join(problems)
        )
    return manifest
