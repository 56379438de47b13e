"""Approvals nobody answers, under the real scheduler: a newer challenger supersedes a waiting
request without queueing behind it, and a request left alone past ``gate.approval_timeout`` is
rejected, "no decision in time". Both end through Airflow's own HITL machinery: the request waits
in ``awaiting_input`` and the scheduler's timeout sweep wakes it (see docs/dags/promote.md#approval).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from include.registry.ledger import read_ledger
from tests.system.approval_world import approval_model

pytestmark = pytest.mark.system

TIMEOUT_S = 30  # long enough to register the newer challenger (about 2 s) while the first waits


def test_a_newer_challenger_supersedes_a_waiting_request_and_an_unanswered_one_times_out(
    system_stack: Any, flights_lake: Path
) -> None:
    started = time.monotonic()
    model = approval_model(system_stack, flights_lake, "appr_late", approval_timeout=f"PT{TIMEOUT_S}S")
    client, lake = system_stack.client, system_stack.lake

    v1 = model.register()
    first = client.trigger(model.dag_id, run_id="approval_v1")["dag_run_id"]
    model.wait_awaiting(first)

    v2 = model.register()  # @challenger moves on while v1 waits
    second = client.trigger(model.dag_id, run_id="approval_v2")["dag_run_id"]
    model.wait_awaiting(second)
    asked = time.monotonic()
    assert client.wait_dag_run(model.dag_id, first, timeout=180) == "success"

    # the newer run did not queue behind the waiting one (max_active_runs=2 with approval)
    runs = {r["dag_run_id"]: r for r in client.dag_runs(model.dag_id)}
    assert datetime.fromisoformat(runs[second]["start_date"]) < datetime.fromisoformat(runs[first]["end_date"])
    # the waiting request ended at its first wake-up, superseded: no person answered it
    assert model.hitl(first)["response_received"] is False
    assert model.task_state(first, "promote") == "skipped"

    assert client.wait_dag_run(model.dag_id, second, timeout=180) == "success"
    waited = time.monotonic() - asked
    assert model.hitl(second)["response_received"] is False
    # the deadline, then the scheduler's sweep (every 15 s) and the promote task
    assert TIMEOUT_S - 5 <= waited <= TIMEOUT_S + 60
    ledger = [(e["action"], e["version"], e["reason"], e["approver"], e["figures"]["approval"])
              for e in read_ledger(lake, model.name)]  # fmt: skip
    assert ledger == [
        ("superseded", v1, f"superseded by v{v2}", None, "superseded"),
        ("approval_rejected", v2, "no decision in time", None, "timeout"),
    ]
    assert model.tags(v1)["airloop.gate"] == "superseded" and model.tags(v1)["airloop.superseded_by"] == str(v2)
    assert model.tags(v2)["airloop.gate"] == "approval_rejected"
    assert model.tags(v2)["airloop.reject_reason"] == "no decision in time"
    assert model.alias("champion") is None  # nothing was promoted
    # the expired request is alerted once; the superseded one is not (v2's own request followed)
    alerts = [json.loads(lake.read_bytes(p)) for p in lake.list_files(lake.path("reports", model.name, "alerts"))]
    expired = [a for a in alerts if a["kind"] == "approval_expired"]
    assert len(expired) == 1 and f"challenger v{v2} passed the gate but nobody approved it" in expired[0]["message"]
    assert sorted(a["kind"] for a in alerts if a["kind"] != "approval_needed") == ["approval_expired"]
    states = {t["task_id"]: t["state"] for t in client.task_instances(model.dag_id, second)}
    assert states == {"evaluate": "success", "approve": "success", "promote": "skipped"}
    print(f"approval system test: {time.monotonic() - started:.0f} s, second request ended after {waited:.0f} s")
