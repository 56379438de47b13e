"""Which day a training window ends on: one rule for the train operator and ``airloop replay``.

The window is the ``window_days`` validated days ending at that day
(:func:`include.training.data.assemble_training_data`); this module only picks the day.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date


def training_end(
    validated: Sequence[date] | Callable[[], Sequence[date]],
    *,
    model: str,
    requested: date | None = None,
    event_days: Sequence[date] = (),
    logical_day: date | None = None,
    where: str = "the lake",
) -> date:
    """The last day of the training window, first rule that applies:

    1. ``requested``: an end date asked for by hand (the DAG's ``end_date`` Param), as given;
    2. the newest of ``event_days``: the partitions named by the asset events that triggered
       the run (a drift decision's day), so a retrain answers the day that drifted;
    3. the newest validated day on or before ``logical_day`` (a scheduled or backfilled run
       trains on what existed on its day, not on later data);
    4. the newest validated day (a run without a logical date, or one before all data).

    Rules 2-4 need at least one validated day: without one there is nothing to train on and
    :class:`FileNotFoundError` names the model and ``where``. ``validated`` may be a callable
    that lists them, called only when rule 1 does not apply (listing a lake costs a request).
    """
    if requested is not None:
        return requested
    days = sorted(validated() if callable(validated) else validated)
    if not days:
        raise FileNotFoundError(f"{model}: no validated partitions in {where}: nothing to train on")
    if event_days:
        return max(event_days)
    if logical_day is not None:
        earlier = [d for d in days if d <= logical_day]
        if earlier:
            return earlier[-1]
    return days[-1]
