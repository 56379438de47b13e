"""OpenLineage: every airloop task reports what its steps read and wrote (real steps on a file lake,
serialized as the provider sends them). The graph under the real scheduler and HTTP transport is
checked by tests/system/test_demo_system.py."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from airflow.sdk.execution_time.context import OutletEventAccessors
from openlineage.client.serde import Serde

from airloop.operators.ingest import ReplayIngestOperator
from airloop.operators.validate import ContractViolation, ValidateDataOperator
from include.lake import Lake, Zone
from include.spec import get_spec
from include.step_lineage import step_lineage, storage_name

DS = date(2013, 1, 9)
SPEC = get_spec("flights")


def _context(run_id: str = "manual__2013-01-09") -> dict[str, Any]:
    return {"ti": SimpleNamespace(try_number=1), "run_id": run_id, "outlet_events": OutletEventAccessors()}


def _sent(op: Any) -> dict[str, Any]:
    """The task's lineage as the provider serializes it into the run event."""
    lineage = op.get_openlineage_facets_on_complete(None)
    return {
        "inputs": [Serde.to_dict(d) for d in lineage.inputs],
        "outputs": [Serde.to_dict(d) for d in lineage.outputs],
    }


@pytest.fixture()
def lake(tmp_path: Path) -> Lake:
    return Lake((tmp_path / "lake").as_uri())


def test_landing_then_validated_partitions_are_linked_with_rows_schema_and_assertions(lake: Lake) -> None:
    ingest = ReplayIngestOperator(task_id="land", model="flights", ds=DS.isoformat(), lake_uri=lake.uri)
    ingest.execute(_context())  # type: ignore[arg-type]
    validate = ValidateDataOperator(task_id="validate", model="flights", ds=DS.isoformat(), lake_uri=lake.uri)
    validate.execute(_context())  # type: ignore[arg-type]
    landed, validated = _sent(ingest), _sent(validate)

    landing_name = f"{lake.root}/landing/flights/ds=2013-01-09"
    assert [(d["namespace"], d["name"]) for d in landed["outputs"]] == [
        ("file", landing_name),
        ("file", f"{lake.root}/labels/flights/ds=2013-01-07"),  # labels arrive two days late
    ]
    assert landed["inputs"] == []
    assert landed["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 902
    fields = {f["name"]: f["type"] for f in landed["outputs"][0]["facets"]["schema"]["fields"]}
    assert fields["flight_id"] == "key" and fields["sched_hour"] == "numeric" and fields["origin"] == "categorical"
    # the validate task reads what ingest wrote: the edge landing -> validated
    (landing,) = validated["inputs"]
    assert (landing["namespace"], landing["name"]) == ("file", landing_name)
    assertions = landing["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert len(assertions) == 50 and all(a["success"] for a in assertions)  # every rule of the contract
    unique = next(a for a in assertions if a["assertion"] == "unique:flight_id")
    assert (unique["column"], unique["severity"]) == ("flight_id", "error")
    (out,) = validated["outputs"]
    assert out["name"] == f"{lake.root}/validated/flights/ds=2013-01-09"
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == 902
    assert out["facets"]["airloop_partition"]["partition"] == "2013-01-09"
    assert out["facets"]["airloop_partition"]["quarantined"] is False
    assert out["facets"]["datasetType"] == {
        "_producer": out["facets"]["datasetType"]["_producer"],
        "_schemaURL": out["facets"]["datasetType"]["_schemaURL"],
        "datasetType": "TABLE",
        "subType": "partition",
    }


def test_a_broken_contract_reports_the_failed_rule_and_the_quarantine(lake: Lake) -> None:
    ReplayIngestOperator(task_id="land", model="flights", ds=DS.isoformat(), lake_uri=lake.uri).execute(
        _context()  # type: ignore[arg-type]
    )
    table = lake.read_table(Zone.LANDING, "flights", DS)
    lake.write_partition(Zone.LANDING, "flights", DS, pa.concat_tables([table, table.slice(0, 5)]))
    validate = ValidateDataOperator(task_id="validate", model="flights", ds=DS.isoformat(), lake_uri=lake.uri)
    with pytest.raises(ContractViolation):
        validate.execute(_context())  # type: ignore[arg-type]
    sent = validate.get_openlineage_facets_on_failure(None)
    (landing,) = [Serde.to_dict(d) for d in sent.inputs]
    failed = {a["assertion"]: a["success"] for a in landing["inputFacets"]["dataQualityAssertions"]["assertions"]}
    assert [rule for rule, success in failed.items() if not success] == ["unique:flight_id"]
    assert len(failed) == 50
    (quarantine,) = [Serde.to_dict(d) for d in sent.outputs]
    assert quarantine["name"] == f"{lake.root}/quarantine/flights/ds=2013-01-09/manual__2013-01-09__try1"
    assert quarantine["facets"]["airloop_partition"]["quarantined"] is True


def test_model_versions_and_predictions_close_the_graph(lake: Lake) -> None:
    """train -> model version -> score shards -> publish -> predictions -> monitor, named so each
    step's input is the step before's output (results as the steps return them)."""
    from airloop.lineage import operator_lineage

    uri = "http://loop:s3cret@mlflow.internal:5000/"
    train = step_lineage(
        "train",
        {"spec": "flights", "end": "2013-02-05"},
        {"version": 3, "run_id": "abc", "metrics": {"roc_auc": 0.71}, "days_used": ["2013-02-01", "2013-02-02"]},
        spec=SPEC,
        lake=lake,
        tracking_uri=uri,
    )
    assert [d.name for d in train.inputs] == [
        f"{lake.root}/validated/flights/ds=2013-02-01",
        f"{lake.root}/validated/flights/ds=2013-02-02",
    ]
    (model,) = train.outputs
    assert (model.namespace, model.name) == ("http://mlflow.internal:5000", "models:/flights/3")  # no credentials
    sent = Serde.to_dict(operator_lineage(train).outputs[0])
    assert (
        sent["facets"]["datasetType"]["datasetType"] == "MODEL" and sent["facets"]["version"]["datasetVersion"] == "3"
    )
    assert sent["facets"]["airloop_model"]["runId"] == "abc" and sent["facets"]["airloop_model"]["metrics"] == {
        "roc_auc": 0.71
    }
    assert sent["facets"]["airloop_model"]["alias"] == "challenger"

    shard = {"spec": "flights", "ds": "2013-02-06", "version": 3, "run_key": "scheduled__x", "index": 0}
    score = step_lineage("score", shard, {"rows_scored": 900}, spec=SPEC, lake=lake, tracking_uri=uri)
    assert [d.name for d in score.inputs] == [f"{lake.root}/validated/flights/ds=2013-02-06", "models:/flights/3"]
    publish = step_lineage(
        "publish",
        {"spec": "flights", "ds": "2013-02-06", "run_key": "scheduled__x", "n_shards": 1},
        {"rows_scored": 900, "model_version": "3"},
        spec=SPEC,
        lake=lake,
    )
    assert [d.name for d in publish.inputs] == [d.name for d in score.outputs]  # the shard folder
    assert [d.name for d in publish.outputs] == [f"{lake.root}/predictions/flights/ds=2013-02-06"]
    monitor = step_lineage(
        "monitor",
        {"spec": "flights", "ds": "2013-02-06"},
        {
            "model_version": 3,
            "verdict": "ok",
            "record_uri": f"{lake.uri}/reports/flights/drift/ds=2013-02-06.json",
            "performance": {"label_day": "2013-02-04"},
        },
        spec=SPEC,
        lake=lake,
        tracking_uri=uri,
    )
    names = [d.name.removeprefix(lake.root + "/") for d in monitor.inputs]
    assert names == [
        "validated/flights/ds=2013-02-06",
        "predictions/flights/ds=2013-02-06",
        "models:/flights/3",
        "labels/flights/ds=2013-02-04",
        "predictions/flights/ds=2013-02-04",
    ]
    # a step that skipped or moved no data reports nothing
    assert step_lineage("train", {}, {"skipped": "already answered"}, spec=SPEC, lake=lake).outputs == ()
    assert step_lineage("pin", {"ds": "2013-02-06"}, {"version": 3}, spec=SPEC, lake=lake).inputs == ()


def test_s3_objects_are_named_by_bucket_and_key() -> None:
    assert storage_name("s3://lake-bucket/prefix/validated/flights/ds=2013-01-01") == (
        "s3://lake-bucket",
        "prefix/validated/flights/ds=2013-01-01",
    )
    assert storage_name("file:///srv/lake/landing") == ("file", "/srv/lake/landing")
    with pytest.raises(ValueError, match="no OpenLineage name for 'gs://x/y'"):
        storage_name("gs://x/y")


def test_a_dataset_named_twice_in_one_task_is_sent_once_with_both_facts(lake: Lake) -> None:
    from airloop.lineage import operator_lineage
    from include.step_lineage import StepLineage, partition_dataset

    first = partition_dataset(lake, SPEC, "predictions", "2013-02-06", rows=10)
    again = partition_dataset(lake, SPEC, "predictions", "2013-02-06", verdict="ok")
    (sent,) = operator_lineage(StepLineage((first, again), ())).inputs
    assert Serde.to_dict(sent)["facets"]["airloop_partition"]["verdict"] == "ok"
    assert sent.name.endswith("predictions/flights/ds=2013-02-06")
