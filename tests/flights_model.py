"""What the shared flights trainings of ``tests/include/conftest.py`` were asked for, so that
tests can check the tracked run against the request."""

from __future__ import annotations

from datetime import date

from include.spec import get_spec

END = date(2013, 1, 25)
WINDOW, HOLDOUT, BUDGET = 14, 3, 2
REASON = "drift"
TAGS = {
    "code_commit": "0123abc",
    "spec_hash": get_spec("flights").spec_hash(),
    "dag_id": "airloop_train",
    "dag_run_id": "manual__test",
    "logical_date": END.isoformat(),
    "trigger": "test",
}
