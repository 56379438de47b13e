"""Re-scoring after a rollback: which days the rolled-back version scored, and each such day
scored again with the restored version, the old predictions kept as superseded.

Which days (:func:`plan_rescore`): the rollback is read from the ledger (the newest ``rollback``
entry, or the one from ``previous_version`` to ``version``). The rolled-back version became
champion at its newest ``promote`` (or ``rollback`` to it) entry before the rollback: its
*reign* starts there. A day is re-scored when its current predictions carry the rolled-back
version (the ``_manifest.json``'s ``model_version``; without a manifest, the data file's
``airloop.model_version``) and were published at or after that start (the manifest's
``published_at``, else the file's modification time). Days it scored in an earlier reign, before
another champion replaced it, keep their predictions; so do days another version scored.

One day (:func:`rescore_day`), under ``predictions/<model>/ds=<date>/``:

1. the current ``data.parquet``, ``_rejects.parquet`` and ``_manifest.json`` are copied to
   ``_superseded/v<old version>__<old run key>/``; the copy's manifest, written last (the
   archive's commit point), is marked ``superseded: {by_version, by_run_key, at, reason}``.
   The day itself is untouched so far: readers keep seeing the old predictions;
2. the day is scored with the pinned restored version in shards of ``scoring.shard_rows`` rows
   (:func:`~include.scoring.shards.score_shard`, the score DAG's scorer) and published
   (:func:`~include.scoring.shards.publish_shards`: the data file replaces the old one in one
   atomic move), with ``supersedes: {model_version, run_key, run_id, archive, reason}`` in the
   new manifest.

The ``_`` prefix keeps the archive out of readers of the zone (pyarrow.dataset, Spark, Hive;
``Lake.list_partitions`` looks only at ``ds=<date>/data.parquet``): the monitor and the
dashboard read the current predictions only.

A rerun is idempotent: a day whose manifest already names this run's key is returned as it is;
an archive made by this run is not made again (so a crash between the publish and the manifest
never archives the new predictions as old ones); a day that no longer carries the rolled-back
version is skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from include.lake import DATA_FILE, Lake, LakeError, Zone, safe_key
from include.scoring.score import MANIFEST_FILE, REJECTS_FILE, read_output_metadata
from include.scoring.shards import (
    count_rows,
    plan_shards,
    publish_shards,
    read_manifest,
    score_shard,
)

if TYPE_CHECKING:
    from include.scoring.reasons import ReasonCodes
    from include.spec import ModelSpec

log = logging.getLogger(__name__)

SUPERSEDED_DIR = "_superseded"


class RescoreError(RuntimeError):
    """The rollback to repair cannot be found; the message says what is missing."""


@dataclass(frozen=True)
class Scored:
    """Who scored a published predictions day, and when it was published."""

    version: int | None
    run_key: str | None
    run_id: str | None
    published_at: datetime | None


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def scored_by(lake: Lake, spec: ModelSpec, ds: date) -> Scored:
    """Version, run and publish time of the day's current predictions: from its manifest, else
    from the data file's ``airloop.*`` metadata and modification time."""
    manifest = read_manifest(lake, spec, ds)
    if manifest is not None:
        version = manifest.get("model_version")
        return Scored(
            version=None if version is None else int(version),
            run_key=manifest.get("run_key"),
            run_id=manifest.get("run_id"),
            published_at=_time(manifest.get("published_at")),
        )
    path = lake.partition_file(Zone.PREDICTIONS, spec.name, ds)
    meta = read_output_metadata(lake, path)
    mtime = lake.fs.get_file_info(path).mtime
    return Scored(
        version=int(meta["model_version"]) if meta.get("model_version") else None,
        run_key=meta.get("run_key"),
        run_id=meta.get("run_id"),
        published_at=None if mtime is None else mtime.replace(tzinfo=mtime.tzinfo or UTC),
    )


def find_rollback(
    history: Iterable[Mapping[str, Any]], version: int | None = None, previous_version: int | None = None
) -> Mapping[str, Any] | None:
    """The newest ``rollback`` entry of the ledger ``history`` (oldest first), restricted to
    the one to ``version`` and from ``previous_version`` when given."""
    found = None
    for entry in history:
        if entry["action"] != "rollback":
            continue
        if version is not None and entry["version"] != version:
            continue
        if previous_version is not None and entry["previous_version"] != previous_version:
            continue
        found = entry
    return found


def reign_start(history: Iterable[Mapping[str, Any]], version: int, before: datetime) -> datetime | None:
    """When ``version`` last became champion before ``before``: the time of its newest ``promote``
    entry, or ``rollback`` entry that restored it, earlier than ``before``; ``None`` if none."""
    start = None
    for entry in history:
        moment = _time(entry["time"])
        if entry["action"] in ("promote", "rollback") and entry["version"] == version and moment and moment < before:
            start = moment
    return start


def days_scored_by(lake: Lake, spec: ModelSpec, version: int, since: datetime | None) -> list[date]:
    """Predictions days whose current predictions carry ``version`` and were published at or
    after ``since`` (any time when ``None``). ``published_at`` has whole seconds: ``since`` is
    compared at that precision."""
    floor = None if since is None else since.astimezone(UTC).replace(microsecond=0)
    days = []
    for ds in lake.list_partitions(Zone.PREDICTIONS, spec.name):
        scored = scored_by(lake, spec, ds)
        if scored.version != version:
            continue
        if floor is not None and scored.published_at is not None and scored.published_at < floor:
            continue
        days.append(ds)
    return days


def plan_rescore(
    spec: ModelSpec,
    lake: Lake,
    history: Sequence[Mapping[str, Any]],
    *,
    version: int | None = None,
    previous_version: int | None = None,
) -> dict[str, Any]:
    """The days to re-score after the rollback to ``version`` from ``previous_version`` (default:
    the newest rollback in ``history``, the model's ledger entries oldest first, as
    :func:`include.registry.ledger.read_ledger` returns them), with what each re-score needs:
    ``{version, previous_version, reason, rollback_time, since, days: [{ds, version, replaces,
    reason}]}``."""
    entry = find_rollback(history, version, previous_version)
    if entry is None:
        wanted = "" if version is None else f" to v{version}"
        wanted += "" if previous_version is None else f" from v{previous_version}"
        raise RescoreError(
            f"{spec.name}: no rollback{wanted} in the ledger {lake.path('reports', spec.name, 'ledger')}"
        )
    restored, rolled_back = int(entry["version"]), int(entry["previous_version"])
    moment = _time(entry["time"])
    assert moment is not None  # every ledger entry has a time
    since = reign_start(history, rolled_back, moment)
    reason = str(entry.get("reason") or "")
    days = days_scored_by(lake, spec, rolled_back, since)
    log.info(
        "%s: rollback v%s -> v%s at %s; v%s champion since %s; %s day(s) to re-score: %s",
        spec.name,
        rolled_back,
        restored,
        moment.isoformat(),
        rolled_back,
        since.isoformat() if since else "(no ledger entry: any time)",
        len(days),
        ", ".join(d.isoformat() for d in days) or "none",
    )
    return {
        "version": restored,
        "previous_version": rolled_back,
        "reason": reason,
        "rollback_time": moment.isoformat(),
        "since": since.isoformat() if since else None,
        "days": [{"ds": d.isoformat(), "version": restored, "replaces": rolled_back, "reason": reason} for d in days],
    }


# --------------------------------------------------------------------------- one day


def superseded_dir(lake: Lake, spec: ModelSpec, ds: date) -> str:
    return f"{lake.partition_dir(Zone.PREDICTIONS, spec.name, ds)}/{SUPERSEDED_DIR}"


def superseded_manifests(lake: Lake, spec: ModelSpec, ds: date) -> list[dict[str, Any]]:
    """The marked manifests of every superseded copy of the day, oldest supersession first."""
    found = [
        json.loads(lake.read_bytes(path))
        for path in lake.list_files(superseded_dir(lake, spec, ds))
        if path.endswith(f"/{MANIFEST_FILE}")
    ]
    return sorted(found, key=lambda m: str(m["superseded"]["at"]))


def _archived_by(lake: Lake, spec: ModelSpec, ds: date, run_key: str) -> dict[str, Any] | None:
    for manifest in superseded_manifests(lake, spec, ds):
        if manifest["superseded"]["by_run_key"] == run_key:
            return manifest
    return None


def _supersedes(archived: Mapping[str, Any]) -> dict[str, Any]:
    """What the new manifest records about the predictions it replaces."""
    mark = archived["superseded"]
    return {
        "model_version": archived.get("model_version"),
        "run_key": archived.get("run_key"),
        "run_id": archived.get("run_id"),
        "archive": mark["archive"],
        "reason": mark["reason"],
    }


def supersede(
    lake: Lake, spec: ModelSpec, ds: date, *, by_version: int, run_key: str, reason: str, now: datetime
) -> dict[str, Any]:
    """Copy the day's current predictions into ``_superseded/v<version>__<run key>/`` and write
    the copy's manifest marked ``superseded`` (last: the archive's commit point). The day itself
    is left as it is. Returns the marked manifest."""
    partition = lake.partition_dir(Zone.PREDICTIONS, spec.name, ds)
    data = f"{partition}/{DATA_FILE}"
    if not lake.exists(data):
        raise LakeError(f"{spec.name} {ds}: no predictions to supersede at {lake.to_uri(data)}")
    manifest = read_manifest(lake, spec, ds)
    if manifest is None:  # an unsharded run (airloop score-day): its data file's metadata stands in
        meta = read_output_metadata(lake, data)
        manifest = {
            "model": spec.name,
            "ds": ds.isoformat(),
            "model_name": meta.get("model_name"),
            "model_version": int(meta["model_version"]) if meta.get("model_version") else None,
            "run_id": meta.get("run_id"),
            "run_key": None,
            "total_rows": int(meta.get("rows_scored", 0)),
        }
    old_key = str(manifest.get("run_key") or manifest.get("run_id") or "unknown")
    target = f"{superseded_dir(lake, spec, ds)}/v{manifest.get('model_version')}__{safe_key(old_key)}"
    for name in (DATA_FILE, REJECTS_FILE):
        if lake.exists(f"{partition}/{name}"):
            if lake.scheme == "file":  # S3 has no folders
                lake.fs.create_dir(target, recursive=True)
            lake.fs.copy_file(f"{partition}/{name}", f"{target}/{name}")
    marked = {
        **manifest,
        "data_file": lake.relative(f"{target}/{DATA_FILE}"),
        "rejects_file": lake.relative(f"{target}/{REJECTS_FILE}"),
        "superseded": {
            "by_version": by_version,
            "by_run_key": run_key,
            "at": now.astimezone(UTC).isoformat(timespec="seconds"),
            "reason": reason,
            "archive": lake.relative(target),
        },
    }
    lake.write_bytes(f"{target}/{MANIFEST_FILE}", json.dumps(marked, indent=2).encode())
    log.info("%s %s: v%s predictions kept as superseded in %s", spec.name, ds, manifest.get("model_version"), target)
    return marked


def rescore_day(
    spec: ModelSpec,
    lake: Lake,
    ds: date,
    onnx: bytes | Callable[[], bytes],
    *,
    version: int,
    replaces: int,
    run_key: str,
    run_id: str,
    reason: str,
    now: datetime,
    reasons: Callable[[], ReasonCodes | None] | None = None,
) -> dict[str, Any]:
    """Re-score ``ds`` with ``version`` when its predictions carry ``replaces``, keeping the old
    ones as superseded (see the module docstring). ``onnx``: the restored version's ONNX file, or
    a function that downloads it (called only when the day is scored); ``reasons``: a function
    that gives the version's reason codes (:func:`include.scoring.reasons.reason_codes_for`,
    called only when the day is scored), so a re-scored day keeps the reason columns. Returns
    the new manifest with ``rescored: True``, ``rescored: False`` when this run had already done
    it, or ``{"skipped": reason}`` when the day carries another version."""
    current = read_manifest(lake, spec, ds)
    if (
        current is not None
        and current.get("run_key") == run_key
        and lake.has_partition(Zone.PREDICTIONS, spec.name, ds)
    ):
        log.info("%s %s: already re-scored by %s", spec.name, ds, run_key)
        return {**current, "rescored": False}
    archived = _archived_by(lake, spec, ds, run_key)
    if archived is None:
        if not lake.has_partition(Zone.PREDICTIONS, spec.name, ds):
            return {"skipped": f"{spec.name} {ds}: no predictions: nothing to re-score"}
        found = scored_by(lake, spec, ds).version
        if found != replaces:
            return {"skipped": f"{spec.name} {ds}: the predictions carry v{found}, not v{replaces}: left as they are"}
        archived = supersede(lake, spec, ds, by_version=version, run_key=run_key, reason=reason, now=now)
    onnx_bytes = onnx() if callable(onnx) else onnx
    codes = reasons() if reasons is not None else None
    shards = plan_shards(count_rows(lake, spec, ds), spec.scoring.shard_rows)
    for index, (start, end) in enumerate(shards):
        score_shard(
            spec,
            lake,
            ds,
            onnx_bytes,
            index=index,
            row_range=(start, end),
            run_key=run_key,
            model_name=spec.name,
            model_version=version,
            run_id=run_id,
            reasons=codes,
        )
    manifest = publish_shards(lake, spec, ds, run_key, len(shards), annotations={"supersedes": _supersedes(archived)})
    return {**manifest, "rescored": True}
