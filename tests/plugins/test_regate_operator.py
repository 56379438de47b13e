"""``RegateChallengerOperator``: a pending challenger with its clean shadow days is gated again."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowSkipException
from airflow.sdk.execution_time.context import OutletEventAccessors

from airloop.assets import model_asset
from airloop.operators.score import RegateChallengerOperator


def _run(summary: dict[str, object] | None) -> tuple[dict[str, object], OutletEventAccessors]:
    events = OutletEventAccessors()
    op = RegateChallengerOperator(task_id="regate", model="flights", summary=summary)
    return op.execute({"outlet_events": events}), events  # type: ignore[arg-type]


def test_due_challenger_emits_the_challenger_event_with_its_version() -> None:
    summary = {"challenger_version": 5, "ds": "2013-03-04", "regate_due": True, "rows_scored": 900}
    result, events = _run(summary)
    assert result == {"version": 5, "regate": True, "partition": "2013-03-04"}
    assert events[model_asset("flights", "challenger")].extra == result


@pytest.mark.parametrize("summary", [None, {"challenger_version": 5, "ds": "2013-03-04", "regate_due": False}])
def test_nothing_due_skips_so_no_event(summary: dict[str, object] | None) -> None:
    with pytest.raises(AirflowSkipException, match="no pending challenger"):
        _run(summary)


def test_regate_declares_the_challenger_asset_as_its_outlet() -> None:
    op = RegateChallengerOperator(task_id="regate", model="flights", summary={})
    assert [a.name for a in op.outlets] == [model_asset("flights", "challenger").name]
