"""The validate DAG under the real scheduler: one good day published, one bad day quarantined."""

from __future__ import annotations

import time
from datetime import date

import pyarrow as pa
import pytest
import requests

from include.datasets.ingest import land_day
from include.lake import Zone
from include.spec import get_spec

pytestmark = pytest.mark.system

GOOD, BAD = date(2013, 1, 10), date(2013, 1, 11)


def test_good_day_published_bad_day_quarantined(system_stack) -> None:  # type: ignore[no-untyped-def]
    client, lake = system_stack.client, system_stack.lake
    spec = get_spec("flights")
    client.wait_for_dag("flights__validate", timeout=180)
    client.unpause("flights__validate")

    # the good day: the run waits in the triggerer until ingest lands it
    good = client.trigger("flights__validate", logical_date=f"{GOOD}T00:00:00+00:00", run_id="sys_validate_good")
    land_day(spec, lake, GOOD)
    assert client.wait_dag_run("flights__validate", good["dag_run_id"], timeout=300) == "success"
    landed = lake.read_table(Zone.LANDING, "flights", GOOD)
    assert lake.read_table(Zone.VALIDATED, "flights", GOOD).num_rows == landed.num_rows
    (event,) = client.asset_events(source_dag_id="flights__validate", source_run_id=good["dag_run_id"])
    assert event["extra"]["partition"] == GOOD.isoformat() and event["extra"]["rows"] == landed.num_rows
    (ti,) = client.task_instances("flights__validate", good["dag_run_id"])
    assert ti["state"] == "success"

    # the extra link opens this run's Data Docs through the airloop web app, for signed-in users only
    # (the task is marked success before its links' XCom is pushed: the link may lag a moment)
    path = f"/api/v2/dags/flights__validate/dagRuns/{good['dag_run_id']}/taskInstances/validate/links"
    deadline = time.monotonic() + 60
    while True:
        links = client.request("GET", path)
        url = (links.get("extra_links") or links).get("Data Docs")
        if url or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert url, links
    assert "/airloop/reports/flights/validation/" in url
    page = client.session.get(url, headers={"Authorization": f"Bearer {client.login()}"}, timeout=30)
    assert page.status_code == 200 and "flights" in page.text and "<html" in page.text.lower()
    assert requests.get(url, timeout=30).status_code == 401

    # the bad day: duplicated keys; quarantined with its report, the run fails, nothing validated
    land_day(spec, lake, BAD)
    table = lake.read_table(Zone.LANDING, "flights", BAD)
    lake.write_partition(Zone.LANDING, "flights", BAD, pa.concat_tables([table, table.slice(0, 3)]))
    bad = client.trigger("flights__validate", logical_date=f"{BAD}T00:00:00+00:00", run_id="sys_validate_bad")
    assert client.wait_dag_run("flights__validate", bad["dag_run_id"], timeout=300, raise_on_failure=False) == "failed"
    (ti,) = client.task_instances("flights__validate", bad["dag_run_id"])
    assert ti["state"] == "failed" and ti["try_number"] == 1  # no retries for a contract violation
    log = client.task_log("flights__validate", bad["dag_run_id"], "validate", 1)
    assert "broke its data contract: unique:flight_id" in log
    assert not lake.has_partition(Zone.VALIDATED, "flights", BAD)
    kept = lake.list_files(lake.partition_dir(Zone.QUARANTINE, "flights", BAD))
    assert any(p.endswith("sys_validate_bad__try1/data.parquet") for p in kept)
    assert (
        lake.parquet_file(next(p for p in kept if p.endswith("data.parquet"))).metadata.num_rows == table.num_rows + 3
    )
    # the failure notifier kept an alert record
    alerts = lake.list_files(lake.path("reports", "flights", "alerts"))
    assert any("sys_validate_bad" in p for p in alerts)
