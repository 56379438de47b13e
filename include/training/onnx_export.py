"""Build, export to ONNX and parity-check the sklearn pipelines airloop trains.

One module owns the preprocessing so that training (:func:`build_pipeline`), export
(:func:`export_onnx`) and scoring (:func:`onnx_inputs`) cannot drift apart:

* numeric features arrive as one ``float32 [None, 1]`` ONNX input each; categorical
  features as one ``string [None, 1]`` input each. Input names are the column names.
* a missing categorical value (None/NaN/pd.NA) becomes :data:`MISSING_CATEGORY` before
  fitting *and* before scoring (ONNX string tensors cannot hold a null), see
  :func:`prepare_features`. Training must fit on ``prepare_features(frame, ...)``.
* categoricals are one-hot encoded with ``handle_unknown='ignore'`` for every estimator:
  an unseen category scores as "none of the known ones" (all zeros) in sklearn and ONNX.
  HistGradientBoosting's native ``categorical_features`` is not used: skl2onnx 1.20's
  tree converter ignores categorical (bitset) splits and emits them as ``x <= threshold``
  on the ordinal code, so the ONNX model would silently disagree with sklearn.
* HistGradientBoosting gets raw numerics with NaN (it learns where missing values go and
  the converter keeps that routing); LogisticRegression gets median imputation + scaling;
  RandomForest gets median imputation (skl2onnx 1.20 drops the forest's learned NaN
  routing, sklearn-onnx issue #1253, so no NaN may reach the forest).

The ONNX model has outputs ``label`` (int64) and ``probabilities`` (float32 [N, n_classes]);
no ZipMap. Nothing here imports Airflow; heavy imports happen inside functions.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.model_io import OUTPUT_NAMES, onnx_inputs, prepare_features
from include.names import ESTIMATORS, Estimator

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

_ESTIMATOR_CLASSES: dict[str, Estimator] = {
    "HistGradientBoostingClassifier": "hist_gradient_boosting",
    "LogisticRegression": "logistic_regression",
    "RandomForestClassifier": "random_forest",
}


class OnnxExportError(RuntimeError):
    """A pipeline that could not be converted to ONNX; the message names the estimator."""


class UnsupportedEstimatorError(OnnxExportError):
    """An estimator that airloop does not build or export."""


@dataclass(frozen=True)
class ParityReport:
    """How closely the ONNX model reproduces the sklearn pipeline on one frame.

    Differences are over every entry of the probability matrix; labels are decided from
    the positive-class probability and the threshold (binary) or argmax (multiclass) on
    both sides, i.e. the decision scoring actually makes.
    """

    n_rows: int
    max_abs_diff: float
    mean_abs_diff: float
    label_agreement: float
    label_flips: int
    onnx_ms_per_1k_rows: float
    sklearn_ms_per_1k_rows: float


# --------------------------------------------------------------------------- pipeline


def build_pipeline(
    estimator: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    params: dict[str, Any],
    seed: int,
) -> Pipeline:
    """The unfitted ``Pipeline([("preprocess", ColumnTransformer), ("model", estimator)])``.

    ``params`` go to the estimator; ``seed`` always sets its ``random_state``. Fit it on
    ``prepare_features(frame, numeric, categorical)``.
    """
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, categorical = list(numeric), list(categorical)
    _check_columns(numeric, categorical)
    kwargs = {**params, "random_state": seed}
    model: Any
    numeric_step: Any
    if estimator == "hist_gradient_boosting":
        numeric_step = "passthrough"  # HGB handles NaN natively and better than imputation
        model = HistGradientBoostingClassifier(**kwargs)
    elif estimator == "logistic_regression":
        numeric_step = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        model = LogisticRegression(**{"max_iter": 1000, **kwargs})
    elif estimator == "random_forest":
        numeric_step = SimpleImputer(strategy="median")
        model = RandomForestClassifier(**kwargs)
    else:
        raise UnsupportedEstimatorError(f"unsupported estimator {estimator!r}; expected one of {', '.join(ESTIMATORS)}")
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("numeric", numeric_step, numeric))
    if categorical:
        # Dense float32: HGB refuses sparse input, and float32 is what ONNX computes in.
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
        transformers.append(("categorical", encoder, categorical))
    preprocess = ColumnTransformer(transformers, remainder="drop")
    return Pipeline([("preprocess", preprocess), ("model", model)])


# --------------------------------------------------------------------------- export


def export_onnx(
    pipeline: Pipeline,
    numeric: list[str],
    categorical: list[str],
    target_opset: int | None = None,
) -> bytes:
    """Serialize a fitted pipeline from :func:`build_pipeline` to ONNX bytes.

    Raises :class:`UnsupportedEstimatorError` for any other final estimator and
    :class:`OnnxExportError` (with the estimator name and the cause) when conversion fails.
    """
    from sklearn.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline):
        raise UnsupportedEstimatorError(
            f"expected a sklearn Pipeline ending in one of {sorted(_ESTIMATOR_CLASSES)}, got {type(pipeline).__name__}"
        )
    model = pipeline.steps[-1][1]
    name = type(model).__name__
    if name not in _ESTIMATOR_CLASSES:
        raise UnsupportedEstimatorError(
            f"cannot export estimator {name}; supported: {', '.join(sorted(_ESTIMATOR_CLASSES))}"
        )
    numeric, categorical = list(numeric), list(categorical)
    _check_columns(numeric, categorical)
    reserved = sorted(set(OUTPUT_NAMES) & {*numeric, *categorical})
    if reserved:
        # skl2onnx would silently rename the outputs and scoring would look up the wrong ones.
        raise OnnxExportError(f"{name}: feature names clash with ONNX output names: {reserved}")
    is_categorical = getattr(model, "is_categorical_", None)
    if is_categorical is not None and bool(is_categorical.any()):
        # Measured on a synthetic frame: it converts without error yet agrees on 36% of labels.
        raise OnnxExportError(
            f"{name}: native categorical_features cannot be exported (skl2onnx 1.20 turns "
            "categorical splits into numeric thresholds); one-hot encode as build_pipeline does"
        )

    try:
        import onnx
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(pipeline)
        patch_skl2onnx()
        initial_types: list[tuple[str, Any]] = [
            *((col, FloatTensorType([None, 1])) for col in numeric),
            *((col, StringTensorType([None, 1])) for col in categorical),
        ]
        onx = convert_sklearn(
            pipeline,
            initial_types=initial_types,
            target_opset=target_opset,
            options={id(model): {"zipmap": False}},
            name=f"airloop_{_ESTIMATOR_CLASSES[name]}",
        )
        onnx.checker.check_model(onx)
    except Exception as exc:  # any converter/checker failure, reported uniformly
        raise OnnxExportError(f"{name}: ONNX conversion failed: {_short(exc)}") from exc

    outputs = [o.name for o in onx.graph.output]
    if outputs != list(OUTPUT_NAMES):
        raise OnnxExportError(f"{name}: unexpected ONNX outputs {outputs}, expected {list(OUTPUT_NAMES)}")
    return bytes(onx.SerializeToString())


# --------------------------------------------------------------------------- parity


def parity(
    pipeline: Pipeline,
    onnx_bytes: bytes,
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    threshold: float,
) -> ParityReport:
    """Score ``frame`` with the pipeline and with an onnxruntime session and compare."""
    import numpy as np
    import onnxruntime as ort

    if len(frame) == 0:
        raise ValueError("parity needs at least one row")
    features = prepare_features(frame, numeric, categorical)
    feeds = onnx_inputs(frame, numeric, categorical)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])

    def run_onnx() -> np.ndarray:
        return np.asarray(session.run(["probabilities"], feeds)[0])

    def run_sklearn() -> np.ndarray:
        return np.asarray(pipeline.predict_proba(features))

    onnx_proba, onnx_s = _timed(run_onnx, len(frame))
    sk_proba, sk_s = _timed(run_sklearn, len(frame))
    if onnx_proba.shape != sk_proba.shape:
        raise ValueError(f"probability shapes differ: onnx {onnx_proba.shape}, sklearn {sk_proba.shape}")

    diff = np.abs(onnx_proba.astype(np.float64) - sk_proba.astype(np.float64))
    sk_labels = _decide(sk_proba, threshold)
    onnx_labels = _decide(onnx_proba, threshold)
    flips = int(np.count_nonzero(sk_labels != onnx_labels))
    n = len(frame)
    return ParityReport(
        n_rows=n,
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        label_agreement=1.0 - flips / n,
        label_flips=flips,
        onnx_ms_per_1k_rows=onnx_s * 1e6 / n,
        sklearn_ms_per_1k_rows=sk_s * 1e6 / n,
    )


# --------------------------------------------------------------------------- skl2onnx patch

_PATCH_LOCK = threading.Lock()
_PATCH_MARK = "_airloop_bool_to_int"


def patch_skl2onnx() -> None:
    """Make skl2onnx 1.20 convert HistGradientBoosting* under protobuf >= 7.34.

    ``skl2onnx.common.tree_ensemble.add_tree_to_attribute_pairs_hist_gradient_boosting``
    passes each node's ``missing_go_to_left`` straight into the INTS attribute
    ``nodes_missing_value_tracks_true``: Python ``False`` for leaves, ``numpy.uint8`` for
    splits. protobuf 6.x accepted the bool with a DeprecationWarning ("will be rejected in
    7.34.0"); protobuf 7 raises ``TypeError: ... Expected an int, got a boolean``. We wrap
    the module's ``add_node`` (looked up as a module global at call time) to cast that one
    argument with ``int()``: same 0/1 value, so the model is unchanged. Idempotent and
    thread-safe; a no-op if a future skl2onnx drops the argument. Never edits site-packages.
    """
    from skl2onnx.common import tree_ensemble

    with _PATCH_LOCK:
        original = tree_ensemble.add_node
        if getattr(original, _PATCH_MARK, False):
            return
        if "nodes_missing_value_tracks_true" not in inspect.signature(original).parameters:
            return
        tree_ensemble.add_node = _bool_to_int_add_node(original)


def _bool_to_int_add_node(original: Callable[..., Any]) -> Callable[..., Any]:
    name = "nodes_missing_value_tracks_true"
    position = list(inspect.signature(original).parameters).index(name)

    @functools.wraps(original)
    def add_node(*args: Any, **kwargs: Any) -> Any:
        if name in kwargs:  # how skl2onnx 1.20 passes it
            kwargs[name] = int(kwargs[name])
        elif len(args) > position:
            args = (*args[:position], int(args[position]), *args[position + 1 :])
        return original(*args, **kwargs)

    setattr(add_node, _PATCH_MARK, True)
    return add_node


# --------------------------------------------------------------------------- helpers


def _check_columns(numeric: list[str], categorical: list[str]) -> None:
    if not numeric and not categorical:
        raise ValueError("at least one numeric or categorical feature is required")
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise ValueError(f"columns listed as both numeric and categorical: {both}")
    everything = [*numeric, *categorical]
    dupes = sorted({c for c in everything if everything.count(c) > 1})
    if dupes:
        raise ValueError(f"columns listed twice: {dupes}")


def _decide(proba: np.ndarray, threshold: float) -> np.ndarray:
    import numpy as np

    if proba.shape[1] == 2:
        return (proba[:, 1] >= threshold).astype(np.int64)
    return np.asarray(proba.argmax(axis=1))


def _timed(fn: Callable[[], np.ndarray], n_rows: int) -> tuple[np.ndarray, float]:
    """Result and best wall time of ``fn`` after one warm-up. Small frames are timed a few
    more times (up to ~10k rows or 1 s in all) so the per-row figure is not timer noise."""
    result = fn()
    best, spent = math.inf, 0.0
    for _ in range(min(5, math.ceil(10_000 / n_rows))):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
        if spent > 1.0:
            break
    return result, best


def _short(exc: BaseException, limit: int = 500) -> str:
    # skl2onnx errors can dump every tree attribute (megabytes); the chain keeps the rest.
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    if cause is not None:
        text = f"{type(cause).__name__}: {cause} -> {text}"
    return text if len(text) <= limit else text[:limit] + " ..."
