"""Explanations in the model card: the training run's permutation importance (with its spread) and
calibration curve, read back from MLflow, and the importance shift against the champion's."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient

from include.lake import Lake
from include.model_io import TrainResult
from include.names import Tag
from include.registry.card import calibration_svg, card_sections, group_bars, model_card_html, model_card_markdown
from include.registry.explain import importance_shift, ranks, read_importance_record, run_explanations, shares
from include.registry.promotion import write_model_card
from include.reports.format import fmt_number
from include.spec import get_spec
from include.training.train import IMPORTANCE_MAX_ROWS, IMPORTANCE_REPEATS, calibration_bins

SPEC = get_spec("flights")


def _importance(mean: dict[str, float], std: float = 0.002) -> dict[str, Any]:
    return {"mean": mean, "std": {c: std for c in mean}, "rows": 5000, "repeats": 3}


CHAMPION = _importance({"sched_hour": 0.060, "dest": 0.030, "carrier": 0.020, "temp": 0.010, "visib": 0.000})
# same order, a few thousandths of AUC apart, and ranks 3 and 4 swapped between near-equal columns
STABLE = _importance({"sched_hour": 0.058, "dest": 0.031, "temp": 0.015, "carrier": 0.014, "visib": -0.001})
# visib, last for the champion, becomes the model's first input
LEANS_ELSEWHERE = _importance({"visib": 0.080, "sched_hour": 0.050, "dest": 0.020, "carrier": 0.010, "temp": 0.0})


def test_shares_and_ranks_follow_the_documented_rule() -> None:
    assert shares({"a": 0.03, "b": 0.01, "c": -0.02}) == pytest.approx({"a": 0.75, "b": 0.25, "c": 0.0})
    assert shares({"a": 0.0, "b": -0.01}) == {"a": 0.0, "b": 0.0}
    assert ranks({"b": 0.01, "a": 0.01, "c": 0.5}) == {"c": 1, "a": 2, "b": 3}


def test_a_stable_pair_of_importances_shifts_nothing() -> None:
    rows = importance_shift(STABLE, CHAMPION)
    assert [r.feature for r in rows] == ["sched_hour", "dest", "temp", "carrier", "visib"]
    assert not any(r.shifted for r in rows)
    temp = rows[2]
    # temp entered the top 3 (rank 4 -> 3) but its share grew by 0.0438 only (0.1271 - 0.0833)
    assert (temp.rank, temp.champion_rank) == (3, 4)
    assert temp.share == pytest.approx(0.015 / 0.118) and temp.champion_share == pytest.approx(0.01 / 0.12)
    assert importance_shift(CHAMPION, CHAMPION) == importance_shift(CHAMPION, dict(CHAMPION))
    assert not any(r.shifted for r in importance_shift(CHAMPION, CHAMPION))
    assert not any(r.shifted for r in importance_shift(LEANS_ELSEWHERE))  # nothing to compare with


def test_a_model_leaning_on_another_feature_is_flagged_with_the_figures() -> None:
    rows = {r.feature: r for r in importance_shift(LEANS_ELSEWHERE, CHAMPION)}
    assert {f for f, r in rows.items() if r.shifted} == {"visib", "sched_hour"}
    assert rows["visib"].reason == "share 0.00 -> 0.50; entered the top 3 (rank 1, was rank 5)"
    assert rows["sched_hour"].reason == "share 0.50 -> 0.31"  # 0.05 / 0.16 = 0.3125, down 0.1875
    # dest, carrier and temp lost 0.125, 0.104 and 0.083 of share: under 0.15
    assert rows["temp"].share == 0.0 and rows["temp"].champion_share == pytest.approx(0.01 / 0.12)


def test_a_column_the_champion_did_not_have_is_named() -> None:
    challenger = _importance({"wind_speed": 0.05, "sched_hour": 0.05})
    rows = {r.feature: r for r in importance_shift(challenger, _importance({"sched_hour": 0.05, "dest": 0.05}))}
    assert rows["wind_speed"].champion_rank is None and rows["wind_speed"].champion_share == 0.0
    assert rows["wind_speed"].reason == "share 0.00 -> 0.50; entered the top 3 (rank 2, was not an input)"
    assert rows["dest"].rank is None and rows["dest"].importance is None and rows["dest"].shifted


def test_card_lists_both_importances_and_flags_the_shift() -> None:
    inputs = _inputs(importance=LEANS_ELSEWHERE, champion_importance=CHAMPION, champion={"roc_auc": 0.7})
    text = model_card_markdown(**inputs)
    assert "## How the model decides" in text
    assert (
        "| visib | 1 | 0.0800 | [0.0780, 0.0820] | 0.5000 | 5 | 0.0000 | 0.0000 | "
        "SHIFT: share 0.00 -> 0.50; entered the top 3 (rank 1, was rank 5) |"
    ) in text
    assert "| dest | 3 | 0.0200 | [0.0180, 0.0220] | 0.1250 | 2 | 0.0300 | 0.2500 |  |" in text
    assert "Importance shifted against the champion's: visib, sched_hour." in text
    # without a champion the card shows the challenger's columns only
    alone = model_card_markdown(**_inputs(importance=LEANS_ELSEWHERE, champion_importance=CHAMPION))
    assert "| visib | 1 | 0.0800 | [0.0780, 0.0820] | 0.5000 |" in alone and "SHIFT" not in alone


def test_calibration_chart_is_inline_svg_on_a_square_scale() -> None:
    svg = calibration_svg([0.05, 0.2, 0.43], [0.04, 0.25, 0.5])
    # the scale ends at the next tenth above 0.5: 0.5, so (0.5, 0.5) would be the top right corner
    assert svg.x_ticks[-1][1] == "0.5" and svg.diagonal == (48.0, 224.0, 348.0, 12.0)
    assert svg.points[2] == (306.0, 12.0, "predicted 0.430, observed 0.500")  # x: 48 + 300 * 0.43 / 0.5
    page = model_card_html(**_inputs(calibration={"predicted": [0.05, 0.2], "observed": [0.04, 0.25], "rows": 9}))
    # scale to 0.3: x 48 + 300 * 0.05 / 0.3, y 224 - 212 * 0.04 / 0.3
    assert '<circle cx="98.0" cy="195.7" r="3"' in page
    assert "<script" not in page.lower() and "http://" not in page.lower()


def test_group_bars_scale_rates_to_the_plot_width() -> None:
    chart = group_bars([("origin=EWR", [("selection rate", 0.5), ("TPR", 1.0), ("FPR", None)]), ("origin=JFK", [])])
    # 560 px wide, bars from x 170 to 510: 340 px for a rate of 1
    assert [(w, text) for (_, w, _, _, text) in chart.bars] == [
        (170.0, "origin=EWR: selection rate 0.5000"),
        (340.0, "origin=EWR: TPR 1.0000"),
        (0.0, "origin=EWR: FPR n/a"),
    ]
    assert [y for y, *_ in chart.bars] == [24.0, 33.0, 42.0]
    assert [label for _, _, label in chart.legend] == ["selection rate", "TPR", "FPR"]
    assert chart.ticks[-1] == (510.0, "1") and chart.height == 24 + 27 + 10 + 10 + 14


def test_calibration_bins_count_rows_like_sklearn_bins_them() -> None:
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(0)
    proba = rng.beta(2, 5, 3000)
    y = (rng.random(3000) < proba).astype(int)
    curve = calibration_bins(y, proba)
    observed, predicted = calibration_curve(y, proba, n_bins=10, strategy="quantile")
    assert curve["predicted"] == pytest.approx(predicted) and curve["observed"] == pytest.approx(observed)
    assert curve["bin_rows"] == [300] * 10 and curve["rows"] == 3000
    # each bin's rows times its observed rate add up to the positives
    assert sum(o * n for o, n in zip(curve["observed"], curve["bin_rows"], strict=True)) == pytest.approx(y.sum())


def test_trained_model_card_shows_importance_with_intervals_and_calibration(
    flights_hgb: TrainResult, mlflow_server: str, tmp_path: Path
) -> None:
    client = MlflowClient(mlflow_server)
    explained = run_explanations(client, flights_hgb.run_id)
    importance, calibration = explained["importance"], explained["calibration"]
    assert importance["mean"] == pytest.approx(flights_hgb.feature_importance)
    assert set(importance["mean"]) == set(SPEC.dataset.features.all)
    holdout_rows = int(flights_hgb.metrics["rows"])
    assert (importance["rows"], importance["repeats"]) == (min(holdout_rows, IMPORTANCE_MAX_ROWS), IMPORTANCE_REPEATS)
    for column, values in importance["values"].items():  # mean and std are those of the repeats
        assert len(values) == IMPORTANCE_REPEATS
        assert importance["mean"][column] == pytest.approx(np.mean(values))
        assert importance["std"][column] == pytest.approx(np.std(values))
    assert calibration["rows"] == sum(calibration["bin_rows"]) == holdout_rows
    positives = sum(o * n for o, n in zip(calibration["observed"], calibration["bin_rows"], strict=True))
    assert positives / holdout_rows == pytest.approx(flights_hgb.metrics["base_rate"])

    tags = {Tag.TRAINING_RUN_ID: flights_hgb.run_id, Tag.DATA_WINDOW: "2013-01-12..2013-01-25"}
    report = {
        "challenger_tags": tags,
        "challenger_version": 1,
        "champion_version": None,
        "challenger": {"roc_auc": flights_hgb.metrics["roc_auc"]},
        "champion": None,
        "comparison": None,
        "decision": None,
        "evaluation_days": ["2013-01-26"],
    }
    lake = Lake(tmp_path.as_uri())
    write_model_card(SPEC, lake, client, report, approver=None)
    page = (tmp_path / "reports" / "flights" / "cards" / "v1.html").read_text()
    top = max(importance["mean"], key=lambda c: importance["mean"][c])
    mean, std = importance["mean"][top], importance["std"][top]
    row = (
        f"<tr><td>{top}</td><td>1</td><td>{fmt_number(mean)}</td>"
        f"<td>[{fmt_number(mean - std)}, {fmt_number(mean + std)}]</td><td>{fmt_number(shares(importance['mean'])[top])}</td></tr>"
    )
    assert row in page
    assert sum(f"<tr><td>{c}</td>" in page for c in importance["mean"]) == len(importance["mean"])
    assert page.count("<circle ") == len(calibration["predicted"])
    assert html.escape("No champion importance to compare with") in page
    # a champion version the registry does not know costs its importance only, not the card
    write_model_card(SPEC, lake, client, {**report, "champion_version": 999, "champion": {"roc_auc": 0.6}}, None)
    page = (tmp_path / "reports" / "flights" / "cards" / "v1.html").read_text()
    assert row in page and html.escape("No champion importance to compare with") in page
    assert read_importance_record(lake, "flights", 1) == (None, importance_shift(importance))
    # the same run as its own champion: every share equal, nothing shifted
    same = {
        s.title: s for s in card_sections(**_inputs(importance=importance, champion_importance=importance, champion={}))
    }
    table = next(c for k, c in same["How the model decides"].blocks if k == "table")
    assert all(r[4] == r[7] and r[8] == "" for r in table[1])


def _inputs(**extra: Any) -> dict[str, Any]:
    return {
        "model": "flights",
        "version": 3,
        "description": "Delays.",
        "training_window": ("2013-01-01", "2013-01-28"),
        "evaluation": {"roc_auc": 0.72},
        "lineage": {},
        **extra,
    }
