"""The ingest DAG under a real scheduler on PostgreSQL, triggered through the REST API v2."""

from __future__ import annotations

from datetime import date

import pytest

from include.lake import Zone

pytestmark = pytest.mark.system


def test_ingest_dag_lands_one_day_through_the_scheduler(system_stack) -> None:  # type: ignore[no-untyped-def]
    client, lake = system_stack.client, system_stack.lake
    assert client.import_errors() == []
    client.wait_for_dag("flights__ingest", timeout=180)
    client.unpause("flights__ingest")
    run = client.trigger("flights__ingest", logical_date="2013-01-03T00:00:00+00:00", run_id="sys_ingest_2013-01-03")
    assert client.wait_dag_run("flights__ingest", run["dag_run_id"], timeout=300) == "success"

    # the day's features and the labels of label_delay_days earlier, with the source's counts
    assert lake.read_table(Zone.LANDING, "flights", date(2013, 1, 3)).num_rows == 914
    labels = lake.read_table(Zone.LABELS, "flights", date(2013, 1, 1))
    assert labels.num_rows == 831
    assert labels.column_names == ["flight_id", "delayed"]

    # the landing asset event carries the partition and the row count
    events = client.asset_events(source_dag_id="flights__ingest", source_run_id=run["dag_run_id"])
    assert len(events) == 1
    assert events[0]["extra"] == {
        "partition": "2013-01-03",
        "rows": 914,
        "label_partition": "2013-01-01",
        "label_rows": 831,
    }
    # the task's XCom summary is the same result, readable in the UI
    (ti,) = client.task_instances("flights__ingest", run["dag_run_id"])
    assert ti["state"] == "success" and ti["try_number"] == 1
