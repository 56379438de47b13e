"""ReplayOperator: the replay from the UI publishes its report into the lake, charts beside it."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airloop.operators.replay import ReplayOperator
from include.lake import Lake, Zone

SPECS = Path(__file__).resolve().parents[1] / "specs"  # tests/specs/cancer.yaml: small and fast


def test_replay_task_publishes_the_report_and_links_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOOP_SPECS_DIR", str(SPECS))
    lake = Lake((tmp_path / "lake").as_uri())
    start = date(2024, 1, 1)
    op = ReplayOperator(
        task_id="replay",
        model="cancer",
        start=start.isoformat(),
        end=(start + timedelta(days=16)).isoformat(),
        policies=["frozen", "calendar"],
        calendar_days=2,
        search_budget=1,
        window_days=None,
        lake_uri=lake.uri,
    )
    result = op.execute({"run_id": "manual__2026-12-01T08:00:00+00:00", "ti": SimpleNamespace(try_number=1)})  # type: ignore[arg-type]
    names = sorted(Path(p).name for p in lake.list_files(lake.path("reports", "cancer", "replay")))
    key = "manual__2026-12-01T08_00_00_00_00"
    assert names == sorted(f"{key}__{n}" for n in ("report.html", "replay.json"))
    html = lake.read_bytes(lake.report_path("cancer", "replay", f"{key}__report.html")).decode()
    assert "Plotly.newPlot" in html and "<img" not in html  # charts inside the page, nothing beside it
    payload: dict[str, Any] = json.loads(lake.read_bytes(lake.report_path("cancer", "replay", f"{key}__replay.json")))
    assert set(payload["summary"]) == {"frozen", "calendar"} == set(result["summary"])
    assert result["summary"]["frozen"]["retrains"] == 0 and result["summary"]["calendar"]["retrains"] >= 1
    assert result["summary"]["calendar"]["days_scored"] == 3  # days 15..17 after the 14-day window
    assert op.report_links["replay_report"].endswith(f"/airloop/reports/cancer/replay/{key}__report.html")
    # the model's own lake is untouched: no partitions, no registry data
    assert lake.list_partitions(Zone.VALIDATED, "cancer") == []
