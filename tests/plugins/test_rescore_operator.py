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
