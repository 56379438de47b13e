"""Production mode on this machine: the compose stack's architecture, without Docker.

One stack of its own: CeleryExecutor with two workers (``alpha``, ``beta``: separate
``airflow celery worker`` processes) on a Redis broker, PostgreSQL as metadata DB and Celery
result backend, the lake on S3 (moto's server) reached through an Airflow AWS connection
created in the metadata DB (no AWS variable in any process but MLflow's), MLflow with its
backend store on PostgreSQL and its artifacts on S3. The PostgreSQL server is a private one
(``private_postgres``), so that a test may stop or restart it without touching the machine's.

The tests run in order and build on each other: a loop pass (ingest, validate, train, promote,
score, monitor), the same scoring day under LocalExecutor, a worker killed mid-training.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import pytest
import yaml

from devstack.api import AirflowClient
from devstack.stack import Stack, create_postgres_database, throwaway_stack
from devstack.supervisor import RestartPolicy, Supervisor
from include.lake import Lake, S3Options, Zone
from include.scoring.score import PREDICTED_LABEL, SCORE
from tests.conftest import ROOT
from tests.mlflow_server import land_validated
from tests.system.private_postgres import PrivatePostgres, private_postgres

pytestmark = pytest.mark.system

BUCKET = "airloop-prod"
WORKERS = ("alpha", "beta")
START, TRAIN_END = date(2013, 3, 1), date(2013, 4, 1)
LOOP_DAY = date(2013, 4, 2)
KEY = "prod-access-key"
SECRET = f"prod-S3-secret-{secrets.token_hex(8)}"  # must never appear in a task log
SHARD_ROWS = 160  # a flights day (~900 rows) becomes ~6 mapped shards
STEPS = ("ingest", "validate", "train", "promote", "score", "monitor")
ENV = {
    # a task whose worker is lost is failed (then retried) after 40 s without heartbeat, not 300 s
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "40",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    # Redis redelivers a message not acknowledged after this long (Airflow acks late: when the
    # task ends), so a lost worker's message comes back (Airflow's default: 24 h). Every task
    # here takes well under 90 s: none is redelivered while it still runs.
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "90",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class Production:
    stack: Stack
    client: AirflowClient
    lake: Lake
    pg: PrivatePostgres
    mlflow_db: str
    s3: Any  # boto3 S3 client
    root: Path


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory, s3_server: str) -> Iterator[Production]:
    import boto3

    root = tmp_path_factory.mktemp("production")
    s3 = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                      region_name="us-east-1")  # fmt: skip
    s3.create_bucket(Bucket=BUCKET)
    specs = root / "specs"
    specs.mkdir()
    data = yaml.safe_load((ROOT / "include" / "specs" / "flights.yaml").read_text())
    data.setdefault("scoring", {})["shard_rows"] = SHARD_ROWS
    (specs / "flights.yaml").write_text(yaml.safe_dump(data))
    lake_uri = f"s3://{BUCKET}/lake"
    with private_postgres() as pg:
        mlflow_db = create_postgres_database("mlflow", **pg.connect)
        with throwaway_stack(
            root,
            lake_uri,
            db_prefix="airflow",
            env={**ENV, "AIRLOOP_SPECS_DIR": str(specs)},
            postgres=pg.connect,
            executor="CeleryExecutor",
            celery_broker_url=f"redis://127.0.0.1:6379/{random.randint(1, 15)}",
            celery_workers=WORKERS,
            mlflow_backend_uri=mlflow_db,
            mlflow_artifacts_uri=f"s3://{BUCKET}/mlartifacts",
            mlflow_env={
                "MLFLOW_S3_ENDPOINT_URL": s3_server,
                "AWS_ACCESS_KEY_ID": KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_DEFAULT_REGION": "us-east-1",
            },
        ) as stack:
            client = AirflowClient.for_stack(stack)
            # the lake's credentials live in an Airflow connection (encrypted in the metadata DB)
            client.create_connection("aws_default", "aws", login=KEY, password=SECRET,
                                  extra={"endpoint_url": s3_server, "region_name": "us-east-1"})  # fmt: skip
            for step in STEPS:
                client.wait_for_dag(f"flights__{step}", timeout=240)
                client.unpause(f"flights__{step}")
            lake = Lake(lake_uri, s3=S3Options(access_key=KEY, secret_key=SECRET, endpoint_url=s3_server))
            yield Production(stack, client, lake, pg, mlflow_db, s3, root)


def _keys(prod: Production, prefix: str) -> list[str]:
    pages = prod.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _mlflow_rows(prod: Production, sql: str) -> list[tuple[Any, ...]]:
    from urllib.parse import urlsplit

    url = urlsplit(prod.mlflow_db)
    conn = psycopg2.connect(host=url.hostname, port=url.port, user=url.username, dbname=url.path.lstrip("/"))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def _written_at(prod: Production, ds: date) -> Any:
    """When the predictions of ``ds`` were last written (S3 LastModified of the data object): a
    rerun that changed nothing would leave it as it was."""
    return prod.s3.head_object(Bucket=BUCKET, Key=f"lake/predictions/flights/ds={ds}/data.parquet")["LastModified"]


def _run_day(prod: Production, step: str, ds: date, run_id: str) -> None:
    run = prod.client.trigger(f"flights__{step}", logical_date=f"{ds}T00:00:00+00:00", run_id=run_id)
    assert prod.client.wait_dag_run(f"flights__{step}", run["dag_run_id"], timeout=900) == "success"


def _hostnames(prod: Production, dag_id: str, run_id: str, task_id: str | None = None) -> list[str]:
    return [t["hostname"] for t in prod.client.task_instances(dag_id, run_id) if task_id in (None, t["task_id"])]


def test_loop_pass_on_celery_workers_with_the_lake_on_s3_and_mlflow_on_postgres(prod: Production) -> None:
    from mlflow import MlflowClient

    client, lake = prod.client, prod.lake
    land_validated(lake, [START + timedelta(days=i) for i in range((TRAIN_END - START).days + 1)])

    # validate a day landed through Airflow
    _run_day(prod, "ingest", LOOP_DAY, "prod_ingest")
    _run_day(prod, "validate", LOOP_DAY, "prod_validate")
    validated = lake.read_table(Zone.VALIDATED, "flights", LOOP_DAY)
    assert validated.num_rows > 5 * SHARD_ROWS

    # train -> challenger event -> promote
    promote_runs = {r["dag_run_id"] for r in client.dag_runs("flights__promote")}
    conf = {"end_date": TRAIN_END.isoformat(), "window_days": 28, "search_budget": 2, "reason": "production mode"}
    run = client.trigger("flights__train", conf=conf, run_id="prod_train_1")
    assert client.wait_dag_run("flights__train", run["dag_run_id"], timeout=900) == "success"
    assert client.wait_for_new_run("flights__promote", promote_runs)["state"] == "success"
    mlflow = MlflowClient(prod.stack.mlflow_url, registry_uri=prod.stack.mlflow_url)
    assert mlflow.get_registered_model("flights").aliases == {"champion": "1", "challenger": "1"}

    # score: the day's shards spread over both workers
    _run_day(prod, "score", LOOP_DAY, "prod_score")
    shard_hosts = _hostnames(prod, "flights__score", "prod_score", "score")
    assert len(shard_hosts) == -(-validated.num_rows // SHARD_ROWS) >= 6
    assert set(shard_hosts) == set(WORKERS), shard_hosts
    predictions = lake.read_table(Zone.PREDICTIONS, "flights", LOOP_DAY)
    rejects = lake.parquet_file(f"{lake.partition_dir(Zone.PREDICTIONS, 'flights', LOOP_DAY)}/_rejects.parquet").read()
    assert predictions.num_rows + rejects.num_rows == validated.num_rows
    assert set(predictions.column("model_version").to_pylist()) == {1}

    _run_day(prod, "monitor", LOOP_DAY, "prod_monitor")
    for dag_id, run_id in [(f"flights__{s}", f"prod_{s}") for s in ("ingest", "validate", "score", "monitor")] + [
        ("flights__train", "prod_train_1")
    ]:
        assert set(_hostnames(prod, dag_id, run_id)) <= set(WORKERS), dag_id  # every task ran on a Celery worker

    # where everything went: S3 and PostgreSQL, nothing on the local disk
    lake_keys = _keys(prod, "lake/")
    for zone in ("landing", "validated", "predictions"):
        assert f"lake/{zone}/flights/ds={LOOP_DAY}/data.parquet" in lake_keys
    assert f"lake/reports/flights/drift/ds={LOOP_DAY}.json" in lake_keys
    # no in-flight object left behind (pyarrow leaves the empty marker ``lake/_tmp/`` when it
    # deletes the last temporary file under it: a name, no data)
    assert [key for key in lake_keys if "_tmp" in key and not key.endswith("/")] == []
    assert [k for k in _keys(prod, "mlartifacts/") if k.endswith(".onnx")]
    assert not (prod.root / "airloop" / "lake").exists() and not (prod.stack.home / "mlartifacts").exists()
    assert _mlflow_rows(prod, "SELECT name, version FROM model_versions") == [("flights", 1)]
    aliases = _mlflow_rows(prod, "SELECT alias, version FROM registered_model_aliases ORDER BY alias")
    assert aliases == [("challenger", 1), ("champion", 1)]
    # the tasks had no AWS variable: the lake's keys came from the connection alone
    assert not [k for k in prod.stack.component_env("worker-alpha") if k.startswith("AWS_") and "KEY" in k]
    assert prod.stack.component_env("mlflow")["AWS_SECRET_ACCESS_KEY"] == SECRET  # only MLflow has them
    # the connection's secret reached the tasks (they read S3) but no log line
    logs = [p for p in prod.stack.logs_dir.rglob("*") if p.is_file()]
    assert len(logs) > 20
    assert [p for p in logs if SECRET in p.read_text(errors="replace")] == []


def test_the_same_day_scored_under_local_executor_gives_the_same_predictions(prod: Production) -> None:
    stack, client, lake = prod.stack, prod.client, prod.lake
    celery = lake.read_table(Zone.PREDICTIONS, "flights", LOOP_DAY).sort_by("flight_id")
    celery_written = _written_at(prod, LOOP_DAY)
    time.sleep(1)  # LastModified has one-second resolution
    _switch_executor(stack, "LocalExecutor")
    try:
        client.clear_run("flights__score", "prod_score")
        assert client.wait_dag_run("flights__score", "prod_score", timeout=600) == "success"
        hosts = _hostnames(prod, "flights__score", "prod_score")
        assert hosts and not set(hosts) & set(WORKERS)  # this time the scheduler's own workers ran it
    finally:
        _switch_executor(stack, "CeleryExecutor")
    local = lake.read_table(Zone.PREDICTIONS, "flights", LOOP_DAY).sort_by("flight_id")
    assert _written_at(prod, LOOP_DAY) > celery_written  # published again, by the local run
    assert local.num_rows == celery.num_rows > 0
    for column in ("flight_id", SCORE, PREDICTED_LABEL, "model_version", "run_id"):
        assert local.column(column).equals(celery.column(column)), column


def _switch_executor(stack: Stack, executor: str) -> None:
    stack.stop(components=["scheduler"])
    stack.executor = executor
    stack.start(["scheduler"])
    stack.wait_healthy(timeout=180, components=["scheduler"])


def test_a_worker_killed_mid_training_is_retried_on_the_other_worker(prod: Production) -> None:
    from mlflow import MlflowClient

    stack, client = prod.stack, prod.client
    promote_runs = {r["dag_run_id"] for r in client.dag_runs("flights__promote")}
    conf = {"end_date": TRAIN_END.isoformat(), "window_days": 28, "search_budget": 3, "reason": "worker loss"}
    client.trigger("flights__train", conf=conf, run_id="prod_train_lost")
    victim = _running_on(client, "flights__train", "prod_train_lost", "train")
    time.sleep(5)  # into the search
    leader = psutil.Process(stack.pids()[f"worker-{victim}"])
    tree = [leader, *leader.children(recursive=True)]
    assert len(tree) >= 3  # worker -> pool process -> task supervisor -> task
    os.killpg(os.getpgid(leader.pid), signal.SIGKILL)
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    assert psutil.wait_procs(tree, timeout=15)[1] == []

    assert client.wait_dag_run("flights__train", "prod_train_lost", timeout=900) == "success"
    (ti,) = client.task_instances("flights__train", "prod_train_lost")
    (survivor,) = set(WORKERS) - {victim}
    assert ti["try_number"] == 2 and ti["hostname"] == survivor
    # the lost try registered nothing: one new version, one challenger event
    mlflow = MlflowClient(stack.mlflow_url, registry_uri=stack.mlflow_url)
    versions = sorted(int(v.version) for v in mlflow.search_model_versions("name='flights'"))
    assert versions == [1, 2]
    assert mlflow.get_model_version("flights", "2").tags["airloop.trigger_reason"] == "manual: worker loss"
    assert len(client.asset_events(source_dag_id="flights__train", source_run_id="prod_train_lost")) == 1
    assert client.wait_for_new_run("flights__promote", promote_runs)["state"] == "success"
    stack.start([f"worker-{victim}"])
    stack.wait_healthy(timeout=180, components=[f"worker-{victim}"])

    # the broker hands the lost try's message out again once its visibility timeout is over;
    # the execution API no longer knows that try (404): nothing runs twice
    deliveries = _deliveries(stack, "prod_train_lost", try_number=1, at_least=2, timeout=300)
    assert len(deliveries) == 2 and deliveries[0][1] == deliveries[1][1]  # one Celery task, delivered twice
    task_id = deliveries[1][1]
    refused = re.compile(rf"^(.*?)execute_workload\[({re.escape(task_id)})\] raised unexpected: ServerResponseError")
    assert len(_log_matches(stack, refused, at_least=1, timeout=120)) == 1, [  # logged when the refused try ends
        line for line in _worker_log_lines(stack) if task_id in line
    ]
    assert sorted(int(v.version) for v in mlflow.search_model_versions("name='flights'")) == [1, 2]
    assert len(client.asset_events(source_dag_id="flights__train", source_run_id="prod_train_lost")) == 1


def _celery_control(stack: Stack, *args: str) -> None:
    """``celery control <args>`` to every worker of the stack, through the broker; both must
    answer (by default celery waits 1 s and is content with any one reply)."""
    import json
    import socket
    import subprocess
    import sys

    nodes = sorted(f"{w.removeprefix('worker-')}@{socket.gethostname()}" for w in stack.workers())
    app = "airflow.providers.celery.executors.celery_executor.app"
    cmd = [sys.executable, "-m", "celery", "--app", app, "control", "--json", "--timeout", "30"]
    cmd += ["--destination", ",".join(nodes), *args]
    done = subprocess.run(cmd, env=stack.component_env("worker-alpha"), check=True, timeout=120, capture_output=True)
    replies = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert sorted(node for reply in replies for node in reply) == nodes, replies


RECEIVED = re.compile(r"^(\S+) .*Task execute_workload\[([0-9a-f-]{36})\] received")


def _worker_log_lines(stack: Stack) -> list[str]:
    return [line for w in stack.workers() for line in (stack.logs_dir / f"{w}.log").read_text().splitlines()]


def _deliveries(stack: Stack, run_id: str, try_number: int, at_least: int, timeout: float) -> list[tuple[str, str]]:
    """(timestamp, Celery task id) of each time a worker took the message of ``run_id``'s try."""
    pattern = re.compile(r"^(\S+) .*\[([0-9a-f-]{36})\] Executing workload in Celery: .*run_id='"
                         + re.escape(run_id) + r"'.*try_number=" + str(try_number) + r"\b")  # fmt: skip
    return _log_matches(stack, pattern, at_least, timeout)


def _log_matches(stack: Stack, pattern: re.Pattern[str], at_least: int, timeout: float) -> list[tuple[str, str]]:
    """The two groups of every worker log line ``pattern`` matches, sorted; waits until there are
    ``at_least`` of them or ``timeout`` seconds have passed (a worker logs an outcome when it ends)."""
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(m.groups() for m in map(pattern.match, _worker_log_lines(stack)) if m)
        if len(found) >= at_least or time.monotonic() > deadline:
            return [(str(a), str(b)) for a, b in found]
        time.sleep(3)


def _running_on(client: AirflowClient, dag_id: str, run_id: str, task_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ti in client.task_instances(dag_id, run_id):
            if ti["task_id"] == task_id and ti["state"] == "running" and ti["hostname"] in WORKERS:
                return str(ti["hostname"])
        time.sleep(0.5)
    raise AssertionError(f"{dag_id} {run_id} {task_id} never ran on a worker")


def test_postgres_down_while_workers_take_a_scoring_runs_tasks_then_the_day_completes(prod: Production) -> None:
    """PostgreSQL (Airflow's metadata DB, the Celery result backend and MLflow's store) is down
    while the workers take a scoring run's queued task from the broker. Airflow's scheduler,
    dag-processor and triggerer exit when their connection breaks (they expect a supervisor);
    once the stack's supervisor has started them again the run completes, no task lost to the
    outage."""
    import pyarrow.compute as pc
    from mlflow import MlflowClient

    from include.scoring.shards import verify_partition
    from include.spec import get_spec

    stack, client, lake = prod.stack, prod.client, prod.lake
    before = lake.read_table(Zone.PREDICTIONS, "flights", LOOP_DAY).sort_by("flight_id")
    written = _written_at(prod, LOOP_DAY)
    _celery_control(stack, "cancel_consumer", stack.celery_queue)  # the workers stop taking tasks
    client.clear_run("flights__score", "prod_score")
    deadline = time.monotonic() + 300
    while not [t for t in client.task_instances("flights__score", "prod_score") if t["state"] == "queued"]:
        assert time.monotonic() < deadline, "no task was ever queued"
        time.sleep(0.5)
    received = len(_log_matches(stack, RECEIVED, at_least=0, timeout=0))
    # `airloop up --watch`, as compose's restart: always: restarts whatever exits, with backoff
    supervisor = Supervisor(stack, RestartPolicy(poll_s=0.5))
    stop = threading.Event()
    watcher = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
    watcher.start()
    try:
        prod.pg.stop("fast")
        _celery_control(stack, "add_consumer", stack.celery_queue)  # they take the queued task, database down
        assert len(_log_matches(stack, RECEIVED, at_least=received + 1, timeout=120)) > received
        time.sleep(5)
        prod.pg.start()
        assert client.wait_dag_run("flights__score", "prod_score", timeout=900) == "success", supervisor.restarts
        stack.wait_healthy(timeout=300)
        time.sleep(15)  # a component may die seconds after the database is back (a pooled connection)
        stack.wait_healthy(timeout=300)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert "scheduler" in supervisor.restarts, supervisor.restarts  # it exited, and was brought back

    # no task was dropped and requeued after [scheduler] task_queued_timeout
    assert not [line for line in _worker_log_lines(stack) if "flagged as revoked" in line]
    after = lake.read_table(Zone.PREDICTIONS, "flights", LOOP_DAY).sort_by("flight_id")
    assert _written_at(prod, LOOP_DAY) > written  # the day was scored and published again
    assert after.num_rows == before.num_rows > 0
    assert pc.count_distinct(after.column("flight_id")).as_py() == after.num_rows
    assert after.column("flight_id").equals(before.column("flight_id"))
    champion = MlflowClient(stack.mlflow_url, registry_uri=stack.mlflow_url).get_model_version_by_alias(
        "flights", "champion"
    )
    assert set(after.column("model_version").to_pylist()) == {int(champion.version)}
    assert verify_partition(lake, get_spec("flights"), LOOP_DAY)["total_rows"] == after.num_rows
    assert set(stack.status().values()) == {True}
