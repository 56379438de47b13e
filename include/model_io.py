"""What training hands to the registry, and how any caller feeds the ONNX model it exported.

Training (``include.training``) and the registry (``include.registry``) both read this module
so the registry never imports training back (training imports the registry to register):

* :class:`TrainResult`: one training's outcome, registered by
  :func:`include.registry.mlflow_registry.register_challenger`;
* the ONNX input contract: one ``float32 [None, 1]`` input per numeric feature and one
  ``string [None, 1]`` input per categorical feature, named after the column, with a missing
  category fed as :data:`MISSING_CATEGORY` (:func:`onnx_inputs`, :func:`prepare_features`);
  outputs :data:`OUTPUT_NAMES`.

Nothing here imports Airflow; pandas and numpy are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from include.names import ONNX_ARTIFACT, PROFILE_ARTIFACT

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MISSING_CATEGORY = "__missing__"
"""Stands for a missing categorical value in training and at scoring time."""

OUTPUT_NAMES = ("label", "probabilities")


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What a training produced. :meth:`to_summary` is the JSON-able part (for XCom)."""

    model: str
    run_id: str
    experiment_id: str
    estimator: str
    params: dict[str, Any]
    metrics: dict[str, float]
    slice_metrics: dict[str, dict[str, float]]
    slices_skipped: int
    parity: dict[str, float]
    counts: dict[str, int]
    window: tuple[str, str]
    data_hash: str
    spec_hash: str
    search: dict[str, Any]
    timings: dict[str, float]
    feature_importance: dict[str, float]
    tags: dict[str, str]
    reason: str
    onnx_artifact: str = ONNX_ARTIFACT
    onnx_size_bytes: int = 0
    onnx_bytes: bytes | None = field(default=None, repr=False)
    reference_profile: dict[str, Any] = field(default_factory=dict, repr=False)
    pipeline: Any = field(default=None, repr=False)
    """The fitted sklearn pipeline (in-process only; never serialized)."""

    _SUMMARY_FIELDS: ClassVar[tuple[str, ...]] = (
        "model",
        "run_id",
        "experiment_id",
        "estimator",
        "params",
        "metrics",
        "slice_metrics",
        "slices_skipped",
        "parity",
        "counts",
        "window",
        "data_hash",
        "spec_hash",
        "search",
        "timings",
        "feature_importance",
        "tags",
        "reason",
        "onnx_artifact",
        "onnx_size_bytes",
    )

    def to_summary(self) -> dict[str, Any]:
        """Small and JSON-able: no ONNX bytes, no profile (it is the run's ``reference_profile.json``)."""
        summary = {name: getattr(self, name) for name in self._SUMMARY_FIELDS}
        summary["window"] = list(self.window)
        summary["profile_artifact"] = PROFILE_ARTIFACT
        return summary

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> TrainResult:
        """Rebuild a result from :meth:`to_summary` (e.g. in a later task); ``onnx_bytes`` is
        ``None`` and is read from the run's ``onnx_artifact`` when needed."""
        values = {name: summary[name] for name in cls._SUMMARY_FIELDS}
        values["window"] = (str(summary["window"][0]), str(summary["window"][1]))
        return cls(**values)


def prepare_features(frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    """The feature columns as training and sklearn scoring must see them.

    Numerics become float64 (NaN kept); categoricals become ``str`` with None/NaN/pd.NA
    replaced by :data:`MISSING_CATEGORY`, exactly as :func:`onnx_inputs` feeds ONNX.
    """
    import pandas as pd

    numeric, categorical = list(numeric), list(categorical)
    _require_columns(frame, [*numeric, *categorical])
    out = pd.DataFrame(index=frame.index)
    for col in numeric:
        out[col] = _numeric(frame[col]).astype("float64")
    for col in categorical:
        out[col] = _categorical(frame[col])
    return out


def onnx_inputs(frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> dict[str, np.ndarray]:
    """One array per input: float32 ``(n, 1)`` for numerics, object ``(n, 1)`` of str for
    categoricals (missing -> :data:`MISSING_CATEGORY`)."""
    import numpy as np

    numeric, categorical = list(numeric), list(categorical)
    _require_columns(frame, [*numeric, *categorical])
    feeds: dict[str, np.ndarray] = {}
    for col in numeric:
        feeds[col] = _numeric(frame[col]).astype(np.float32).reshape(-1, 1)
    for col in categorical:
        feeds[col] = _categorical(frame[col]).to_numpy(dtype=object).reshape(-1, 1)
    return feeds


def _require_columns(frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"frame lacks feature columns {missing}")


def _numeric(series: pd.Series) -> np.ndarray:
    import numpy as np
    import pandas as pd

    # to_numeric + na_value: nullable Int64/Float64 and pd.NA become float NaN.
    values = pd.to_numeric(series, errors="raise")
    return np.asarray(values.to_numpy(dtype="float64", na_value=np.nan))


def _categorical(series: pd.Series) -> pd.Series:
    import pandas as pd

    missing = series.isna()
    text = series.astype(object).where(~missing, MISSING_CATEGORY)
    return pd.Series([str(v) for v in text], index=series.index, dtype=object)


class ReferenceProfileError(LookupError):
    """A registered version's reference profile cannot be found (no training-run tag)."""


def load_reference_profile(tracking_uri: str, model: str, version: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The reference profile (:data:`~include.names.PROFILE_ARTIFACT`) logged by the training run
    of registered ``model`` ``version``, and the version's tags; read by the monitor (drift
    reference) and by scoring (reason codes)."""
    import json
    import tempfile
    from pathlib import Path

    from mlflow import MlflowClient

    from include.names import Tag

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    tags = dict(client.get_model_version(model, str(int(version))).tags)
    run_id = tags.get(Tag.TRAINING_RUN_ID)
    if not run_id:
        raise ReferenceProfileError(
            f"{model} v{version} has no {Tag.TRAINING_RUN_ID} tag: no reference profile to read"
        )
    with tempfile.TemporaryDirectory(prefix="airloop-profile-") as tmp:
        local = client.download_artifacts(run_id, PROFILE_ARTIFACT, tmp)
        profile: dict[str, Any] = json.loads(Path(local).read_text())
    return profile, tags
