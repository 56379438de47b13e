"""A rollback that repairs, under the real scheduler: v1 scores a day, v2 is promoted over it and
scores two more, the rollback DAG puts v1 back, and its champion event starts ``__rescore``,
which re-scores v2's two days with v1 and keeps v2's predictions, marked superseded.

Its own model (``rollback_sys``, the flights spec under another name, several shards per day) so
that the flights loop of the other system tests is untouched: the spec is added to the stack's
specs folder (the DAG processor picks the new DAGs up on its next parse) and removed at the end.
The two versions are registered directly (a logistic regression and a small gradient boosting
trained here) and promoted with the ledger entries the promote DAG writes: the gate itself is the
loop test's business.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import yaml

from include.datasets.ingest import land_day
from include.lake import Zone
from include.registry.ledger import LedgerEntry, append_entry, read_ledger
from include.scoring.rescore import superseded_manifests
from include.scoring.shards import read_manifest
from tests.conftest import ROOT
from tests.include.test_rescore import two_models
from tests.system.test_reliability import spec_named
from tests.system.test_reliability_registry import register

pytestmark = pytest.mark.system

MODEL = "rollback_sys"
TRAIN_DAYS = [date(2013, 3, d) for d in (1, 2, 3)]
V1_DAY = date(2013, 3, 6)  # scored by v1 before v2's promotion: left as it is
V2_DAYS = (date(2013, 3, 7), date(2013, 3, 8))  # scored by v2: re-scored with v1
SHARD_ROWS = 400  # ~900 flights a day: 3 shards per day
TIMEOUT = 300


@pytest.fixture()
def model_dags(system_stack: Any) -> Iterator[Any]:
    """The ``rollback_sys`` spec in the stack's specs folder while the test runs, and its DAGs."""
    data = yaml.safe_load((ROOT / "include" / "specs" / "flights.yaml").read_text())
    data["name"] = MODEL
    data["scoring"]["shard_rows"] = SHARD_ROWS
    path = system_stack.home / "specs" / f"{MODEL}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        for step in ("score", "rollback", "rescore"):
            system_stack.client.wait_for_dag(f"{MODEL}__{step}", timeout=180)
            system_stack.client.unpause(f"{MODEL}__{step}")
        yield system_stack
    finally:
        path.unlink()


def _score(client: Any, days: tuple[date, ...]) -> None:
    runs = [
        client.trigger(f"{MODEL}__score", logical_date=f"{ds}T00:00:00+00:00", run_id=f"sys_rb_score_{ds}")
        for ds in days
    ]
    for run in runs:
        assert client.wait_dag_run(f"{MODEL}__score", run["dag_run_id"], timeout=TIMEOUT) == "success"


def _promote(lake: Any, mlflow: Any, version: int, previous: int | None) -> None:
    """What the promote DAG does once the gate passed: the CAS move and the ledger entry."""
    from include.registry.aliases import move_alias_cas

    move_alias_cas(mlflow, MODEL, "champion", version, expected_current=previous)
    entry = LedgerEntry(time=datetime.now(UTC), action="promote", model=MODEL, version=version,
                        previous_version=previous, decision_id=f"sys-rb-v{version}", summary="system test")  # fmt: skip
    append_entry(lake, entry)


def test_rollback_rescores_the_rolled_back_versions_days_and_keeps_them_superseded(model_dags: Any) -> None:
    from mlflow import MlflowClient

    client, lake, stack = model_dags.client, model_dags.lake, model_dags.stack
    mlflow = MlflowClient(stack.mlflow_url, registry_uri=stack.mlflow_url)
    spec = spec_named(MODEL, scoring={"shard_rows": SHARD_ROWS})
    for ds in [*TRAIN_DAYS, date(2013, 3, 4), date(2013, 3, 5), V1_DAY, *V2_DAYS]:
        land_day(spec, lake, ds)
        lake.publish_copy(lake.partition_file(Zone.LANDING, MODEL, ds), Zone.VALIDATED, MODEL, ds)
    onnx = two_models(lake, MODEL, TRAIN_DAYS)
    v1, v2 = register(stack.mlflow_url, spec, onnx[1]), register(stack.mlflow_url, spec, onnx[2])

    # v1 champion scores a day; v2 promoted over it scores two more
    _promote(lake, mlflow, v1, None)
    _score(client, (V1_DAY,))
    _promote(lake, mlflow, v2, v1)
    _score(client, V2_DAYS)
    before = {ds: read_manifest(lake, spec, ds) for ds in (V1_DAY, *V2_DAYS)}
    assert {ds: m["model_version"] for ds, m in before.items() if m} == {V1_DAY: v1, V2_DAYS[0]: v2, V2_DAYS[1]: v2}
    assert all(m and m["n_shards"] == 3 for m in before.values())

    # roll back from the form (target empty: the champion v2 replaced)
    rescores = {r["dag_run_id"] for r in client.dag_runs(f"{MODEL}__rescore")}
    run = client.trigger(f"{MODEL}__rollback", conf={"target_version": None, "reason": "v2 misses delays"},
                         run_id="sys_rb_rollback")  # fmt: skip
    assert client.wait_dag_run(f"{MODEL}__rollback", run["dag_run_id"], timeout=TIMEOUT) == "success"
    assert mlflow.get_registered_model(MODEL).aliases["champion"] == str(v1)
    (event,) = client.asset_events(source_dag_id=f"{MODEL}__rollback", source_run_id="sys_rb_rollback")
    assert event["extra"] == {"version": v1, "previous_version": v2, "decision_id": "rollback:sys_rb_rollback",
                              "rollback": True, "reason": "v2 misses delays"}  # fmt: skip
    last = read_ledger(lake, MODEL)[-1]
    assert (last["action"], last["version"], last["previous_version"], last["reason"]) == (
        "rollback", v1, v2, "v2 misses delays")  # fmt: skip

    # the champion event starts the re-score: one mapped task per day v2 scored
    repair = client.wait_for_new_run(f"{MODEL}__rescore", rescores, timeout=TIMEOUT)
    assert repair["state"] == "success" and repair["run_type"] == "asset_triggered"
    tasks = client.task_instances(f"{MODEL}__rescore", repair["dag_run_id"])
    assert sorted((t["task_id"], t["map_index"], t["state"]) for t in tasks) == [
        ("plan", -1, "success"), ("rescore", 0, "success"), ("rescore", 1, "success")]  # fmt: skip

    for ds in V2_DAYS:
        served = lake.read_table(Zone.PREDICTIONS, MODEL, ds)
        assert set(served.column("model_version").to_pylist()) == {v1}
        assert set(served.column("run_id").to_pylist()) == {repair["dag_run_id"]}
        manifest = read_manifest(lake, spec, ds)
        old = before[ds]
        assert manifest is not None and old is not None
        assert manifest["model_version"] == v1 and manifest["rows_in"] == old["rows_in"]
        assert manifest["supersedes"]["model_version"] == v2 and manifest["supersedes"]["reason"] == "v2 misses delays"
        (kept,) = superseded_manifests(lake, spec, ds)
        assert kept["run_key"] == old["run_key"] and kept["model_version"] == v2
        assert kept["superseded"]["by_version"] == v1 and kept["superseded"]["by_run_key"] == repair["dag_run_id"]
        assert hashlib.sha256(lake.read_bytes(lake.path(kept["data_file"]))).hexdigest() == old["data_sha256"]
    assert read_manifest(lake, spec, V1_DAY) == before[V1_DAY]  # v1's own day is untouched
    assert superseded_manifests(lake, spec, V1_DAY) == []

    # each re-scored day announces its new predictions
    events = client.asset_events(source_dag_id=f"{MODEL}__rescore", source_run_id=repair["dag_run_id"])
    assert sorted((e["extra"]["partition"], e["extra"]["version"], e["extra"]["supersedes"]) for e in events) == [
        (ds.isoformat(), v1, v2) for ds in V2_DAYS
    ]
    assert all(e["extra"]["rescored"] is True for e in events)

    # cleared, the run is a no-op: the same files, one archive per day
    served = {ds: lake.read_bytes(lake.partition_file(Zone.PREDICTIONS, MODEL, ds)) for ds in V2_DAYS}
    manifests = {ds: read_manifest(lake, spec, ds) for ds in V2_DAYS}
    client.clear_run(f"{MODEL}__rescore", repair["dag_run_id"])
    assert client.wait_dag_run(f"{MODEL}__rescore", repair["dag_run_id"], timeout=TIMEOUT) == "success"
    for ds in V2_DAYS:
        assert lake.read_bytes(lake.partition_file(Zone.PREDICTIONS, MODEL, ds)) == served[ds]
        assert read_manifest(lake, spec, ds) == manifests[ds]
        assert len(superseded_manifests(lake, spec, ds)) == 1
