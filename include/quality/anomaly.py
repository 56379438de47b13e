"""Anomalous partitions: a day whose category mix lies outside the contract's ``mix`` bounds.

A segment that is missing (its share below ``min_share``) or alone (another segment's share
above ``max_share``, or its own share near 1) makes a day *anomalous*. Such a day is still valid
data: it passes validation and is scored. But it does not describe the population the model
serves, so it is kept out of training windows and drift references, and alerted.

Validation (``include.quality.validate``) computes :func:`mix_findings` and records the verdict
with :func:`record_anomaly`: a marker ``reports/<model>/anomaly/ds=<date>.json`` (findings
inside) exists exactly while the latest validation of that day found it anomalous; a rerun that
finds the day normal removes it. :func:`anomalous_partitions` is the one reader of those markers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Any

from include.lake import Lake, Zone
from include.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

ANOMALY_KIND = "anomaly"


def mix_findings(frame: pd.DataFrame, spec: ModelSpec) -> list[dict[str, Any]]:
    """One finding per category whose share of the partition's non-null values lies outside its
    ``contract.mix`` bounds: ``{column, category, share, rows, bounds, problem}``, where
    ``problem`` is ``missing`` (below ``min_share``) or ``dominant`` (above ``max_share``).

    Categories not listed in the bounds are not judged here (the ``in_set`` rule reports them); a
    column absent from the frame or without non-null values gives no finding (the contract's
    column and null-rate rules report those)."""
    findings: list[dict[str, Any]] = []
    for column, bounds in spec.contract.mix.items():
        if column not in frame.columns:
            continue
        present = frame[column].dropna().astype(str)
        total = len(present)
        if total == 0:
            continue
        counts = present.value_counts()
        for category, (low, high) in bounds.items():
            rows = int(counts.get(category, 0))
            share = rows / total
            if low <= share <= high:
                continue
            findings.append(
                {
                    "column": column,
                    "category": category,
                    "share": round(share, 6),
                    "rows": rows,
                    "bounds": [low, high],
                    "problem": "missing" if share < low else "dominant",
                }
            )
    return findings


def describe(finding: dict[str, Any]) -> str:
    """A finding in words: ``origin=JFK share 0.000 below [0.25, 0.45] (missing)``."""
    low, high = finding["bounds"]
    side = "below" if finding["problem"] == "missing" else "above"
    return (
        f"{finding['column']}={finding['category']} share {finding['share']:.3f} {side} "
        f"[{low:g}, {high:g}] ({finding['problem']}, {finding['rows']} rows)"
    )


def marker_path(lake: Lake, model: str, ds: date) -> str:
    return lake.report_path(model, ANOMALY_KIND, f"ds={ds.isoformat()}.json")


def record_anomaly(lake: Lake, model: str, ds: date, findings: list[dict[str, Any]], report_uri: str | None) -> None:
    """Write the day's marker (atomically) when there are findings, remove it when there are none:
    the marker always reflects the latest validation of the day (reruns are idempotent)."""
    path = marker_path(lake, model, ds)
    if findings:
        document = {"model": model, "ds": ds.isoformat(), "mix_findings": findings, "report_uri": report_uri}
        lake.write_bytes(path, json.dumps(document, indent=1).encode())
        log.warning("%s %s: anomalous partition: %s", model, ds, "; ".join(describe(f) for f in findings))
    elif lake.exists(path):
        lake.fs.delete_file(path)
        log.info("%s %s: no longer anomalous, marker removed", model, ds)


def anomalous_partitions(lake: Lake, model: str) -> set[date]:
    """The days of ``model`` that the latest validation flagged anomalous."""
    days: set[date] = set()
    for path in lake.list_files(lake.path(Zone.REPORTS.value, model, ANOMALY_KIND)):
        name = path.rsplit("/", 1)[-1]
        if name.startswith("ds=") and name.endswith(".json"):
            days.add(date.fromisoformat(name[3:13]))
    return days


def exclude_anomalous(lake: Lake, model: str, days: Iterable[date]) -> list[date]:
    """``days`` without the anomalous ones (order kept); logs what it left out."""
    days = list(days)
    flagged = anomalous_partitions(lake, model)
    dropped = [d for d in days if d in flagged]
    if dropped:
        log.info(
            "%s: leaving out %s anomalous partitions: %s",
            model,
            len(dropped),
            ", ".join(d.isoformat() for d in dropped),
        )
    return [d for d in days if d not in flagged]
