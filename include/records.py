"""The monitor's day records in the lake: ``reports/<model>/drift/ds=<date>.json``.

Written by :func:`include.monitoring.monitor.monitor_day`; read by the decision engine, the gate
(the champion's realized performance), the dashboard and the replay. Reading them needs only
the lake, so the registry reads them here without importing monitoring.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from include.lake import Lake, Zone

DRIFT_KIND = "drift"


def record_name(ds: date) -> str:
    return f"ds={ds.isoformat()}.json"


def read_history(lake: Lake, model: str, before: date) -> list[dict[str, Any]]:
    """The drift records of the days before ``before``, oldest first."""
    records = []
    prefix = lake.path(Zone.REPORTS.value, model, DRIFT_KIND)
    for path in lake.list_files(prefix):
        name = path.rsplit("/", 1)[-1]
        if name.startswith("ds=") and name.endswith(".json") and date.fromisoformat(name[3:13]) < before:
            records.append(json.loads(lake.read_bytes(path)))
    return sorted(records, key=lambda r: r["partition"])
