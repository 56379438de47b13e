"""The scheduler killed (SIGKILL, with the task it was running) and restarted mid-run; then a
backfill created over a day that a manual run is processing.

On a stack of its own, because it kills a component: Airflow must notice the orphaned task
(no heartbeat for ``task_instance_heartbeat_timeout``, lowered to 40 s here from 300 s; task
supervisors heartbeat every 5 s), fail that try and retry it; the retry must land the day once,
whole, with one asset event."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from devstack.api import AirflowClient
from devstack.stack import throwaway_stack
from include.lake import Lake, Zone

pytestmark = pytest.mark.system

DAG = "flights__ingest"
DAY = date(2013, 3, 4)
FAST_ORPHAN_DETECTION = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "40",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "15",
}


def _wait_running(client: AirflowClient, run_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(t["state"] == "running" for t in client.task_instances(DAG, run_id)):
            return
        time.sleep(0.3)
    raise AssertionError(f"the task of {run_id} never ran")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, AirflowClient, Lake, Path]]:
    root = tmp_path_factory.mktemp("restart")
    lake = Lake((root / "lake").as_uri())
    with throwaway_stack(root, lake.uri, db_prefix="airloop_restart", env=FAST_ORPHAN_DETECTION) as stack:
        client = AirflowClient.for_stack(stack)
        client.wait_for_dag(DAG, timeout=180)
        client.unpause(DAG)
        yield stack, client, lake, root


def test_scheduler_killed_mid_task_then_restarted_lands_the_day_once(
    world: tuple[Any, AirflowClient, Lake, Path],
) -> None:
    stack, client, lake, root = world
    client.trigger(DAG, logical_date=f"{DAY}T00:00:00+00:00", run_id="restart_1")
    _wait_running(client, "restart_1")  # the first ingest also prepares the source: ~10 s

    scheduler = psutil.Process(stack.pids()["scheduler"])
    tree = [scheduler, *scheduler.children(recursive=True)]
    # LocalExecutor: scheduler -> executor worker -> task supervisor -> task process
    assert any(p.ppid() != scheduler.pid for p in tree[1:]), [p.cmdline() for p in tree]
    os.killpg(os.getpgid(scheduler.pid), signal.SIGKILL)  # the scheduler and its task, at once
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    _, alive = psutil.wait_procs(tree, timeout=15)
    assert alive == []
    assert not lake.has_partition(Zone.LANDING, "flights", DAY)  # killed before it published

    stack.start(["scheduler"])
    stack.wait_healthy(timeout=180, components=["scheduler"])
    assert client.wait_dag_run(DAG, "restart_1", timeout=600, raise_on_failure=False) == "success"

    (ti,) = client.task_instances(DAG, "restart_1")
    assert ti["state"] == "success" and ti["try_number"] == 2  # the killed try counted, then retried
    table = lake.read_table(Zone.LANDING, "flights", DAY)
    keys = table.column("flight_id").to_pylist()
    assert len(keys) == len(set(keys)) > 500  # the whole day, once
    (event,) = client.asset_events(source_dag_id=DAG, source_run_id="restart_1")
    assert event["extra"]["partition"] == DAY.isoformat() and event["extra"]["rows"] == table.num_rows
    leftovers = [p for p in (root / "lake").rglob("*") if p.is_file() and "_tmp" in p.parts]
    assert leftovers == []


def test_backfill_over_a_day_a_manual_run_is_processing_lands_each_day_once(
    world: tuple[Any, AirflowClient, Lake, Path],
) -> None:
    """Overlapping work on one day: Airflow keeps one run per logical date, so the backfill
    skips the day in flight and the day is written once; its neighbours once each."""
    _, client, lake, root = world
    day = date(2013, 3, 11)
    client.trigger(DAG, logical_date=f"{day}T00:00:00+00:00", run_id="overlap_manual")
    backfill = client.create_backfill(
        DAG, f"{day - timedelta(days=1)}T00:00:00+00:00", f"{day + timedelta(days=1)}T00:00:00+00:00",
        reprocess_behavior="failed", max_active_runs=3,
    )  # fmt: skip
    client.wait_backfill(int(backfill["id"]), timeout=600)
    assert client.wait_dag_run(DAG, "overlap_manual", timeout=600, raise_on_failure=False) == "success"
    days = [day - timedelta(days=1), day, day + timedelta(days=1)]
    runs = [r for r in client.dag_runs(DAG) if str(r["logical_date"])[:10] in {d.isoformat() for d in days}]
    assert sorted(str(r["logical_date"])[:10] for r in runs) == [d.isoformat() for d in days]  # one run a day
    assert {r["state"] for r in runs} == {"success"}
    by_day = {str(r["logical_date"])[:10]: r for r in runs}
    assert by_day[day.isoformat()]["run_type"] == "manual"  # the backfill left the day in flight alone
    for d in days:
        keys = lake.read_table(Zone.LANDING, "flights", d).column("flight_id").to_pylist()
        assert len(keys) == len(set(keys)) > 500
        events = client.asset_events(source_dag_id=DAG, source_run_id=by_day[d.isoformat()]["dag_run_id"])
        assert len(events) == 1 and events[0]["extra"]["partition"] == d.isoformat()
    assert [p for p in (root / "lake").rglob("*") if p.is_file() and "_tmp" in p.parts] == []
