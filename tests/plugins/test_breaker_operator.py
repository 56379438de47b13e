"""``BreakerResetOperator`` in the worker: the form's name and reason become one ledger entry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from airloop.operators.breaker import BreakerResetOperator
from include.lake import Lake
from include.registry.ledger import LedgerError, read_ledger


def _context(run_after: datetime) -> dict[str, object]:
    return {
        "dag_run": SimpleNamespace(run_after=run_after, run_type="manual"),
        "ti": SimpleNamespace(dag_id="flights__breaker_reset"),
        "run_id": "manual__2013-03-12",
    }


def test_reset_is_recorded_once_with_who_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRLOOP_EXECUTION", raising=False)
    lake = Lake(tmp_path.as_uri())
    op = BreakerResetOperator(
        task_id="breaker_reset", model="flights", by="ana", reason="feed fixed", lake_uri=lake.uri
    )
    when = datetime(2013, 3, 12, 9, 30, tzinfo=UTC)
    first = op.execute(_context(when))  # type: ignore[arg-type]
    again = op.execute(_context(when))  # type: ignore[arg-type]  # a retry of the same run
    assert first == again and first["action"] == "breaker_reset"
    (entry,) = read_ledger(lake, "flights")
    assert (entry["action"], entry["approver"], entry["reason"], entry["dag_id"], entry["run_id"]) == (
        "breaker_reset",
        "ana",
        "feed fixed",
        "flights__breaker_reset",
        "manual__2013-03-12",
    )
    empty = BreakerResetOperator(task_id="breaker_reset", model="flights", by="", reason="x", lake_uri=lake.uri)
    with pytest.raises(LedgerError, match="must say who resets it"):
        empty.execute(_context(when))  # type: ignore[arg-type]
