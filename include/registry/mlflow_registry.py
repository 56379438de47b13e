"""Register a trained challenger in the MLflow model registry, and read it back as ONNX bytes.

Registered model = the spec's model name; one version per training run; aliases, not
stages (``challenger`` here, ``champion`` is moved by the promotion step).

* The ONNX model is logged inside the training run with ``mlflow.onnx.log_model``: an
  explicit signature inferred from a dict of input arrays (one float32/object ``(n, 1)``
  array per column, as scoring feeds onnxruntime), explicit ``pip_requirements`` (MLflow's
  requirement inference spawns a subprocess: ~10 s per call) and no input example.
  ``save_as_external_data=False``: ``model.onnx`` is one self-contained file, so what
  :func:`load_onnx_bytes` returns is byte-for-byte what training exported and checked.
* Idempotent per training run: a rerun finds the version whose ``run_id`` is the training
  run and returns it (finishing its tags/alias if an earlier attempt died halfway). If two
  attempts race and both create a version, both converge on the lowest one and the other
  is deleted. The ``challenger`` alias only moves forward: a late retry of an older run
  never takes it back from a newer version.
* Version numbers are ints over SQLite and strings over REST: always ``int(...)`` here.
  ``search_model_versions`` returns empty ``aliases``: aliases are read from
  ``get_registered_model(name).aliases``.
* Nothing is ever unpickled: ONNX is protobuf, MLmodel is read with ``yaml.safe_load``.

``mlflow.onnx.log_model`` only works through MLflow's process-global tracking URI; it is set
for the duration of that call only, under a lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.model_io import MISSING_CATEGORY, OUTPUT_NAMES, TrainResult
from include.names import CHALLENGER, MODEL_ARTIFACT_NAME, Tag
from include.spec import ModelSpec

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.models import ModelSignature

log = logging.getLogger(__name__)

_GLOBAL_URI_LOCK = threading.RLock()  # re-entrant: a caller may hold it around whole jobs


class RegistryError(RuntimeError):
    """A registry operation that cannot proceed; the message names the model, version or run."""


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: int
    run_id: str
    model_uri: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pip_requirements() -> list[str]:
    """What the logged ONNX model needs at load time, pinned to this environment."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "onnx", "onnxruntime", "numpy")]


def register_challenger(
    result: TrainResult, spec: ModelSpec, *, tracking_uri: str, tags: dict[str, str]
) -> RegisteredVersion:
    """Log the result's ONNX model in its training run, register it as a version of
    ``spec.name`` with lineage tags, and point the ``challenger`` alias at it."""
    from mlflow import MlflowClient

    if result.model != spec.name:
        raise RegistryError(f"result is for model {result.model!r}, spec is {spec.name!r}")
    name = spec.name
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    version_tags = _version_tags(result, tags)
    started = time.perf_counter()
    _ensure_registered_model(client, spec)

    existing = _versions_of_run(client, name, result.run_id)
    if existing:
        version = min(existing)
        log.info("%s: run %s is already registered as version %s; reusing it", name, result.run_id, version)
        current = client.get_model_version(name, str(version)).tags
        missing = {k: v for k, v in version_tags.items() if k not in current}
        for key, value in missing.items():
            client.set_model_version_tag(name, str(version), key, value)
    else:
        _check_run_registrable(client, result)
        onnx_bytes = result.onnx_bytes if result.onnx_bytes is not None else _run_onnx_bytes(client, result)
        model_info = _log_onnx_model(tracking_uri, result, spec, onnx_bytes)
        created = client.create_model_version(
            name=name,
            source=model_info.model_uri,
            run_id=result.run_id,
            tags=version_tags,
            description=f"{result.estimator} trained on {result.window[0]}..{result.window[1]} ({result.reason})",
            model_id=model_info.model_id,
        )
        version = int(created.version)
        # A twin attempt (retry racing the original) may have created its own version too.
        all_versions = _versions_of_run(client, name, result.run_id)
        if min(all_versions) != version:
            log.warning(
                "%s: run %s was registered concurrently as versions %s; keeping %s, deleting %s",
                name,
                result.run_id,
                sorted(all_versions),
                min(all_versions),
                version,
            )
            client.delete_model_version(name, str(version))
            version = min(all_versions)

    _move_alias_forward(client, name, CHALLENGER, version)
    client.set_tag(result.run_id, Tag.REGISTERED_VERSION, str(version))
    registered = RegisteredVersion(
        name=name, version=version, run_id=result.run_id, model_uri=f"models:/{name}/{version}"
    )
    log.info(
        "%s: version %s (run %s) is %s; registration took %.2f s",
        name,
        version,
        result.run_id,
        CHALLENGER,
        time.perf_counter() - started,
    )
    return registered


def get_alias_version(client: MlflowClient, name: str, alias: str) -> int | None:
    """The version an alias points to, or ``None`` (no such alias or registered model)."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = registered.aliases.get(alias)
    return None if version is None else int(version)


def load_onnx_bytes(tracking_uri: str, name: str, version: int | str) -> bytes:
    """The ONNX model of a registered version, as bytes (downloaded; protobuf, never a pickle)."""
    import mlflow.artifacts
    import onnx
    import yaml
    from google.protobuf.message import DecodeError
    from mlflow import MlflowClient

    started = time.perf_counter()
    # Resolve the version's artifact location with an explicit client: MLflow 3.17's
    # ModelsArtifactRepository ignores the tracking/registry URI passed to download_artifacts
    # for ``models:/name/version`` and asks the process-global registry (creating ./mlflow.db).
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    source = client.get_model_version_download_uri(name, str(int(version)))
    with tempfile.TemporaryDirectory(prefix="airloop-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=tracking_uri))
        mlmodel = local / "MLmodel"
        if not mlmodel.is_file():
            raise RegistryError(f"models:/{name}/{version} has no MLmodel file (not an MLflow model)")
        flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
        if "onnx" not in flavors:
            raise RegistryError(f"models:/{name}/{version} is not an ONNX model (flavors: {sorted(flavors)})")
        path = local / str(flavors["onnx"].get("data", "model.onnx"))
        raw = path.read_bytes()
        try:
            proto = onnx.load_model_from_string(raw)
        except (DecodeError, ValueError) as exc:  # truncated, or not ONNX at all (e.g. a pickle)
            raise RegistryError(
                f"models:/{name}/{version}: {path.name} is not a readable ONNX model ({type(exc).__name__}: {exc})"
            ) from exc
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
            # Logged with external tensor files: inline them (onnx.load reads them from the folder).
            raw = onnx.load(str(path), load_external_data=True).SerializeToString()
    log.info("%s: loaded version %s as %s ONNX bytes in %.2f s", name, version, len(raw), time.perf_counter() - started)
    return bytes(raw)


# --------------------------------------------------------------------------- helpers


def _version_tags(result: TrainResult, tags: dict[str, str]) -> dict[str, str]:
    computed = {
        Tag.TRAINING_RUN_ID: result.run_id,
        Tag.ESTIMATOR: result.estimator,
        Tag.DATA_WINDOW: f"{result.window[0]}..{result.window[1]}",
        Tag.DATA_HASH: result.data_hash,
        Tag.SPEC_HASH: result.spec_hash,
        Tag.REASON: result.reason,
        Tag.ONNX_SIZE_BYTES: str(result.onnx_size_bytes),
        **{f"metric.{k}": f"{v:.6g}" for k, v in result.metrics.items()},
        **{f"parity.{k}": f"{v:.6g}" for k, v in result.parity.items()},
    }
    # Lineage from training (code commit, dag run, ...) and from the caller; computed facts win.
    return {**{str(k): str(v) for k, v in {**result.tags, **tags}.items()}, **computed}


def _ensure_registered_model(client: MlflowClient, spec: ModelSpec) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(spec.name, tags={Tag.OWNER: spec.owner}, description=spec.description or None)
        log.info("%s: created registered model", spec.name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise


def _versions_of_run(client: MlflowClient, name: str, run_id: str) -> list[int]:
    found = client.search_model_versions(filter_string=f"name='{name}' and run_id='{run_id}'")
    return sorted(int(v.version) for v in found)


def _check_run_registrable(client: MlflowClient, result: TrainResult) -> None:
    run = client.get_run(result.run_id)
    status = run.info.status
    parity = run.data.tags.get(Tag.PARITY)
    if status != "FINISHED" or parity != "passed":
        raise RegistryError(
            f"{result.model}: run {result.run_id} is {status} with parity {parity!r}: "
            "only finished trainings that passed ONNX parity can be registered"
        )


def _run_onnx_bytes(client: MlflowClient, result: TrainResult) -> bytes:
    with tempfile.TemporaryDirectory(prefix="airloop-onnx-") as tmp:
        path = client.download_artifacts(result.run_id, result.onnx_artifact, tmp)
        return Path(path).read_bytes()


def _signature(onnx_bytes: bytes, spec: ModelSpec) -> ModelSignature:
    """Signature from one row of the dict of input arrays scoring feeds, and the ONNX outputs on it."""
    import numpy as np
    import onnxruntime as ort
    from mlflow.models import infer_signature

    features = spec.dataset.features
    feeds: dict[str, np.ndarray] = {col: np.zeros((1, 1), dtype=np.float32) for col in features.numeric}
    feeds.update({col: np.array([[MISSING_CATEGORY]], dtype=object) for col in features.categorical})
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outputs = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), feeds), strict=True))
    return infer_signature(feeds, outputs)


def _log_onnx_model(tracking_uri: str, result: TrainResult, spec: ModelSpec, onnx_bytes: bytes) -> Any:
    import mlflow
    import mlflow.onnx
    import onnx

    signature = _signature(onnx_bytes, spec)
    # The logged model belongs in its run's experiment. MLflow 3 files it under the *active*
    # experiment (default "0", whose artifact root is the client's ./mlruns on a SQLite store)
    # unless told otherwise: name the run's experiment through the environment meanwhile.
    with global_tracking_uri(tracking_uri), environment(MLFLOW_EXPERIMENT_ID=str(result.experiment_id)):
        return mlflow.onnx.log_model(
            onnx.load_model_from_string(onnx_bytes),
            name=MODEL_ARTIFACT_NAME,
            run_id=result.run_id,
            signature=signature,
            pip_requirements=pip_requirements(),
            save_as_external_data=False,
            onnx_execution_providers=["CPUExecutionProvider"],
            metadata={"airloop_model": spec.name, "airloop_data_window": f"{result.window[0]}..{result.window[1]}"},
        )


def _move_alias_forward(client: MlflowClient, name: str, alias: str, version: int) -> None:
    current = get_alias_version(client, name, alias)
    if current is not None and current >= version:
        if current > version:
            log.info(
                "%s: alias %s already on newer version %s; not moving it back to %s", name, alias, current, version
            )
        return
    client.set_registered_model_alias(name, alias, str(version))


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block, then restore them (unset ones are unset again).
    Not thread-safe: ``os.environ`` is the process's (here, callers hold the global URI lock)."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def global_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-global tracking URI at ``uri`` for the block, then restore it.

    Fluent APIs (``log_model``) and an in-process SQLite registry resolving a logged model read
    the global URI; the lock serialises callers in threads."""
    import mlflow

    with _GLOBAL_URI_LOCK:
        try:
            from mlflow.tracking._tracking_service.utils import _use_tracking_uri
        except ImportError:  # private helper gone in a later MLflow: set and restore ourselves
            previous = mlflow.get_tracking_uri()
            mlflow.set_tracking_uri(uri)
            try:
                yield
            finally:
                mlflow.set_tracking_uri(previous)
            return
        # ``_use_tracking_uri`` deletes MLFLOW_TRACKING_URI from the environment on exit; the
        # hooks fall back on that variable, so put it back as it was.
        saved = os.environ.get("MLFLOW_TRACKING_URI")
        try:
            with _use_tracking_uri(uri):
                yield
        finally:
            if saved is not None:
                os.environ["MLFLOW_TRACKING_URI"] = saved
