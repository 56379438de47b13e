"""Reliability of the registry side (issue 11): a real MLflow server, failing or racing.

MLflow is reached either directly or through :class:`~tests.system.test_reliability.FaultProxy`,
which can drop or fail chosen REST calls mid-operation. The client is told not to retry
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0``) so a failure surfaces at once instead of after minutes
of back-off. Scoring runs through the real Airflow operators (``PinChampionOperator``,
``BatchScoreOperator``, ``PublishPredictionsOperator``) with a fake task context.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml
from mlflow.exceptions import MlflowException

from include.lake import Lake, Zone
from include.spec import ModelSpec
from tests.system.test_reliability import (
    ROOT,
    Models,
    fault_proxy,
    finish,
    flights_models,
    release,
    spec_named,
    start_child,
)

pytestmark = pytest.mark.slow  # real parts in-process, no Airflow stack: make test runs it on every core

DAY = date(2013, 1, 18)
TRAIN_END = "2013-01-08"


@pytest.fixture(autouse=True)
def _fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(uri, registry_uri=uri)


def copy_as(source_root: Path, lake: Lake, name: str, days: list[date], zones: tuple[Zone, ...]) -> None:
    """Copy flights partitions into ``lake`` under the model name ``name``."""
    source = Lake(source_root.as_uri())
    for zone in zones:
        for ds in days:
            if source.has_partition(zone, "flights", ds):
                lake.write_partition(zone, name, ds, source.read_table(zone, "flights", ds))


def finished_run(uri: str, spec: ModelSpec, onnx: bytes) -> Any:
    """A finished training run that passed parity, as train_model leaves it (no fitting here)."""
    from include.training.train import TrainResult

    mlflow = client(uri)
    name = f"airloop-{spec.name}"
    experiment = mlflow.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(name)
    run = mlflow.create_run(experiment_id, tags={"airloop.parity": "passed", "airloop.model": spec.name})
    mlflow.set_terminated(run.info.run_id, "FINISHED")
    return TrainResult(
        model=spec.name, run_id=run.info.run_id, experiment_id=experiment_id, estimator="hist_gradient_boosting",
        params={}, metrics={"roc_auc": 0.6}, slice_metrics={}, slices_skipped=0,
        parity={"mean_abs_diff": 1e-5, "label_agreement": 1.0, "onnx_ms_per_1k_rows": 1.0}, counts={},
        window=("2013-01-01", TRAIN_END), data_hash="h", spec_hash=spec.spec_hash(), search={}, timings={},
        feature_importance={}, tags={}, reason="reliability test", onnx_size_bytes=len(onnx), onnx_bytes=onnx,
    )  # fmt: skip


def register(uri: str, spec: ModelSpec, onnx: bytes) -> int:
    from include.registry.mlflow_registry import register_challenger

    result = finished_run(uri, spec, onnx)
    return register_challenger(result, spec, tracking_uri=uri, tags={"airloop.train_end": TRAIN_END}).version


def raw_version(uri: str, name: str, files: dict[str, bytes]) -> int:
    """A registered version whose artifact folder holds exactly ``files`` (no airloop code involved)."""
    mlflow = client(uri)
    try:
        mlflow.create_registered_model(name)
    except Exception:  # noqa: BLE001 - already there
        pass
    experiment = mlflow.get_experiment_by_name("airloop-raw") or None
    experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment("airloop-raw")
    run = mlflow.create_run(experiment_id)
    with tempfile.TemporaryDirectory() as tmp:
        for file, data in files.items():
            (Path(tmp) / file).write_bytes(data)
        mlflow.log_artifacts(run.info.run_id, tmp, artifact_path="model")
    mlflow.set_terminated(run.info.run_id, "FINISHED")
    created = mlflow.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return int(created.version)


def versions_of(uri: str, name: str) -> list[int]:
    return sorted(int(v.version) for v in client(uri).search_model_versions(f"name='{name}'"))


@pytest.fixture(scope="module")
def models(flights_lake: Path) -> Models:
    return flights_models(flights_lake)


# =========================================================================== pinned champion


PIN = "rel_pin"


@pytest.fixture(scope="module")
def pin_world(mlflow_server: str, models: Models, flights_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``rel_pin`` v1 (gradient boosting) and v2 (logistic regression), a lake, a specs folder."""
    root = tmp_path_factory.mktemp("pin")
    specs = root / "specs"
    specs.mkdir()
    data = yaml.safe_load((ROOT / "include" / "specs" / "flights.yaml").read_text())
    data["name"] = PIN
    data.setdefault("scoring", {})["shard_rows"] = 1000  # several shards (mapped tasks) per day
    (specs / f"{PIN}.yaml").write_text(yaml.safe_dump(data))
    spec = spec_named(PIN, scoring={"shard_rows": 1000})
    lake = Lake((root / "lake").as_uri())
    source = Lake(flights_lake.as_uri())
    for ds in (DAY, date(2013, 1, 19)):  # two days' flights in one partition: more than one shard
        both = [source.read_table(Zone.VALIDATED, "flights", d) for d in (ds, ds + timedelta(days=2))]
        lake.write_partition(Zone.VALIDATED, PIN, ds, pa.concat_tables(both))
    v1, v2 = register(mlflow_server, spec, models.hgb), register(mlflow_server, spec, models.lr)
    return SimpleNamespace(spec=spec, specs=specs, lake=lake, v1=v1, v2=v2)


@pytest.fixture()
def airflow_env(monkeypatch: pytest.MonkeyPatch, pin_world: Any, mlflow_server: str, tmp_path: Path) -> None:
    from urllib.parse import urlparse

    parsed = urlparse(mlflow_server)
    monkeypatch.setenv("AIRLOOP_SPECS_DIR", str(pin_world.specs))
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "http", "host": parsed.hostname, "port": parsed.port})
    )
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))


def run_scoring_dag(lake: Lake, ds: date, run_id: str, between_shards: Any = None) -> dict[str, Any]:
    """pin_champion -> score (one task per shard) -> publish, as the score DAG wires them."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airloop.operators.score import BatchScoreOperator, PinChampionOperator, PublishPredictionsOperator

    context: dict[str, Any] = {"run_id": run_id, "outlet_events": OutletEventAccessors()}
    plan = PinChampionOperator(task_id="pin_champion", model=PIN, ds=ds.isoformat(), lake_uri=lake.uri).on_partition(
        context
    )  # type: ignore[arg-type]
    assert len(plan) >= 2
    for i, shard in enumerate(plan):
        if i == 1 and between_shards is not None:
            between_shards(plan)
        BatchScoreOperator(task_id="score", model=PIN, shard=shard, lake_uri=lake.uri).execute(context)  # type: ignore[arg-type]
    publish = PublishPredictionsOperator(task_id="publish", model=PIN, plan=plan, lake_uri=lake.uri)
    return publish.execute(context)  # type: ignore[arg-type]


def reference_scores(pin_world: Any, onnx: bytes, ds: date, tmp_path: Path) -> list[float]:
    from include.scoring.score import score_partition

    lake = Lake((tmp_path / "reference").as_uri())
    lake.publish_copy(pin_world.lake.partition_file(Zone.VALIDATED, PIN, ds), Zone.VALIDATED, PIN, ds)
    score_partition(pin_world.spec, lake, ds, onnx, model_name=PIN, model_version=0, run_id="ref")
    return list(lake.read_table(Zone.PREDICTIONS, PIN, ds).column("score").to_pylist())


def test_champion_moved_mid_run_scores_the_whole_day_with_the_pinned_version(
    pin_world: Any, airflow_env: None, mlflow_server: str, models: Models, tmp_path: Path
) -> None:
    from include.registry.aliases import current_alias, move_alias_cas

    mlflow = client(mlflow_server)
    mlflow.set_registered_model_alias(PIN, "champion", str(pin_world.v1))

    def promote_v2(plan: list[dict[str, Any]]) -> None:  # a promotion lands between two shard tasks
        move_alias_cas(mlflow, PIN, "champion", pin_world.v2, expected_current=pin_world.v1)

    manifest = run_scoring_dag(pin_world.lake, DAY, "scheduled__pin", between_shards=promote_v2)
    assert current_alias(mlflow, PIN, "champion") == pin_world.v2  # the alias did move mid-run
    out = pin_world.lake.read_table(Zone.PREDICTIONS, PIN, DAY)
    assert manifest["model_version"] == pin_world.v1 and manifest["n_shards"] >= 2
    assert out.column("model_version").unique().to_pylist() == [pin_world.v1]
    assert out.column("score").to_pylist() == reference_scores(pin_world, models.hgb, DAY, tmp_path)


def test_rollback_during_scoring_keeps_the_day_consistent_then_rescore_uses_the_restored_version(
    pin_world: Any, airflow_env: None, mlflow_server: str, models: Models, tmp_path: Path
) -> None:
    from include.registry.ledger import read_ledger
    from include.registry.promotion import rollback

    ds = date(2013, 1, 19)
    mlflow = client(mlflow_server)
    mlflow.set_registered_model_alias(PIN, "champion", str(pin_world.v2))
    now = datetime(2013, 1, 19, 8, tzinfo=UTC)

    def roll_back(plan: list[dict[str, Any]]) -> None:
        rollback(pin_world.spec, pin_world.lake, mlflow_server, target_version=pin_world.v1, reason="bad v2",
                 now=now, dag_id=f"{PIN}__rollback", run_id="manual__rb")  # fmt: skip

    run_scoring_dag(pin_world.lake, ds, "scheduled__rb", between_shards=roll_back)
    day = pin_world.lake.read_table(Zone.PREDICTIONS, PIN, ds)
    assert day.column("model_version").unique().to_pylist() == [pin_world.v2]  # never a mix of versions
    history = read_ledger(pin_world.lake, PIN)
    assert [(e["action"], e["version"], e["previous_version"]) for e in history] == [
        ("rollback", pin_world.v1, pin_world.v2)
    ]
    # "optionally re-score affected days": the rerun pins the restored champion and replaces the day.
    run_scoring_dag(pin_world.lake, ds, "manual__rescore")
    day = pin_world.lake.read_table(Zone.PREDICTIONS, PIN, ds)
    assert day.column("model_version").unique().to_pylist() == [pin_world.v1]
    assert day.column("score").to_pylist() == reference_scores(pin_world, models.hgb, ds, tmp_path)


def test_mlflow_unreachable_at_scoring_fails_clearly_and_writes_nothing(
    pin_world: Any, airflow_env: None, monkeypatch: pytest.MonkeyPatch, mlflow_server: str, tmp_path: Path
) -> None:
    from airloop.operators.score import BatchScoreOperator

    lake = Lake((tmp_path / "lake").as_uri())
    lake.publish_copy(pin_world.lake.partition_file(Zone.VALIDATED, PIN, DAY), Zone.VALIDATED, PIN, DAY)
    with fault_proxy(mlflow_server) as proxy:
        proxy.rule = lambda method, path, headers, n: "drop"
        host, port = proxy.url.removeprefix("http://").split(":")
        monkeypatch.setenv(
            "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "http", "host": host, "port": int(port)})
        )
        shard = {
            "ds": DAY.isoformat(),
            "version": pin_world.v1,
            "run_key": "r",
            "index": 0,
            "start": 0,
            "end": 10,
            "n_shards": 1,
        }
        started = time.monotonic()
        with pytest.raises(
            MlflowException,
            match=rf"API request to {re.escape(proxy.url)}/api/2.0/mlflow/\S+ failed .*Connection aborted",
        ):
            BatchScoreOperator(task_id="score", model=PIN, shard=shard, lake_uri=lake.uri).execute({"run_id": "r"})  # type: ignore[arg-type]
        assert time.monotonic() - started < 30
    assert lake.list_files(lake.path("predictions")) == []
    assert lake.list_files(lake.path("_tmp")) == []


# =========================================================================== MLflow failing mid-operation


def test_mlflow_down_mid_training_leaves_an_unregistrable_run_and_no_version(
    mlflow_server: str, flights_lake: Path, tmp_path: Path
) -> None:
    from include.registry.mlflow_registry import RegistryError, register_challenger
    from include.training.data import assemble_training_data
    from include.training.train import train_model

    spec = spec_named("rel_train")
    lake = Lake((tmp_path / "lake").as_uri())
    days = [date(2013, 1, d) for d in range(1, 21)]
    copy_as(flights_lake, lake, "rel_train", days, (Zone.VALIDATED, Zone.LABELS))
    data = assemble_training_data(spec, lake, date(2013, 1, 20), window_days=14)
    with fault_proxy(mlflow_server) as proxy:
        created = threading.Event()

        def down_after_run_created(method: str, path: str, headers: Any, n: int) -> str | None:
            if created.is_set():
                return "drop"
            if path.endswith("/runs/create"):
                created.set()
            return None

        proxy.rule = down_after_run_created
        started = time.monotonic()
        with pytest.raises(
            MlflowException,
            match=rf"API request to {re.escape(proxy.url)}/api/2.0/mlflow/\S+ failed .*Connection aborted",
        ):
            train_model(spec, data, estimator="logistic_regression", search_budget=1, tracking_uri=proxy.url,
                        tags={}, reason="test")  # fmt: skip
        assert time.monotonic() - started < 60
    runs = client(mlflow_server).search_runs(
        [client(mlflow_server).get_experiment_by_name("airloop-rel_train").experiment_id]
    )
    assert len(runs) == 1 and runs[0].info.status != "FINISHED"
    assert runs[0].data.tags.get("airloop.parity") is None
    # The half-finished run can never become a model version.
    from include.training.train import TrainResult

    half = TrainResult(**{**vars(finished_run(mlflow_server, spec, b"x")), "run_id": runs[0].info.run_id})
    with pytest.raises(RegistryError, match=r"only finished trainings that passed ONNX parity"):
        register_challenger(half, spec, tracking_uri=mlflow_server, tags={})
    assert versions_of(mlflow_server, "rel_train") == []


def test_mlflow_failing_at_version_create_registers_nothing_and_rerun_registers_once(
    mlflow_server: str, models: Models
) -> None:
    from include.registry.aliases import current_alias
    from include.registry.mlflow_registry import register_challenger

    spec = spec_named("rel_reg")
    result = finished_run(mlflow_server, spec, models.hgb)
    with fault_proxy(mlflow_server) as proxy:
        proxy.rule = lambda method, path, headers, n: 503 if path.endswith("/model-versions/create") else None
        with pytest.raises(MlflowException, match=r"model-versions/create failed .*too many 503 error responses"):
            register_challenger(result, spec, tracking_uri=proxy.url, tags={})
        assert [e for e in proxy.log if e[2] == 503]
    assert versions_of(mlflow_server, "rel_reg") == []
    assert current_alias(client(mlflow_server), "rel_reg", "challenger") is None

    again = register_challenger(result, spec, tracking_uri=mlflow_server, tags={})  # the task's retry
    assert versions_of(mlflow_server, "rel_reg") == [again.version]
    assert current_alias(client(mlflow_server), "rel_reg", "challenger") == again.version


def test_same_registration_twice_at_once_keeps_one_version(mlflow_server: str, models: Models) -> None:
    from include.registry.aliases import current_alias
    from include.registry.mlflow_registry import register_challenger

    spec = spec_named("rel_twin")
    result = finished_run(mlflow_server, spec, models.hgb)
    barrier = threading.Barrier(2)

    def attempt() -> int:
        barrier.wait()
        return register_challenger(result, spec, tracking_uri=mlflow_server, tags={}).version

    with ThreadPoolExecutor(2) as pool:
        got = {f.result() for f in [pool.submit(attempt) for _ in range(2)]}
    assert len(got) == 1
    assert versions_of(mlflow_server, "rel_twin") == sorted(got)
    assert current_alias(client(mlflow_server), "rel_twin", "challenger") == got.pop()


@pytest.fixture()
def promo_world(
    mlflow_server: str, models: Models, flights_lake: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Any:
    """A model with champion v1 and two challengers (same bytes: both pass the gate), with a lake
    holding the labelled days the gate evaluates on."""
    from include.registry.promotion import run_gate

    name = "rel_p" + hashlib.sha1(request.node.name.encode()).hexdigest()[:10]  # one registered model per test
    spec = spec_named(name, gate={"min_roc_auc": 0.0, "bootstrap_samples": 20})
    lake = Lake((tmp_path / "lake").as_uri())
    copy_as(flights_lake, lake, name, [date(2013, 1, d) for d in range(9, 17)], (Zone.VALIDATED, Zone.LABELS))
    v1, v2, v3 = (register(mlflow_server, spec, models.hgb) for _ in range(3))
    client(mlflow_server).set_registered_model_alias(name, "champion", str(v1))
    reports = {v: run_gate(spec, lake, mlflow_server, challenger_version=v, report_key=f"k{v}") for v in (v2, v3)}
    assert all(r["decision"]["promote"] for r in reports.values()), [r["decision"]["summary"] for r in reports.values()]
    return SimpleNamespace(spec=spec, lake=lake, v1=v1, v2=v2, v3=v3, reports=reports, name=name)


def test_two_promotions_racing_in_two_processes_promote_exactly_one(
    promo_world: Any, mlflow_server: str, tmp_path: Path
) -> None:
    from include.registry.aliases import current_alias
    from include.registry.ledger import read_ledger

    go = tmp_path / "go"
    body = """
        from datetime import datetime
        from include.lake import Lake
        from include.registry.aliases import AliasRaceError
        from include.registry.promotion import apply_decision
        from include.spec import get_spec
        spec = get_spec("flights").model_copy(update={"name": ARGS["name"]})
        report = json.loads(open(ARGS["report"]).read())
        wait_go()
        try:
            out = apply_decision(spec, Lake(ARGS["lake"]), ARGS["uri"], report, approval=None,
                now=datetime.fromisoformat(ARGS["now"]), dag_id="x__promote", run_id=ARGS["run"])
            print(json.dumps({"promoted": out["promoted"], "version": out["version"]}))
        except AliasRaceError as exc:
            print(json.dumps({"race": str(exc)}))
    """
    children = []
    for v in (promo_world.v2, promo_world.v3):
        report = tmp_path / f"report{v}.json"
        report.write_text(json.dumps(promo_world.reports[v]))
        children.append(
            start_child(body, go=str(go), name=promo_world.name, report=str(report), lake=promo_world.lake.uri,
                        uri=mlflow_server, now=datetime(2013, 1, 17, 6, tzinfo=UTC).isoformat(), run=f"manual__{v}")
        )  # fmt: skip
    release(go, children)
    outcomes = [json.loads(finish(c).strip().splitlines()[-1]) for c in children]
    winners = [o for o in outcomes if o.get("promoted")]
    losers = [o for o in outcomes if "race" in o]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert f"expected v{promo_world.v1}" in losers[0]["race"]
    winner = winners[0]["version"]
    mlflow = client(mlflow_server)
    assert current_alias(mlflow, promo_world.name, "champion") == winner
    promotions = [e for e in read_ledger(promo_world.lake, promo_world.name) if e["action"] == "promote"]
    assert [(e["version"], e["previous_version"]) for e in promotions] == [(winner, promo_world.v1)]
    loser = promo_world.v3 if winner == promo_world.v2 else promo_world.v2
    assert "airloop.gate" not in mlflow.get_model_version(promo_world.name, str(loser)).tags


def test_mlflow_down_at_promotion_moves_nothing_and_records_nothing(promo_world: Any, mlflow_server: str) -> None:
    from include.registry.aliases import current_alias
    from include.registry.ledger import read_ledger
    from include.registry.promotion import apply_decision

    with fault_proxy(mlflow_server) as proxy:
        proxy.rule = lambda method, path, headers, n: "drop"
        with pytest.raises(
            MlflowException,
            match=rf"API request to {re.escape(proxy.url)}/api/2.0/mlflow/\S+ failed .*Connection aborted",
        ):
            apply_decision(promo_world.spec, promo_world.lake, proxy.url, promo_world.reports[promo_world.v2],
                           approval=None, now=datetime(2013, 1, 17, tzinfo=UTC), dag_id="d", run_id="r")  # fmt: skip
    assert current_alias(client(mlflow_server), promo_world.name, "champion") == promo_world.v1
    assert read_ledger(promo_world.lake, promo_world.name) == []


def test_mlflow_failing_after_the_alias_moved_is_completed_exactly_once_by_the_retry(
    promo_world: Any, mlflow_server: str
) -> None:
    from include.registry.aliases import current_alias
    from include.registry.ledger import read_ledger
    from include.registry.promotion import apply_decision

    report = promo_world.reports[promo_world.v2]
    kwargs: dict[str, Any] = {"approval": None, "now": datetime(2013, 1, 17, tzinfo=UTC), "dag_id": "d", "run_id": "r"}
    with fault_proxy(mlflow_server) as proxy:
        proxy.rule = lambda method, path, headers, n: 503 if path.endswith("/model-versions/set-tag") else None
        with pytest.raises(MlflowException, match=r"model-versions/set-tag failed .*too many 503 error responses"):
            apply_decision(promo_world.spec, promo_world.lake, proxy.url, report, **kwargs)
    mlflow = client(mlflow_server)
    assert current_alias(mlflow, promo_world.name, "champion") == promo_world.v2  # the commit point passed
    assert read_ledger(promo_world.lake, promo_world.name) == []  # the record is written last

    out = apply_decision(promo_world.spec, promo_world.lake, mlflow_server, report, **kwargs)  # the retry
    assert out["promoted"] and out["version"] == promo_world.v2
    out = apply_decision(promo_world.spec, promo_world.lake, mlflow_server, report, **kwargs)  # and once more
    history = read_ledger(promo_world.lake, promo_world.name)
    assert [(e["action"], e["version"]) for e in history] == [("promote", promo_world.v2)]
    tags = mlflow.get_model_version(promo_world.name, str(promo_world.v2)).tags
    assert tags["airloop.gate"] == "promoted" and tags["airloop.previous_champion"] == str(promo_world.v1)


def test_a_rejection_is_recorded_with_its_trigger_and_opens_only_that_kinds_breaker(
    promo_world: Any, mlflow_server: str
) -> None:
    """The ledger entry of a gate decision names the trigger that asked for the challenger (its
    ``airloop.trigger`` tag, set by the train task from the drift event); the monitor counts the
    rejection toward that kind's circuit breaker only."""
    from include.monitoring.decision import Streak
    from include.monitoring.monitor import loop_state
    from include.registry.ledger import read_ledger
    from include.registry.promotion import apply_decision, run_gate

    client(mlflow_server).set_model_version_tag(
        promo_world.name, str(promo_world.v3), "airloop.trigger", "estimated_drop"
    )
    report = run_gate(
        promo_world.spec, promo_world.lake, mlflow_server, challenger_version=promo_world.v3, report_key="t"
    )
    assert report["challenger_tags"]["airloop.trigger"] == "estimated_drop"
    rejected = {**report, "decision": {**report["decision"], "promote": False}}  # as a failed check leaves it
    kwargs: dict[str, Any] = {"approval": None, "now": datetime(2013, 1, 17, tzinfo=UTC), "dag_id": "d", "run_id": "r"}
    out = apply_decision(promo_world.spec, promo_world.lake, mlflow_server, rejected, **kwargs)
    assert (out["promoted"], out["action"]) == (False, "reject")
    (entry,) = read_ledger(promo_world.lake, promo_world.name)
    assert (entry["action"], entry["version"], entry["figures"]["trigger"]) == (
        "reject",
        promo_world.v3,
        "estimated_drop",
    )
    state = loop_state(promo_world.lake, promo_world.name, [])
    assert state.rejections == {"performance_drop": Streak(1, date(2013, 1, 17))}


# =========================================================================== model files


class _Tripwire:
    """Unpickling this creates ``path``: proof that something unpickled the artifact."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_pickle_model_artifact_is_never_unpickled_by_scoring(
    mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from include.registry.mlflow_registry import RegistryError, load_onnx_bytes
    from include.scoring.score import make_session

    marker = tmp_path / "UNPICKLED"
    payload = pickle.dumps(_Tripwire(str(marker)))
    sklearn_mlmodel = yaml.safe_dump(
        {"flavors": {"python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
                     "sklearn": {"pickled_model": "model.pkl", "serialization_format": "pickle"}}}
    ).encode()  # fmt: skip
    disguised_mlmodel = yaml.safe_dump({"flavors": {"onnx": {"data": "model.onnx"}}}).encode()
    plain = raw_version(mlflow_server, "rel_pickle", {"MLmodel": sklearn_mlmodel, "model.pkl": payload})
    disguised = raw_version(mlflow_server, "rel_pickle", {"MLmodel": disguised_mlmodel, "model.onnx": payload})
    calls: list[str] = []
    for name in ("load", "loads"):
        real = getattr(pickle, name)
        monkeypatch.setattr(pickle, name, lambda *a, _r=real, _n=name, **k: calls.append(_n) or _r(*a, **k))

    with pytest.raises(
        RegistryError,
        match=rf"models:/rel_pickle/{plain} is not an ONNX model \(flavors: \['python_function', 'sklearn'\]\)",
    ):
        load_onnx_bytes(mlflow_server, "rel_pickle", plain)
    with pytest.raises(
        RegistryError, match=rf"models:/rel_pickle/{disguised}: model.onnx is not a readable ONNX model \(DecodeError"
    ):
        make_session(load_onnx_bytes(mlflow_server, "rel_pickle", disguised))  # a pickle named model.onnx
    assert calls == [] and not marker.exists()
    pickle.loads(payload)  # the tripwire works: had anything unpickled the artifact, the marker would exist
    assert marker.exists()


def test_truncated_onnx_in_the_registry_fails_before_any_row_is_written(
    mlflow_server: str, models: Models, pin_world: Any, tmp_path: Path
) -> None:
    from include.registry.mlflow_registry import RegistryError, load_onnx_bytes
    from include.scoring.score import score_partition

    mlmodel = yaml.safe_dump({"flavors": {"onnx": {"data": "model.onnx"}}}).encode()
    version = raw_version(
        mlflow_server, "rel_trunc", {"MLmodel": mlmodel, "model.onnx": models.hgb[: len(models.hgb) // 2]}
    )
    lake = Lake((tmp_path / "lake").as_uri())
    lake.publish_copy(pin_world.lake.partition_file(Zone.VALIDATED, PIN, DAY), Zone.VALIDATED, PIN, DAY)
    with pytest.raises(
        RegistryError, match=rf"models:/rel_trunc/{version}: model.onnx is not a readable ONNX model \(DecodeError"
    ):
        onnx = load_onnx_bytes(mlflow_server, "rel_trunc", version)
        score_partition(pin_world.spec, lake, DAY, onnx, model_name="rel_trunc", model_version=version, run_id="r")
    assert lake.list_files(lake.path("predictions")) == []
    assert pc.sum(pc.is_valid(lake.read_table(Zone.VALIDATED, PIN, DAY).column("flight_id"))).as_py() > 0


def test_gate_counts_clean_shadow_days_when_the_spec_asks_for_them(
    mlflow_server: str, models: Models, flights_lake: Path, tmp_path: Path
) -> None:
    """gate.shadow_days = 2: no shadow record -> rejected, naming the count; two clean days of
    the challenger (a day of another version and a day with unmatched rows do not count) -> promoted."""
    from include.registry.promotion import run_gate

    spec = spec_named("rel_shadow", gate={"min_roc_auc": 0.0, "bootstrap_samples": 20, "shadow_days": 2})
    lake = Lake((tmp_path / "lake").as_uri())
    copy_as(flights_lake, lake, "rel_shadow", [date(2013, 1, d) for d in range(9, 17)], (Zone.VALIDATED, Zone.LABELS))
    v1, v2 = (register(mlflow_server, spec, models.hgb) for _ in range(2))
    client(mlflow_server).set_registered_model_alias("rel_shadow", "champion", str(v1))

    report = run_gate(spec, lake, mlflow_server, challenger_version=v2, report_key="none")
    shadow = next(c for c in report["decision"]["checks"] if c["name"] == "shadow_days")
    assert not report["decision"]["promote"] and shadow["observed"] == 0 and not shadow["passed"]

    for day, version, unmatched in (("2013-01-17", v2, 0), ("2013-01-18", v2, 5), ("2013-01-19", v1, 0)):
        record = {"challenger_version": version, "rows": 900, "unmatched_rows": unmatched}
        lake.write_bytes(lake.report_path("rel_shadow", "shadow", f"ds={day}.json"), json.dumps(record).encode())
    report = run_gate(spec, lake, mlflow_server, challenger_version=v2, report_key="one")
    assert next(c for c in report["decision"]["checks"] if c["name"] == "shadow_days")["observed"] == 1

    record = {"challenger_version": v2, "rows": 910, "unmatched_rows": 0}
    lake.write_bytes(lake.report_path("rel_shadow", "shadow", "ds=2013-01-20.json"), json.dumps(record).encode())
    report = run_gate(spec, lake, mlflow_server, challenger_version=v2, report_key="two")
    shadow = next(c for c in report["decision"]["checks"] if c["name"] == "shadow_days")
    assert shadow["observed"] == 2 and shadow["passed"] and report["decision"]["promote"]
