"""ONNX export of the three supported pipelines, checked against a real onnxruntime session."""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest
from google.protobuf import __version__ as protobuf_version
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from include.model_io import MISSING_CATEGORY, onnx_inputs, prepare_features
from include.names import ESTIMATORS
from include.training import onnx_export
from include.training.onnx_export import (
    OnnxExportError,
    ParityReport,
    UnsupportedEstimatorError,
    build_pipeline,
    export_onnx,
    parity,
)

NUMERIC = ["distance", "hour", "temp", "wind"]
CATEGORICAL = ["carrier", "origin", "dest"]
PARAMS: dict[str, dict[str, object]] = {
    "hist_gradient_boosting": {},
    "logistic_regression": {"C": 1.0},
    "random_forest": {"n_estimators": 30, "max_depth": 8},
}


def make_frame(n: int, seed: int, dests: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Numerics with NaNs (missing temp carries signal), categoricals with None/NaN."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "distance": rng.gamma(2.0, 400.0, n),
            "hour": rng.integers(5, 23, n).astype(float),
            "temp": rng.normal(15, 10, n),
            "wind": rng.exponential(8, n),
            "carrier": rng.choice(["AA", "B6", "DL", "UA", "EV"], n),
            "origin": rng.choice(np.array(["EWR", "JFK", "LGA", None], dtype=object), n, p=[0.3, 0.3, 0.3, 0.1]),
            "dest": rng.choice(dests, n),
        }
    )
    for col, rate in (("distance", 0.05), ("temp", 0.2), ("wind", 0.1)):
        frame.loc[rng.random(n) < rate, col] = np.nan
    frame.loc[rng.random(n) < 0.05, "dest"] = np.nan
    logit = (
        0.15 * (frame["hour"] - 14)
        + 1.2 * frame["temp"].isna()
        + 0.03 * frame["wind"].fillna(8)
        + frame["carrier"].map({"AA": 0.0, "B6": 0.8, "DL": -0.5, "UA": 0.3, "EV": 1.0})
        + 0.7 * frame["origin"].isna()
        - 1.0
    )
    label = (logit + rng.logistic(size=n) > 0).to_numpy().astype(int)
    return frame, label


TRAIN_DESTS = ["ATL", "ORD", "LAX", "BOS", "MIA", "SFO"]


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame | np.ndarray]:
    train, y = make_frame(3000, seed=1, dests=TRAIN_DESTS)
    # Scoring time: same distribution plus a destination never seen in training.
    score, _ = make_frame(2000, seed=2, dests=[*TRAIN_DESTS, "XNA"])
    assert (score["dest"] == "XNA").sum() > 100
    return {"train": train, "y": y, "score": score}


@pytest.fixture(scope="module")
def fitted(data: dict) -> dict[str, Pipeline]:
    features = prepare_features(data["train"], NUMERIC, CATEGORICAL)
    return {
        est: build_pipeline(est, NUMERIC, CATEGORICAL, PARAMS[est], seed=7).fit(features, data["y"])
        for est in ESTIMATORS
    }


@pytest.fixture(scope="module")
def exported(fitted: dict[str, Pipeline]) -> dict[str, bytes]:
    return {est: export_onnx(pipe, NUMERIC, CATEGORICAL) for est, pipe in fitted.items()}


# --------------------------------------------------------------------------- build_pipeline


def test_build_pipeline_preprocessing_per_estimator() -> None:
    hgb = build_pipeline("hist_gradient_boosting", NUMERIC, CATEGORICAL, {"max_iter": 50}, seed=3)
    lr = build_pipeline("logistic_regression", NUMERIC, CATEGORICAL, {}, seed=3)
    rf = build_pipeline("random_forest", NUMERIC, CATEGORICAL, {}, seed=3)

    assert hgb.named_steps["preprocess"].transformers[0][1] == "passthrough"  # HGB sees NaN
    assert [name for name, _ in lr.named_steps["preprocess"].transformers[0][1].steps] == ["impute", "scale"]
    assert type(rf.named_steps["preprocess"].transformers[0][1]).__name__ == "SimpleImputer"
    for pipe in (hgb, lr, rf):
        name, encoder, columns = pipe.named_steps["preprocess"].transformers[1]
        assert (name, columns) == ("categorical", CATEGORICAL)
        assert encoder.handle_unknown == "ignore"
        assert pipe.named_steps["model"].random_state == 3
    assert hgb.named_steps["model"].max_iter == 50
    assert lr.named_steps["model"].max_iter == 1000


def test_build_pipeline_seed_wins_over_params() -> None:
    pipe = build_pipeline("random_forest", NUMERIC, CATEGORICAL, {"random_state": 1, "n_estimators": 5}, seed=9)
    assert pipe.named_steps["model"].random_state == 9
    assert pipe.named_steps["model"].n_estimators == 5


def test_build_pipeline_rejects_unknown_estimator() -> None:
    with pytest.raises(UnsupportedEstimatorError, match="'xgboost'"):
        build_pipeline("xgboost", NUMERIC, CATEGORICAL, {}, seed=0)


# --------------------------------------------------------------------------- inputs


def test_onnx_inputs_types_shapes_and_missing_placeholder() -> None:
    frame = pd.DataFrame(
        {
            "x": pd.array([1.5, None, 3], dtype="Float64"),
            "n": pd.array([1, pd.NA, 2], dtype="Int64"),
            "c": ["a", None, np.nan],
            "d": pd.Series(["u", pd.NA, "v"], dtype="string"),
        }
    )
    feeds = onnx_inputs(frame, ["x", "n"], ["c", "d"])

    assert list(feeds) == ["x", "n", "c", "d"]
    assert feeds["x"].dtype == np.float32 and feeds["x"].shape == (3, 1)
    np.testing.assert_array_equal(feeds["x"][:, 0], np.array([1.5, np.nan, 3.0], dtype=np.float32))
    np.testing.assert_array_equal(feeds["n"][:, 0], np.array([1.0, np.nan, 2.0], dtype=np.float32))
    assert feeds["c"].dtype == object and feeds["c"].shape == (3, 1)
    assert feeds["c"][:, 0].tolist() == ["a", MISSING_CATEGORY, MISSING_CATEGORY]
    assert feeds["d"][:, 0].tolist() == ["u", MISSING_CATEGORY, "v"]

    # Training sees the very same values (float64 instead of float32).
    prepared = prepare_features(frame, ["x", "n"], ["c", "d"])
    assert prepared["c"].tolist() == feeds["c"][:, 0].tolist()
    assert prepared["d"].tolist() == feeds["d"][:, 0].tolist()
    assert prepared["x"].dtype == np.float64 and np.isnan(prepared["x"].iloc[1])


def test_onnx_inputs_names_missing_columns() -> None:
    with pytest.raises(KeyError, match="dest"):
        onnx_inputs(pd.DataFrame({"distance": [1.0]}), ["distance"], ["dest"])


# --------------------------------------------------------------------------- export + parity


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_export_graph_interface(estimator: str, exported: dict[str, bytes]) -> None:
    model = onnx.load_from_string(exported[estimator])
    onnx.checker.check_model(model)

    assert [i.name for i in model.graph.input] == NUMERIC + CATEGORICAL
    elem = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    assert {elem[c] for c in NUMERIC} == {onnx.TensorProto.FLOAT}
    assert {elem[c] for c in CATEGORICAL} == {onnx.TensorProto.STRING}
    for inp in model.graph.input:
        assert inp.type.tensor_type.shape.dim[1].dim_value == 1
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]  # zipmap off
    assert "ZipMap" not in {node.op_type for node in model.graph.node}


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_parity_on_unseen_category_and_nans(
    estimator: str, data: dict, fitted: dict[str, Pipeline], exported: dict[str, bytes]
) -> None:
    score = data["score"]
    report = parity(fitted[estimator], exported[estimator], score, NUMERIC, CATEGORICAL, threshold=0.5)

    assert isinstance(report, ParityReport)
    assert report.n_rows == len(score) == 2000
    assert report.mean_abs_diff < 1e-4
    assert report.max_abs_diff < 1e-3
    assert report.label_agreement >= 0.999
    assert report.label_flips == round((1 - report.label_agreement) * report.n_rows)
    assert report.onnx_ms_per_1k_rows > 0 and report.sklearn_ms_per_1k_rows > 0
    # The model is not trivial: both labels occur, so agreement means something.
    proba = fitted[estimator].predict_proba(prepare_features(score, NUMERIC, CATEGORICAL))[:, 1]
    assert 0.1 < (proba >= 0.5).mean() < 0.9


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_parity_on_rows_with_missing_values_only(
    estimator: str, data: dict, fitted: dict[str, Pipeline], exported: dict[str, bytes]
) -> None:
    """NaN routing and unseen categories are where converters go wrong; check them alone."""
    score = data["score"]
    hard = score[score["temp"].isna() | score["origin"].isna() | (score["dest"] == "XNA")]
    assert len(hard) > 500
    report = parity(fitted[estimator], exported[estimator], hard, NUMERIC, CATEGORICAL, threshold=0.5)
    assert report.max_abs_diff < 1e-3
    assert report.label_flips <= 1


def test_onnx_label_output_matches_sklearn_predict(
    data: dict, fitted: dict[str, Pipeline], exported: dict[str, bytes]
) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(exported["hist_gradient_boosting"], providers=["CPUExecutionProvider"])
    labels, proba = session.run(None, onnx_inputs(data["score"], NUMERIC, CATEGORICAL))
    expected = fitted["hist_gradient_boosting"].predict(prepare_features(data["score"], NUMERIC, CATEGORICAL))
    assert proba.shape == (2000, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (labels == expected).mean() >= 0.999


def test_target_opset_is_honoured(fitted: dict[str, Pipeline], exported: dict[str, bytes]) -> None:
    """skl2onnx stamps the highest opset the graph needs, capped by target_opset."""

    def main_opset(blob: bytes) -> int:
        return {o.domain: o.version for o in onnx.load_from_string(blob).opset_import}[""]

    assert main_opset(exported["hist_gradient_boosting"]) > 13
    capped = export_onnx(fitted["hist_gradient_boosting"], NUMERIC, CATEGORICAL, target_opset=13)
    assert main_opset(capped) <= 13


def test_parity_rejects_empty_frame(data: dict, fitted: dict[str, Pipeline], exported: dict[str, bytes]) -> None:
    with pytest.raises(ValueError, match="at least one row"):
        parity(
            fitted["logistic_regression"],
            exported["logistic_regression"],
            data["score"].iloc[:0],
            NUMERIC,
            CATEGORICAL,
            0.5,
        )


# --------------------------------------------------------------------------- errors


def test_unsupported_estimator_is_named(data: dict) -> None:
    pipe = build_pipeline("random_forest", NUMERIC, CATEGORICAL, {}, seed=0)
    pipe.steps[-1] = ("model", GradientBoostingClassifier(n_estimators=5))
    pipe.fit(prepare_features(data["train"], NUMERIC, CATEGORICAL), data["y"])
    with pytest.raises(UnsupportedEstimatorError, match="GradientBoostingClassifier"):
        export_onnx(pipe, NUMERIC, CATEGORICAL)


def test_bare_estimator_is_unsupported() -> None:
    with pytest.raises(UnsupportedEstimatorError, match="HistGradientBoostingClassifier"):
        export_onnx(HistGradientBoostingClassifier(), NUMERIC, CATEGORICAL)  # type: ignore[arg-type]


def test_conversion_failure_names_estimator_and_cause() -> None:
    unfitted = build_pipeline("hist_gradient_boosting", NUMERIC, CATEGORICAL, {}, seed=0)
    with pytest.raises(OnnxExportError, match="HistGradientBoostingClassifier.*NotFittedError") as info:
        export_onnx(unfitted, NUMERIC, CATEGORICAL)
    assert type(info.value.__cause__).__name__ == "NotFittedError"
    assert not isinstance(info.value, UnsupportedEstimatorError)


def test_native_categorical_hgb_is_refused(data: dict) -> None:
    """It would convert, but skl2onnx emits categorical splits as thresholds: wrong scores."""
    pipe = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [("numeric", "passthrough", NUMERIC), ("categorical", OrdinalEncoder(), ["carrier"])]
                ),
            ),
            ("model", HistGradientBoostingClassifier(categorical_features=[len(NUMERIC)], max_iter=10)),
        ]
    ).fit(prepare_features(data["train"], NUMERIC, ["carrier"]), data["y"])
    with pytest.raises(OnnxExportError, match="native categorical"):
        export_onnx(pipe, NUMERIC, ["carrier"])


def test_feature_named_like_an_output_is_refused(data: dict) -> None:
    frame = data["train"].rename(columns={"temp": "label"})
    numeric = ["distance", "hour", "label", "wind"]
    pipe = build_pipeline("logistic_regression", numeric, CATEGORICAL, {}, seed=0)
    pipe.fit(prepare_features(frame, numeric, CATEGORICAL), data["y"])
    with pytest.raises(OnnxExportError, match="label"):
        export_onnx(pipe, numeric, CATEGORICAL)


# --------------------------------------------------------------------------- skl2onnx patch


def _protobuf_rejects_bool_in_int_fields() -> bool:
    major, minor = (int(p) for p in protobuf_version.split(".")[:2])
    return (major, minor) >= (7, 34)  # 6.x only warned ("will be rejected in 7.34.0")


def test_patch_is_idempotent_and_casts_to_int() -> None:
    from skl2onnx.common import tree_ensemble

    onnx_export.patch_skl2onnx()
    patched = tree_ensemble.add_node
    onnx_export.patch_skl2onnx()
    assert tree_ensemble.add_node is patched  # not wrapped twice
    assert getattr(patched, "__wrapped__", None) is not None

    attrs = tree_ensemble.get_default_tree_classifier_attribute_pairs()
    common = (attrs, True, 0, 1.0)
    tail = ("BRANCH_LEQ", 0.5, 1, 2, None, 0, False)
    keywords = {"adjust_threshold_for_sklearn": False, "dtype": np.float32}
    patched(*common, 0, 0, *tail, **keywords, nodes_missing_value_tracks_true=False)  # skl2onnx's call style
    patched(*common, 1, 0, *tail, **keywords, nodes_missing_value_tracks_true=np.uint8(1))
    patched(*common, 2, 0, *tail, False, np.float32, True)  # positional
    assert attrs["nodes_missing_value_tracks_true"] == [0, 1, 1]
    assert {type(v) for v in attrs["nodes_missing_value_tracks_true"]} == {int}


@pytest.mark.skipif(not _protobuf_rejects_bool_in_int_fields(), reason="only protobuf >= 7.34 rejects bools")
def test_hgb_export_fails_without_the_patch(monkeypatch: pytest.MonkeyPatch, fitted: dict[str, Pipeline]) -> None:
    """Shows why patch_skl2onnx exists. If this starts failing because the unpatched export
    works, skl2onnx fixed the bug upstream: delete patch_skl2onnx and this test."""
    from skl2onnx.common import tree_ensemble

    onnx_export.patch_skl2onnx()
    monkeypatch.setattr(tree_ensemble, "add_node", tree_ensemble.add_node.__wrapped__)
    monkeypatch.setattr(onnx_export, "patch_skl2onnx", lambda: None)
    with pytest.raises(OnnxExportError, match="Expected an int, got a boolean"):
        export_onnx(fitted["hist_gradient_boosting"], NUMERIC, CATEGORICAL)
