"""The runtime harness itself: a real Airflow stack on a throwaway PostgreSQL DB runs a tiny DAG.

The end-to-end test is self-contained (its own DB, home, dags folder and empty plugins folder,
no MLflow) so it proves ``devstack`` independently of the project's DAGs and plugins.
Timings and memory are printed (``-s`` or ``-rA`` shows them).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests

from devstack.api import AirflowClient
from devstack.stack import (
    AIRFLOW_COMPONENTS,
    PROJECT_ROOT,
    Stack,
    create_postgres_database,
    down,
    drop_postgres_database,
    free_port_block,
    status_home,
)
from devstack.supervisor import RestartPolicy, Supervisor

DAG_ID = "airloop_stack_smoke"
DAG_SOURCE = '''
"""Smoke DAG written by tests/system/test_stack_smoke.py."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from airflow.sdk import dag, get_current_context, task


@dag(dag_id="airloop_stack_smoke", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=timezone.utc), catchup=False)
def airloop_stack_smoke():
    @task
    def write_logical_date() -> str:
        import include  # noqa: F401  - the project root is on PYTHONPATH of every component

        value = get_current_context()["logical_date"].strftime("%Y-%m-%d")
        Path(os.environ["AIRLOOP_SMOKE_OUT"]).write_text(value)
        return value

    write_logical_date()


airloop_stack_smoke()
'''


@dataclass
class Smoke:
    stack: Stack
    out: Path
    timings: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def smoke_db_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this module, dropped afterwards."""
    url = create_postgres_database("airloop_smoke")
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture()
def smoke(tmp_path: Path, smoke_db_url: str) -> Iterator[Smoke]:
    """A (not yet started) Stack with a one-DAG dags folder; always stopped afterwards."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(DAG_SOURCE)
    (tmp_path / "plugins").mkdir()
    out = tmp_path / "out.txt"
    stack = Stack(
        home=tmp_path / "home",
        db_url=smoke_db_url,
        api_port=free_port_block(),
        mlflow_port=None,
        dags_folder=dags,
        plugins_folder=tmp_path / "plugins",
        extra_env={"AIRLOOP_SMOKE_OUT": str(out)},
    )
    try:
        yield Smoke(stack=stack, out=out)
    finally:
        stack.stop()


def _process_tree(stack: Stack) -> set[int]:
    """Every pid of the running components: leaders and all their descendants."""
    pids: set[int] = set()
    for pid in stack.pids().values():
        try:
            leader = psutil.Process(pid)
            pids |= {pid, *(p.pid for p in leader.children(recursive=True))}
        except psutil.NoSuchProcess:
            pass
    return pids


def _airflow(stack: Stack, *args: str) -> str:
    """Stdout of ``airflow <args>`` run as ``airloop airflow`` runs it for the stack."""
    proc = subprocess.run(
        stack.airflow_cli(args), env=stack.env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.mark.system
@pytest.mark.timeout(900)
def test_stack_runs_a_dag_on_postgres_and_stops_cleanly(smoke: Smoke) -> None:
    stack, timings = smoke.stack, smoke.timings
    timings["db_migrate_s"] = stack.init()

    started = time.monotonic()
    stack.start(AIRFLOW_COMPONENTS)
    stack.wait_healthy(timeout=300)
    timings["start_to_healthy_s"] = time.monotonic() - started
    assert stack.status() == dict.fromkeys(AIRFLOW_COMPONENTS, True)

    client = AirflowClient.for_stack(stack)
    assert client.health()["scheduler"]["status"] == "healthy"
    started = time.monotonic()
    client.wait_for_dag(DAG_ID, timeout=120)
    timings["dag_parsed_s"] = time.monotonic() - started
    client.unpause(DAG_ID)

    started = time.monotonic()
    run = client.trigger(DAG_ID, logical_date="2024-03-05T00:00:00+00:00", run_id="smoke_2024-03-05", note="smoke")
    assert run["dag_run_id"] == "smoke_2024-03-05"
    assert client.wait_dag_run(DAG_ID, run["dag_run_id"], timeout=300) == "success"
    timings["trigger_to_success_s"] = time.monotonic() - started

    assert smoke.out.read_text() == "2024-03-05"
    assert client.import_errors() == []
    (ti,) = client.task_instances(DAG_ID, run["dag_run_id"])
    assert (ti["task_id"], ti["state"], ti["try_number"]) == ("write_logical_date", "success", 1)
    assert "Done. Returned value was: 2024-03-05" in client.task_log(DAG_ID, run["dag_run_id"], ti["task_id"], 1)
    assert [r["dag_run_id"] for r in client.dag_runs(DAG_ID)] == ["smoke_2024-03-05"]

    # `airloop airflow ...`: Airflow's own CLI with the stack's environment sees its database and
    # runs its tasks (`tasks test` runs one inside the CLI process, in a DAG run it deletes afterwards)
    started = time.monotonic()
    runs = _airflow(stack, "dags", "list-runs", DAG_ID, "-o", "json")
    found = re.search(r"^\[\s*[{\]]", runs, re.M)
    assert found, runs
    listed = json.JSONDecoder().raw_decode(runs, found.start())[0]  # Airflow may log around it
    assert [(r["run_id"], r["state"]) for r in listed] == [("smoke_2024-03-05", "success")]
    _airflow(stack, "tasks", "test", DAG_ID, "write_logical_date", "2024-03-07")
    assert smoke.out.read_text() == "2024-03-07"  # AIRLOOP_SMOKE_OUT: the stack's extra_env reached the task
    assert [r["dag_run_id"] for r in client.dag_runs(DAG_ID)] == ["smoke_2024-03-05"]
    timings["airflow_cli_s"] = time.monotonic() - started

    # a rejected token (here: garbage, "Invalid JWT token" 403) leads to one re-login
    client._token = "not-a-jwt"
    assert client.dag_run(DAG_ID, run["dag_run_id"])["state"] == "success"

    # `airloop up --watch`: the scheduler killed outright is restarted and runs the next DAG run
    supervisor = Supervisor(stack, RestartPolicy(poll_s=0.5))
    stop = threading.Event()
    watcher = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
    watcher.start()
    try:
        killed = stack.pids()["scheduler"]
        started = time.monotonic()
        os.kill(killed, signal.SIGKILL)
        while supervisor.restarts.get("scheduler") != 1:
            assert time.monotonic() - started < 60, "the supervisor did not restart the scheduler"
            time.sleep(0.2)
        stack.wait_healthy(timeout=300)
        timings["scheduler_killed_to_healthy_s"] = time.monotonic() - started
        assert stack.pids()["scheduler"] != killed and not _alive(killed)
        again = client.trigger(DAG_ID, logical_date="2024-03-06T00:00:00+00:00", run_id="smoke_2024-03-06")
        assert client.wait_dag_run(DAG_ID, again["dag_run_id"], timeout=300) == "success"
        assert smoke.out.read_text() == "2024-03-06"
        assert supervisor.restarts == {"scheduler": 1}  # nothing else went down
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert not watcher.is_alive()

    memory = stack.memory()
    pids = _process_tree(stack)
    assert set(stack.pids().values()) <= pids

    started = time.monotonic()
    down(stack.home)  # only the home folder, as a separate stop command would
    stack.stop()  # idempotent; also reaps this process' own children
    timings["stop_s"] = time.monotonic() - started

    assert [pid for pid in pids if _alive(pid)] == []
    assert not list((stack.home / "pids").glob("*.pid"))
    assert status_home(stack.home) == {}
    assert stack.status() == dict.fromkeys(AIRFLOW_COMPONENTS, False)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.api_url}/api/v2/monitor/health", timeout=5)
    print("\nstack smoke timings:", json.dumps({k: round(v, 1) for k, v in timings.items()}))
    print("stack smoke memory:", json.dumps(memory))


def test_sqlite_env_is_local_executor_with_small_parallelism(tmp_path: Path) -> None:
    stack = Stack(home=tmp_path / "home", mlflow_port=None)
    env = stack.env()

    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'home' / 'airflow.db'}"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:////")  # absolute path
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8080/execution/"
    assert env["AIRFLOW_HOME"] == str(tmp_path / "home")
    assert env["PYTHONPATH"].split(":")[0] == str(PROJECT_ROOT)
    assert "MLFLOW_TRACKING_URI" not in env

    # secrets are generated once per home and survive a new Stack object
    again = Stack(home=tmp_path / "home", mlflow_port=5001, api_port=9090).env()
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY"):
        assert env[key] and again[key] == env[key]
    assert again["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5001"
    assert again["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:9090"
    assert Stack(home=tmp_path / "home").password == stack.password

    # nothing runs: status and stop are safe on a fresh home, twice
    assert stack.status() == dict.fromkeys(AIRFLOW_COMPONENTS, False)
    down(stack.home)
    down(stack.home)


def test_postgres_url_uses_psycopg2_scheme(tmp_path: Path) -> None:
    url = "postgresql+psycopg2://postgres@127.0.0.1:5432/x"
    assert Stack(home=tmp_path, db_url=url).env()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == url
