"""Evidently's data-drift HTML report, for the people who read it; decisions use ``drift.py``.

:func:`evidently_report_html` runs Evidently 0.7's new API (``Report([DataDriftPreset(...)])``,
``run(current_data=..., reference_data=...)``, current data first, both by keyword) on a bounded,
seeded sample of each frame and returns the self-contained HTML page (~4 MB, works offline).

Evidently pitfalls guarded here, so the report never crashes the task:

- a column that is empty or all-NaN (or only +-inf, which Evidently also treats as empty) in
  either sample raises ``ValueError`` inside Evidently: such columns are left out and listed in
  a note at the top of the page;
- fewer than ``min_rows`` (default 2) rows on either side, or no usable column at all: a small
  page saying there is not enough data (a 1-row window would otherwise read as "no drift");
- Evidently drops NaN before its drift tests, so a null-rate jump is invisible in its numbers:
  the note gives each column's null rate in both samples, and the page says the decision numbers
  come from airloop's own drift report;
- numeric columns are passed as float64 and categoricals as strings (nullable pandas dtypes,
  categories and mixed objects behave the same then).

The report's timestamp is the logical date (no wall clock), so reruns produce the same page
apart from Evidently's random element ids.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

MAX_ROWS = 5_000


def _as_datetime(value: datetime | date | str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    return datetime.fromisoformat(str(value))


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).sort_index()


def _prepare(frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    """float64 numerics (+-inf as NaN) and object-string categoricals (nulls kept as None)."""
    import numpy as np
    import pandas as pd

    columns: dict[str, object] = {}
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        columns[column] = np.where(np.isfinite(values), values, np.nan)
    for column in categorical:
        series = frame[column]
        mask = series.isna().to_numpy()
        strings = series.astype(str).to_numpy(dtype=object)
        strings[mask] = None
        columns[column] = strings
    return pd.DataFrame(columns, index=frame.index)


def _page(title: str, paragraphs: Sequence[str]) -> str:
    from include.reports.render import render

    return render("message.html", title=title, paragraphs=paragraphs)


def _note(lines: Sequence[str]) -> str:
    """The airloop note inserted at the top of Evidently's page (Evidently's own styles stay)."""
    from include.reports.render import render

    return render("note.html", lines=lines)


def evidently_report_html(
    reference_frame: pd.DataFrame,
    current_frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
    logical_date: datetime | date | str,
    min_rows: int = 2,
    title: str = "Data drift",
) -> str:
    """Evidently's DataDriftPreset as a self-contained HTML page, on at most ``max_rows`` rows a side.

    Never raises on data content (see the module docstring); returns a small explanatory page
    instead when there is not enough data to compare.
    """
    when = _as_datetime(logical_date)
    heading = f"{title}: {when.date().isoformat()}"
    numeric = [c for c in numeric if c in reference_frame.columns and c in current_frame.columns]
    categorical = [c for c in categorical if c in reference_frame.columns and c in current_frame.columns]
    reference = _prepare(_sample(reference_frame, max_rows, seed), numeric, categorical)
    current = _prepare(_sample(current_frame, max_rows, seed), numeric, categorical)
    if len(current) < min_rows or len(reference) < min_rows:
        return _page(
            heading,
            [
                f"Insufficient data for a drift report: {len(current)} current rows and {len(reference)} "
                f"reference rows (at least {min_rows} needed on each side).",
                "No drift is implied: Evidently would read such a window as 'no drift'.",
            ],
        )

    notes: list[str] = []
    dropped = [c for c in (*numeric, *categorical) if current[c].isna().all() or reference[c].isna().all()]
    if dropped:
        notes.append(
            "Left out (empty or all-null in the current or reference sample, which Evidently cannot compare): "
            + ", ".join(dropped)
        )
    for column in (*numeric, *categorical):
        ref_null, cur_null = float(reference[column].isna().mean()), float(current[column].isna().mean())
        if abs(cur_null - ref_null) >= 0.01:
            notes.append(
                f"{column}: null rate {ref_null:.1%} in the reference sample, {cur_null:.1%} today "
                "(Evidently ignores nulls in its drift tests)"
            )
    numeric = [c for c in numeric if c not in dropped]
    categorical = [c for c in categorical if c not in dropped]
    if not numeric and not categorical:
        return _page(heading, ["No column can be compared: every feature is empty or all-null on one side.", *notes])
    notes.append(
        f"Samples: {len(current)} of {len(current_frame)} current rows and {len(reference)} of "
        f"{len(reference_frame)} reference rows (seed {seed}). Retrain decisions use airloop's own drift "
        "numbers (decile PSI, null rates), not this page's."
    )

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [*numeric, *categorical]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    with warnings.catch_warnings():
        # Evidently's internals warn about divisions on constant or tiny columns; the page is fine.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", FutureWarning)
        snapshot = Report([DataDriftPreset(columns=columns)], include_tests=True).run(
            current_data=Dataset.from_pandas(current[columns], data_definition=definition),
            reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
            timestamp=when,
            name=heading,
        )
        page: str = snapshot.get_html_str(as_iframe=False)
    marker = page.find("<body")
    if marker >= 0:
        insert = page.find(">", marker) + 1
        page = page[:insert] + _note(notes) + page[insert:]
    log.info("evidently report %s: %d columns, %d dropped, %d bytes", heading, len(columns), len(dropped), len(page))
    return page


__all__ = ["MAX_ROWS", "evidently_report_html"]
