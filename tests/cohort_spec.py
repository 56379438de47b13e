"""A small spec over a CSV of cohort rows (``row_id``, ``seen_at``, ``x``, ``kind``, ``region``,
``outcome``), for the fairness tests: ``region`` is not a feature, so a fairness block that names
it makes it a pass-through column."""

from __future__ import annotations

from typing import Any


def cohort_spec(end: str, gate: dict[str, Any]) -> dict[str, Any]:
    """The spec as YAML would give it, its data from 2024-01-01 to ``end``, with ``gate``."""
    return {
        "name": "cohort",
        "dataset": {
            "source": {"kind": "file", "path": "cohort.csv"},
            "time_column": "seen_at",
            "target": {"name": "label", "expression": "outcome == 1"},
            "key_columns": ["row_id"],
            "features": {"numeric": ["x"], "categorical": ["kind"]},
            "label_delay_days": 1,
            "start": "2024-01-01",
            "end": end,
        },
        "gate": gate,
    }
