"""AlertNotifier: a failure or drift alert, logged and kept as a JSON record in the lake.

Each alert is one file ``reports/<model>/alerts/<dag>__<run>__<task>.json`` written
atomically, keyed by run and task so a retried callback rewrites the same record instead
of piling up duplicates. Other channels (Slack, e-mail) plug in as further notifiers.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


def alert_record(model: str, message: str, runbook: str, context: Any) -> dict[str, Any]:
    """The JSON-able record of an alert, from an Airflow callback context."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    exception = context.get("exception")
    return {
        "model": model,
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "run_id": getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
        "logical_date": str(context.get("logical_date") or ""),
        "message": message or (str(exception) if exception else "task failed"),
        "runbook": runbook,
    }


class AlertNotifier(BaseNotifier):
    template_fields = ("message",)

    def __init__(self, model: str, message: str = "", runbook: str = "docs/operations.md") -> None:
        super().__init__()
        self.model = model
        self.message = message
        self.runbook = runbook

    def notify(self, context: Any) -> None:
        from airloop.hooks.lake import LakeHook

        record = alert_record(self.model, self.message, self.runbook, context)
        log.error("airloop alert for %s: %s (runbook: %s)", self.model, record["message"], self.runbook)
        name = _UNSAFE.sub("_", f"{record['dag_id']}__{record['run_id']}__{record['task_id']}")[:120] + ".json"
        lake = LakeHook().lake
        lake.write_bytes(lake.report_path(self.model, "alerts", name), json.dumps(record, indent=2).encode())
