"""Training that follows a break: the window and weights chosen from a ``break_day`` (pure rules),
the rows counted in the real flights lake, and ``train_challenger`` applying them in a real MLflow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from include.lake import Lake, Zone
from include.registry.mlflow_registry import global_tracking_uri
from include.spec import TrainingSpec, get_spec
from include.training.break_window import labelled_rows_since, plan_after_break, recency_weights
from include.training.job import train_challenger

SPEC = get_spec("flights")
TRAINING = TrainingSpec(window_days=28, holdout_days=7, min_rows_after_break=5000, recency_half_life_days=7)
END = date(2013, 3, 10)


def _rows(start: date, days: int, per_day: int) -> dict[date, int]:
    return {start + timedelta(days=i): per_day for i in range(days)}


def test_enough_rows_since_the_break_train_on_those_days_only() -> None:
    plan = plan_after_break(TRAINING, END, date(2013, 3, 1), "breach", _rows(date(2013, 3, 1), 8, 900))
    assert (plan.rule, plan.window_days, plan.holdout_days, plan.half_life_days) == ("since_break", 10, 4, None)
    assert (plan.rows_since_break, plan.days_since_break) == (7200, 8)
    assert plan.reason == (
        "8 labelled days since the break on 2013-03-01 hold 7,200 rows >= training.min_rows_after_break 5,000: "
        "trained on the days since the break only"
    )
    assert plan.tags() == {
        "airloop.break_day": "2013-03-01",
        "airloop.trigger": "breach",
        "airloop.training_rule": "since_break",
        "airloop.training_rule_reason": plan.reason,
    }
    # the holdout never takes more than the spec's, nor more than half the post-break days
    long = plan_after_break(TRAINING, END, date(2013, 2, 20), "breach", _rows(date(2013, 2, 20), 18, 900))
    assert (long.window_days, long.holdout_days) == (19, 7)


def test_too_few_rows_since_the_break_weight_recent_days_on_the_usual_window() -> None:
    rows = {**_rows(date(2013, 2, 1), 30, 900), **_rows(date(2013, 3, 7), 2, 900)}  # earlier days do not count
    plan = plan_after_break(TRAINING, END, date(2013, 3, 7), "performance_drop", rows, window_days=21)
    assert (plan.rule, plan.window_days, plan.holdout_days, plan.half_life_days) == ("recency_weighted", 21, None, 7)
    assert (plan.rows_since_break, plan.days_since_break) == (1800, 2)
    assert plan.reason.startswith("2 labelled days since the break on 2013-03-07 hold 1,800 rows < ")
    assert plan.reason.endswith(
        "trained on the usual 21-day window, a row's weight halving every 7 days before the last training day"
    )
    # one post-break day is never a training set, however many rows it holds
    one_day = plan_after_break(TRAINING, END, date(2013, 3, 9), "breach", {date(2013, 3, 9): 9000})
    assert one_day.rule == "recency_weighted"


def test_a_window_after_an_old_break_is_never_longer_than_the_usual_one() -> None:
    plan = plan_after_break(TRAINING, END, date(2012, 12, 1), "breach", _rows(date(2012, 12, 1), 90, 900))
    assert plan.rule == "since_break" and plan.window_days == 28


def test_bad_break_inputs_name_the_rule() -> None:
    with pytest.raises(
        ValueError, match=r"trigger 'drift': a retrain after a break needs one of \['performance_drop', 'breach'\]"
    ):
        plan_after_break(TRAINING, END, date(2013, 3, 1), "drift", {})
    with pytest.raises(ValueError, match="break_day 2013-03-11 is after the training end 2013-03-10"):
        plan_after_break(TRAINING, END, date(2013, 3, 11), "breach", {})


def test_recency_weights_halve_every_half_life_and_average_one() -> None:
    last = date(2013, 3, 10)
    times = pd.Series(pd.to_datetime(["2013-03-10 06:00", "2013-03-03 23:59", "2013-02-24 00:00", "2013-03-11 08:00"]))
    weights = recency_weights(times, last, half_life_days=7)
    raw = np.array([1.0, 0.5, 0.25, 1.0])
    assert weights == pytest.approx(raw / raw.mean())
    assert weights.mean() == pytest.approx(1.0)
    assert len(recency_weights(times.iloc[:0], last, 7)) == 0
    with pytest.raises(ValueError, match="half_life_days must be > 0"):
        recency_weights(times, last, 0)


def test_labelled_rows_since_counts_the_arrived_label_rows_of_validated_days(flights_lake: Path) -> None:
    lake = Lake(flights_lake.as_uri())
    counted = labelled_rows_since(SPEC, lake, date(2013, 1, 18), date(2013, 1, 25))
    assert sorted(counted) == [date(2013, 1, d) for d in range(18, 24)]  # labels arrive 2 days late
    day = date(2013, 1, 20)
    assert counted[day] == len(pd.read_parquet(lake.partition_file(Zone.LABELS, "flights", day))) > 500
    assert labelled_rows_since(SPEC, lake, date(2013, 1, 24), date(2013, 1, 25)) == {}


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private MLflow store (these trainings move ``@challenger`` of ``flights``); SQLite needs
    the global tracking URI while logging the ONNX model, as in ``airloop replay``."""
    folder = tmp_path_factory.mktemp("break-mlflow")
    uri = f"sqlite:///{folder / f'mlflow-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.db'}"
    MlflowClient(uri).create_experiment("airloop-flights", artifact_location=(folder / "artifacts").as_uri())
    with global_tracking_uri(uri):
        yield uri


def _version_tags(uri: str, version: int) -> dict[str, str]:
    return dict(MlflowClient(uri, registry_uri=uri).get_model_version("flights", str(version)).tags)


def test_train_challenger_after_a_break_trains_on_the_days_since_it(flights_lake: Path, tracking_uri: str) -> None:
    spec = SPEC.model_copy(update={"training": SPEC.training.model_copy(update={"min_rows_after_break": 2000})})
    lake = Lake(flights_lake.as_uri())
    result = train_challenger(
        spec,
        lake,
        tracking_uri,
        date(2013, 1, 25),
        reason="performance_drop",
        search_budget=1,
        break_day=date(2013, 1, 16),
        trigger="performance_drop",
    )
    tags = _version_tags(tracking_uri, result.version)
    # labelled days 01-16..01-23 (8 days): holdout 4 days, training 01-16..01-19 only
    assert tags["airloop.training_rule"] == "since_break" and tags["airloop.break_day"] == "2013-01-16"
    assert tags["airloop.trigger"] == "performance_drop"
    assert result.summary["window"] == ["2013-01-16", "2013-01-25"]
    assert tags["airloop.train_end"] == "2013-01-19" and tags["airloop.holdout_days"] == "2013-01-20..2013-01-23"


def test_train_challenger_weights_recent_days_when_the_break_is_too_recent(
    flights_lake: Path, tracking_uri: str
) -> None:
    lake = Lake(flights_lake.as_uri())
    common = {"reason": "breach", "search_budget": 1, "window_days": 14}
    plain = train_challenger(SPEC, lake, tracking_uri, date(2013, 1, 25), **common)  # type: ignore[arg-type]
    weighted = train_challenger(
        SPEC,
        lake,
        tracking_uri,
        date(2013, 1, 25),
        break_day=date(2013, 1, 22),
        trigger="breach",
        **common,  # type: ignore[arg-type]
    )
    tags = _version_tags(tracking_uri, weighted.version)
    assert tags["airloop.training_rule"] == "recency_weighted"
    assert "trained on the usual 14-day window" in tags["airloop.training_rule_reason"]
    assert tags["airloop.train_end"] == _version_tags(tracking_uri, plain.version)["airloop.train_end"]
    # same rows, same search, same seed: only the weights differ, and they change the model
    assert weighted.metrics["roc_auc"] != plain.metrics["roc_auc"]
