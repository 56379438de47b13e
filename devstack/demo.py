"""Drive the loop through Airflow's REST API, as a user would: the demo and the latency benchmark.

:func:`run_demo_loop` backfills ingest and validate over the first window, trains the first
model by hand (the ``challenger`` asset event then starts promotion), and backfills scoring
and monitoring over the following days; drift decisions along the way emit the ``drift``
asset and retrain through the scheduler. :func:`drift_to_champion` measures the time from
a ``drift`` asset event to a new champion, step by step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from devstack.api import AirflowClient
from include.names import CHAMPION, Tag
from include.spec import ModelSpec

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
DAILY = ("ingest", "validate", "score", "monitor")
LOOP_DAGS = (*DAILY, "train", "promote")


@dataclass
class LoopSummary:
    """What the demo did, for its closing printout (and tests)."""

    days: dict[str, list[str]] = field(default_factory=dict)  # dag -> logical days that ran
    states: dict[str, dict[str, int]] = field(default_factory=dict)  # dag -> state -> count
    champion: str | None = None
    versions: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _midnight(day: date) -> str:
    return f"{day.isoformat()}T00:00:00+00:00"


def _backfill(client: AirflowClient, dag_id: str, start: date, end: date, say: Progress, runs: int = 4) -> None:
    t0 = time.monotonic()
    backfill = client.create_backfill(
        dag_id, _midnight(start), _midnight(end), reprocess_behavior="failed", max_active_runs=runs
    )
    client.wait_backfill(int(backfill["id"]), timeout=120 + 90 * ((end - start).days + 1))
    states: dict[str, int] = {}
    for run in client.dag_runs(dag_id, run_type=["backfill"]):
        if start.isoformat() <= str(run.get("logical_date"))[:10] <= end.isoformat():  # this backfill's days
            states[run["state"]] = states.get(run["state"], 0) + 1
    say(f"    {dag_id} {start}..{end}: {states} in {time.monotonic() - t0:.0f} s")


def _known(client: AirflowClient, dag_id: str) -> set[str]:
    return {r["dag_run_id"] for r in client.dag_runs(dag_id)}


def _settle(client: AirflowClient, spec: ModelSpec, say: Progress) -> None:
    """Wait for asset-triggered retrains and promotions still queued or running."""
    time.sleep(5)  # an asset event from the last monitor run becomes a train run within seconds
    for dag_id in (f"{spec.name}__train", f"{spec.name}__promote"):
        for run in client.dag_runs(dag_id):
            if run["state"] in ("queued", "running"):
                say(f"    waiting for {dag_id} {run['dag_run_id']} ({run['run_type']})")
                client.wait_dag_run(dag_id, run["dag_run_id"], timeout=1200, raise_on_failure=False)


def run_demo_loop(
    client: AirflowClient,
    spec: ModelSpec,
    mlflow_url: str,
    *,
    days: int = 42,
    budget: int = 2,
    say: Progress = print,
) -> LoopSummary:
    """The whole loop over ``days`` days from the spec's start (at least one window + 7)."""
    from mlflow import MlflowClient

    window = spec.training.window_days
    if days < window + 7:
        raise ValueError(f"the demo needs at least {window + 7} days: {window} to train the first model, 7 to score")
    t0 = time.monotonic()
    start = spec.dataset.start
    first_end = start + timedelta(days=window - 1)
    end = start + timedelta(days=days - 1)
    for step in LOOP_DAGS:
        client.wait_for_dag(f"{spec.name}__{step}", timeout=180)
        client.unpause(f"{spec.name}__{step}")

    say(f"  a) land and validate the first window {start}..{first_end} (backfills)")
    _backfill(client, f"{spec.name}__ingest", start, first_end, say)
    _backfill(client, f"{spec.name}__validate", start, first_end, say)

    say("  b) train the first model by hand; its challenger event starts the promotion")
    promote_known = _known(client, f"{spec.name}__promote")
    run = client.trigger(
        f"{spec.name}__train",
        conf={"end_date": first_end.isoformat(), "search_budget": budget, "reason": "demo: first model"},
    )
    client.wait_dag_run(f"{spec.name}__train", run["dag_run_id"], timeout=1200)
    promote = client.new_run(f"{spec.name}__promote", promote_known, timeout=120)
    client.wait_dag_run(f"{spec.name}__promote", promote["dag_run_id"], timeout=600, raise_on_failure=False)
    mlflow = MlflowClient(mlflow_url, registry_uri=mlflow_url)
    say(f"    aliases: {mlflow.get_registered_model(spec.name).aliases}")

    first_scored = first_end + timedelta(days=1)
    say(f"  c) the daily loop over {first_scored}..{end}, a week at a time: ingest, validate, score, monitor")
    say("     (backfills); drift decisions emit the drift asset, which retrains and re-gates through the")
    say("     scheduler, so the next week is scored by whichever model is champion then")
    week = first_scored
    while week <= end:
        week_end = min(end, week + timedelta(days=6))
        for step in DAILY:
            _backfill(client, f"{spec.name}__{step}", week, week_end, say, runs=1 if step == "monitor" else 4)
        _settle(client, spec, say)
        week = week_end + timedelta(days=1)

    summary = LoopSummary(seconds=round(time.monotonic() - t0, 1))
    for step in LOOP_DAGS:
        dag_id = f"{spec.name}__{step}"
        for run in client.dag_runs(dag_id):
            summary.states.setdefault(step, {})
            summary.states[step][run["state"]] = summary.states[step].get(run["state"], 0) + 1
            summary.days.setdefault(step, []).append(str(run.get("logical_date") or run["run_after"])[:10])
    model = mlflow.get_registered_model(spec.name)
    summary.champion = model.aliases.get(CHAMPION)
    for version in mlflow.search_model_versions(f"name='{spec.name}'"):
        summary.versions.append(
            {
                "version": int(version.version),
                "reason": version.tags.get(Tag.TRIGGER_REASON),
                "gate": version.tags.get(Tag.GATE),
                "roc_auc": version.tags.get("metric.roc_auc"),
            }
        )
    summary.versions.sort(key=lambda v: v["version"])
    return summary


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def drift_to_champion(
    client: AirflowClient, spec: ModelSpec, mlflow_url: str, partition: date, timeout: float = 1800
) -> dict[str, Any]:
    """Send a ``drift`` asset event and time it until the challenger it causes is champion.

    The event carries a fresh decision id and ``partition`` (the training end), like the
    monitor's. Returns the breakdown in seconds: event -> train run queued -> started ->
    finished (per task) -> promote run queued -> started -> finished -> alias moved."""
    from mlflow import MlflowClient

    mlflow = MlflowClient(mlflow_url, registry_uri=mlflow_url)
    before = mlflow.get_registered_model(spec.name).aliases.get(CHAMPION)
    train_known = _known(client, f"{spec.name}__train")
    promote_known = _known(client, f"{spec.name}__promote")
    decision = f"bench-{int(time.time())}"
    sent = time.time()
    event = client.create_asset_event(
        f"x-airloop://{spec.name}/drift", {"decision_id": decision, "partition": partition.isoformat()}
    )
    train = client.new_run(f"{spec.name}__train", train_known, timeout=300)
    client.wait_dag_run(f"{spec.name}__train", train["dag_run_id"], timeout=timeout)
    promote = client.new_run(f"{spec.name}__promote", promote_known, timeout=300)
    client.wait_dag_run(f"{spec.name}__promote", promote["dag_run_id"], timeout=timeout, raise_on_failure=False)
    moved = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now_champion = mlflow.get_registered_model(spec.name).aliases.get(CHAMPION)
        if now_champion != before:
            moved = time.time()
            break
        time.sleep(0.5)
    train = client.dag_run(f"{spec.name}__train", train["dag_run_id"])
    promote = client.dag_run(f"{spec.name}__promote", promote["dag_run_id"])
    origin = _ts(event.get("timestamp")) or sent

    def since(value: str | None) -> float | None:
        stamp = _ts(value)
        return round(stamp - origin, 2) if stamp else None

    tasks = {
        f"{dag}.{ti['task_id']}": round((_ts(ti["end_date"]) or 0) - (_ts(ti["start_date"]) or 0), 2)
        for dag, run in (("train", train), ("promote", promote))
        for ti in client.task_instances(f"{spec.name}__{dag}", run["dag_run_id"])
        if ti.get("start_date") and ti.get("end_date")
    }
    return {
        "decision_id": decision,
        "champion_before": before,
        "champion_after": mlflow.get_registered_model(spec.name).aliases.get(CHAMPION),
        "promote_state": promote["state"],
        "train_queued": since(train.get("queued_at")),
        "train_started": since(train.get("start_date")),
        "train_finished": since(train.get("end_date")),
        "promote_queued": since(promote.get("queued_at")),
        "promote_started": since(promote.get("start_date")),
        "promote_finished": since(promote.get("end_date")),
        "champion_moved": round(moved - origin, 2) if moved else None,
        "task_seconds": tasks,
    }
