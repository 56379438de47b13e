"""What the train task reads from the drift events that triggered it (``airloop.context``)."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest

from airloop.context import event_trigger


def _context(*extras: dict[str, Any]) -> dict[str, Any]:
    events = [SimpleNamespace(extra=extra) for extra in extras]
    return {"triggering_asset_events": {"flights.drift": events}}


@pytest.mark.parametrize(
    ("extras", "expected"),
    [
        pytest.param((), (None, None), id="no-event"),
        pytest.param(({"trigger": "data_drift"},), ("data_drift", None), id="drift-without-break"),
        pytest.param(
            ({"trigger": "breach", "break_day": "2013-03-04"}, {"trigger": "data_drift"}),
            ("breach", date(2013, 3, 4)),
            id="a-break-wins-over-a-newer-drift",
        ),
        pytest.param(
            ({"trigger": "data_drift"}, {"trigger": "estimated_drop"}), ("estimated_drop", None), id="newest-trigger"
        ),
        pytest.param(({"partition": "2013-03-04"},), (None, None), id="event-before-triggers-were-named"),
    ],
)
def test_event_trigger(extras: tuple[dict[str, Any], ...], expected: tuple[str | None, date | None]) -> None:
    assert event_trigger(_context(*extras)) == expected
