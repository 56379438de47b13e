"""Re-scoring after a rollback: which days (ledger + manifests), and one day re-scored with the
restored version while the old predictions are kept, marked superseded."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from include.dashboard import prediction_volume
from include.datasets.ingest import land_day
from include.lake import Lake, Zone
from include.model_io import prepare_features
from include.monitoring.monitor import _predictions as _monitor_reads
from include.registry.ledger import LedgerEntry, append_entry, read_ledger
from include.scoring import rescore as rescore_module
from include.scoring.rescore import (
    RescoreError,
    days_scored_by,
    plan_rescore,
    reign_start,
    rescore_day,
    superseded_manifests,
)
from include.scoring.score import REJECTS_FILE, score_partition
from include.scoring.shards import count_rows, plan_shards, publish_shards, read_manifest, score_shard
from include.spec import get_spec
from include.training.onnx_export import build_pipeline, export_onnx

SPEC = get_spec("flights")
MODEL = SPEC.name
NOW = datetime.now(UTC).replace(microsecond=0)
T = [NOW - timedelta(days=30 - 5 * i) for i in range(5)]  # ledger times, oldest first


# --------------------------------------------------------------------------- which days


def _entry(when: datetime, action: str, version: int, previous: int | None, decision: str = "") -> LedgerEntry:
    return LedgerEntry(
        time=when,
        action=action,  # type: ignore[arg-type]
        model=MODEL,
        version=version,
        previous_version=previous,
        decision_id=decision,
        reason="bad v2" if action == "rollback" else None,
        run_id=f"r{when.timestamp():.0f}",
    )


def _predictions(lake: Lake, ds: date, version: int, published: datetime | None) -> None:
    """A predictions day of ``version``: with a manifest published at ``published``, or (None)
    an unsharded day whose data file's metadata names the version (published now)."""
    table = pa.table({"flight_id": [1, 2], "score": pa.array([0.1, 0.9], pa.float32())})
    with lake.partition_writer(Zone.PREDICTIONS, MODEL, ds, table.schema) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata({"airloop.model_version": str(version), "airloop.run_id": "cli"})
    if published is not None:
        manifest = {"model_version": version, "run_key": f"k{ds}", "run_id": "r", "published_at": published.isoformat()}
        lake.write_bytes(
            f"{lake.partition_dir(Zone.PREDICTIONS, MODEL, ds)}/_manifest.json", json.dumps(manifest).encode()
        )


@pytest.fixture()
def history_lake(tmp_path: Path) -> Lake:
    """v2 promoted (T0), replaced by v3 (T1), v3 rolled back to v2 (T2), v2 rolled back to v1 (T3).

    Days: 01 v2 in its first reign, 02 v3, 03 v2 since T2, 04 v1, 05 v2 without a manifest
    (file time: now), 06 v2 published in the second of T2 (manifests keep whole seconds)."""
    lake = Lake((tmp_path / "lake").as_uri())
    for entry in (
        _entry(T[0], "promote", 2, 1, "d-v2"),
        _entry(T[1], "promote", 3, 2, "d-v3"),
        _entry(T[2], "rollback", 2, 3),
        _entry(T[3], "rollback", 1, 2),
    ):
        append_entry(lake, entry)
    minute = timedelta(minutes=1)
    _predictions(lake, date(2013, 3, 1), 2, T[0] + minute)
    _predictions(lake, date(2013, 3, 2), 3, T[1] + minute)
    _predictions(lake, date(2013, 3, 3), 2, T[2] + minute)
    _predictions(lake, date(2013, 3, 4), 1, T[3] + minute)
    _predictions(lake, date(2013, 3, 5), 2, None)
    _predictions(lake, date(2013, 3, 6), 2, T[2])
    return lake


def test_reign_starts_at_the_newest_promotion_or_restoration_before_the_rollback(history_lake: Lake) -> None:
    history = read_ledger(history_lake, MODEL)
    assert reign_start(history, 2, before=T[3]) == T[2]  # restored by the first rollback
    assert reign_start(history, 2, before=T[2]) == T[0]  # its first promotion
    assert reign_start(history, 3, before=T[2]) == T[1]
    assert reign_start(history, 7, before=T[3]) is None


def test_plan_picks_the_days_the_rolled_back_version_scored_in_its_last_reign(history_lake: Lake) -> None:
    plan = plan_rescore(SPEC, history_lake, read_ledger(history_lake, SPEC.name))  # the newest rollback: v2 -> v1 at T3
    assert (plan["version"], plan["previous_version"], plan["reason"]) == (1, 2, "bad v2")
    assert plan["since"] == T[2].isoformat() and plan["rollback_time"] == T[3].isoformat()
    # not 03-01 (v2's first reign), 03-02 (v3), 03-04 (v1)
    assert plan["days"] == [
        {"ds": ds, "version": 1, "replaces": 2, "reason": "bad v2"} for ds in ("2013-03-03", "2013-03-05", "2013-03-06")
    ]
    # the earlier rollback, named by its versions: the days v3 scored since its promotion
    earlier = plan_rescore(SPEC, history_lake, read_ledger(history_lake, SPEC.name), version=2, previous_version=3)
    assert earlier["since"] == T[1].isoformat() and [d["ds"] for d in earlier["days"]] == ["2013-03-02"]
    # without a reign start (no ledger entry made it champion) every day it scored counts
    assert days_scored_by(history_lake, SPEC, 2, None) == [date(2013, 3, d) for d in (1, 3, 5, 6)]


def test_plan_of_a_rollback_the_ledger_does_not_hold_names_it(history_lake: Lake, tmp_path: Path) -> None:
    with pytest.raises(
        RescoreError, match=r"flights: no rollback to v3 from v1 in the ledger .*reports/flights/ledger"
    ):
        plan_rescore(SPEC, history_lake, read_ledger(history_lake, SPEC.name), version=3, previous_version=1)
    with pytest.raises(RescoreError, match="no rollback in the ledger"):
        plan_rescore(SPEC, Lake((tmp_path / "empty").as_uri()), [])


# --------------------------------------------------------------------------- one day, really scored

DAY = date(2013, 1, 4)
SHARDED = SPEC.model_copy(update={"scoring": SPEC.scoring.model_copy(update={"shard_rows": 300})})


def two_models(lake: Lake, model: str, days: list[date]) -> dict[int, bytes]:
    """ONNX files of two flights models trained on ``days`` of ``model`` (validated + labels):
    1: logistic regression, 2: a small HistGradientBoosting (a second, different scorer)."""
    features = SPEC.dataset.features
    numeric, categorical = features.numeric, features.categorical
    frames = [
        lake.read_table(Zone.VALIDATED, model, ds)
        .to_pandas()
        .merge(lake.read_table(Zone.LABELS, model, ds).to_pandas(), on="flight_id")
        for ds in days
    ]
    train = pd.concat(frames, ignore_index=True)
    x, y = prepare_features(train, numeric, categorical), train["delayed"].to_numpy()
    lr = build_pipeline("logistic_regression", numeric, categorical, {}, 42).fit(x, y)
    hgb = build_pipeline("hist_gradient_boosting", numeric, categorical, {"max_iter": 10}, 42).fit(x, y)
    return {1: export_onnx(lr, numeric, categorical), 2: export_onnx(hgb, numeric, categorical)}


@pytest.fixture(scope="module")
def scored_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A lake with ``DAY`` validated and scored by "v2" (HistGradientBoosting) through shards, as
    the score DAG publishes it; "v1" is a logistic regression trained on days 1..3."""
    lake = Lake((tmp_path_factory.mktemp("rescore") / "lake").as_uri())
    for day in range(1, 6):  # labels arrive two days late: day 3's by day 5
        land_day(SPEC, lake, date(2013, 1, day))
    for day in range(1, 5):
        ds = date(2013, 1, day)
        lake.publish_copy(lake.partition_file(Zone.LANDING, MODEL, ds), Zone.VALIDATED, MODEL, ds)
    onnx = two_models(lake, MODEL, [date(2013, 1, d) for d in range(1, 4)])
    ranges = plan_shards(count_rows(lake, SHARDED, DAY), SHARDED.scoring.shard_rows)
    for i, row_range in enumerate(ranges):
        score_shard(SHARDED, lake, DAY, onnx[2], index=i, row_range=row_range, run_key="scheduled__d",
                    model_name=MODEL, model_version=2, run_id="scheduled__d")  # fmt: skip
    publish_shards(lake, SHARDED, DAY, "scheduled__d", len(ranges))
    return {"lake": lake, "onnx": onnx}


def _sha(lake: Lake, path: str) -> str:
    return hashlib.sha256(lake.read_bytes(path)).hexdigest()


def test_rescore_day_keeps_the_old_predictions_superseded_and_serves_the_restored_version(
    scored_world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, onnx = scored_world["lake"], scored_world["onnx"]
    folder = lake.partition_dir(Zone.PREDICTIONS, MODEL, DAY)
    old = read_manifest(lake, SHARDED, DAY)
    assert old is not None and old["model_version"] == 2 and old["n_shards"] == 4
    old_rejects = _sha(lake, f"{folder}/{REJECTS_FILE}")
    when = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)
    args: dict[str, Any] = {"version": 1, "replaces": 2, "run_key": "rescore__1", "run_id": "asset__1",
                            "reason": "bad v2", "now": when}  # fmt: skip

    # a crash after the archive, before the publish: the day still serves v2, whole
    real_publish = rescore_module.publish_shards
    monkeypatch.setattr(rescore_module, "publish_shards", lambda *a, **k: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError, match="crash"):
        rescore_day(SHARDED, lake, DAY, onnx[1], **args)
    assert _sha(lake, f"{folder}/data.parquet") == old["data_sha256"]
    assert set(lake.read_table(Zone.PREDICTIONS, MODEL, DAY).column("model_version").to_pylist()) == {2}
    monkeypatch.setattr(rescore_module, "publish_shards", real_publish)

    # the rerun finishes the day without archiving again (the archive would be v2 either way)
    manifest = rescore_day(SHARDED, lake, DAY, onnx[1], **args)
    assert manifest["rescored"] is True and manifest["model_version"] == 1 and manifest["n_shards"] == 4
    archive = f"predictions/flights/ds={DAY}/_superseded/v2__scheduled__d"
    assert manifest["supersedes"] == {"model_version": 2, "run_key": "scheduled__d", "run_id": "scheduled__d",
                                      "archive": archive, "reason": "bad v2"}  # fmt: skip
    served = lake.read_table(Zone.PREDICTIONS, MODEL, DAY)
    assert set(served.column("model_version").to_pylist()) == {1}
    assert set(served.column("run_id").to_pylist()) == {"asset__1"}
    reference = Lake((tmp_path / "reference").as_uri())
    reference.publish_copy(lake.partition_file(Zone.VALIDATED, MODEL, DAY), Zone.VALIDATED, MODEL, DAY)
    score_partition(SPEC, reference, DAY, onnx[1], model_name=MODEL, model_version=1, run_id="asset__1")
    assert served.equals(reference.read_table(Zone.PREDICTIONS, MODEL, DAY))  # the scorer of the score DAG

    # the old day is kept byte for byte, its manifest marked superseded (who, when, why)
    (kept,) = superseded_manifests(lake, SHARDED, DAY)
    assert _sha(lake, lake.path(archive, "data.parquet")) == old["data_sha256"] == kept["data_sha256"]
    assert _sha(lake, lake.path(archive, REJECTS_FILE)) == old_rejects
    assert kept["superseded"] == {"by_version": 1, "by_run_key": "rescore__1", "at": "2026-12-07T20:00:00+00:00",
                                  "reason": "bad v2", "archive": archive}  # fmt: skip
    assert kept["model_version"] == 2 and kept["data_file"] == f"{archive}/data.parquet"
    assert kept["shards"] == old["shards"]

    # readers of the zone see the current day only: the monitor's and the dashboard's reads too
    assert lake.list_partitions(Zone.PREDICTIONS, MODEL) == [DAY]
    assert set(_monitor_reads(lake, SPEC, DAY)["model_version"]) == {1}
    (volume,) = prediction_volume(lake, MODEL)
    assert (volume.day, volume.model_version, volume.rows_scored) == (DAY, 1, manifest["rows_scored"])
    files = pads.dataset(lake.path("predictions", MODEL), format="parquet").files
    assert files == [lake.partition_file(Zone.PREDICTIONS, MODEL, DAY)]

    # idempotent: the same run again changes nothing; another run finds v1 and leaves it
    data = lake.read_bytes(lake.partition_file(Zone.PREDICTIONS, MODEL, DAY))
    again = rescore_day(SHARDED, lake, DAY, lambda: pytest.fail("a day already re-scored needs no model"), **args)
    assert again["rescored"] is False and again["supersedes"] == manifest["supersedes"]
    other = rescore_day(SHARDED, lake, DAY, onnx[1], **{**args, "run_key": "rescore__2"})
    assert other == {"skipped": f"flights {DAY}: the predictions carry v1, not v2: left as they are"}
    assert lake.read_bytes(lake.partition_file(Zone.PREDICTIONS, MODEL, DAY)) == data
    assert len(superseded_manifests(lake, SHARDED, DAY)) == 1
    assert lake.list_files(f"{folder}/_shards") == []
