"""ReplayIngestOperator: lands the day through the lake hook and fills the asset event's extra."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from airflow.sdk.execution_time.context import OutletEventAccessors

from airloop.assets import model_asset
from airloop.hooks.lake import LakeHook
from airloop.operators.ingest import ReplayIngestOperator
from include.lake import Lake, Zone


def test_execute_lands_partition_and_sets_event_extra(tmp_path: Path) -> None:
    lake_uri = (tmp_path / "lake").as_uri()
    op = ReplayIngestOperator(task_id="land", model="flights", ds="2013-01-04", lake_uri=lake_uri)
    assert [a.uri for a in op.outlets] == ["x-airloop://flights/landing"]
    events = OutletEventAccessors()
    summary = op.execute({"outlet_events": events})  # type: ignore[arg-type]
    assert summary["rows"] == 915 and summary["label_ds"] == "2013-01-02" and summary["label_rows"] == 928
    assert events[model_asset("flights", "landing")].extra == {
        "partition": "2013-01-04",
        "rows": 915,
        "label_partition": "2013-01-02",
        "label_rows": 928,
    }
    lake = Lake(lake_uri)
    assert lake.read_table(Zone.LANDING, "flights", date(2013, 1, 4)).num_rows == 915


def test_ds_is_templated() -> None:
    assert ReplayIngestOperator.template_fields == ("ds",)
    assert ReplayIngestOperator(task_id="t", model="flights").ds == "{{ ds }}"


def test_unknown_asset_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown asset kind 'weather'"):
        model_asset("flights", "weather")  # type: ignore[arg-type]


def test_s3_lake_credentials_come_from_the_airflow_connection(
    monkeypatch: pytest.MonkeyPatch, s3_server: str, s3_bucket: str
) -> None:
    import json

    from include.lake import S3Options

    conn = {"conn_type": "aws", "login": "test", "password": "test", "extra": {"endpoint_url": s3_server}}
    monkeypatch.setenv("AIRFLOW_CONN_AIRLOOP_LAKE", json.dumps(conn))
    lake_uri = f"s3://{s3_bucket}/lake"
    op = ReplayIngestOperator(
        task_id="land", model="flights", ds="2013-01-01", lake_uri=lake_uri, lake_conn_id="airloop_lake"
    )
    summary = op.execute({"outlet_events": OutletEventAccessors()})  # type: ignore[arg-type]
    assert summary["landing_uri"] == f"{lake_uri}/landing/flights/ds=2013-01-01/data.parquet"
    reader = Lake(lake_uri, S3Options("test", "test", endpoint_url=s3_server))
    assert reader.read_table(Zone.LANDING, "flights", date(2013, 1, 1)).num_rows == 842
    # the hook maps the connection, and never leaks the secret in its repr
    options = LakeHook(aws_conn_id="airloop_lake").s3_options()
    assert (options.access_key, options.secret_key, options.endpoint_url) == ("test", "test", s3_server)
    assert "test'" not in repr(options).replace(s3_server, "")
