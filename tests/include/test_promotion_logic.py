"""The gate's inputs read from the lake: the evaluation set after a break, the champion's realized
performance (monitor records), and pending decisions that wait for shadow days without counting
as rejections."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from include.lake import Lake, Zone
from include.monitoring.monitor import loop_state, record_name
from include.registry.gate import ChampionPerformance
from include.registry.ledger import LedgerEntry, append_entry
from include.registry.promotion import (
    _not_promoted_action,
    break_of,
    champion_performance,
    evaluation_set,
    regate_due,
)
from include.spec import get_spec

SPEC = get_spec("flights")
T0 = datetime(2013, 2, 1, tzinfo=UTC)


def _joined_rows(lake: Lake, days: list[date]) -> int:
    total = 0
    for day in days:
        features = pd.read_parquet(lake.partition_file(Zone.VALIDATED, "flights", day))
        labels = pd.read_parquet(lake.partition_file(Zone.LABELS, "flights", day))
        total += len(features.merge(labels, on="flight_id"))
    return total


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _with_gate(**update: Any) -> Any:
    return SPEC.model_copy(update={"gate": SPEC.gate.model_copy(update=update)})


# --------------------------------------------------------------------------- evaluation set after a break
def test_a_break_challenger_is_judged_on_the_days_after_the_break(flights_lake: Path) -> None:
    lake = Lake(flights_lake.as_uri())
    # labelled days of the demo lake: 01-01..01-23; the challenger trained up to 01-15
    usual = evaluation_set(_with_gate(min_post_break_rows=2000), lake, date(2013, 1, 15))
    assert usual.days == _days(date(2013, 1, 17), date(2013, 1, 23)) and usual.basis == "holdout"
    assert usual.note == ""
    post = evaluation_set(_with_gate(min_post_break_rows=2000), lake, date(2013, 1, 15), date(2013, 1, 20))
    rows = _joined_rows(lake, _days(date(2013, 1, 20), date(2013, 1, 23)))
    assert post.days == _days(date(2013, 1, 20), date(2013, 1, 23)) and post.basis == "post_break"
    assert len(post.frame) == rows > 2000
    assert post.note == (
        f"judged on the 4 labelled days after the break on 2013-01-20 ({rows:,} rows), >= gate.min_post_break_rows 2,000"
    )


def test_too_few_rows_after_the_break_fall_back_to_the_usual_days_and_say_so(flights_lake: Path) -> None:
    lake = Lake(flights_lake.as_uri())
    fallback = evaluation_set(_with_gate(min_post_break_rows=50_000), lake, date(2013, 1, 15), date(2013, 1, 22))
    after = _joined_rows(lake, [date(2013, 1, 22), date(2013, 1, 23)])
    assert fallback.days == _days(date(2013, 1, 17), date(2013, 1, 23)) and fallback.basis == "holdout"
    assert len(fallback.frame) == _joined_rows(lake, fallback.days)
    assert fallback.note == (
        f"judged on the usual evaluation days 2013-01-17..2013-01-23 ({len(fallback.frame):,} rows): only 2 labelled "
        f"days after the break on 2013-01-22 ({after:,} rows), < gate.min_post_break_rows 50,000"
    )
    # a break after the last labelled day: no post-break rows at all
    none = evaluation_set(_with_gate(min_post_break_rows=1), lake, date(2013, 1, 15), date(2013, 1, 24))
    assert none.basis == "holdout" and "only 0 labelled days after the break on 2013-01-24 (0 rows)" in none.note


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        pytest.param({"airloop.trigger": "breach", "airloop.break_day": "2013-03-01"}, date(2013, 3, 1), id="breach"),
        pytest.param(
            {"airloop.trigger": "performance_drop", "airloop.break_day": "2013-03-01"}, date(2013, 3, 1), id="drop"
        ),
        pytest.param({"airloop.trigger": "drift", "airloop.break_day": "2013-03-01"}, None, id="data-drift"),
        pytest.param({"airloop.trigger_reason": "scheduled"}, None, id="no-break"),
    ],
)
def test_only_a_performance_trigger_with_a_break_day_is_a_break(tags: dict[str, str], expected: date | None) -> None:
    assert break_of(tags) == expected


# --------------------------------------------------------------------------- the champion's realized performance
def _record(lake: Lake, ds: date, performance: dict[str, Any] | None) -> None:
    record = {"model": "flights", "partition": ds.isoformat(), "performance": performance}
    lake.write_bytes(lake.report_path("flights", "drift", record_name(ds)), json.dumps(record).encode())


def _performance(label_day: date, version: int, auc: float, high: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"label_day": label_day.isoformat(), "rows": 880, "model_version": version, "roc_auc": auc}
    if high is not None:
        out["drop"] = {"current_auc": auc, "ci_low": auc - 0.04, "ci_high": high}
    return out


def test_champion_performance_is_the_latest_labelled_day_the_champion_scored(tmp_path: Path) -> None:
    lake = Lake(tmp_path.as_uri())
    assert champion_performance(lake, "flights", 3) is None
    _record(lake, date(2013, 3, 1), _performance(date(2013, 2, 27), 3, 0.66, 0.70))
    _record(lake, date(2013, 3, 2), _performance(date(2013, 2, 28), 3, 0.31, 0.35))
    _record(
        lake, date(2013, 3, 3), {"label_day": "2013-03-01", "rows": 3, "note": "too few labelled rows or one class"}
    )
    _record(lake, date(2013, 3, 4), None)
    _record(lake, date(2013, 3, 5), _performance(date(2013, 3, 3), 4, 0.72, 0.75))  # another version scored it
    assert champion_performance(lake, "flights", 3) == ChampionPerformance(3, "2013-02-28", 0.31, 0.35, 880)
    _record(lake, date(2013, 3, 6), _performance(date(2013, 3, 4), 3, 0.58, None))
    assert champion_performance(lake, "flights", 3) == ChampionPerformance(3, "2013-03-04", 0.58, None, 880)


# --------------------------------------------------------------------------- pending
def _ledger(lake: Lake, action: str, version: int, minutes: int, waiting_for: str | None = None) -> None:
    entry = LedgerEntry(
        time=T0 + timedelta(minutes=minutes),
        action=action,  # type: ignore[arg-type]
        model="flights",
        version=version,
        previous_version=2,
        decision_id=f"d{minutes:03d}{action}",
        figures={"waiting_for": waiting_for} if waiting_for else {},
    )
    append_entry(lake, entry)


def _shadow(lake: Lake, ds: date, version: int, unmatched: int = 0) -> None:
    record = {"challenger_version": version, "rows": 900, "unmatched_rows": unmatched}
    lake.write_bytes(lake.report_path("flights", "shadow", f"ds={ds.isoformat()}.json"), json.dumps(record).encode())


def test_a_shadow_only_failure_is_recorded_as_pending_not_reject() -> None:
    assert _not_promoted_action({"mode": "enabled", "pending": True}) == "pending"
    assert _not_promoted_action({"mode": "enabled", "pending": False}) == "reject"
    assert _not_promoted_action({"mode": "enabled"}) == "reject"  # reports written before `pending` existed
    assert _not_promoted_action({"mode": "dry_run", "pending": True}) == "dry_run"


def test_pending_never_counts_toward_the_circuit_breaker(tmp_path: Path) -> None:
    lake = Lake(tmp_path.as_uri())
    for minutes, action in enumerate(["pending", "pending", "pending", "pending"]):
        _ledger(lake, action, 5, minutes)
    assert loop_state(lake, "flights", []).rejections == {}
    _ledger(lake, "reject", 6, 10)
    _ledger(lake, "pending", 7, 11)
    _ledger(lake, "reject", 8, 12)
    assert loop_state(lake, "flights", []).streak("data_drift").count == 2


def test_a_pending_challenger_is_due_for_regating_once_its_clean_shadow_days_exist(tmp_path: Path) -> None:
    lake = Lake(tmp_path.as_uri())
    spec = _with_gate(shadow_days=3)
    assert not regate_due(spec, lake, 5)  # never gated
    _ledger(lake, "pending", 5, 0)
    _shadow(lake, date(2013, 2, 2), 5)
    _shadow(lake, date(2013, 2, 3), 5)
    _shadow(lake, date(2013, 2, 4), 5, unmatched=4)  # not clean
    _shadow(lake, date(2013, 2, 5), 4)  # another challenger
    assert not regate_due(spec, lake, 5)
    _shadow(lake, date(2013, 2, 6), 5)
    assert regate_due(spec, lake, 5)
    _ledger(lake, "promote", 5, 1)  # gated again and promoted: nothing is due any more
    assert not regate_due(spec, lake, 5)
    # a challenger pending for post-break labels is not re-gated on shadow days: the monitor's next
    # breach day retrains with those labels and supersedes it
    _ledger(lake, "pending", 6, 2, waiting_for="post_break_rows")
    for day in range(2, 7):
        _shadow(lake, date(2013, 2, day), 6)
    assert not regate_due(spec, lake, 6)
    _ledger(lake, "pending", 6, 3, waiting_for="shadow_days")
    assert regate_due(spec, lake, 6)
