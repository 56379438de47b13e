"""Train a challenger: seeded search, refit, holdout evaluation, ONNX export and parity, all tracked in MLflow.

:func:`train_model` takes assembled :class:`~include.training.data.TrainingData` and

1. runs a seeded random search of ``search_budget`` trials over a small space per estimator
   (:data:`SEARCH_SPACES`), each fitted on the earlier 80% of the train rows and scored
   (ROC AUC) on the later 20%: a time-ordered validation slice. Every trial is a nested
   MLflow run. Why not ``HalvingRandomSearchCV`` or optuna: optuna is an extra dependency;
   halving search cross-validates on folds that ignore time order and fits a varying
   number of models per candidate, so its cost and its "budget" are hard to state. Here
   ``budget == trials == nested runs == fits``, and the same seed gives the same candidates.
   Trial 0 is always the default parameters (so ``search_budget=1`` means "no search").
2. refits the best parameters on all train rows and evaluates on the holdout: ROC AUC,
   PR AUC, log loss, Brier, accuracy/recall/precision at ``spec.training.threshold``; and
   ROC AUC, PR AUC and recall per slice (``spec.dataset.slice_columns``; slices under 50
   rows or with one class are skipped and counted). MLflow gets each slice's ROC AUC and
   row count as metrics; all slice figures are in the run's ``slice_metrics.json``.
3. exports ONNX with :mod:`include.training.onnx_export` and checks parity on the holdout
   against ``spec.gate`` tolerances: a failure marks the run FAILED and raises
   :class:`ParityError`; nothing is registered (registration is a separate step,
   :func:`include.registry.mlflow_registry.register_challenger`).
4. logs the reference profile (drift monitor), a permutation-importance and a calibration
   plot with their figures as JSON beside them (the model card reads those), the ONNX file
   (``candidate/model.onnx``, so a later task can register from the JSON summary alone) and the dataset inputs (with content digests) to the parent run.

MLflow is used only through an explicit ``MlflowClient(tracking_uri)``: no global tracking
URI, no active run, so concurrent trainings in one process cannot interfere.

MLflow metric names may not contain ``=`` (only alphanumerics, ``_ - . / : `` and space):
slice metrics are logged as ``roc_auc__slice__origin.JFK`` (see :func:`slice_metric_key`);
:attr:`TrainResult.slice_metrics` keeps the readable ``origin=JFK`` keys.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.model_io import TrainResult
from include.names import (
    CALIBRATION_ARTIFACT,
    CALIBRATION_DATA_ARTIFACT,
    ESTIMATORS,
    IMPORTANCE_ARTIFACT,
    IMPORTANCE_DATA_ARTIFACT,
    ONNX_ARTIFACT,
    PROFILE_ARTIFACT,
    SLICES_ARTIFACT,
    Tag,
)
from include.sampling import sample_rows
from include.spec import ModelSpec
from include.training.data import TrainingData, frame_hash
from include.training.onnx_export import (
    ParityReport,
    UnsupportedEstimatorError,
    build_pipeline,
    export_onnx,
    parity,
    prepare_features,
)
from include.training.profile import add_calibrator, reference_profile
from include.unique import unique_by

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

VALIDATION_FRACTION = 0.2
MIN_SLICE_ROWS = 50
IMPORTANCE_MAX_ROWS = 5000
IMPORTANCE_REPEATS = 3
SLICE_METRICS_IN_MLFLOW = ("roc_auc", "rows")
SLICE_SEPARATOR = "__slice__"

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "hist_gradient_boosting": {},
    "logistic_regression": {"C": 1.0},
    # sklearn's forest defaults grow trees to purity: a 100 MB ONNX file on 70k rows.
    "random_forest": {"n_estimators": 100, "max_depth": 10, "min_samples_leaf": 20, "max_features": "sqrt"},
}
"""Trial 0 of every search, and the parameters when ``search_budget=1``."""

SEARCH_SPACES: dict[str, dict[str, tuple[str, Any, Any] | list[Any]]] = {
    # ("loguniform"|"randint", low, high) or a list of choices; randint's high is exclusive.
    "hist_gradient_boosting": {
        "learning_rate": ("loguniform", 0.03, 0.3),
        "max_leaf_nodes": ("randint", 15, 64),
        "min_samples_leaf": ("randint", 20, 200),
        "l2_regularization": ("loguniform", 1e-3, 10.0),
    },
    "logistic_regression": {
        "C": ("loguniform", 1e-3, 10.0),
    },
    "random_forest": {
        "n_estimators": ("randint", 50, 151),
        "max_depth": [6, 8, 10, 12],
        "min_samples_leaf": ("randint", 5, 100),
        "max_features": ["sqrt", 0.5],
    },
}
"""Small, documented spaces that fit a 2-core machine. Keys pinned in ``spec.training.params``
are left out of the search."""


@dataclass
class FitMemo:
    """The fits of a :func:`memoized_fits` block (at most :data:`FIT_MEMO_SIZE`, oldest out)."""

    fits: dict[str, Pipeline] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0


_FIT_MEMO: ContextVar[FitMemo | None] = ContextVar("airloop_fit_memo", default=None)
FIT_MEMO_SIZE = 64


@contextmanager
def memoized_fits() -> Iterator[FitMemo]:
    """Within the block, a fit whose estimator, parameters, seed, features, rows, labels and
    weights are all equal to an earlier fit's returns that fitted pipeline instead of fitting
    again (a fit is deterministic in them). For callers that train the same window many times
    over, as a replay's policies and a drill's faulted copies do; the MLflow runs are logged
    as before (only a hit's ``fit_s`` is near zero). Outside such a block every fit fits."""
    memo = FitMemo()
    token = _FIT_MEMO.set(memo)
    try:
        yield memo
    finally:
        _FIT_MEMO.reset(token)


def _fit_key(
    estimator: str,
    numeric: list[str],
    categorical: list[str],
    params: dict[str, Any],
    seed: int,
    x: pd.DataFrame,
    y: np.ndarray,
    sample_weight: np.ndarray | None,
) -> str:
    import hashlib
    import json

    import numpy as np
    import pandas as pd

    digest = hashlib.sha256()
    head = [estimator, numeric, categorical, sorted(params.items()), seed, list(x.columns), [str(t) for t in x.dtypes]]
    digest.update(json.dumps(head, default=repr).encode())
    digest.update(pd.util.hash_pandas_object(x, index=True).to_numpy().tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    digest.update(b"-" if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=float).tobytes())
    return digest.hexdigest()


def _fit_pipeline(
    estimator: str,
    numeric: list[str],
    categorical: list[str],
    params: dict[str, Any],
    seed: int,
    x: pd.DataFrame,
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    weighted: bool = True,
) -> Pipeline:
    """``build_pipeline(...)`` fitted on ``x, y`` (with ``model__sample_weight`` when
    ``weighted``), or the equal fit of an enclosing :func:`memoized_fits` block."""
    memo = _FIT_MEMO.get()
    key = None
    if memo is not None:
        key = _fit_key(estimator, numeric, categorical, params, seed, x, y, sample_weight)
        if key in memo.fits:
            memo.hits += 1
            log.info("fit of %s on %s rows: the same fit as before (memoized)", estimator, len(x))
            return memo.fits[key]
    pipeline = build_pipeline(estimator, numeric, categorical, params, seed)
    if weighted:
        pipeline.fit(x, y, model__sample_weight=sample_weight)
    else:
        pipeline.fit(x, y)
    if memo is not None and key is not None:
        memo.misses += 1
        if len(memo.fits) >= FIT_MEMO_SIZE:
            memo.fits.pop(next(iter(memo.fits)))
        memo.fits[key] = pipeline
    return pipeline


HOLDOUT_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "recall", "precision")


class TrainingError(RuntimeError):
    """Training could not produce a usable model; the message names the model and step."""


class ParityError(TrainingError):
    """The ONNX model does not reproduce the sklearn pipeline within ``spec.gate`` tolerances."""

    def __init__(self, message: str, report: ParityReport, run_id: str) -> None:
        super().__init__(message)
        self.report = report
        self.run_id = run_id


def slice_metric_key(metric: str, column: str, value: str) -> str:
    """``roc_auc__slice__origin.JFK``: MLflow rejects ``=`` in metric names."""
    return f"{metric}{SLICE_SEPARATOR}{column}.{_metric_safe(value)}"


def train_model(
    spec: ModelSpec,
    data: TrainingData,
    *,
    estimator: str | None = None,
    search_budget: int | None = None,
    seed: int | None = None,
    params: dict[str, Any] | None = None,
    tracking_uri: str,
    experiment: str | None = None,
    tags: dict[str, str],
    reason: str,
    threads: int | None = None,
    sample_weight: np.ndarray | None = None,
    explain: bool = True,
) -> TrainResult:
    """Search, fit, evaluate, export and parity-check a model; track it all in MLflow.

    ``params`` skips the search and trains exactly these (over :data:`DEFAULT_PARAMS` and the
    spec's pinned params). ``spec.training.params`` pin hyperparameters of the spec's estimator
    (the search leaves them alone); they are ignored when ``estimator`` overrides the spec's.

    ``threads`` caps OpenMP/BLAS threads while training; ``None`` keeps the libraries'
    defaults. Results do not depend on it. On a shared 2-core machine one thread was faster
    (HGB fit on 63k rows: 8.5 s vs 18-35 s; logistic regression 2-10x), because spinning
    OpenMP workers fight other processes for the cores. ``sample_weight`` (one per row of
    ``data.train``) weights the final fit; the search ranks candidates unweighted (see
    :mod:`include.training.break_window`). Raises :class:`UnsupportedEstimatorError`
    before touching MLflow, :class:`ParityError` after marking the run FAILED.

    ``explain=False`` leaves out what only a person reads: the permutation importance (and its
    plot), the calibration plot, the dataset inputs of the run and, with ``search_budget=1``,
    the fit of the single trial (its validation ROC AUC; the candidate is chosen anyway): about
    half of a one-trial training's time on flights. The model, its holdout metrics, profile
    and ONNX file are the same. A drill's many retrains use it.

    Stages: :func:`_prepare` -> :func:`_choose_params` (search) -> :func:`_fit_and_evaluate`
    -> :func:`_export_with_parity` -> :func:`_log_outcome`, each returning a small frozen record.
    """
    from mlflow import MlflowClient

    prep = _prepare(spec, data, estimator, search_budget, seed)
    client = MlflowClient(tracking_uri)
    run = _start_run(client, spec, data, prep, experiment=experiment, tags=tags, reason=reason)
    with _thread_limit(threads), _run_failure_guard(client, run.run_id):
        _log_inputs(client, run.run_id, spec, data, prep, threads, datasets=explain)
        searched = _choose_params(client, run, spec, prep, params, explain=explain)
        fitted = _fit_and_evaluate(spec, prep, searched.params, sample_weight)
        exported = _export_with_parity(client, run.run_id, spec, data, prep, fitted)
        logged = _log_outcome(client, run.run_id, spec, data, prep, fitted, exported, searched, explain=explain)
        client.set_terminated(run.run_id, "FINISHED")

    log.info(
        "%s: %s run %s: holdout roc_auc %.4f, pr_auc %.4f; parity mean |diff| %.2e, %s flips; %.1f s total",
        spec.name,
        prep.estimator,
        run.run_id,
        fitted.metrics["roc_auc"],
        fitted.metrics["pr_auc"],
        exported.report.mean_abs_diff,
        exported.report.label_flips,
        logged.timings["total_s"],
    )
    return TrainResult(
        model=spec.name,
        run_id=run.run_id,
        experiment_id=run.experiment_id,
        estimator=prep.estimator,
        params=searched.params,
        metrics=fitted.metrics,
        slice_metrics=fitted.slice_metrics,
        slices_skipped=fitted.slices_skipped,
        parity=exported.figures,
        counts=dict(data.counts),
        window=run.window,
        data_hash=data.data_hash,
        spec_hash=spec.spec_hash(),
        search=searched.search,
        timings={k: round(v, 4) for k, v in logged.timings.items()},
        feature_importance=logged.importance["mean"],
        tags=run.tags,
        reason=reason,
        onnx_size_bytes=len(exported.onnx_bytes),
        onnx_bytes=exported.onnx_bytes,
        reference_profile=logged.profile,
        pipeline=fitted.pipeline,
    )


@dataclass(frozen=True, eq=False)
class _Prepared:
    """The checked settings of one training and its features as the pipeline sees them."""

    estimator: str
    budget: int
    seed: int
    threshold: float
    numeric: list[str]
    categorical: list[str]
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_hold: pd.DataFrame
    y_hold: np.ndarray
    hold_days: np.ndarray
    """The partition day of each holdout row (the time column's date): daily reference AUCs."""
    started: float
    """``time.perf_counter()`` when the training began (for ``total_s``)."""


def _prepare(
    spec: ModelSpec, data: TrainingData, estimator: str | None, search_budget: int | None, seed: int | None
) -> _Prepared:
    """Check the request against the spec and build the train and holdout features; no MLflow yet."""
    estimator = estimator or spec.training.estimator
    if estimator not in ESTIMATORS:
        raise UnsupportedEstimatorError(
            f"{spec.name}: unsupported estimator {estimator!r}; expected one of {', '.join(ESTIMATORS)}"
        )
    if data.model != spec.name:
        raise ValueError(f"training data is for model {data.model!r}, spec is {spec.name!r}")
    budget = search_budget if search_budget is not None else spec.training.search_budget
    if budget < 1:
        raise ValueError(f"{spec.name}: search_budget must be >= 1, got {budget}")
    numeric, categorical = list(spec.dataset.features.numeric), list(spec.dataset.features.categorical)
    label = spec.dataset.target.name
    started = time.perf_counter()
    return _Prepared(
        estimator=estimator,
        budget=budget,
        seed=spec.training.seed if seed is None else seed,
        threshold=spec.training.threshold,
        numeric=numeric,
        categorical=categorical,
        x_train=prepare_features(data.train, numeric, categorical),
        y_train=data.train[label].to_numpy(dtype="int64"),
        x_hold=prepare_features(data.holdout, numeric, categorical),
        y_hold=data.holdout[label].to_numpy(dtype="int64"),
        hold_days=_days_of(data.holdout[spec.dataset.time_column]),
        started=started,
    )


@dataclass(frozen=True)
class _Run:
    """The MLflow parent run of one training."""

    experiment_id: str
    run_id: str
    window: tuple[str, str]
    tags: dict[str, str]


def _start_run(
    client: MlflowClient,
    spec: ModelSpec,
    data: TrainingData,
    prep: _Prepared,
    *,
    experiment: str | None,
    tags: dict[str, str],
    reason: str,
) -> _Run:
    experiment_id = _experiment_id(client, experiment or f"airloop-{spec.name}", spec.name)
    window = (data.window[0].isoformat(), data.window[1].isoformat())
    run_tags = {
        **{str(k): str(v) for k, v in tags.items()},
        Tag.MODEL: spec.name,
        Tag.ESTIMATOR: prep.estimator,
        Tag.DATA_WINDOW: f"{window[0]}..{window[1]}",
        Tag.DATA_HASH: data.data_hash,
        Tag.SPEC_HASH: spec.spec_hash(),
        Tag.REASON: reason,
        Tag.SEED: str(prep.seed),
    }
    run = client.create_run(experiment_id, run_name=f"train {spec.name} {window[1]}", tags=run_tags)
    log.info(
        "%s: training %s on %s train / %s holdout rows (window %s..%s), budget %s, run %s",
        spec.name,
        prep.estimator,
        len(prep.x_train),
        len(prep.x_hold),
        window[0],
        window[1],
        prep.budget,
        run.info.run_id,
    )
    return _Run(experiment_id=experiment_id, run_id=run.info.run_id, window=window, tags=run_tags)


def _log_inputs(
    client: MlflowClient,
    run_id: str,
    spec: ModelSpec,
    data: TrainingData,
    prep: _Prepared,
    threads: int | None,
    *,
    datasets: bool = True,
) -> None:
    _log_params(
        client,
        run_id,
        {
            "estimator": prep.estimator,
            "seed": prep.seed,
            "search_budget": prep.budget,
            "threads": threads if threads is not None else "default",
            "threshold": prep.threshold,
            "window_days": (data.window[1] - data.window[0]).days + 1,
            "holdout_days": len(data.holdout_days),
            "train_days": len(data.train_days),
            "label_delay_days": spec.dataset.label_delay_days,
            "numeric_features": ",".join(prep.numeric),
            "categorical_features": ",".join(prep.categorical),
            **{f"data.{k}": v for k, v in data.counts.items()},
        },
    )
    if datasets:
        _log_datasets(client, run_id, data)


@dataclass(frozen=True)
class _Searched:
    params: dict[str, Any]
    """The parameters the final model is fitted with."""
    search: dict[str, Any]
    seconds: float


def _choose_params(
    client: MlflowClient,
    run: _Run,
    spec: ModelSpec,
    prep: _Prepared,
    params: dict[str, Any] | None,
    *,
    explain: bool = True,
) -> _Searched:
    """Explicit ``params``, or the best of a seeded search (one nested run per trial). A
    one-trial search chooses its only candidate whatever it scores: without ``explain`` that
    trial's fit (only its validation ROC AUC is logged) is left out."""
    # The spec's params are for the spec's estimator; an estimator override starts clean.
    pins = dict(spec.training.params) if prep.estimator == spec.training.estimator else {}
    t0 = time.perf_counter()
    if params is not None:
        best_params = {**DEFAULT_PARAMS[prep.estimator], **pins, **params}
        search: dict[str, Any] = {"skipped": "explicit params", "best_params": best_params, "trials": []}
    elif prep.budget == 1 and not explain:
        _validation_split(spec, prep.x_train, prep.y_train)  # refuses what the search would refuse
        best_params = _candidates(prep.estimator, DEFAULT_PARAMS[prep.estimator], pins, 1, prep.seed)[0]
        search = {"skipped": "one trial, not evaluated (explain=False)", "best_params": best_params, "trials": []}
    else:
        search = _search(
            client,
            run.experiment_id,
            run.run_id,
            prep.estimator,
            pins,
            spec,
            prep.x_train,
            prep.y_train,
            prep.budget,
            prep.seed,
            prep.numeric,
            prep.categorical,
        )
        best_params = search["best_params"]
    seconds = time.perf_counter() - t0
    _log_params(client, run.run_id, {f"model.{k}": v for k, v in best_params.items()})
    return _Searched(params=best_params, search=search, seconds=seconds)


@dataclass(frozen=True, eq=False)
class _Fitted:
    pipeline: Pipeline
    proba: np.ndarray
    """Positive-class probabilities on the holdout."""
    metrics: dict[str, float]
    slice_metrics: dict[str, dict[str, float]]
    slices_skipped: int
    fit_s: float
    evaluate_s: float


def _fit_and_evaluate(
    spec: ModelSpec, prep: _Prepared, best_params: dict[str, Any], sample_weight: np.ndarray | None = None
) -> _Fitted:
    """Refit on all train rows (weighted by ``sample_weight`` when given); holdout and per-slice metrics."""
    t0 = time.perf_counter()
    pipeline = _fit_pipeline(
        prep.estimator,
        prep.numeric,
        prep.categorical,
        best_params,
        prep.seed,
        prep.x_train,
        prep.y_train,
        sample_weight,
    )
    fit_s = time.perf_counter() - t0
    log.info(
        "%s: final fit on %s rows in %.1f s (%.0f rows/s)",
        spec.name,
        len(prep.x_train),
        fit_s,
        len(prep.x_train) / max(fit_s, 1e-9),
    )
    t0 = time.perf_counter()
    proba = pipeline.predict_proba(prep.x_hold)[:, 1]
    metrics = holdout_metrics(prep.y_hold, proba, prep.threshold)
    metrics.update(daily_metrics(prep.y_hold, proba, prep.hold_days, spec.drift.min_rows))
    slices, skipped = _slice_metrics(prep.x_hold, prep.y_hold, proba, spec.dataset.slice_columns, prep.threshold)
    return _Fitted(
        pipeline=pipeline,
        proba=proba,
        metrics=metrics,
        slice_metrics=slices,
        slices_skipped=skipped,
        fit_s=fit_s,
        evaluate_s=time.perf_counter() - t0,
    )


@dataclass(frozen=True)
class _Exported:
    onnx_bytes: bytes
    report: ParityReport
    figures: dict[str, float]
    """The parity report as run metrics (without the ``parity_`` prefix)."""
    export_s: float
    parity_s: float


def _export_with_parity(
    client: MlflowClient, run_id: str, spec: ModelSpec, data: TrainingData, prep: _Prepared, fitted: _Fitted
) -> _Exported:
    """Export to ONNX and compare with sklearn on the holdout; :class:`ParityError` (run tagged
    ``failed``) outside ``spec.gate`` tolerances."""
    t0 = time.perf_counter()
    onnx_bytes = export_onnx(fitted.pipeline, prep.numeric, prep.categorical)
    export_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = parity(fitted.pipeline, onnx_bytes, data.holdout, prep.numeric, prep.categorical, prep.threshold)
    parity_s = time.perf_counter() - t0
    figures = {
        "n_rows": float(report.n_rows),
        "max_abs_diff": report.max_abs_diff,
        "mean_abs_diff": report.mean_abs_diff,
        "label_agreement": report.label_agreement,
        "label_flips": float(report.label_flips),
        "onnx_ms_per_1k_rows": report.onnx_ms_per_1k_rows,
        "sklearn_ms_per_1k_rows": report.sklearn_ms_per_1k_rows,
    }
    _log_metrics(client, run_id, {f"parity_{k}": v for k, v in figures.items()})
    gate = spec.gate
    if report.mean_abs_diff > gate.parity_mean_abs_diff or report.label_agreement < gate.parity_label_agreement:
        message = (
            f"{spec.name}: ONNX parity failed for {prep.estimator} on {report.n_rows} holdout rows: "
            f"mean |diff| {report.mean_abs_diff:.3g} (max allowed {gate.parity_mean_abs_diff:.3g}), "
            f"label agreement {report.label_agreement:.6f} (min {gate.parity_label_agreement:.6f}, "
            f"{report.label_flips} flips), max |diff| {report.max_abs_diff:.3g}; run {run_id}"
        )
        client.set_tag(run_id, Tag.PARITY, "failed")
        raise ParityError(message, report, run_id)
    client.set_tag(run_id, Tag.PARITY, "passed")
    return _Exported(onnx_bytes=onnx_bytes, report=report, figures=figures, export_s=export_s, parity_s=parity_s)


@dataclass(frozen=True)
class _Logged:
    profile: dict[str, Any]
    importance: dict[str, Any]
    timings: dict[str, float]
    """Seconds per stage and ``total_s``, unrounded."""


def _log_outcome(
    client: MlflowClient,
    run_id: str,
    spec: ModelSpec,
    data: TrainingData,
    prep: _Prepared,
    fitted: _Fitted,
    exported: _Exported,
    searched: _Searched,
    *,
    explain: bool = True,
) -> _Logged:
    """The run's artifacts (profile, plots when ``explain``, ONNX file, slice figures) and its metrics."""
    t0 = time.perf_counter()
    window = sample_rows((data.train, data.holdout), seed=prep.seed)  # features: the whole window
    profile = reference_profile(data.holdout, spec, fitted.proba, window=window)
    # CBPE: the day's AUC estimated before labels arrive; its reference is a holdout day's estimate
    add_calibrator(profile, fitted.proba, prep.y_hold, prep.hold_days, spec.drift.min_rows)
    client.log_dict(run_id, profile, PROFILE_ARTIFACT)
    importance: dict[str, Any] = {"mean": {}, "std": {}}
    if explain:
        importance = _permutation_importance(fitted.pipeline, prep.x_hold, prep.y_hold, prep.seed)
        client.log_figure(run_id, _importance_figure(importance, spec.name), IMPORTANCE_ARTIFACT)
        client.log_dict(run_id, importance, IMPORTANCE_DATA_ARTIFACT)
        calibration = calibration_bins(prep.y_hold, fitted.proba)
        client.log_figure(
            run_id, _calibration_figure(calibration, fitted.proba, spec.name, prep.threshold), CALIBRATION_ARTIFACT
        )
        client.log_dict(run_id, calibration, CALIBRATION_DATA_ARTIFACT)
    with tempfile.TemporaryDirectory(prefix="airloop-onnx-") as tmp:
        path = Path(tmp) / Path(ONNX_ARTIFACT).name
        path.write_bytes(exported.onnx_bytes)
        client.log_artifact(run_id, str(path), artifact_path=str(Path(ONNX_ARTIFACT).parent))
    timings = {
        "search_s": searched.seconds,
        "fit_s": fitted.fit_s,
        "evaluate_s": fitted.evaluate_s,
        "export_s": exported.export_s,
        "parity_s": exported.parity_s,
        "artifacts_s": time.perf_counter() - t0,
        "total_s": time.perf_counter() - prep.started,
    }

    # Few metrics on purpose: log_model later copies each run metric into the logged model
    # with one get_metric_history request per metric. Full slice figures: slice_metrics.json.
    client.log_dict(run_id, {"slices": fitted.slice_metrics, "skipped": fitted.slices_skipped}, SLICES_ARTIFACT)
    mlflow_metrics: dict[str, float] = {**fitted.metrics}
    for slice_name, values in fitted.slice_metrics.items():
        column, value = slice_name.split("=", 1)
        for metric in SLICE_METRICS_IN_MLFLOW:
            mlflow_metrics[slice_metric_key(metric, column, value)] = values[metric]
    mlflow_metrics["slices_skipped"] = float(fitted.slices_skipped)
    mlflow_metrics.update({f"time_{k}": v for k, v in timings.items()})
    if searched.search.get("best_val_roc_auc") is not None:
        mlflow_metrics["val_roc_auc_best"] = float(searched.search["best_val_roc_auc"])
    _log_metrics(client, run_id, mlflow_metrics)
    return _Logged(profile=profile, importance=importance, timings=timings)


def holdout_metrics(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """Ranking, probabilistic and thresholded metrics of positive-class probabilities."""
    import numpy as np
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        brier_score_loss,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    decided = (proba >= threshold).astype(np.int64)
    return {
        "roc_auc": float(roc_auc_score(y, proba)),
        "pr_auc": float(average_precision_score(y, proba)),
        "log_loss": float(log_loss(y, proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y, proba)),
        "accuracy": float(accuracy_score(y, decided)),
        "recall": float(recall_score(y, decided, zero_division=0)),
        "precision": float(precision_score(y, decided, zero_division=0)),
        "positive_rate": float(decided.mean()),
        "base_rate": float(np.mean(y)),
        "rows": float(len(y)),
    }


def daily_metrics(y: np.ndarray, proba: np.ndarray, days: np.ndarray, min_rows: int) -> dict[str, float]:
    """``roc_auc_daily``: the mean ROC AUC of the holdout's days (those with ``min_rows`` rows, the
    monitor's own minimum, and both classes), ``roc_auc_days``, how many, and with two days or
    more ``roc_auc_daily_sd``, their standard deviation; empty when no day qualifies. The monitor
    measures a labelled day against the mean, like with like, and against the spread: one day is
    one draw from the model's days (:func:`include.monitoring.drift.daily_auc`,
    :class:`include.monitoring.drift.PerformanceDrop`)."""
    from include.monitoring.drift import daily_auc

    daily = daily_auc(proba, y, days, min_rows)
    if daily is None:
        return {}
    metrics = {"roc_auc_daily": daily.mean, "roc_auc_days": float(daily.days)}
    if math.isfinite(daily.sd):
        metrics["roc_auc_daily_sd"] = daily.sd
    return metrics


def _days_of(times: pd.Series) -> np.ndarray:
    import pandas as pd

    return pd.to_datetime(times).dt.normalize().to_numpy()


def _slice_metrics(
    features: pd.DataFrame, y: np.ndarray, proba: np.ndarray, columns: list[str], threshold: float
) -> tuple[dict[str, dict[str, float]], int]:
    """Metrics per ``column=value`` (values as scored: missing is ``__missing__``)."""
    import numpy as np
    from sklearn.metrics import average_precision_score, recall_score, roc_auc_score

    result: dict[str, dict[str, float]] = {}
    skipped = 0
    for column in columns:
        values = features[column].to_numpy(dtype=object)
        for value in sorted({str(v) for v in values}):
            mask = values == value
            n = int(mask.sum())
            ys = y[mask]
            positives = int(ys.sum())
            if n < MIN_SLICE_ROWS or positives in (0, n):
                skipped += 1
                continue
            ps = proba[mask]
            result[f"{column}={value}"] = {
                "roc_auc": float(roc_auc_score(ys, ps)),
                "pr_auc": float(average_precision_score(ys, ps)),
                "recall": float(recall_score(ys, (ps >= threshold).astype(np.int64), zero_division=0)),
                "rows": float(n),
                "positives": float(positives),
            }
    return result, skipped


# --------------------------------------------------------------------------- search


def _candidates(
    estimator: str, defaults: dict[str, Any], pins: dict[str, Any], budget: int, seed: int
) -> list[dict[str, Any]]:
    """Trial 0 = defaults + pins; then seeded samples of the unpinned part of the space
    (pins always win), deduplicated, ``budget`` at most."""
    from scipy.stats import loguniform, randint
    from sklearn.model_selection import ParameterSampler

    space: dict[str, Any] = {}
    for name, definition in SEARCH_SPACES[estimator].items():
        if name in pins:
            continue
        if isinstance(definition, list):
            space[name] = definition
        elif definition[0] == "loguniform":
            space[name] = loguniform(definition[1], definition[2])
        else:
            space[name] = randint(definition[1], definition[2])
    sampled = []
    if budget > 1 and space:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "grid smaller than n_iter": we dedupe anyway
            sampled = list(ParameterSampler(space, n_iter=budget - 1, random_state=seed))
    candidates = [{**defaults, **pins}] + [
        {**defaults, **{k: _plain(v) for k, v in sample.items()}, **pins} for sample in sampled
    ]
    return unique_by(candidates, key=lambda candidate: repr(sorted(candidate.items())))


def _validation_split(
    spec: ModelSpec, x_train: pd.DataFrame, y_train: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    """The earlier 80% of the train rows to fit on, the later 20% to score; both need both classes."""
    cut = int(len(x_train) * (1.0 - VALIDATION_FRACTION))
    x_fit, y_fit, x_val, y_val = x_train.iloc[:cut], y_train[:cut], x_train.iloc[cut:], y_train[cut:]
    if len(set(y_val.tolist())) < 2 or len(set(y_fit.tolist())) < 2:
        raise TrainingError(
            f"{spec.name}: the time-ordered validation split ({len(x_fit)} fit / {len(x_val)} validation rows) "
            "lacks a class; widen the window"
        )
    return x_fit, y_fit, x_val, y_val


def _search(
    client: MlflowClient,
    experiment_id: str,
    parent_id: str,
    estimator: str,
    pins: dict[str, Any],
    spec: ModelSpec,
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    budget: int,
    seed: int,
    numeric: list[str],
    categorical: list[str],
) -> dict[str, Any]:
    """Fit each candidate on the earlier rows of train, score ROC AUC on the later rows."""
    from sklearn.metrics import roc_auc_score

    candidates = _candidates(estimator, DEFAULT_PARAMS[estimator], pins, budget, seed)
    x_fit, y_fit, x_val, y_val = _validation_split(spec, x_train, y_train)
    trials: list[dict[str, Any]] = []
    best_index, best_score = -1, -math.inf
    for index, candidate in enumerate(candidates):
        trial_run = client.create_run(
            experiment_id,
            run_name=f"trial {index}",
            tags={"mlflow.parentRunId": parent_id, Tag.TRIAL: str(index), Tag.ESTIMATOR: estimator},
        )
        trial_id = trial_run.info.run_id
        with _run_failure_guard(client, trial_id):
            _log_params(client, trial_id, {f"model.{k}": v for k, v in candidate.items()})
            t0 = time.perf_counter()
            try:
                pipeline = _fit_pipeline(estimator, numeric, categorical, candidate, seed, x_fit, y_fit, weighted=False)
            except ValueError as exc:  # an invalid combination of parameters: record it, go on
                log.warning("%s: trial %s %s failed: %s", spec.name, index, candidate, exc)
                client.set_tag(trial_id, Tag.ERROR, str(exc)[:500])
                client.set_terminated(trial_id, "FAILED")
                trials.append({"index": index, "run_id": trial_id, "params": candidate, "val_roc_auc": None})
                continue
            fit_s = time.perf_counter() - t0
            score = float(roc_auc_score(y_val, pipeline.predict_proba(x_val)[:, 1]))
            _log_metrics(client, trial_id, {"val_roc_auc": score, "fit_s": fit_s})
            client.set_terminated(trial_id, "FINISHED")
        trials.append(
            {"index": index, "run_id": trial_id, "params": candidate, "val_roc_auc": score, "fit_s": round(fit_s, 3)}
        )
        log.info(
            "%s: trial %s/%s val roc_auc %.4f, fit %.1f s (%.0f rows/s) %s",
            spec.name,
            index + 1,
            len(candidates),
            score,
            fit_s,
            len(x_fit) / max(fit_s, 1e-9),
            candidate,
        )
        if score > best_score:  # ties keep the earlier trial: deterministic
            best_index, best_score = index, score
    if best_index < 0:
        raise TrainingError(f"{spec.name}: every one of {len(candidates)} trials failed (see the nested runs)")
    return {
        "best_params": candidates[best_index],
        "best_trial": best_index,
        "best_val_roc_auc": best_score,
        "validation_rows": len(x_val),
        "fit_rows": len(x_fit),
        "trials": trials,
    }


# --------------------------------------------------------------------------- artifacts


def _permutation_importance(pipeline: Pipeline, x: pd.DataFrame, y: np.ndarray, seed: int) -> dict[str, Any]:
    """Permutation importance (ROC AUC drop) per input column on a seeded holdout sample: the
    mean and std over :data:`IMPORTANCE_REPEATS` shuffles and each shuffle's drop (``values``)."""
    import numpy as np
    from sklearn.inspection import permutation_importance

    if len(x) > IMPORTANCE_MAX_ROWS:
        rows = np.random.default_rng(seed).choice(len(x), IMPORTANCE_MAX_ROWS, replace=False)
        rows.sort()
        x, y = x.iloc[rows], y[rows]
    result = permutation_importance(
        pipeline, x, y, scoring="roc_auc", n_repeats=IMPORTANCE_REPEATS, random_state=seed, n_jobs=1
    )
    columns = [str(c) for c in x.columns]
    return {
        "mean": {c: float(v) for c, v in zip(columns, result.importances_mean, strict=True)},
        "std": {c: float(v) for c, v in zip(columns, result.importances_std, strict=True)},
        "values": {c: [float(v) for v in row] for c, row in zip(columns, result.importances, strict=True)},
        "rows": len(x),
        "repeats": IMPORTANCE_REPEATS,
        "scoring": "roc_auc",
    }


def _importance_figure(importance: dict[str, Any], model: str) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ordered = sorted(importance["mean"], key=lambda c: importance["mean"][c])
    fig = Figure(figsize=(7, 0.35 * len(ordered) + 1.5))
    FigureCanvasAgg(fig)  # Agg, no pyplot state: safe in workers and threads
    ax = fig.add_subplot()
    ax.barh(ordered, [importance["mean"][c] for c in ordered], xerr=[importance["std"][c] for c in ordered])
    ax.set_xlabel("ROC AUC drop when the column is shuffled")
    ax.set_title(f"{model}: permutation importance ({importance['rows']} holdout rows)")
    fig.tight_layout()
    return fig


CALIBRATION_BINS = 10


def calibration_bins(y: np.ndarray, proba: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """The calibration curve on quantile bins of ``proba``: per non-empty bin, the mean predicted
    probability, the observed positive rate and the rows (scikit-learn's ``calibration_curve``
    with ``strategy="quantile"``, plus the counts it does not return)."""
    import numpy as np
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, proba, n_bins=bins, strategy="quantile")
    edges = np.percentile(proba, np.linspace(0, 1, bins + 1) * 100)
    counts = np.bincount(np.searchsorted(edges[1:-1], proba), minlength=bins)
    counts = counts[counts > 0]
    return {
        "strategy": "quantile",
        "rows": len(y),
        "predicted": [float(v) for v in predicted],
        "observed": [float(v) for v in observed],
        "bin_rows": [int(v) for v in counts],
    }


def _calibration_figure(calibration: dict[str, Any], proba: np.ndarray, model: str, threshold: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 7))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    top.plot(calibration["predicted"], calibration["observed"], marker="o", label="model (deciles)")
    top.set_ylabel("observed positive rate")
    top.set_title(f"{model}: calibration on {calibration['rows']} holdout rows")
    top.legend(loc="upper left")
    bottom.hist(proba, bins=40, range=(0, 1), color="tab:blue")
    bottom.axvline(threshold, color="tab:red", linestyle=":")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("rows")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- MLflow helpers


def _experiment_id(client: MlflowClient, name: str, model: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(client.create_experiment(name, tags={Tag.MODEL: model}))
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # created concurrently
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def _thread_limit(threads: int | None) -> AbstractContextManager[Any]:
    if threads is None:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


@contextmanager
def _run_failure_guard(client: MlflowClient, run_id: str) -> Iterator[None]:
    """Mark the run FAILED (with the error as a tag) if the block raises."""
    try:
        yield
    except BaseException as exc:
        try:
            client.set_tag(run_id, Tag.ERROR, f"{type(exc).__name__}: {exc}"[:5000])
            client.set_terminated(run_id, "FAILED")
        except Exception:  # the original error matters more than the bookkeeping
            log.warning("could not mark run %s as failed", run_id, exc_info=True)
        raise


def _log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):  # MLflow's per-batch limit for params
        client.log_batch(run_id, params=items[i : i + 100])


def _log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and math.isfinite(float(v))]
    for i in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[i : i + 1000])


def _log_datasets(client: MlflowClient, run_id: str, data: TrainingData) -> None:
    """Train and holdout as run inputs: name, source (the validated zone) and a content digest."""
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for split, frame, context in (("train", data.train, "training"), ("holdout", data.holdout, "evaluation")):
        with warnings.catch_warnings():
            # "source can be interpreted in multiple ways" (file:// URIs) and integer-column hints.
            warnings.simplefilter("ignore", UserWarning)
            dataset = from_pandas(
                frame,
                source=data.source_uri,
                name=f"{data.model}-{split}-{data.window_text()}",
                # MLflow caps digests at 36 characters; the full data hash is the run's tag.
                digest=frame_hash(frame)[:32],
                targets=None,
            )
            entity = dataset._to_mlflow_entity()
        inputs.append(DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)]))
    client.log_inputs(run_id, datasets=inputs)


def _metric_safe(value: str) -> str:
    return re.sub(r"[^\w\-. ]", "_", value)[:100]


def _plain(value: Any) -> Any:
    """numpy scalars to Python; floats to 6 significant digits (readable, stable params)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value
