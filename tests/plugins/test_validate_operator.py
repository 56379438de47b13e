"""ValidateDataOperator: publish on pass, quarantine on fail, defer while the partition is missing."""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from airflow.sdk.execution_time.context import OutletEventAccessors

from airloop.assets import model_asset
from airloop.operators.validate import ContractViolation, ValidateDataOperator
from airloop.triggers.lake import PartitionAvailableTrigger
from include.datasets.ingest import land_day
from include.lake import Lake, Zone
from include.spec import get_spec

DS = date(2013, 1, 9)


def _context(run_id: str = "manual__2013-01-09", try_number: int = 1) -> dict[str, Any]:
    return {"ti": SimpleNamespace(try_number=try_number), "run_id": run_id, "outlet_events": OutletEventAccessors()}


@pytest.fixture()
def lake(tmp_path: Path) -> Lake:
    return Lake((tmp_path / "lake").as_uri())


def _operator(lake: Lake, **kwargs: Any) -> ValidateDataOperator:
    return ValidateDataOperator(task_id="validate", model="flights", ds=DS.isoformat(), lake_uri=lake.uri, **kwargs)


def _break_partition(lake: Lake) -> int:
    """Duplicate the first 5 rows of the landed day: the key must be unique."""
    table = lake.read_table(Zone.LANDING, "flights", DS)
    bad = pa.concat_tables([table, table.slice(0, 5)])
    lake.write_partition(Zone.LANDING, "flights", DS, bad)
    return bad.num_rows


def test_valid_day_is_published_with_event_and_links(lake: Lake) -> None:
    landed = land_day(get_spec("flights"), lake, DS).rows
    op = _operator(lake)
    ctx = _context()
    summary = op.execute(ctx)  # type: ignore[arg-type]
    assert summary["passed"] is True and summary["errors"] == []
    assert lake.read_table(Zone.VALIDATED, "flights", DS).num_rows == landed
    assert lake.read_table(Zone.VALIDATED, "flights", DS).equals(lake.read_table(Zone.LANDING, "flights", DS))
    extra = ctx["outlet_events"][model_asset("flights", "validated")].extra
    assert extra["partition"] == "2013-01-09" and extra["rows"] == landed
    assert extra["report_uri"].startswith(lake.uri + "/reports/flights/validation/")
    assert op.report_links["data_docs"].endswith(".html")
    assert "/airloop/reports/flights/validation/" in op.report_links["data_docs"]
    assert lake.exists(summary["data_docs_uri"].split("://", 1)[1])
    # a rerun is idempotent: same validated rows, one partition
    op.execute(_context(try_number=2))  # type: ignore[arg-type]
    assert lake.list_partitions(Zone.VALIDATED, "flights") == [DS]


def test_anomalous_day_is_published_marked_and_alerted(lake: Lake) -> None:
    import json

    from include.quality.anomaly import anomalous_partitions

    land_day(get_spec("flights"), lake, DS)
    table = lake.read_table(Zone.LANDING, "flights", DS)
    without_jfk = table.filter(pc.not_equal(table["origin"], "JFK"))  # one airport's flights vanish
    lake.write_partition(Zone.LANDING, "flights", DS, without_jfk)
    ctx = _context(run_id="manual__anomalous")
    ctx["ti"] = SimpleNamespace(try_number=1, dag_id="flights__validate", run_id="manual__anomalous", task_id="mix")
    alert = lake.report_path("flights", "alerts", "flights__validate__manual__anomalous__mix__anomalous_partition.json")
    assert not lake.exists(alert)
    summary = _operator(lake).execute(ctx)  # type: ignore[arg-type]
    assert summary["passed"] is True and summary["anomalous"] is True
    assert summary["mix_findings"][0]["category"] == "JFK" and summary["mix_findings"][0]["share"] == 0.0
    assert lake.read_table(Zone.VALIDATED, "flights", DS).num_rows == without_jfk.num_rows  # scored as usual
    assert anomalous_partitions(lake, "flights") == {DS}
    record = json.loads(lake.read_bytes(alert))  # in the operator's lake
    assert record["kind"] == "anomalous_partition" and record["partition"] == "2013-01-09"
    assert (
        record["message"].startswith("flights 2013-01-09: PASS") and "origin=JFK share 0.000 below" in record["message"]
    )
    assert (
        record["figures"]["mix_findings"][0]["category"] == "JFK" and record["figures"]["mix_findings"][0]["share"] == 0
    )
    assert record["runbook"] == "docs/operations.md#anomalous-partition" and record["channels"] == []


def test_bad_day_is_quarantined_with_report_and_fails_without_retry(lake: Lake) -> None:
    land_day(get_spec("flights"), lake, DS)
    rows = _break_partition(lake)
    with pytest.raises(ContractViolation) as err:
        _operator(lake).execute(_context(run_id="scheduled__2013-01-09T00:00:00+00:00"))  # type: ignore[arg-type]
    message = str(err.value)
    assert isinstance(err.value, AirflowFailException)  # no retries: retrying cannot fix data
    assert "flights 2013-01-09 broke its data contract: unique:flight_id" in message
    assert "quarantine/flights/ds=2013-01-09/scheduled__2013-01-09T00_00_00_00_00__try1" in message
    assert not lake.has_partition(Zone.LANDING, "flights", DS)
    assert not lake.has_partition(Zone.VALIDATED, "flights", DS)
    folder = lake.quarantine_dir("flights", DS, "scheduled__2013-01-09T00:00:00+00:00__try1")
    names = sorted(p.rsplit("/", 1)[-1] for p in lake.list_files(folder))
    assert (
        "data.parquet" in names and any(n.endswith(".html") for n in names) and any(n.endswith(".json") for n in names)
    )
    assert lake.parquet_file(f"{folder}/data.parquet").metadata.num_rows == rows  # nothing lost
    assert err.value.alerted  # the failure callback sends no second alert
    names = [p.rsplit("/", 1)[-1] for p in lake.list_files(lake.path("reports", "flights", "alerts"))]
    assert names == ["na__scheduled__2013-01-09T00_00_00_00_00__na__contract_failure.json"]


def test_rerun_after_fix_passes_and_keeps_the_quarantine(lake: Lake) -> None:
    spec = get_spec("flights")
    land_day(spec, lake, DS)
    _break_partition(lake)
    with pytest.raises(ContractViolation):
        _operator(lake).execute(_context(try_number=1))  # type: ignore[arg-type]
    land_day(spec, lake, DS)  # the data is fixed and landed again
    summary = _operator(lake).execute(_context(try_number=2))  # type: ignore[arg-type]
    assert summary["passed"] is True
    assert lake.has_partition(Zone.VALIDATED, "flights", DS)
    kept = lake.list_files(lake.partition_dir(Zone.QUARANTINE, "flights", DS))
    assert any(p.endswith("__try1/data.parquet") for p in kept)


def test_same_try_twice_never_overwrites_a_quarantine(lake: Lake) -> None:
    spec = get_spec("flights")
    for _ in range(2):
        land_day(spec, lake, DS)
        _break_partition(lake)
        with pytest.raises(ContractViolation):
            _operator(lake).execute(_context())  # type: ignore[arg-type]
    data_files = [
        p for p in lake.list_files(lake.partition_dir(Zone.QUARANTINE, "flights", DS)) if p.endswith("data.parquet")
    ]
    assert len(data_files) == 2


def test_missing_partition_defers_to_the_lake_trigger(lake: Lake) -> None:
    op = _operator(lake, poke_interval=0.05, wait_timeout=timedelta(minutes=5))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(_context())  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, PartitionAvailableTrigger)
    assert deferred.value.method_name == "execute_complete"
    path, kwargs = trigger.serialize()
    assert path == "airloop.triggers.lake.PartitionAvailableTrigger"
    assert (kwargs["zone"], kwargs["model"], kwargs["ds"], kwargs["lake_uri"]) == (
        "landing",
        "flights",
        "2013-01-09",
        lake.uri,
    )
    assert kwargs["deadline"] == pytest.approx(time.time() + 300, abs=5)


def test_not_deferrable_fails_at_once_naming_the_partition(lake: Lake) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"flights 2013-01-09: no landing partition at file://.*landing/flights/ds=2013-01-09"
    ):
        _operator(lake, deferrable=False).execute(_context())  # type: ignore[arg-type]


def test_trigger_fires_when_the_partition_lands_and_times_out_otherwise(lake: Lake) -> None:
    async def first_event(trigger: PartitionAvailableTrigger) -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    async def land_later() -> dict[str, Any]:
        trigger = PartitionAvailableTrigger(
            zone="landing", model="flights", ds=DS.isoformat(), lake_uri=lake.uri, poke_interval=0.05
        )
        waiting = asyncio.create_task(first_event(trigger))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await asyncio.to_thread(land_day, get_spec("flights"), lake, DS)
        return await asyncio.wait_for(waiting, timeout=30)

    event = asyncio.run(land_later())
    assert event["status"] == "available" and event["uri"].endswith("landing/flights/ds=2013-01-09/data.parquet")
    expired = PartitionAvailableTrigger(
        zone="validated", model="flights", ds="2013-01-10", lake_uri=lake.uri, poke_interval=0.01, deadline=time.time()
    )
    assert asyncio.run(first_event(expired))["status"] == "timeout"


def test_timeout_event_fails_with_a_clear_message(lake: Lake) -> None:
    op = _operator(lake, wait_timeout=timedelta(hours=2))
    with pytest.raises(
        AirflowFailException,
        match=r"flights 2013-01-09: the landing partition .* did not arrive within 2:00:00; land it",
    ):
        op.execute_complete(_context(), {"status": "timeout", "uri": "file:///x"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("factory", "zone", "hint"),
    [
        ("score", "validated", "did flights__validate pass for that day"),
        ("monitor", "predictions", "did flights__score run for that day"),
    ],
)
def test_score_and_monitor_wait_for_their_partition_the_same_way(
    lake: Lake, factory: str, zone: str, hint: str
) -> None:
    """One deferral helper for every waiting step: the zone each waits on, and the timeout's message."""
    from airloop.operators.monitor import MonitorDriftOperator
    from airloop.operators.score import PinChampionOperator

    cls = PinChampionOperator if factory == "score" else MonitorDriftOperator
    op = cls(task_id=factory, model="flights", ds=DS.isoformat(), lake_uri=lake.uri, wait_timeout=timedelta(hours=3))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(_context())  # type: ignore[arg-type]
    _, kwargs = deferred.value.trigger.serialize()
    assert (kwargs["zone"], kwargs["ds"], kwargs["lake_uri"]) == (zone, "2013-01-09", lake.uri)
    assert kwargs["deadline"] == pytest.approx(time.time() + 3 * 3600, abs=60)
    with pytest.raises(
        AirflowFailException, match=rf"the {zone} partition file:///y did not arrive within 3:00:00; {hint}"
    ):
        op.execute_complete(_context(), {"status": "timeout", "uri": "file:///y"})  # type: ignore[arg-type]
