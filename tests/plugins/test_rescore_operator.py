"""``RescorePlanOperator``: which champion events start a re-score, and the days it maps over."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from airloop.assets import model_asset
from airloop.context import rollback_events
from airloop.operators.rescore import RescoreDayOperator, RescorePlanOperator
from include.lake import Lake
from tests.include.test_rescore import history_lake  # noqa: F401 (fixture)

CHAMPION = model_asset("flights", "champion")


def _context(run_type: str, *extras: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": "r",
        "dag_run": SimpleNamespace(run_type=run_type),
        "triggering_asset_events": {CHAMPION: [SimpleNamespace(extra=e) for e in extras]},
    }


PROMOTION = {"version": 3, "previous_version": 2, "decision_id": "d-v3"}
ROLLBACK = {"version": 1, "previous_version": 2, "decision_id": "rollback:m", "rollback": True, "reason": "bad v2"}
EARLIER = {"version": 2, "previous_version": 3, "decision_id": "rollback:n", "rollback": True, "reason": "bad v3"}


def _plan(lake: Lake, context: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    op = RescorePlanOperator(task_id="plan", model="flights", lake_uri=lake.uri, **params)
    return op.execute(context)  # type: ignore[arg-type]


def test_a_promotion_event_alone_re_scores_nothing(history_lake: Lake) -> None:  # noqa: F811
    with pytest.raises(AirflowSkipException, match="promotion, not a rollback"):
        _plan(history_lake, _context("asset_triggered", PROMOTION))


def test_rollback_events_give_their_days_merged_events_once_each(history_lake: Lake) -> None:  # noqa: F811
    context = _context("asset_triggered", PROMOTION, EARLIER, ROLLBACK, ROLLBACK)
    assert rollback_events(context) == [(2, 3), (1, 2)]
    days = _plan(history_lake, context)
    assert [(d["ds"], d["version"], d["replaces"]) for d in days] == [
        ("2013-03-02", 2, 3),
        ("2013-03-03", 1, 2),
        ("2013-03-05", 1, 2),
        ("2013-03-06", 1, 2),
    ]


def test_a_manual_run_takes_its_params_else_the_newest_rollback(history_lake: Lake) -> None:  # noqa: F811
    newest = _plan(history_lake, _context("manual"), version=None, previous_version="None")
    assert [d["ds"] for d in newest] == ["2013-03-03", "2013-03-05", "2013-03-06"]
    named = _plan(history_lake, _context("manual"), version="2", previous_version="3")
    assert named == [{"ds": "2013-03-02", "version": 2, "replaces": 3, "reason": "bad v2"}]


def test_rescore_declares_the_predictions_asset_as_its_outlet() -> None:
    op = RescoreDayOperator(task_id="rescore", model="flights", day={})
    assert [a.name for a in op.outlets] == [model_asset("flights", "predictions").name]


def _rescore(result: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], Any, list[Any]]:
    """The mapped task on one planned day, its step replaced by ``result``; (return, events, params)."""
    from datetime import UTC, datetime

    from airflow.sdk.execution_time.context import OutletEventAccessors

    seen: list[Any] = []
    monkeypatch.setattr(RescoreDayOperator, "run_step", lambda self, context, params: seen.append(params) or result)
    events = OutletEventAccessors()
    day = {"ds": "2013-03-03", "version": 1, "replaces": 2, "reason": "bad v2"}
    op = RescoreDayOperator(task_id="rescore", model="flights", day=day)
    context = {"run_id": "asset__1", "outlet_events": events,
               "dag_run": SimpleNamespace(run_after=datetime(2026, 12, 7, tzinfo=UTC))}  # fmt: skip
    return op.execute(context), events, seen  # type: ignore[arg-type]


def test_a_rescored_day_announces_its_new_predictions(monkeypatch: pytest.MonkeyPatch) -> None:
    supersedes = {"model_version": 2, "run_key": "k", "run_id": "r", "archive": "a", "reason": "bad v2"}
    manifest = {"ds": "2013-03-03", "model_version": 1, "rows_scored": 890, "rows_rejected": 3,
                "supersedes": supersedes, "rescored": True, "data_sha256": "x"}  # fmt: skip
    result, events, (params,) = _rescore(manifest, monkeypatch)
    assert (params.ds.isoformat(), params.version, params.replaces, params.run_key, params.run_id) == (
        "2013-03-03", 1, 2, "asset__1", "asset__1")  # fmt: skip
    assert params.now.isoformat() == "2026-12-07T00:00:00+00:00"
    assert events[model_asset("flights", "predictions")].extra == {
        "partition": "2013-03-03", "rows": 890, "rejects": 3, "version": 1, "rescored": True, "supersedes": 2}  # fmt: skip
    assert "data_sha256" not in result and result["supersedes"] == supersedes


def test_a_day_of_another_version_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AirflowSkipException, match="carry v1, not v2"):
        _rescore({"skipped": "flights 2013-03-03: the predictions carry v1, not v2: left as they are"}, monkeypatch)
