"""One function per pipeline step, each returning the step's JSON-able result.

These are the only implementations of the steps' work: the operators call them in the worker
(``execution="local"``) and ``airloop <step>`` (include/cli.py) calls them in a container
(``execution="docker"``), so both modes write the same files and return the same dict. What
needs Airflow (asset events, report links, alerts, skips, deferral) stays in the operators and
is derived from the returned dict only.

A result that means "nothing to do" carries ``"skipped": <reason>``, one that no retry can fix
``"failed": <reason>``; a broken data contract is ``"passed": False`` (the data was quarantined).
These are results, not exceptions, so they cross the container boundary intact.

The promote step is :func:`include.registry.promotion.apply_decision` itself (its signature
is already the step's); every other step adapts a library function here.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from include.lake import Lake
    from include.spec import ModelSpec

log = logging.getLogger(__name__)


def ingest_step(spec: ModelSpec, lake: Lake, ds: date) -> dict[str, Any]:
    """Land the rows of ``ds`` (and the labels due that day)."""
    from include.datasets.ingest import land_day

    return dict(land_day(spec, lake, ds).to_dict())


def validate_step(spec: ModelSpec, lake: Lake, ds: date, run_key: str) -> dict[str, Any]:
    """Validate the landing partition of ``ds``; publish it to ``validated/`` or quarantine it.

    ``run_key`` (``<run id>__try<n>``) names the reports and the quarantine folder.
    """
    import time

    from include.lake import Zone
    from include.quality.validate import validate_partition

    landing = lake.partition_file(Zone.LANDING, spec.name, ds)
    result = validate_partition(spec, landing, ds, lake=lake, report_prefix="validation", report_key=run_key)
    log.info("%s %s: %s", spec.name, ds, result.summary)
    summary: dict[str, Any] = {**result.to_dict(), "partition": ds.isoformat()}
    if result.passed:
        published = lake.publish_copy(landing, Zone.VALIDATED, spec.name, ds)
        return {**summary, "validated_uri": published.uri, "validated_rows": published.rows}
    target = lake.quarantine_dir(spec.name, ds, run_key)
    if lake.list_files(target):  # the same try twice (duplicate delivery): keep both
        target = lake.quarantine_dir(spec.name, ds, f"{run_key}__{time.time_ns()}")
    lake.move_partition_files(lake.partition_dir(Zone.LANDING, spec.name, ds), target)
    for uri in (result.report_json_uri, result.data_docs_uri):
        if uri:
            path = uri.split("://", 1)[1]
            lake.write_bytes(f"{target}/{path.rsplit('/', 1)[-1]}", lake.read_bytes(path))
    log.warning("quarantined %s %s at %s", spec.name, ds, lake.to_uri(target))
    return {
        **summary,
        "failures": [f"{o.rule} ({o.detail or o.observed})" for o in result.errors],
        "quarantine_uri": lake.to_uri(target),
    }


def train_step(
    spec: ModelSpec,
    lake: Lake,
    tracking_uri: str,
    end: date,
    *,
    reason: str,
    run_tags: dict[str, str] | None = None,
    decisions: list[str] | None = None,
    window_days: int | None = None,
    search_budget: int | None = None,
    estimator: str | None = None,
) -> dict[str, Any]:
    """Train on the window ending at ``end`` and register ``@challenger``.

    Drift ``decisions`` already answered by an earlier training are dropped; if none is left
    the result is ``{"skipped": ...}`` and nothing is trained.
    """
    from include.training.dedupe import answered_decisions
    from include.training.job import train_challenger

    if decisions:
        fresh = sorted(set(decisions) - answered_decisions(tracking_uri, spec.name, decisions))
        if not fresh:
            return {"skipped": f"drift decisions {decisions} were already answered by earlier trainings"}
        decisions = fresh
    result = train_challenger(
        spec,
        lake,
        tracking_uri,
        end,
        reason=reason,
        run_tags=run_tags,
        decisions=decisions,
        window_days=window_days,
        search_budget=search_budget,
        estimator=estimator,
    )
    return result.to_dict()


def evaluate_step(
    spec: ModelSpec, lake: Lake, tracking_uri: str, *, mode: str | None, report_key: str
) -> dict[str, Any]:
    """Run the promotion gate (challenger vs champion); returns the gate report."""
    from include.registry.promotion import run_gate

    return run_gate(spec, lake, tracking_uri, mode_override=mode or None, report_key=report_key)


def read_gate_report(lake: Lake, report_json_uri: str) -> dict[str, Any]:
    """The gate report :func:`evaluate_step` wrote, with its own URIs (as the step returned it)."""
    report: dict[str, Any] = json.loads(lake.read_bytes(report_json_uri.split("://", 1)[1]))
    report.setdefault("report_json_uri", report_json_uri)
    report.setdefault("report_html_uri", report_json_uri.removesuffix(".json") + ".html")
    return report


def rollback_step(
    spec: ModelSpec,
    lake: Lake,
    tracking_uri: str,
    *,
    target_version: int | None,
    reason: str,
    now: datetime,
    dag_id: str,
    run_id: str,
) -> dict[str, Any]:
    """Move ``@champion`` back to ``target_version`` (default: the one it replaced)."""
    from include.registry.promotion import rollback

    return rollback(
        spec,
        lake,
        tracking_uri,
        target_version=target_version,
        reason=reason,
        now=now,
        dag_id=dag_id,
        run_id=run_id,
    )


def pin_step(spec: ModelSpec, lake: Lake, tracking_uri: str, ds: date, run_key: str) -> dict[str, Any]:
    """Resolve ``@champion`` once and plan the day's shards: ``{version, rows, shards: [...]}``."""
    from mlflow import MlflowClient

    from include.registry.aliases import current_alias
    from include.scoring.shards import count_rows, plan_shards

    version = current_alias(MlflowClient(tracking_uri, registry_uri=tracking_uri), spec.name, "champion")
    if version is None:
        return {"failed": f"{spec.name}: no version has alias 'champion' yet: promote one first"}
    rows = count_rows(lake, spec, ds)
    shards = plan_shards(rows, spec.scoring.shard_rows)
    log.info("%s %s: %s rows, champion v%s pinned, %s shard(s)", spec.name, ds, rows, version, len(shards))
    plan = [
        {
            "ds": ds.isoformat(),
            "version": version,
            "run_key": run_key,
            "index": i,
            "start": s,
            "end": e,
            "n_shards": len(shards),
        }
        for i, (s, e) in enumerate(shards)
    ]
    return {"version": version, "rows": rows, "shards": plan}


def score_step(spec: ModelSpec, lake: Lake, tracking_uri: str, shard: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Score one shard planned by :func:`pin_step` with onnxruntime."""
    from include.registry.mlflow_registry import load_onnx_bytes
    from include.scoring.shards import score_shard

    onnx_bytes = load_onnx_bytes(tracking_uri, spec.name, shard["version"])
    report = score_shard(
        spec,
        lake,
        date.fromisoformat(shard["ds"]),
        onnx_bytes,
        index=int(shard["index"]),
        row_range=(int(shard["start"]), int(shard["end"])),
        run_key=str(shard["run_key"]),
        model_name=spec.name,
        model_version=int(shard["version"]),
        run_id=run_id,
    )
    return dict(report.to_dict())


def publish_step(spec: ModelSpec, lake: Lake, ds: date, run_key: str, n_shards: int) -> dict[str, Any]:
    """Commit the run's shards as the day's predictions; returns the manifest."""
    from include.scoring.shards import publish_shards

    return publish_shards(lake, spec, ds, run_key, n_shards)


def shadow_step(spec: ModelSpec, lake: Lake, tracking_uri: str, ds: date, run_id: str) -> dict[str, Any]:
    """Score ``@challenger`` into ``shadow/`` and record its agreement with the champion's day."""
    from mlflow import MlflowClient

    from include.lake import Zone
    from include.registry.aliases import current_alias
    from include.registry.mlflow_registry import load_onnx_bytes
    from include.scoring.score import score_partition
    from include.scoring.shadow import shadow_partition_agreement

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    challenger = current_alias(client, spec.name, "challenger")
    champion = current_alias(client, spec.name, "champion")
    if challenger is None or challenger == champion:
        return {"skipped": f"{spec.name}: no challenger distinct from the champion to shadow"}
    report = score_partition(
        spec,
        lake,
        ds,
        load_onnx_bytes(tracking_uri, spec.name, challenger),
        model_name=spec.name,
        model_version=challenger,
        run_id=run_id,
        zone=Zone.SHADOW,
    )
    agreement = {
        **shadow_partition_agreement(lake, spec, ds),
        "challenger_version": challenger,
        "ds": ds.isoformat(),
    }
    lake.write_bytes(
        lake.report_path(spec.name, "shadow", f"ds={ds.isoformat()}.json"),
        json.dumps(agreement, default=str).encode(),
    )
    return {"rows_scored": report.rows_scored, **agreement}


def monitor_step(spec: ModelSpec, lake: Lake, tracking_uri: str, ds: date) -> dict[str, Any]:
    """Measure and decide the day's drift; writes the day's record; returns its summary."""
    from include.monitoring.monitor import monitor_day

    record = monitor_day(spec, lake, tracking_uri, ds)
    return {
        "partition": record["partition"],
        "model_version": record["model_version"],
        "verdict": record["verdict"],
        "score": record["day"]["score"],
        "report_uri": record["report_uri"],
        "record_uri": record["record_uri"],
        "performance": record["performance"],
    }


REPLAY_FILES = ("report.html", "replay.json")


def replay_step(spec: ModelSpec, lake: Lake, settings: Any, run_key: str) -> dict[str, Any]:
    """Replay ``settings`` (a :class:`~include.replay.ReplaySettings`) in a scratch folder and
    publish the report into the lake as ``reports/<model>/replay/<run_key>__<file>``, where the
    airloop plugin serves it. The replay has its own lakes and MLflow stores: it never touches
    the model's lake data or registry. Returns the summary and the report's URI."""
    import shutil
    import tempfile
    from pathlib import Path

    from include.lake import safe_key
    from include.replay import replay

    key = safe_key(run_key)
    scratch = Path(tempfile.mkdtemp(prefix=f"airloop-replay-{spec.name}-"))
    try:
        payload = replay(spec, scratch, settings)
        published = {}
        for name in REPLAY_FILES:
            data = (scratch / name).read_bytes()
            if name == "report.html":  # the charts sit beside the page under prefixed names
                for chart in REPLAY_FILES[1:4]:
                    data = data.replace(f'src="{chart}"'.encode(), f'src="{key}__{chart}"'.encode())
            published[name] = lake.write_bytes(lake.report_path(spec.name, "replay", f"{key}__{name}"), data)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"report_uri": published["report.html"], "json_uri": published["replay.json"], "summary": payload["summary"]}
