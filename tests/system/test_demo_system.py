"""The demo, as README's first command runs it, over five weeks of 2013 on a stack of its own.

Real scheduler, dag-processor, triggerer and API server on a fresh PostgreSQL database, a real
MLflow server, and :func:`devstack.demo.run_demo_loop` driving it through the REST API:
backfills of ingest and validate, a first training by hand, then a week at a time ingest,
validate, score and monitor. Promotion and drift retraining happen only through asset events.
Airflow's OpenLineage provider sends every task's lineage over its HTTP transport to a receiver
on 127.0.0.1, as it would to Marquez or DataHub.
Nothing is provoked here: the drift is the data's own (weather and route mix move every day). The
flights spec retrains on measured or estimated harm only, so whether these five weeks retrain
depends on the realized and estimated performance; the tests check that every verdict names its
signals and that any retrain answers harm, not drift alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devstack.api import AirflowClient
from devstack.demo import LOOP_DAGS, LoopSummary, run_demo_loop
from devstack.stack import throwaway_stack
from include.lake import Lake, Zone
from include.scoring.shards import read_manifest
from include.spec import get_spec
from tests.http_receiver import http_receiver

pytestmark = pytest.mark.system

SPEC = get_spec("flights")
DAYS = 35  # five weeks: the first window (28 days) trains the first model, 7 are scored (one demo week)
START = SPEC.dataset.start
FIRST_SCORED = START + timedelta(days=SPEC.training.window_days)
END = START + timedelta(days=DAYS - 1)


@dataclass
class Demo:
    client: AirflowClient
    lake: Lake
    mlflow_url: str
    summary: LoopSummary
    printed: list[str]
    lineage: list[dict[str, Any]]  # the OpenLineage run events that arrived


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("demo")
    lake_uri = (root / "lake").as_uri()
    with (
        http_receiver() as (received, port),
        throwaway_stack(root, lake_uri, db_prefix="airloop_demo_sys", env=_openlineage(port)) as stack,
    ):
        assert stack.mlflow_url is not None
        client = AirflowClient.for_stack(stack)
        printed: list[str] = []
        summary = run_demo_loop(client, SPEC, stack.mlflow_url, days=DAYS, budget=1, say=printed.append)
        events = [r["body"] for r in received if r["path"] == "/api/v1/lineage"]
        yield Demo(client, Lake(lake_uri), stack.mlflow_url, summary, printed, events)


def _openlineage(port: int) -> dict[str, str]:
    """Airflow settings that send OpenLineage events to the receiver (docs/configuration.md)."""
    transport = {"type": "http", "url": f"http://127.0.0.1:{port}", "endpoint": "api/v1/lineage"}
    return {"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport), "AIRFLOW__OPENLINEAGE__NAMESPACE": "airloop"}


def _days(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _ledger(lake: Lake) -> list[dict[str, Any]]:
    entries = [json.loads(lake.read_bytes(p)) for p in lake.list_files(lake.path("reports", SPEC.name, "ledger"))]
    return sorted(entries, key=lambda e: e["time"])


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_every_day_ran_every_step_and_no_task_failed(demo: Demo) -> None:
    runs = {step: demo.client.dag_runs(f"{SPEC.name}__{step}") for step in LOOP_DAGS}
    for step in ("ingest", "validate"):
        assert sorted(str(r["logical_date"])[:10] for r in runs[step]) == _days(START, END)
    for step in ("score", "monitor"):
        assert sorted(str(r["logical_date"])[:10] for r in runs[step]) == _days(FIRST_SCORED, END)
    for step, step_runs in runs.items():
        assert {r["state"] for r in step_runs} == {"success"}, (step, demo.summary.states)
        states = {t["state"] for t in demo.client.task_instances(f"{SPEC.name}__{step}", "~")}
        assert states <= {"success", "skipped"}, (step, states)
    # what the demo printed tells a newcomer where the loop is
    assert any("train the first model by hand" in line for line in demo.printed)
    assert sum("flights__monitor" in line for line in demo.printed) == (END - FIRST_SCORED).days // 7 + 1  # weeks


def test_asset_events_carry_the_loop(demo: Demo) -> None:
    events = {
        step: demo.client.asset_events(source_dag_id=f"{SPEC.name}__{step}")
        for step in ("ingest", "validate", "train", "score", "monitor")
    }
    assert len(events["ingest"]) == len(events["validate"]) == DAYS
    assert sorted(e["extra"]["partition"] for e in events["validate"]) == _days(START, END)
    assert sorted(e["extra"]["partition"] for e in events["score"]) == _days(FIRST_SCORED, END)
    trains = demo.client.dag_runs(f"{SPEC.name}__train")
    assert len(events["train"]) == len(trains)  # one challenger event per training
    # every promotion was started by a challenger event, every retrain by a drift event
    promotes = demo.client.dag_runs(f"{SPEC.name}__promote")
    assert promotes and {r["run_type"] for r in promotes} == {"asset_triggered"}
    assert 1 <= len(promotes) <= len(trains)  # events queued together start one run
    manual = [r for r in trains if r["run_type"] == "manual"]
    assert len(manual) == 1
    retrains = [r for r in trains if r["run_type"] == "asset_triggered"]
    assert len(retrains) == len(trains) - 1
    assert len(retrains) <= len(events["monitor"])  # the drift events started them


def test_a_champion_with_a_complete_audit_trail(demo: Demo) -> None:
    from mlflow import MlflowClient

    mlflow = MlflowClient(demo.mlflow_url, registry_uri=demo.mlflow_url)
    model = mlflow.get_registered_model(SPEC.name)
    champion = int(model.aliases["champion"])
    assert demo.summary.champion == str(champion)
    versions = mlflow.search_model_versions(f"name='{SPEC.name}'")
    ledger = _ledger(demo.lake)
    # one gate decision per version, each with its reasons, its report and the decision's id
    assert sorted(e["version"] for e in ledger) == sorted(int(v.version) for v in versions)
    for entry in ledger:
        assert entry["action"] in ("promote", "reject") and entry["summary"] and entry["decision_id"]
        report = json.loads(
            demo.lake.read_bytes(demo.lake.report_path(SPEC.name, "gate", f"{entry['decision_id']}.json"))
        )
        assert report["decision"]["promote"] is (entry["action"] == "promote")
    promoted = [e for e in ledger if e["action"] == "promote"]
    assert promoted[-1]["version"] == champion
    tags = mlflow.get_model_version(SPEC.name, str(champion)).tags
    assert tags["airloop.gate"] == "promoted" and tags["airloop.gate_report"]
    assert demo.lake.exists(demo.lake.report_path(SPEC.name, "cards", f"v{champion}.html"))


HARM = ("performance_drop", "estimated_drop", "breach")
SIGNALS = {"data_drift", "prediction_drift", "performance_drop", "estimated_drop", "breach"}


def test_every_verdict_names_its_signals_and_only_harm_retrains(demo: Demo) -> None:
    from mlflow import MlflowClient

    from include.records import read_history

    records = read_history(demo.lake, SPEC.name, END + timedelta(days=1))
    assert [r["partition"] for r in records] == _days(FIRST_SCORED, END)
    for record in records:
        verdict = record["verdict"]
        assert {s["kind"] for s in verdict["signals"]} == SIGNALS, record["partition"]
        for signal in verdict["signals"]:  # drift alone never retrains the flights spec
            if signal["fired"] and signal["kind"] in ("data_drift", "prediction_drift"):
                assert signal["held_by"] is not None or verdict["trigger"] in HARM, (record["partition"], signal)
        if verdict["state"] == "retrain":
            (decided,) = [s for s in verdict["signals"] if s["kind"] == verdict["trigger"]]
            assert decided["kind"] in HARM and decided["fired"] and decided["held_by"] is None
        else:
            assert verdict["trigger"] is None
    # one drift event per retrain verdict, carrying its id and trigger
    drift_events = demo.client.asset_events(source_dag_id=f"{SPEC.name}__monitor")
    retrains = {r["partition"]: r["verdict"] for r in records if r["verdict"]["state"] == "retrain"}
    assert {e["extra"]["partition"]: e["extra"]["decision_id"] for e in drift_events} == {
        day: verdict["decision_id"] for day, verdict in retrains.items()
    }
    assert all(e["extra"]["trigger"] == retrains[e["extra"]["partition"]]["trigger"] for e in drift_events)
    mlflow = MlflowClient(demo.mlflow_url, registry_uri=demo.mlflow_url)
    retrained = [
        v
        for v in mlflow.search_model_versions(f"name='{SPEC.name}'")
        if v.tags["airloop.trigger_reason"].startswith("drift:")
    ]
    assert {v.tags["airloop.drift_decision_ids"] for v in retrained} <= {v["decision_id"] for v in retrains.values()}
    by_version = {e["version"]: e for e in _ledger(demo.lake)}
    for version in retrained:
        assert by_version[int(version.version)]["summary"]  # promoted or rejected, with the reason


def test_predictions_carry_the_champion_of_their_day(demo: Demo) -> None:
    promotions = [(_when(e["time"]), e["version"]) for e in _ledger(demo.lake) if e["action"] == "promote"]
    for run in demo.client.dag_runs(f"{SPEC.name}__score"):
        day = date.fromisoformat(str(run["logical_date"])[:10])
        table = demo.lake.read_table(Zone.PREDICTIONS, SPEC.name, day)
        versions = set(table.column("model_version").to_pylist())
        started = _when(run["start_date"])
        champion_then = [v for when, v in promotions if when <= started][-1]
        assert versions == {champion_then}, (day, versions, champion_then)
        manifest = read_manifest(demo.lake, SPEC, day)
        assert manifest is not None and manifest["rows_scored"] == table.num_rows > 0


def test_no_partial_or_orphan_outputs(demo: Demo) -> None:
    root = Path(demo.lake.root)
    leftovers = [p for p in root.rglob("*") if p.is_file() and ("_tmp" in p.parts or "_shards" in p.parts)]
    assert leftovers == []
    for zone, days in ((Zone.VALIDATED, _days(START, END)), (Zone.PREDICTIONS, _days(FIRST_SCORED, END))):
        assert sorted(d.isoformat() for d in demo.lake.list_partitions(zone, SPEC.name)) == days
    assert demo.lake.list_partitions(Zone.QUARANTINE, SPEC.name) == []


def test_openlineage_consumers_see_landing_to_validated_to_model_version_to_predictions(demo: Demo) -> None:
    """The graph a Marquez or DataHub user sees: for every scored day, a path from its landing
    partition through the validated partition, the training that read it, and the model version
    that scored it, to the day's predictions."""
    done = [e for e in demo.lineage if e["eventType"] == "COMPLETE" and e["job"]["namespace"] == "airloop"]
    jobs: dict[str, dict[str, Any]] = {}  # dataset name -> the facets it was last sent with
    readers: dict[str, set[str]] = {}  # dataset -> jobs that read it
    writers: dict[str, set[str]] = {}  # dataset -> jobs that wrote it
    for event in done:
        job = f"{event['job']['name']}/{event['run']['runId']}"
        for d in event["inputs"]:
            readers.setdefault(d["name"], set()).add(job)
            jobs[d["name"]] = d["facets"]
        for d in event["outputs"]:
            writers.setdefault(d["name"], set()).add(job)
            jobs[d["name"]] = d["facets"]
    task_names = {e["job"]["name"] for e in done}
    for dag in ("ingest", "validate", "train", "score", "monitor"):  # every step reports
        assert any(name.startswith(f"{SPEC.name}__{dag}.") for name in task_names), (dag, sorted(task_names))

    def downstream(dataset: str) -> set[str]:
        """The datasets written by the jobs that read ``dataset``."""
        out = set()
        for job in readers.get(dataset, ()):
            out |= {name for name, by in writers.items() if job in by}
        return out

    root = demo.lake.root
    for day in _days(FIRST_SCORED, END):
        landing, validated = f"{root}/landing/{SPEC.name}/ds={day}", f"{root}/validated/{SPEC.name}/ds={day}"
        predictions = f"{root}/predictions/{SPEC.name}/ds={day}"
        assert validated in downstream(landing), day  # validate read landing, wrote validated
        version = read_manifest(demo.lake, SPEC, date.fromisoformat(day))["model_version"]  # type: ignore[index]
        model = f"models:/{SPEC.name}/{version}"
        assert jobs[model]["datasetType"]["datasetType"] == "MODEL"
        # the model version was trained on validated days (the first, by hand, on the first window)
        assert any(model in downstream(f"{root}/validated/{SPEC.name}/ds={d}") for d in _days(START, END)), model
        # score read the day and the version, publish wrote the day's predictions
        shards = downstream(validated) & downstream(model)
        assert shards and any(predictions in downstream(s) for s in shards), day
    first = f"{root}/validated/{SPEC.name}/ds={START.isoformat()}"
    assert jobs[first]["airloop_partition"]["partition"] == START.isoformat()
    assert f"models:/{SPEC.name}/1" in downstream(first)  # the first model trained on the first day
