"""The training window's end day: one rule for the train operator and the replay."""

from __future__ import annotations

from datetime import date

import pytest

from include.training.window import training_end

# 2013-01-04 is missing (quarantined): a gap in the validated days
VALIDATED = [date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3), date(2013, 1, 5)]


def test_a_requested_end_is_taken_as_given_even_without_validated_days() -> None:
    assert training_end([], model="flights", requested=date(2013, 3, 1)) == date(2013, 3, 1)
    assert training_end(VALIDATED, model="flights", requested=date(2013, 1, 2), event_days=[date(2013, 1, 5)]) == (
        date(2013, 1, 2)
    )


def test_without_validated_days_the_error_names_model_and_place() -> None:
    with pytest.raises(FileNotFoundError, match=r"flights: no validated partitions in file:///lake: nothing to train"):
        training_end([], model="flights", event_days=[date(2013, 1, 5)], where="file:///lake")


def test_the_newest_event_day_wins_over_the_logical_day() -> None:
    events = [date(2013, 1, 3), date(2013, 1, 2)]
    assert training_end(VALIDATED, model="flights", event_days=events, logical_day=date(2013, 1, 5)) == date(2013, 1, 3)


@pytest.mark.parametrize(
    ("logical", "expected"),
    [
        (date(2013, 1, 3), date(2013, 1, 3)),  # validated on its own day
        (date(2013, 1, 4), date(2013, 1, 3)),  # its day was quarantined: the day before
        (date(2013, 2, 1), date(2013, 1, 5)),  # after all data: the newest
        (date(2012, 12, 1), date(2013, 1, 5)),  # before all data: the newest
        (None, date(2013, 1, 5)),  # no logical date (a manual run): the newest
    ],
)
def test_a_scheduled_run_trains_on_the_newest_validated_day_up_to_its_logical_day(
    logical: date | None, expected: date
) -> None:
    assert training_end(list(reversed(VALIDATED)), model="flights", logical_day=logical) == expected
