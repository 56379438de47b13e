"""The loop under the real scheduler: train -> (challenger event) -> promote -> score -> monitor,
then a drifting day -> (drift event) -> train -> promote with a recorded decision."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from include.lake import Zone
from tests.mlflow_server import land_validated

pytestmark = pytest.mark.system

START, TRAIN_END = date(2013, 1, 18), date(2013, 2, 18)
SCORE_DAY = date(2013, 2, 19)
DRIFT_DAY = date(2013, 2, 21)


def test_loop_train_promote_score_monitor_and_drift_retrain(system_stack) -> None:  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    client, lake, stack = system_stack.client, system_stack.lake, system_stack.stack
    mlflow = MlflowClient(stack.mlflow_url, registry_uri=stack.mlflow_url)
    land_validated(lake, [START + timedelta(days=i) for i in range((DRIFT_DAY - START).days + 3)])
    for step in ("train", "promote", "score", "monitor"):
        client.wait_for_dag(f"flights__{step}", timeout=180)
        client.unpause(f"flights__{step}")
    promote_runs = {r["dag_run_id"] for r in client.dag_runs("flights__promote")}

    # 1. train by hand with Params from the trigger form
    conf = {
        "end_date": TRAIN_END.isoformat(),
        "window_days": 28,
        "search_budget": 2,
        "estimator": "hist_gradient_boosting",
        "reason": "system test",
    }
    run = client.trigger("flights__train", conf=conf, run_id="sys_train_1")
    assert client.wait_dag_run("flights__train", run["dag_run_id"], timeout=900) == "success"
    model = mlflow.get_registered_model("flights")
    assert model.aliases["challenger"] == "1"
    v1 = mlflow.get_model_version("flights", "1")
    assert v1.tags["airloop.trigger_reason"] == "manual: system test"
    assert v1.tags["airloop.data_window"].endswith(TRAIN_END.isoformat())
    assert float(v1.tags["metric.roc_auc"]) > 0.55  # the gate floor of the flights spec
    (event,) = client.asset_events(source_dag_id="flights__train", source_run_id="sys_train_1")
    assert event["extra"]["version"] == 1

    # 2. the challenger event starts promote; first model: floors, parity and latency only
    promote = client.wait_for_new_run("flights__promote", promote_runs)
    assert promote["state"] == "success"
    assert mlflow.get_registered_model("flights").aliases["champion"] == "1"
    promoted = mlflow.get_model_version("flights", "1").tags
    assert promoted["airloop.gate"] == "promoted" and promoted["airloop.gate_report"]
    ledger = [json.loads(lake.read_bytes(p)) for p in lake.list_files(lake.path("reports", "flights", "ledger"))]
    assert [e["action"] for e in ledger] == ["promote"] and ledger[0]["version"] == 1
    assert lake.exists(lake.report_path("flights", "cards", "v1.html"))

    # 3. score a day with the pinned champion
    run = client.trigger("flights__score", logical_date=f"{SCORE_DAY}T00:00:00+00:00", run_id="sys_score_1")
    assert client.wait_dag_run("flights__score", run["dag_run_id"], timeout=600) == "success"
    predictions = lake.read_table(Zone.PREDICTIONS, "flights", SCORE_DAY)
    validated_rows = lake.read_table(Zone.VALIDATED, "flights", SCORE_DAY).num_rows
    rejects = pa.concat_tables(
        [lake.parquet_file(f"{lake.partition_dir(Zone.PREDICTIONS, 'flights', SCORE_DAY)}/_rejects.parquet").read()]
    )
    assert predictions.num_rows + rejects.num_rows == validated_rows
    assert set(predictions.column("model_version").to_pylist()) == {1}
    (event,) = client.asset_events(source_dag_id="flights__score", source_run_id="sys_score_1")
    assert event["extra"] == {
        "partition": SCORE_DAY.isoformat(),
        "rows": predictions.num_rows,
        "rejects": rejects.num_rows,
        "version": 1,
    }

    # 4. monitor the scored day: a record is always written; no retrain on a normal day
    run = client.trigger("flights__monitor", logical_date=f"{SCORE_DAY}T00:00:00+00:00", run_id="sys_monitor_1")
    assert client.wait_dag_run("flights__monitor", run["dag_run_id"], timeout=600) == "success"
    record = json.loads(lake.read_bytes(lake.report_path("flights", "drift", f"ds={SCORE_DAY}.json")))
    assert record["model_version"] == 1 and record["verdict"]["state"] in ("ok", "warn", "insufficient_data")
    states = {t["task_id"]: t["state"] for t in client.task_instances("flights__monitor", "sys_monitor_1")}
    assert states == {"monitor": "success", "signal_retrain": "skipped"}

    # 5. drifting days: the route mix moves far out of the reference (distances tripled)
    #    -> 2 alert days of 3 -> retrain -> train -> promote
    train_runs = {r["dag_run_id"] for r in client.dag_runs("flights__train")}
    promote_runs = {r["dag_run_id"] for r in client.dag_runs("flights__promote")}
    verdicts = {}
    for ds in (SCORE_DAY + timedelta(days=1), DRIFT_DAY, DRIFT_DAY + timedelta(days=1)):
        table = lake.read_table(Zone.VALIDATED, "flights", ds)
        index = table.schema.get_field_index("distance")
        lake.write_partition(
            Zone.VALIDATED,
            "flights",
            ds,
            table.set_column(index, "distance", pc.multiply(table.column("distance"), 3.0)),
        )
        for step in ("score", "monitor"):
            run = client.trigger(f"flights__{step}", logical_date=f"{ds}T00:00:00+00:00", run_id=f"sys_{step}_{ds}")
            assert client.wait_dag_run(f"flights__{step}", run["dag_run_id"], timeout=600) == "success"
        record = json.loads(lake.read_bytes(lake.report_path("flights", "drift", f"ds={ds}.json")))
        verdicts[ds] = record["verdict"]["state"]
        if verdicts[ds] == "retrain":
            drift_day = ds
            break
    assert "retrain" in verdicts.values(), verdicts  # hysteresis itself: tests/include/test_decision.py
    assert "distance" in record["verdict"]["top_features"]
    # the stack's flights spec opts into data-drift retraining (conftest): data drift decided
    (decided,) = [s for s in record["verdict"]["signals"] if s["kind"] == record["verdict"]["trigger"]]
    assert decided["kind"] in ("data_drift", "prediction_drift") and decided["fired"] and decided["held_by"] is None
    assert decided["value"] >= decided["threshold"]
    (drift_event,) = client.asset_events(source_dag_id="flights__monitor", source_run_id=f"sys_monitor_{drift_day}")
    assert drift_event["extra"]["decision_id"] == record["verdict"]["decision_id"]
    assert drift_event["extra"]["trigger"] == decided["kind"] and drift_event["extra"]["break_day"] is None

    retrain = client.wait_for_new_run("flights__train", train_runs, timeout=900)
    assert retrain["state"] == "success" and retrain["run_type"] == "asset_triggered"
    v2 = mlflow.get_model_version("flights", "2")
    assert v2.tags["airloop.trigger_reason"] == f"drift:{record['verdict']['decision_id']}"
    assert v2.tags["airloop.drift_decision_ids"] == record["verdict"]["decision_id"]
    second = client.wait_for_new_run("flights__promote", promote_runs, timeout=600)
    assert second["state"] == "success"
    ledger = sorted(
        (json.loads(lake.read_bytes(p)) for p in lake.list_files(lake.path("reports", "flights", "ledger"))),
        key=lambda e: e["time"],
    )
    assert ledger[-1]["version"] == 2 and ledger[-1]["action"] in ("promote", "reject")
    assert ledger[-1]["summary"]  # the decision says why
