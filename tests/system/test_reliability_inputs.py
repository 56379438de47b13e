"""Reliability at the boundaries (issue 11): bad specs, Params, data and model files; drift
decisions delivered twice, late or in a storm; secrets, pickles and paths that try to escape.

Specs, Params and models are the real ones (the shipped ``flights`` spec, the DagBag of
``dags/``, onnxruntime sessions of models trained on the flights demo).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from include.lake import Lake, LakeError, Zone, safe_key
from include.monitoring.decision import DayDrift, DriftVerdict, LoopState, decide
from include.spec import SpecError, get_spec, load_spec
from tests.system.test_reliability import ROOT, SPEC, Models, copy_days, flights_models

pytestmark = pytest.mark.slow  # real parts in-process, no Airflow stack: make test runs it on every core

DAY = date(2013, 1, 10)


# =========================================================================== spec files


def _write_spec(folder: Path, mutate: Any) -> Path:
    data = yaml.safe_load((ROOT / "include" / "specs" / "flights.yaml").read_text())
    mutate(data)
    path = folder / "flights.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"kind": "file", "path": "../../../etc/passwd.csv"}, "dataset.source.path"),
        ({"kind": "file", "path": "data/..\\..\\secrets.parquet"}, "dataset.source.path"),
        ({"kind": "file", "path": "ok.csv\x00../x"}, "dataset.source.path"),
        ({"kind": "builtin", "name": "../../../tmp/evil"}, "dataset.source.name"),
        ({"kind": "builtin", "name": "os.path"}, "dataset.source.name"),
    ],
    ids=["dotdot", "backslash-dotdot", "nul", "builtin-traversal", "builtin-dotted-module"],
)
def test_spec_paths_and_names_cannot_traverse(tmp_path: Path, source: dict[str, str], field: str) -> None:
    """Fixed in include/spec.py: ``source.path`` refused no ``..``, ``source.name`` had no pattern."""
    (tmp_path / "ok.csv").write_text("x\n1\n")
    path = _write_spec(tmp_path, lambda d: d["dataset"].__setitem__("source", source))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: {field}: expected "), str(err.value)


def test_spec_yaml_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "flights.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SpecError, match=r"flights.yaml: not valid YAML.*python/object/apply"):
        load_spec(path)
    assert not marker.exists()


def test_spec_with_many_wrong_types_names_every_field_at_once(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["training"]["window_days"] = "four weeks"
        d["gate"]["min_roc_auc"] = 2.0
        d["drift"]["bins"] = [10]
        d["scoring"]["batch_size"] = -1
        d["dataset"]["features"]["numeric"] = "distance"

    path = _write_spec(tmp_path, mutate)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    text = str(err.value)
    for field in (
        "training.window_days",
        "gate.min_roc_auc",
        "drift.bins",
        "scoring.batch_size",
        "dataset.features.numeric",
    ):
        assert f"{field}: expected" in text, (field, text)


@pytest.mark.parametrize("name", ["../flights", "flights/../../x", "flights%2f..", "/etc/passwd", "Flights", ""])
def test_model_name_lookups_cannot_leave_the_specs_folder(name: str) -> None:
    with pytest.raises(SpecError, match="is not valid"):
        get_spec(name)


# =========================================================================== DAG Params


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import os

    from airflow.dag_processing.dagbag import DagBag

    old = os.environ.get("AIRFLOW_HOME")
    os.environ["AIRFLOW_HOME"] = str(tmp_path_factory.mktemp("airflow-home"))
    try:
        bag = DagBag(dag_folder=str(ROOT / "dags"))
    finally:
        if old is None:
            os.environ.pop("AIRFLOW_HOME", None)
        else:
            os.environ["AIRFLOW_HOME"] = old
    assert bag.import_errors == {}
    return bag


BAD_PARAMS = [
    ("flights__train", {"window_days": 3}, "window_days", "less than the minimum"),
    ("flights__train", {"window_days": 10_000}, "window_days", "greater than the maximum"),
    ("flights__train", {"window_days": "28 days"}, "window_days", "is not of type 'integer'"),
    ("flights__train", {"search_budget": 0}, "search_budget", "less than the minimum"),
    ("flights__train", {"estimator": "xgboost"}, "estimator", "is not one of"),
    ("flights__train", {"end_date": 20130110}, "end_date", "is not of type"),
    ("flights__train", {"reason": "x" * 501}, "reason", "is too long"),
    ("flights__train", {"reason": 42}, "reason", "is not of type"),
    ("flights__rollback", {"target_version": 0}, "target_version", "less than the minimum"),
    ("flights__rollback", {"target_version": "latest"}, "target_version", "is not of type"),
    ("flights__rollback", {"reason": "oops"}, "reason", "is too short"),
    ("flights__promote", {"mode": "force"}, "mode", "is not one of"),
]


@pytest.mark.parametrize(
    ("dag_id", "conf", "param", "message"), BAD_PARAMS, ids=[f"{d}-{p}-{m}" for d, _, p, m in BAD_PARAMS]
)
def test_dag_params_out_of_range_or_of_the_wrong_type_are_refused(
    dagbag: Any, dag_id: str, conf: dict[str, Any], param: str, message: str
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags[dag_id].params)
    with pytest.raises(ParamValidationError, match=rf"Invalid input for param {param}: .*{message}"):
        params.update(conf)


def test_dag_params_defaults_and_good_values_validate(dagbag: Any) -> None:
    params = copy.deepcopy(dagbag.dags["flights__train"].params)
    params.update({"window_days": 14, "search_budget": 2, "estimator": "logistic_regression", "end_date": "2013-02-01"})
    assert params.validate() == {"end_date": "2013-02-01", "window_days": 14, "search_budget": 2,
                                 "estimator": "logistic_regression", "reason": None}  # fmt: skip
    rollback = copy.deepcopy(dagbag.dags["flights__rollback"].params)
    rollback.update({"target_version": 3, "reason": "v4 mislabels JFK"})
    assert rollback.validate() == {"target_version": 3, "reason": "v4 mislabels JFK"}


# =========================================================================== data and model files


@pytest.fixture(scope="module")
def models(flights_lake: Path) -> Models:
    return flights_models(flights_lake)


def test_scoring_input_with_a_wrongly_typed_feature_is_refused_before_writing(
    tmp_path: Path, flights_lake: Path, models: Models
) -> None:
    from include.scoring.contract import InputSchemaError
    from include.scoring.score import score_partition

    lake = Lake((tmp_path / "lake").as_uri())
    table = Lake(flights_lake.as_uri()).read_table(Zone.VALIDATED, "flights", DAY)
    as_text = pa.array([str(v) for v in table.column("distance").to_pylist()])
    lake.write_partition(
        Zone.VALIDATED, "flights", DAY, table.set_column(table.schema.get_field_index("distance"), "distance", as_text)
    )
    with pytest.raises(
        InputSchemaError, match=r"flights: cannot score this input: numeric feature distance has type string"
    ):
        score_partition(SPEC, lake, DAY, models.hgb, model_name="flights", model_version=1, run_id="r")
    assert lake.list_files(lake.path("predictions")) == [] and lake.list_files(lake.path("_tmp")) == []


def test_corrupt_validated_file_fails_scoring_naming_the_file(
    tmp_path: Path, flights_lake: Path, models: Models
) -> None:
    from include.scoring.score import score_partition

    lake = Lake((tmp_path / "lake").as_uri())
    copy_days(flights_lake, lake, [DAY])
    path = lake.partition_file(Zone.VALIDATED, "flights", DAY)
    Path(path).write_bytes(Path(path).read_bytes()[:5000])  # truncated by a broken copy
    with pytest.raises(
        LakeError,
        match=r"flights: cannot read file://.*/validated/flights/ds=2013-01-10/data.parquet as Parquet: .*magic bytes not found",
    ):
        score_partition(SPEC, lake, DAY, models.hgb, model_name="flights", model_version=1, run_id="r")
    assert lake.list_files(lake.path("predictions")) == []


def test_model_with_another_signature_is_refused_before_any_row_is_read(
    tmp_path: Path, flights_lake: Path, models: Models
) -> None:
    from include.scoring.contract import SignatureMismatchError
    from include.scoring.score import score_partition

    lake = Lake((tmp_path / "lake").as_uri())
    copy_days(flights_lake, lake, [DAY])
    narrow = SPEC.model_copy(
        update={
            "dataset": SPEC.dataset.model_copy(
                update={
                    "features": SPEC.dataset.features.model_copy(
                        update={"numeric": ["distance", "sched_hour", "wind_gust"]}
                    )
                }
            )
        }
    )
    with pytest.raises(
        SignatureMismatchError,
        match=r"spec features the model does not take: \['wind_gust'\]; model inputs the spec does not provide: \['day_of_week'",
    ):
        score_partition(narrow, lake, DAY, models.hgb, model_name="flights", model_version=1, run_id="r")
    assert lake.list_files(lake.path("predictions")) == []


def test_truncated_onnx_bytes_are_refused_before_any_output(tmp_path: Path, flights_lake: Path, models: Models) -> None:
    from include.scoring.score import score_partition

    lake = Lake((tmp_path / "lake").as_uri())
    copy_days(flights_lake, lake, [DAY])
    for cut in (len(models.hgb) // 3, len(models.hgb) - 7):
        with pytest.raises(Exception, match=r"(?i)INVALID_PROTOBUF|protobuf parsing failed|load model"):
            score_partition(SPEC, lake, DAY, models.hgb[:cut], model_name="flights", model_version=1, run_id="r")
    assert lake.list_files(lake.path("predictions")) == [] and lake.list_files(lake.path("_tmp")) == []


# =========================================================================== drift decisions


POLICY = SPEC.drift.model_copy(update={"window_m": 2, "window_n": 3, "cooldown_days": 7, "max_retrains": 2,
                                       "max_retrains_period_days": 30, "min_rows": 100,
                                       "retrain_on": ["data_drift"]})  # fmt: skip  # the drift rules alone
START = date(2013, 3, 1)


def _day(ds: date, score: float = 0.9) -> DayDrift:
    return DayDrift("flights", ds.isoformat(), "alert" if score >= POLICY.alert else "ok", score, 1000, ("temp",), "v1")


class Consumer:
    """What monitor_day keeps between runs: one record per partition (a rerun overwrites it);
    the history and the loop state are rebuilt from every other day's record on each delivery."""

    def __init__(self) -> None:
        self.records: dict[str, DriftVerdict] = {}
        self.days: dict[str, DayDrift] = {}

    def deliver(self, today: DayDrift) -> DriftVerdict:
        history = [d for k, d in sorted(self.days.items()) if k < today.partition]
        retrains = tuple(date.fromisoformat(k) for k, v in self.records.items() if v.retrain and k != today.partition)
        verdict = decide(history, today, LoopState(retrain_dates=retrains), POLICY)
        self.records[today.partition], self.days[today.partition] = verdict, today
        return verdict

    def retrain_days(self) -> list[date]:
        return sorted(date.fromisoformat(k) for k, v in self.records.items() if v.retrain)


def test_duplicated_drift_records_of_one_day_do_not_fill_the_window() -> None:
    day = START + timedelta(days=5)
    history = [_day(day - timedelta(days=1))] * 3 + [_day(day - timedelta(days=2), 0.01)]
    verdict = decide(history, _day(day), LoopState(), POLICY.model_copy(update={"window_m": 3}))
    assert verdict.state == "warn" and verdict.window_alerts == 2 and verdict.window_days == 3


def test_drift_event_delivered_twice_decides_once_with_one_decision_id() -> None:
    consumer = Consumer()
    for offset in range(3):
        consumer.deliver(_day(START + timedelta(days=offset)))
    first = consumer.records[(START + timedelta(days=1)).isoformat()]
    again = consumer.deliver(_day(START + timedelta(days=1)))  # redelivered after day 3 was decided
    assert again == first and again.retrain
    assert consumer.retrain_days() == [START + timedelta(days=1)]


def test_merged_drift_events_decide_like_one_by_one() -> None:
    days = [_day(START + timedelta(days=i), 0.9 if i % 5 else 0.01) for i in range(40)]
    one_by_one, merged = Consumer(), Consumer()
    for day in days:
        one_by_one.deliver(day)
    for batch in (days[0:1], days[1:9], days[9:10], days[10:40]):  # Airflow merged several events per run
        for day in sorted(batch, key=lambda d: d.partition):
            merged.deliver(day)
    assert merged.records == one_by_one.records


def test_late_drift_day_does_not_retrain_inside_a_later_retrains_cooldown() -> None:
    """Bug fixed in include/monitoring/decision.py: the guards saw only earlier retrains, so a day
    whose event arrived after the next days were decided retrained one day before their retrain."""
    consumer = Consumer()
    d1, d2, d3 = (START + timedelta(days=i) for i in range(3))
    consumer.deliver(_day(d1))
    consumer.deliver(_day(d3))  # d2's event is late: d3's window holds d1 and d3, two alerts: retrain
    assert consumer.retrain_days() == [d3]
    late = consumer.deliver(_day(d2))
    assert late.state == "warn" and late.cooldown
    assert any(f"already decided on {d3.isoformat()}, 1 days after this late day" in r for r in late.reasons)
    assert consumer.retrain_days() == [d3]
    assert consumer.deliver(_day(d3)).retrain  # and d3 redelivered still decides as it did


def test_drift_storm_with_duplicated_and_late_events_never_exceeds_the_caps() -> None:
    """90 days of alert-level drift, delivered shuffled, late and duplicated by racing consumers."""
    rng = random.Random(11)
    days = [_day(START + timedelta(days=i), 0.5 + rng.random()) for i in range(90)]
    deliveries = days + rng.sample(days, 30)  # duplicates
    # In order with jitter: an event may arrive up to 3 days late (a delayed or skipped-then-retried run).
    deliveries.sort(key=lambda d: d.day.toordinal() + rng.uniform(0, 3))
    consumer = Consumer()
    for day in deliveries:
        consumer.deliver(day)
    retrains = consumer.retrain_days()
    assert retrains, "a sustained storm must retrain at least once"
    for day in retrains:
        in_period = [d for d in retrains if timedelta(0) <= day - d < timedelta(days=POLICY.max_retrains_period_days)]
        assert len(in_period) <= POLICY.max_retrains, (day, retrains)
    gaps = [(b - a).days for a, b in zip(retrains, retrains[1:], strict=False)]
    assert min(gaps, default=POLICY.cooldown_days) >= POLICY.cooldown_days, retrains
    assert len(retrains) <= math.ceil(90 / POLICY.max_retrains_period_days) * POLICY.max_retrains


# =========================================================================== security


PASSWORD = "S3cr3t-Pa55word-for-the-lake"


def test_no_connection_secret_in_task_logs_or_xcom(
    monkeypatch: pytest.MonkeyPatch, s3_server: str, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    import structlog
    from airflow.sdk._shared.secrets_masker.secrets_masker import redact
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airloop.operators.ingest import ReplayIngestOperator

    conn = {"conn_type": "aws", "login": "test", "password": PASSWORD, "extra": {"endpoint_url": s3_server}}
    monkeypatch.setenv("AIRFLOW_CONN_RELIABILITY_LAKE", json.dumps(conn))
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        op = ReplayIngestOperator(task_id="land", model="flights", ds="2013-01-02", lake_uri=f"s3://{s3_bucket}/lake",
                                  lake_conn_id="reliability_lake")  # fmt: skip
        xcom = op.execute({"outlet_events": OutletEventAccessors()})  # type: ignore[arg-type]
        operator_output = _render(events) + caplog.text
        op.log.info("connecting with secret %s", PASSWORD)  # what a careless log line would print
    assert xcom["rows"] > 0 and "s3://" in json.dumps(xcom)
    assert PASSWORD not in operator_output and PASSWORD not in json.dumps(xcom)  # XCom is not masked: must hold anyway
    raw = _render(events)
    assert PASSWORD in raw  # the careless line really carried it ...
    masked = redact(raw)
    assert PASSWORD not in masked and "connecting with secret ***" in masked  # ... and the masker hides it


def _render(events: list[dict[str, Any]]) -> str:
    lines = []
    for event in events:
        text = str(event.get("event", ""))
        args = event.get("positional_args")
        lines.append(text % tuple(args) if args else text)
    return "\n".join(lines)


def test_missing_airflow_connections_fail_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowNotFoundException

    from airloop.hooks.lake import LakeHook
    from airloop.hooks.mlflow_hook import MlflowConfigError, MlflowHook

    with pytest.raises(AirflowNotFoundException, match="The conn_id `no_such_lake` isn't defined"):
        _ = LakeHook(lake_uri="s3://bucket/lake", aws_conn_id="no_such_lake").lake
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(MlflowConfigError, match="create the Airflow connection 'no_such_mlflow'"):
        MlflowHook(mlflow_conn_id="no_such_mlflow").tracking_uri()


UNSAFE = [
    "..", "../etc", "a/b", "/abs", "..%2fetc", "%2e%2e%2fetc", "a%2Fb", "a\\b", "a\x00b", "a\u2215b", " spaced",
    "x" * 200, "ds=2013-01-01/../../x", "\u2025",
]  # fmt: skip


@pytest.mark.parametrize("value", UNSAFE, ids=[repr(v)[:20] for v in UNSAFE])
def test_lake_paths_cannot_escape_the_root(tmp_path: Path, value: str) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    with pytest.raises(LakeError, match="unsafe"):
        lake.partition_dir(Zone.PREDICTIONS, value, DAY)
    with pytest.raises(LakeError, match="unsafe"):
        lake.report_path("flights", value, "x.json")
    with pytest.raises(LakeError, match="unsafe"):
        lake.report_path("flights", "drift", value)
    with pytest.raises(LakeError, match="unsafe"):
        lake.list_partitions(Zone.VALIDATED, value)


@pytest.mark.parametrize(
    "key", ["../../../etc", "manual__../../x", "/abs/run", "a\\..\\b", "..", "%2e%2e/", "run\x00id"]
)
def test_run_keys_become_one_segment_inside_their_partition(tmp_path: Path, key: str) -> None:
    from include.scoring.shards import shard_dir

    lake = Lake((tmp_path / "lake").as_uri())
    partition = lake.partition_dir(Zone.QUARANTINE, "flights", DAY)
    for path, base in (
        (lake.quarantine_dir("flights", DAY, key), partition),
        (shard_dir(lake, SPEC, DAY, key), lake.partition_dir(Zone.PREDICTIONS, "flights", DAY) + "/_shards"),
    ):
        assert path.startswith(base + "/")
        segment = path[len(base) + 1 :]
        assert "/" not in segment and segment not in ("", ".", "..") and ".." not in segment.split("/")
        assert Path(path).resolve().is_relative_to(Path(lake.root).resolve())
    assert "/" not in safe_key(key) and "\\" not in safe_key(key)
    with pytest.raises(LakeError, match="is not inside the lake"):
        lake.relative(str(tmp_path / "elsewhere" / "data.parquet"))
