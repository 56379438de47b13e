"""What a task knows about why and when it runs, as plain values for the include functions."""

from __future__ import annotations

from datetime import date
from typing import Any


def trigger_reason(context: Any, manual_reason: str | None = None) -> str:
    """``schedule``, ``backfill``, ``drift:<decision ids>``, ``asset:<names>`` or ``manual: <reason>``."""
    dag_run = context.get("dag_run")
    run_type = str(getattr(dag_run, "run_type", "") or "").lower().split(".")[-1]
    if is_asset_triggered(context):
        ids = drift_decision_ids(context)
        if ids:
            return "drift:" + ",".join(ids)
        names = sorted({str(getattr(e, "asset", None) and e.asset.name) for e in _events(context)})
        return "asset:" + ",".join(names)
    if run_type == "manual":
        return f"manual: {manual_reason or 'no reason given'}"
    return run_type or "unknown"


def _events(context: Any) -> list[Any]:
    triggering = context.get("triggering_asset_events") or {}
    return [event for events in triggering.values() for event in events]


def drift_decision_ids(context: Any) -> list[str]:
    """Decision ids carried by the triggering drift events (merged events give several)."""
    ids = []
    for event in _events(context):
        extra = getattr(event, "extra", None) or {}
        if extra.get("decision_id"):
            ids.append(str(extra["decision_id"]))
    return sorted(set(ids))


def is_asset_triggered(context: Any) -> bool:
    dag_run = context.get("dag_run")
    return str(getattr(dag_run, "run_type", "") or "").lower().split(".")[-1] == "asset_triggered"


def rollback_events(context: Any) -> list[tuple[int, int]]:
    """``(version, previous_version)`` of each triggering event that a rollback emitted (its
    ``extra`` has ``rollback: true``), oldest first, without repeats (merged events)."""
    pairs: list[tuple[int, int]] = []
    for event in _events(context):
        extra = getattr(event, "extra", None) or {}
        if extra.get("rollback") and extra.get("version") is not None and extra.get("previous_version") is not None:
            pair = (int(extra["version"]), int(extra["previous_version"]))
            if pair not in pairs:
                pairs.append(pair)
    return pairs


def event_partitions(context: Any) -> list[date]:
    """Partitions named by the triggering events' ``extra`` (for asset-triggered runs)."""
    found = set()
    for event in _events(context):
        extra = getattr(event, "extra", None) or {}
        if extra.get("partition"):
            found.add(date.fromisoformat(str(extra["partition"])))
    return sorted(found)


def event_trigger(context: Any) -> tuple[str | None, date | None]:
    """(trigger, break_day) of the triggering drift events: the newest that names a performance
    break, else the newest that names its trigger (``break_day`` ``None``); ``(None, None)`` for a
    run no drift event asked for."""
    extras = [getattr(event, "extra", None) or {} for event in reversed(_events(context))]
    for extra in extras:
        if extra.get("break_day"):
            return extra.get("trigger"), date.fromisoformat(str(extra["break_day"]))
    return next((str(extra["trigger"]) for extra in extras if extra.get("trigger")), None), None


def logical_day(context: Any) -> date | None:
    """The run's logical date as a day, or None (asset-triggered and some manual runs have none)."""
    value = context.get("logical_date")
    return value.date() if value is not None else None


def run_tags(context: Any, step: str) -> dict[str, str]:
    """Lineage tags for MLflow: dag, run, logical date, step, code commit."""
    from include.lineage import code_commit
    from include.names import Tag

    ti = context.get("ti")
    day = logical_day(context)
    return {
        Tag.STEP: step,
        Tag.DAG_ID: str(getattr(ti, "dag_id", "") or ""),
        Tag.DAG_RUN_ID: str(context.get("run_id") or ""),
        Tag.LOGICAL_DATE: day.isoformat() if day else "",
        Tag.CODE_COMMIT: code_commit(),
    }


def ledger_fields(context: Any) -> dict[str, Any]:
    """What a champion move or breaker reset records in the ledger about its run (the fields of
    ``include.steps.LedgerParams``): the run's ``run_after`` as the time, so a retried task
    records the same entry, and the DAG and run ids."""
    return {"now": context["dag_run"].run_after, "dag_id": context["ti"].dag_id, "run_id": str(context["run_id"])}
