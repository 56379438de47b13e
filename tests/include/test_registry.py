"""Registering challengers in a real MLflow registry: alias, lineage tags, ONNX round trip, idempotency."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import mlflow
import mlflow.artifacts
import numpy as np
import onnxruntime as ort
import pytest
import yaml
from mlflow import MlflowClient

from include.model_io import TrainResult, onnx_inputs, prepare_features
from include.monitoring.monitor import reference_auc_of, reference_spread_of
from include.names import CHALLENGER
from include.registry.mlflow_registry import (
    RegisteredVersion,
    RegistryError,
    get_alias_version,
    load_onnx_bytes,
    register_challenger,
)
from include.spec import get_spec
from include.training.data import TrainingData
from include.training.onnx_export import parity
from tests.flights_model import REASON, TAGS

SPEC = get_spec("flights")
REGISTER_TAGS = {"code_commit": "0123abc", "dag_run_id": "manual__reg", "registered_by": "test"}


@pytest.fixture(scope="module")
def registered(flights_hgb: TrainResult, mlflow_server: str) -> RegisteredVersion:
    return register_challenger(flights_hgb, SPEC, tracking_uri=mlflow_server, tags=REGISTER_TAGS)


def test_register_sets_alias_lineage_tags_and_signature(
    registered: RegisteredVersion,
    flights_hgb: TrainResult,
    mlflow_server: str,
) -> None:
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    assert isinstance(registered.version, int) and registered.name == "flights"
    assert registered.run_id == flights_hgb.run_id
    assert registered.model_uri == f"models:/flights/{registered.version}"
    assert get_alias_version(client, "flights", CHALLENGER) == registered.version

    version = client.get_model_version("flights", str(registered.version))
    assert version.run_id == flights_hgb.run_id
    tags = version.tags
    assert tags["airloop.training_run_id"] == flights_hgb.run_id
    assert tags["airloop.data_window"] == "2013-01-12..2013-01-25"
    assert tags["airloop.data_hash"] == flights_hgb.data_hash
    assert tags["airloop.reason"] == REASON and tags["airloop.estimator"] == "hist_gradient_boosting"
    assert float(tags["metric.roc_auc"]) == pytest.approx(flights_hgb.metrics["roc_auc"], rel=1e-5)
    # the monitor measures a labelled day against a holdout day's AUC, not the pooled holdout's
    daily = flights_hgb.metrics["roc_auc_daily"]
    assert float(tags["metric.roc_auc_daily"]) == pytest.approx(daily, rel=1e-5)
    assert reference_auc_of(tags) == pytest.approx(daily, rel=1e-5)
    assert reference_auc_of({"metric.roc_auc": "0.7"}) == 0.7 and reference_auc_of({}) is None  # older versions
    days = flights_hgb.metrics["roc_auc_days"]
    spread = reference_spread_of(tags)
    assert spread is not None and spread[1] == days >= 2
    assert spread[0] == pytest.approx(flights_hgb.metrics["roc_auc_daily_sd"], rel=1e-5)
    assert float(tags["parity.label_agreement"]) == pytest.approx(flights_hgb.parity["label_agreement"], rel=1e-5)
    assert float(tags["parity.mean_abs_diff"]) == pytest.approx(flights_hgb.parity["mean_abs_diff"], rel=1e-5)
    for key, value in {**TAGS, **REGISTER_TAGS}.items():
        assert tags[key] == value
    assert client.get_run(flights_hgb.run_id).data.tags["airloop.registered_version"] == str(registered.version)

    # The logged MLflow model: tensor signature per input column, explicit pinned requirements.
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=client.get_model_version_download_uri("flights", str(registered.version)),
                dst_path=tmp,
                tracking_uri=mlflow_server,
            )
        )
        mlmodel = yaml.safe_load((local / "MLmodel").read_text())
        requirements = (local / "requirements.txt").read_text().split()
        assert sorted(p.name for p in local.iterdir() if p.suffix in (".onnx", ".data")) == ["model.onnx"]
    inputs = {spec["name"]: spec for spec in json.loads(mlmodel["signature"]["inputs"])}
    assert set(inputs) == set(SPEC.dataset.features.all)
    assert inputs["distance"]["tensor-spec"] == {"dtype": "float32", "shape": [-1, 1]}
    assert inputs["carrier"]["tensor-spec"]["dtype"] == "object"
    outputs = {spec["name"] for spec in json.loads(mlmodel["signature"]["outputs"])}
    assert outputs == {"label", "probabilities"}
    assert "onnx" in mlmodel["flavors"] and "python_function" in mlmodel["flavors"]
    assert any(r.startswith("onnxruntime==") for r in requirements)
    assert any(r.startswith("mlflow==") for r in requirements)


def test_registered_onnx_downloads_and_scores_like_parity_measured(
    registered: RegisteredVersion,
    flights_hgb: TrainResult,
    flights_data: TrainingData,
    mlflow_server: str,
) -> None:
    onnx_bytes = load_onnx_bytes(mlflow_server, "flights", registered.version)
    assert onnx_bytes == flights_hgb.onnx_bytes
    numeric, categorical = SPEC.dataset.features.numeric, SPEC.dataset.features.categorical
    report = parity(
        flights_hgb.pipeline, onnx_bytes, flights_data.holdout, numeric, categorical, SPEC.training.threshold
    )
    assert report.mean_abs_diff == flights_hgb.parity["mean_abs_diff"]
    assert report.max_abs_diff == flights_hgb.parity["max_abs_diff"]
    assert report.label_flips == flights_hgb.parity["label_flips"]
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    proba = session.run(["probabilities"], onnx_inputs(flights_data.holdout, numeric, categorical))[0][:, 1]
    expected = flights_hgb.pipeline.predict_proba(prepare_features(flights_data.holdout, numeric, categorical))[:, 1]
    assert np.abs(proba - expected).mean() == pytest.approx(flights_hgb.parity["mean_abs_diff"], rel=0.2, abs=1e-7)


def test_registration_is_idempotent_per_training_run(
    registered: RegisteredVersion,
    flights_hgb: TrainResult,
    mlflow_server: str,
) -> None:
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    again = register_challenger(flights_hgb, SPEC, tracking_uri=mlflow_server, tags=REGISTER_TAGS)
    assert again == registered
    # a task rerun in a fresh process only has the XCom summary: same answer, nothing new
    from_summary = TrainResult.from_summary(json.loads(json.dumps(flights_hgb.to_summary())))
    assert register_challenger(from_summary, SPEC, tracking_uri=mlflow_server, tags=REGISTER_TAGS) == registered
    versions = client.search_model_versions(f"name='flights' and run_id='{flights_hgb.run_id}'")
    assert [int(v.version) for v in versions] == [registered.version]


def test_challenger_alias_moves_forward_only(
    registered: RegisteredVersion,
    flights_hgb: TrainResult,
    flights_lr: TrainResult,
    mlflow_server: str,
) -> None:
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    newer = flights_lr  # another training of the same window: logistic regression, reason "schedule"
    # registered from the JSON summary alone: the ONNX comes from the run's candidate artifact
    summary_only = TrainResult.from_summary(json.loads(json.dumps(newer.to_summary())))
    assert summary_only.onnx_bytes is None
    second = register_challenger(summary_only, SPEC, tracking_uri=mlflow_server, tags=REGISTER_TAGS)
    assert second.version > registered.version
    assert get_alias_version(client, "flights", CHALLENGER) == second.version
    assert load_onnx_bytes(mlflow_server, "flights", second.version) == newer.onnx_bytes
    # a late retry of the older registration returns its version but leaves the alias alone
    assert register_challenger(flights_hgb, SPEC, tracking_uri=mlflow_server, tags=REGISTER_TAGS) == registered
    assert get_alias_version(client, "flights", CHALLENGER) == second.version


def test_unfinished_or_failed_runs_are_not_registered(flights_hgb: TrainResult, mlflow_server: str) -> None:
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    failed = client.create_run(flights_hgb.experiment_id, run_name="crashed training")
    client.set_terminated(failed.info.run_id, "FAILED")
    summary = {**flights_hgb.to_summary(), "run_id": failed.info.run_id}
    with pytest.raises(RegistryError, match=r"is FAILED with parity None: only finished trainings"):
        register_challenger(TrainResult.from_summary(summary), SPEC, tracking_uri=mlflow_server, tags={})
    assert client.search_model_versions(f"run_id='{failed.info.run_id}'") == []


def test_alias_lookup_normalises_and_tolerates_absence(registered: RegisteredVersion, mlflow_server: str) -> None:
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    assert get_alias_version(client, "flights", "no_such_alias") is None
    assert get_alias_version(client, "no_such_model", CHALLENGER) is None
    # over REST the version arrives as a string; we hand back an int
    raw = client.get_registered_model("flights").aliases[CHALLENGER]
    assert isinstance(raw, str)  # the REST proto declares the alias version a string
    assert int(raw) == get_alias_version(client, "flights", CHALLENGER)


def test_global_tracking_uri_restores_uri_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """MLflow's own helper drops MLFLOW_TRACKING_URI on exit; the hooks fall back on it."""
    from include.registry.mlflow_registry import global_tracking_uri

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    inner = f"sqlite:///{tmp_path / 'inner.db'}"
    with global_tracking_uri(inner):
        assert mlflow.get_tracking_uri() == inner
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5999"
    assert mlflow.get_tracking_uri() == "http://127.0.0.1:5999"


def test_the_references_day_to_day_spread_and_older_versions() -> None:
    daily = {"metric.roc_auc": "0.71", "metric.roc_auc_daily": "0.65", "metric.roc_auc_days": "7"}
    assert reference_spread_of({**daily, "metric.roc_auc_daily_sd": "0.031"}) == (0.031, 7)
    assert reference_spread_of(daily) is None  # trained before the spread was recorded
    assert reference_spread_of({**daily, "metric.roc_auc_daily_sd": "0.031", "metric.roc_auc_days": "1"}) is None
    assert reference_spread_of({**daily, "metric.roc_auc_daily_sd": "nan"}) is None
    # a pooled reference (no daily one) is not a day's: its spread would not say what a day varies by
    assert (
        reference_spread_of({"metric.roc_auc": "0.71", "metric.roc_auc_daily_sd": "0.03", "metric.roc_auc_days": "7"})
        is None
    )
