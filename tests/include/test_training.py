"""Training on the real flights demo: data assembly without peeking, search + fit + ONNX parity,
and everything tracked in a real MLflow server (read back with MlflowClient)."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from mlflow import MlflowClient

from include.datasets.ingest import label_table
from include.lake import Lake, Zone
from include.model_io import TrainResult
from include.names import (
    CALIBRATION_ARTIFACT,
    CALIBRATION_DATA_ARTIFACT,
    ESTIMATORS,
    IMPORTANCE_ARTIFACT,
    IMPORTANCE_DATA_ARTIFACT,
    ONNX_ARTIFACT,
    PROFILE_ARTIFACT,
)
from include.spec import get_spec
from include.training.data import InsufficientDataError, TrainingData, assemble_training_data
from include.training.onnx_export import UnsupportedEstimatorError
from include.training.profile import OTHER_CATEGORY, bin_fractions, decile_edges, reference_profile
from include.training.train import (
    DEFAULT_PARAMS,
    SEARCH_SPACES,
    ParityError,
    _candidates,
    slice_metric_key,
    train_model,
)
from tests.flights_model import BUDGET, END, HOLDOUT, REASON, TAGS, WINDOW

SPEC = get_spec("flights")
FEATURES = list(dict.fromkeys([*SPEC.dataset.key_columns, SPEC.dataset.time_column, *SPEC.dataset.features.all]))


@pytest.fixture(scope="module")
def lake(flights_lake: Path) -> Lake:
    return Lake(flights_lake.as_uri())


@pytest.fixture(scope="module")
def data(flights_data: TrainingData) -> TrainingData:
    """The 14-day window ending at END (session-wide, shared with the registry tests)."""
    return flights_data


@pytest.fixture(scope="module")
def hgb(flights_hgb: TrainResult) -> TrainResult:
    """The spec's estimator searched with BUDGET trials on ``data`` (trained once per session)."""
    return flights_hgb


@pytest.fixture(scope="module")
def short_data(lake: Lake) -> TrainingData:
    """Three labelled days (01-21..01-23, holdout 01-23): enough for tests of behaviour, not of
    model quality, at a fifth of the rows."""
    return assemble_training_data(SPEC, lake, END, window_days=5, holdout_days=1)


@pytest.fixture()
def writable_lake(flights_lake: Path, tmp_path: Path) -> Lake:
    """A private copy of the demo lake that a test may plant files in."""
    root = tmp_path / "lake"
    shutil.copytree(flights_lake, root)
    return Lake(root.as_uri())


def _expected_join(lake: Lake, days: list[date]) -> pd.DataFrame:
    """The features-labels join computed straight from the partition files (independent code)."""
    frames = []
    for day in days:
        features = pd.read_parquet(lake.partition_file(Zone.VALIDATED, "flights", day), columns=FEATURES)
        labels = pd.read_parquet(lake.partition_file(Zone.LABELS, "flights", day))
        frames.append(features.merge(labels, on="flight_id"))
    return pd.concat(frames, ignore_index=True)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


# --------------------------------------------------------------------------- data assembly


def test_assemble_joins_arrived_labels_and_splits_by_time(lake: Lake, data: TrainingData) -> None:
    # window 01-12..01-25; labels arrive 2 days late, so the last labelled day is 01-23
    assert data.window == (date(2013, 1, 12), END)
    assert list(data.days_used) == _days(date(2013, 1, 12), date(2013, 1, 23))
    assert list(data.holdout_days) == _days(date(2013, 1, 21), date(2013, 1, 23))
    assert list(data.train_days) == _days(date(2013, 1, 12), date(2013, 1, 20))
    expected = _expected_join(lake, list(data.days_used))
    counts = data.counts
    assert counts["rows"] == len(expected) == counts["train_rows"] + counts["holdout_rows"]
    assert counts["positives"] == int(expected["delayed"].sum())
    assert counts["train_positives"] == int(data.train["delayed"].sum())
    assert counts["holdout_positives"] == int(data.holdout["delayed"].sum())
    validated_rows = sum(
        len(pd.read_parquet(lake.partition_file(Zone.VALIDATED, "flights", d))) for d in data.days_used
    )
    assert counts["dropped_unlabeled"] == validated_rows - len(expected) > 0  # cancelled flights have no label
    assert counts["days_awaiting_labels"] == 2 and counts["rows_awaiting_labels"] > 0
    assert counts["future_label_partitions_ignored"] == 0 and counts["days_missing_labels"] == 0
    # time order: every holdout row is later than every train row, and each frame is sorted
    assert data.train["sched_dep"].max() < data.holdout["sched_dep"].min()
    assert data.train["sched_dep"].is_monotonic_increasing and data.holdout["sched_dep"].is_monotonic_increasing
    assert set(data.holdout["sched_dep"].dt.date) == set(data.holdout_days)
    assert list(data.train.columns) == [*FEATURES, "delayed"]
    assert len(data.data_hash) == 64


def test_labels_present_but_not_yet_arrived_are_ignored(lake: Lake) -> None:
    # As of 01-20 the labels of 01-19 and 01-20 are already in this lake (written on 01-21/22):
    # a training on 01-20 must not see them.
    early = assemble_training_data(SPEC, lake, date(2013, 1, 20), window_days=10, holdout_days=2)
    assert early.days_used[-1] == date(2013, 1, 18)
    assert early.counts["future_label_partitions_ignored"] == 2
    assert early.counts["rows"] == len(_expected_join(lake, _days(date(2013, 1, 11), date(2013, 1, 18))))


def test_planted_future_label_file_is_ignored(writable_lake: Lake, data: TrainingData) -> None:
    day = date(2013, 1, 24)  # validated, but its labels are due on 01-26
    assert not writable_lake.has_partition(Zone.LABELS, "flights", day)
    labels, _ = label_table(SPEC, day)
    writable_lake.write_partition(Zone.LABELS, "flights", day, labels)
    planted = assemble_training_data(SPEC, writable_lake, END, window_days=WINDOW, holdout_days=HOLDOUT)
    assert planted.counts["future_label_partitions_ignored"] == 1
    assert day not in planted.days_used
    unchanged = {k: v for k, v in planted.counts.items() if k != "future_label_partitions_ignored"}
    assert unchanged == {k: v for k, v in data.counts.items() if k != "future_label_partitions_ignored"}
    # content hash: same rows from another lake path give the same hash
    assert planted.data_hash == data.data_hash


def test_data_hash_is_deterministic_and_content_based(lake: Lake, data: TrainingData) -> None:
    again = assemble_training_data(SPEC, lake, END, window_days=WINDOW, holdout_days=HOLDOUT)
    assert again.data_hash == data.data_hash
    other = assemble_training_data(SPEC, lake, END - timedelta(days=1), window_days=WINDOW, holdout_days=HOLDOUT)
    assert other.data_hash != data.data_hash


@pytest.mark.parametrize(
    ("end", "window", "holdout", "message"),
    [
        pytest.param(date(2012, 12, 31), 14, 3, "no validated partitions", id="no-validated-days"),
        pytest.param(date(2013, 1, 2), 2, 1, "no labels yet", id="labels-not-arrived"),
        pytest.param(date(2013, 1, 5), 4, 3, "only 2 labelled days", id="too-few-labelled-days"),
    ],
)
def test_insufficient_data_errors_name_model_window_and_cause(
    lake: Lake, end: date, window: int, holdout: int, message: str
) -> None:
    with pytest.raises(InsufficientDataError, match=message) as info:
        assemble_training_data(SPEC, lake, end, window_days=window, holdout_days=holdout)
    start = end - timedelta(days=window - 1)
    assert f"flights: window {start}..{end}" in str(info.value)


def test_single_class_is_refused(writable_lake: Lake) -> None:
    for day in _days(date(2013, 1, 12), date(2013, 1, 23)):
        table = writable_lake.read_table(Zone.LABELS, "flights", day)
        zeros = pa.array(np.zeros(table.num_rows, dtype="int8"))
        writable_lake.write_partition(Zone.LABELS, "flights", day, table.set_column(1, "delayed", zeros))
    with pytest.raises(InsufficientDataError, match=r"single class \[0\]"):
        assemble_training_data(SPEC, writable_lake, END, window_days=WINDOW, holdout_days=HOLDOUT)


# --------------------------------------------------------------------------- reference profile


def test_decile_bins_follow_the_documented_rule() -> None:
    values = np.arange(1000, dtype=float)
    edges = decile_edges(values, 10)
    assert edges[0] == -math.inf and edges[-1] == math.inf and len(edges) == 11
    assert bin_fractions(values, edges) == pytest.approx([0.1] * 10, abs=0.002)
    # edges[i] <= x < edges[i+1]: a value equal to an edge goes up; inf goes to the last bin
    assert bin_fractions(np.array([edges[1], np.inf, np.nan]), edges) == [0.0, 0.5] + [0.0] * 7 + [0.5]
    # ties collapse edges instead of producing empty duplicate bins
    assert decile_edges(np.array([1.0] * 95 + [2.0] * 5), 10) == [-math.inf, 1.0, math.inf]


def test_reference_profile_is_complete_deterministic_and_json(data: TrainingData) -> None:
    scores = np.linspace(0.01, 0.99, len(data.holdout))
    profile = reference_profile(data.holdout, SPEC, scores)
    assert profile == reference_profile(data.holdout, SPEC, scores)
    assert json.loads(json.dumps(profile)) == profile
    assert profile["n_rows"] == len(data.holdout) and profile["spec_hash"] == SPEC.spec_hash()
    for col in SPEC.dataset.features.numeric:
        stats = profile["numeric"][col]
        edges = stats["edges"]
        assert edges[0] == -math.inf and edges[-1] == math.inf and edges == sorted(set(edges))
        assert len(stats["fractions"]) == len(edges) - 1 and sum(stats["fractions"]) == pytest.approx(1.0)
        assert 0.0 <= stats["null_rate"] <= 1.0 and set(stats["quantiles"]) >= {"p01", "p50", "p99"}
    temp = profile["numeric"]["temp"]  # a continuous column: deciles are equal-frequency
    assert max(temp["fractions"]) < 0.2
    for col in SPEC.dataset.features.categorical:
        stats = profile["categorical"][col]
        assert OTHER_CATEGORY in stats["frequencies"] and len(stats["categories"]) <= 50
        assert sum(stats["frequencies"].values()) == pytest.approx(1.0)
    origin = profile["categorical"]["origin"]
    assert origin["categories"] == sorted(
        ["EWR", "JFK", "LGA"], key=lambda c: -int((data.holdout["origin"] == c).sum())
    )
    assert origin["frequencies"][OTHER_CATEGORY] == 0.0 and origin["other_categories"] == []
    dest = profile["categorical"]["dest"]  # more than 50 destinations: the rest is pooled, by name
    assert dest["n_categories"] > 50 and len(dest["categories"]) == 50
    pooled = data.holdout["dest"].isin(dest["other_categories"])
    assert dest["frequencies"][OTHER_CATEGORY] == pytest.approx(pooled.sum() / data.holdout["dest"].notna().sum())
    assert set(dest["other_categories"]) | set(dest["categories"]) == set(data.holdout["dest"].dropna())
    score = profile["score"]
    assert score["sample"] == sorted(score["sample"]) and len(score["sample"]) == min(2000, len(data.holdout))
    assert score["n"] == len(data.holdout) and sum(score["fractions"]) == pytest.approx(1.0)
    assert profile["label"]["positive_rate"] == pytest.approx(data.holdout["delayed"].mean())


# --------------------------------------------------------------------------- search space


def test_search_candidates_are_seeded_within_budget_and_respect_pins() -> None:
    first = _candidates("hist_gradient_boosting", {}, {"max_leaf_nodes": 31}, 6, 42)
    assert first == _candidates("hist_gradient_boosting", {}, {"max_leaf_nodes": 31}, 6, 42)
    assert first != _candidates("hist_gradient_boosting", {}, {"max_leaf_nodes": 31}, 6, 7)
    assert len(first) == 6 and first[0] == {"max_leaf_nodes": 31}
    assert all(c["max_leaf_nodes"] == 31 for c in first)
    assert all(0.03 <= c["learning_rate"] <= 0.3 and 20 <= c["min_samples_leaf"] < 200 for c in first[1:])
    json.dumps(first)  # plain Python values (params are logged and returned in the summary)
    forest = _candidates("random_forest", DEFAULT_PARAMS["random_forest"], {}, 4, 42)
    assert forest[0] == DEFAULT_PARAMS["random_forest"] and all(c["max_depth"] <= 12 for c in forest)
    # nothing left to search: one trial, not budget copies of it
    assert _candidates("logistic_regression", {"C": 1.0}, {"C": 0.5}, 6, 42) == [{"C": 0.5}]


# --------------------------------------------------------------------------- training + MLflow


def test_training_end_to_end_is_tracked_in_mlflow(hgb: TrainResult, data: TrainingData, mlflow_server: str) -> None:
    metrics = hgb.metrics
    assert metrics["roc_auc"] > 0.6, metrics
    assert 0.0 < metrics["pr_auc"] < 1.0 and metrics["pr_auc"] > metrics["base_rate"]
    assert 0.0 < metrics["log_loss"] < 0.7 and 0.0 < metrics["brier"] < 0.25
    assert 0.5 < metrics["accuracy"] <= 1.0 and 0.0 <= metrics["recall"] <= 1.0
    assert hgb.parity["label_agreement"] >= SPEC.gate.parity_label_agreement
    assert hgb.parity["mean_abs_diff"] <= SPEC.gate.parity_mean_abs_diff
    assert hgb.counts == data.counts and hgb.data_hash == data.data_hash
    assert hgb.slice_metrics and all(v["rows"] >= 50 for v in hgb.slice_metrics.values())
    assert {"origin=JFK", "origin=EWR", "origin=LGA"} <= set(hgb.slice_metrics)
    assert hgb.slices_skipped > 0  # small carriers have < 50 holdout rows
    assert len(hgb.search["trials"]) == BUDGET and hgb.search["trials"][0]["params"] == {}
    assert hgb.onnx_bytes and hgb.onnx_size_bytes == len(hgb.onnx_bytes)

    client = MlflowClient(mlflow_server)
    run = client.get_run(hgb.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "train flights 2013-01-25"
    assert client.get_experiment(run.info.experiment_id).name == "airloop-flights"
    for key, value in TAGS.items():
        assert run.data.tags[key] == value
    assert run.data.tags["airloop.data_window"] == "2013-01-12..2013-01-25"
    assert run.data.tags["airloop.data_hash"] == data.data_hash
    assert run.data.tags["airloop.estimator"] == "hist_gradient_boosting"
    assert run.data.tags["airloop.reason"] == REASON
    assert run.data.tags["airloop.parity"] == "passed"
    params = run.data.params
    assert params["estimator"] == "hist_gradient_boosting" and params["search_budget"] == str(BUDGET)
    assert params["data.train_rows"] == str(data.counts["train_rows"])
    assert {f"model.{k}" for k in hgb.params} <= set(params)
    assert run.data.metrics["roc_auc"] == pytest.approx(metrics["roc_auc"])
    assert run.data.metrics[slice_metric_key("roc_auc", "origin", "JFK")] == pytest.approx(
        hgb.slice_metrics["origin=JFK"]["roc_auc"]
    )
    assert run.data.metrics["parity_label_agreement"] == pytest.approx(hgb.parity["label_agreement"])
    # the reference a labelled day is measured against: the mean of the holdout days' ROC AUCs
    from sklearn.metrics import roc_auc_score

    from include.registry.promotion import onnx_scores

    served = onnx_scores(hgb.onnx_bytes, data.holdout, SPEC)
    days = data.holdout[SPEC.dataset.time_column].dt.normalize()
    label = data.holdout[SPEC.dataset.target.name]
    per_day = [roc_auc_score(label[days == d], served[(days == d).to_numpy()]) for d in sorted(days.unique())]
    assert len(per_day) == HOLDOUT == metrics["roc_auc_days"]
    assert metrics["roc_auc_daily"] == pytest.approx(float(np.mean(per_day)), abs=1e-3)
    assert metrics["roc_auc_daily_sd"] == pytest.approx(float(np.std(per_day, ddof=1)), abs=1e-3)
    assert run.data.metrics["roc_auc_daily"] == pytest.approx(metrics["roc_auc_daily"])

    # dataset inputs with content digests
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert len(inputs) == 2
    contexts = {next(t.value for t in i.tags if t.key == "mlflow.data.context") for i in inputs.values()}
    assert contexts == {"training", "evaluation"}
    assert all(len(i.dataset.digest) == 32 for i in inputs.values())
    assert all(
        json.loads(i.dataset.profile)["num_rows"] in (len(data.train), len(data.holdout)) for i in inputs.values()
    )

    # artifacts are really there
    listed = {a.path for a in client.list_artifacts(hgb.run_id)} | {
        a.path for d in ("plots", "candidate") for a in client.list_artifacts(hgb.run_id, d)
    }
    assert {PROFILE_ARTIFACT, IMPORTANCE_ARTIFACT, CALIBRATION_ARTIFACT, ONNX_ARTIFACT} <= listed
    assert {
        IMPORTANCE_DATA_ARTIFACT,
        CALIBRATION_DATA_ARTIFACT,
    } <= listed  # their figures: tests/include/test_explain.py
    with tempfile.TemporaryDirectory() as tmp:
        profile = json.loads(Path(client.download_artifacts(hgb.run_id, PROFILE_ARTIFACT, tmp)).read_text())
        assert profile == json.loads(json.dumps(hgb.reference_profile))
        # Features from the whole training window (under the row cap: every row), scores from the holdout.
        assert profile["n_rows"] == len(data.train) + len(data.holdout)
        assert profile["score_rows"] == profile["score"]["n"] == len(data.holdout)
        # the CBPE calibrator, fitted on the holdout's scores and labels (include/monitoring/cbpe.py)
        assert (profile["calibrator"]["kind"], profile["calibrator"]["rows"]) == ("isotonic", len(data.holdout))
        # its reference estimate is a holdout day's, as a monitored day is one day
        assert profile["calibrator"]["reference_days"] == HOLDOUT
        for png in (IMPORTANCE_ARTIFACT, CALIBRATION_ARTIFACT):
            content = Path(client.download_artifacts(hgb.run_id, png, tmp)).read_bytes()
            assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 5000
        onnx_file = Path(client.download_artifacts(hgb.run_id, ONNX_ARTIFACT, tmp)).read_bytes()
        assert onnx_file == hgb.onnx_bytes

    # one nested run per trial, each with its params and validation score
    trials = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{hgb.run_id}'")
    assert len(trials) == BUDGET
    for trial in trials:
        assert trial.info.status == "FINISHED" and "val_roc_auc" in trial.data.metrics
    best = max(trials, key=lambda r: r.data.metrics["val_roc_auc"])
    assert best.data.metrics["val_roc_auc"] == pytest.approx(hgb.search["best_val_roc_auc"])
    assert sorted(t.info.run_id for t in trials) == sorted(t["run_id"] for t in hgb.search["trials"])

    # the summary is small JSON and round-trips
    summary = hgb.to_summary()
    text = json.dumps(summary)
    assert len(text) < 20_000 and "onnx_bytes" not in summary
    assert TrainResult.from_summary(json.loads(text)).to_summary() == json.loads(text)


def test_same_data_and_spec_give_the_same_model(short_data: TrainingData, mlflow_server: str) -> None:
    first, again = (
        train_model(SPEC, short_data, search_budget=BUDGET, tracking_uri=mlflow_server, tags=TAGS, reason=reason)
        for reason in ("first", "repeat")
    )
    assert again.run_id != first.run_id
    assert len(first.search["trials"]) == BUDGET and first.slice_metrics  # a search ran, slices were measured
    assert again.metrics == first.metrics
    assert again.slice_metrics == first.slice_metrics
    assert again.params == first.params and again.search["best_val_roc_auc"] == first.search["best_val_roc_auc"]
    assert again.feature_importance == first.feature_importance
    assert again.reference_profile == first.reference_profile
    assert again.onnx_bytes == first.onnx_bytes


def test_a_training_without_explanations_gives_the_same_model(data: TrainingData, mlflow_server: str) -> None:
    """``explain=False`` (a drill's retrains) leaves out the importance, the plots, the dataset
    inputs and the fit of a single trial; the model and everything the loop reads are the same."""
    from mlflow import MlflowClient

    full = train_model(SPEC, data, search_budget=1, tracking_uri=mlflow_server, tags=TAGS, reason="full")
    lean = train_model(SPEC, data, search_budget=1, tracking_uri=mlflow_server, tags=TAGS, reason="lean", explain=False)
    assert lean.onnx_bytes == full.onnx_bytes and lean.params == full.params
    assert lean.metrics == full.metrics and lean.slice_metrics == full.slice_metrics
    assert lean.reference_profile == full.reference_profile
    timed = ("onnx_ms_per_1k_rows", "sklearn_ms_per_1k_rows")
    assert {k: v for k, v in lean.parity.items() if k not in timed} == {
        k: v for k, v in full.parity.items() if k not in timed
    }
    assert lean.feature_importance == {} and full.feature_importance
    assert lean.search["trials"] == [] and len(full.search["trials"]) == 1
    client = MlflowClient(mlflow_server)
    assert "plots" in {a.path for a in client.list_artifacts(full.run_id)}
    assert "plots" not in {a.path for a in client.list_artifacts(lean.run_id)}
    assert client.get_run(lean.run_id).inputs.dataset_inputs == []


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_onnx_parity_per_estimator(
    estimator: str,
    data: TrainingData,
    mlflow_server: str,
    request: pytest.FixtureRequest,
) -> None:
    shared = {"hist_gradient_boosting": "hgb", "logistic_regression": "flights_lr"}  # trained once per session
    if estimator in shared:
        result = request.getfixturevalue(shared[estimator])
    else:
        result = train_model(
            SPEC, data, estimator=estimator, search_budget=1, tracking_uri=mlflow_server, tags=TAGS, reason="parity"
        )
    assert result.estimator == estimator
    assert result.parity["n_rows"] == data.counts["holdout_rows"]
    assert result.parity["mean_abs_diff"] <= SPEC.gate.parity_mean_abs_diff
    assert result.parity["label_agreement"] >= SPEC.gate.parity_label_agreement
    assert result.metrics["roc_auc"] > 0.6
    assert MlflowClient(mlflow_server).get_run(result.run_id).data.tags["airloop.parity"] == "passed"


def _counts(client: MlflowClient) -> tuple[int, int]:
    experiment = client.get_experiment_by_name("airloop-flights")
    runs = len(client.search_runs([experiment.experiment_id])) if experiment else 0
    return runs, len(client.search_model_versions("name='flights'"))


def test_unsupported_estimator_fails_before_mlflow(data: TrainingData, mlflow_server: str) -> None:
    client = MlflowClient(mlflow_server)
    before = _counts(client)
    with pytest.raises(UnsupportedEstimatorError, match=r"flights: unsupported estimator 'xgboost'; expected one of"):
        train_model(SPEC, data, estimator="xgboost", tracking_uri=mlflow_server, tags=TAGS, reason="bad")
    assert _counts(client) == before


def test_parity_failure_raises_and_registers_nothing(short_data: TrainingData, mlflow_server: str) -> None:
    strict = SPEC.model_copy(
        update={"gate": SPEC.gate.model_copy(update={"parity_label_agreement": 1.0, "parity_mean_abs_diff": 1e-12})}
    )
    client = MlflowClient(mlflow_server)
    versions_before = _counts(client)[1]
    with pytest.raises(ParityError, match=r"ONNX parity failed for hist_gradient_boosting") as info:
        train_model(strict, short_data, search_budget=1, tracking_uri=mlflow_server, tags=TAGS, reason="strict")
    report, run_id = info.value.report, info.value.run_id
    assert report.n_rows == short_data.counts["holdout_rows"] and report.mean_abs_diff > 1e-12
    assert f"mean |diff| {report.mean_abs_diff:.3g}" in str(info.value)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["airloop.parity"] == "failed" and "ParityError" in run.data.tags["airloop.error"]
    assert run.data.metrics["parity_mean_abs_diff"] == pytest.approx(report.mean_abs_diff)
    assert PROFILE_ARTIFACT not in {a.path for a in client.list_artifacts(run_id)}
    assert client.search_model_versions(f"run_id='{run_id}'") == []
    assert _counts(client)[1] == versions_before


def test_every_estimator_has_default_parameters_and_a_search_space() -> None:
    assert set(DEFAULT_PARAMS) == set(SEARCH_SPACES) == set(ESTIMATORS)


def test_memoized_fits_fit_once_and_equal_a_new_fit() -> None:
    """In a memoized block an equal fit returns the first one's pipeline; any difference (rows,
    parameters, weights) fits again; outside the block every fit fits, to the same numbers."""
    import numpy as np
    import pandas as pd

    from include.training.train import _fit_pipeline, memoized_fits

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=400), "c": pd.Categorical(rng.choice(["u", "v"], size=400))})
    y = (x["a"] + rng.normal(size=400) > 0).astype("int64").to_numpy()
    args = ("hist_gradient_boosting", ["a"], ["c"], {"max_iter": 20}, 7)
    with memoized_fits() as memo:
        first = _fit_pipeline(*args, x, y)
        assert _fit_pipeline(*args, x, y) is first
        assert _fit_pipeline(*args, x.iloc[:300], y[:300]) is not first
        assert _fit_pipeline(*args, x, y, np.ones(400)) is not first
        assert _fit_pipeline("hist_gradient_boosting", ["a"], ["c"], {"max_iter": 21}, 7, x, y) is not first
    assert (memo.hits, memo.misses) == (1, 4)
    again = _fit_pipeline(*args, x, y)
    assert again is not first
    np.testing.assert_array_equal(again.predict_proba(x), first.predict_proba(x))
