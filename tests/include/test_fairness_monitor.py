"""Fairness over time in the monitor: the day's and the window's disparities on realized labels
equal Fairlearn's on the same rows; a sustained breach fires, alerts and retrains only when the
spec asks; one bad day in a good window does not fire; a small group is reported, not judged;
specs without gate.fairness keep their signals."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from include.alerts import drift
from include.lake import Lake, Zone
from include.monitoring.decision import DayDrift, LoopState, decide
from include.monitoring.fairness import FairnessWatch, labelled_rows, monitor_fairness
from include.spec import DriftSpec, parse_spec
from tests.cohort_spec import cohort_spec

DS = date(2024, 1, 10)  # the monitored day: its labels are those of 2024-01-09
LABEL_DAY = DS - timedelta(days=1)
VERSION = 3
ROWS = 400  # per region and day; "island" has 5 a day: 35 in the window, under min_group_rows 50

SPEC = cohort_spec(
    "2024-01-31",
    {
        "fairness": {
            "sensitive": ["region"],
            "equalized_odds_difference": 0.15,
            "demographic_parity_ratio": 0.5,
            "min_group_rows": 50,
            "window_days": 7,
        }
    },
)


def _spec(folder: Path, gate: dict[str, Any] | None = None, **fairness: Any) -> Any:
    (folder / "cohort.csv").write_text("row_id,seen_at,x,kind,region,outcome\n")
    data = json.loads(json.dumps(SPEC))
    data["gate"]["fairness"].update(fairness)
    if gate is not None:
        data["gate"] = gate
    return parse_spec(data, folder / "cohort.yaml")


def _write_day(lake: Lake, day: date, biased: bool, version: int = VERSION) -> None:
    """One labelled day: 400 rows each of north and south and 5 of island, labels ~30% positive.
    The model's score is ``0.35 * label + U(0, 0.6)`` for every group (TPR 0.75, FPR 0.17 at
    0.5); on a biased day north's scores are 0.3 higher (TPR 1.0, FPR 0.67)."""
    rng = np.random.default_rng(day.toordinal())
    region = np.array(["north"] * ROWS + ["south"] * ROWS + ["island"] * 5)
    n = len(region)
    labels = (rng.random(n) < 0.3).astype(np.int64)
    scores = np.clip(0.35 * labels + rng.uniform(0, 0.6, n) + (0.3 * (region == "north") if biased else 0.0), 0, 1)
    keys = [f"{day.isoformat()}-{i}" for i in range(n)]
    lake.write_partition(
        Zone.PREDICTIONS,
        "cohort",
        day,
        pa.table({"row_id": keys, "score": scores, "model_version": np.full(n, version, dtype=np.int64)}),
    )
    lake.write_partition(Zone.LABELS, "cohort", day, pa.table({"row_id": keys, "label": labels}))
    validated = {"row_id": keys, "x": rng.normal(size=n), "kind": rng.choice(["a", "b"], n), "region": region}
    lake.write_partition(Zone.VALIDATED, "cohort", day, pa.table(validated))


def _lake(tmp_path: Path, biased_days: set[int], days: int = 7) -> Lake:
    """Labelled days ``LABEL_DAY - days + 1 .. LABEL_DAY``; ``biased_days`` counts back from the
    labelled day (0: the labelled day itself)."""
    lake = Lake((tmp_path / "lake").as_uri())
    for back in range(days):
        _write_day(lake, LABEL_DAY - timedelta(days=back), biased=back in biased_days)
    return lake


def _window_rows(lake: Lake, spec: Any, days: int = 7) -> pd.DataFrame:
    frames = [labelled_rows(lake, spec, LABEL_DAY - timedelta(days=b), ["region"]) for b in range(days)]
    return pd.concat([f for f in frames if f is not None], ignore_index=True)


def _disparities(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in entry["disparities"] if d["column"] == "region"}


def _decide(entry: dict[str, Any] | None, retrain: bool = False) -> Any:
    today = DayDrift("cohort", DS.isoformat(), "ok", 0.01, 805, reference="v3")
    return decide([], today, LoopState(), DriftSpec(), fairness=FairnessWatch.from_record(entry, retrain))


def test_the_monitors_disparities_equal_fairlearns_on_the_same_rows(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    lake = _lake(tmp_path, biased_days={0, 1, 2, 3, 4, 5, 6})
    entry = monitor_fairness(lake, spec, DS, VERSION)
    assert entry is not None and entry["label_day"] == LABEL_DAY.isoformat()
    assert entry["window_label_days"] == [(LABEL_DAY - timedelta(days=b)).isoformat() for b in range(6, -1, -1)]
    for scope, rows in (("window", _window_rows(lake, spec)), ("day", _window_rows(lake, spec, days=1))):
        figures = entry[scope]
        assert figures["rows"] == len(rows) == (2 * ROWS + 5) * (7 if scope == "window" else 1)
        judged = rows[rows["region"].map(rows["region"].value_counts()) >= 50]  # island is left out
        y, y_pred, region = judged["label"], judged["score"] >= 0.5, judged["region"]
        ours = _disparities(figures)
        expected = {
            "demographic_parity_difference": demographic_parity_difference(y, y_pred, sensitive_features=region),
            "demographic_parity_ratio": demographic_parity_ratio(y, y_pred, sensitive_features=region),
            "equalized_odds_difference": equalized_odds_difference(y, y_pred, sensitive_features=region),
        }
        for name, value in expected.items():
            assert ours[name]["value"] == pytest.approx(value, abs=1e-9), (scope, name)
        frame = MetricFrame(
            metrics={"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
            y_true=rows["label"],
            y_pred=rows["score"] >= 0.5,
            sensitive_features=rows["region"],
        ).by_group
        for group in figures["groups"]:
            for metric in ("selection_rate", "tpr", "fpr"):
                assert group[metric] == pytest.approx(frame.loc[group["group"], metric], abs=1e-9)
        assert ours["equalized_odds_difference"]["limit"] == 0.15
        low, high = ours["equalized_odds_difference"]["lower"], ours["equalized_odds_difference"]["upper"]
        assert low <= ours["equalized_odds_difference"]["value"] <= high
    assert entry["bootstrap_samples"] == 100 and entry["model_version"] == VERSION


def test_a_sustained_breach_fires_alerts_and_retrains_only_when_the_spec_asks(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    lake = _lake(tmp_path, biased_days={0, 1, 2, 3, 4, 5, 6})
    entry = monitor_fairness(lake, spec, DS, VERSION)
    assert entry is not None and entry["judged"]
    (breach,) = [b for b in entry["breaches"] if b["name"] == "equalized_odds_difference"]
    assert breach["column"] == "region" and breach["limit"] == 0.15 and breach["lower"] > 0.4
    assert (breach["high_group"], breach["low_group"], breach["metric"]) == ("north", "south", "fpr")
    assert "fairness breach on the 7 labelled days 2024-01-03..2024-01-09 of v3 (5,635 rows)" in entry["text"]
    verdict = _decide(entry)
    signal = next(s for s in verdict.signals if s.kind == "fairness_breach")
    assert signal.fired and signal.held_by == "not_enabled" and signal.threshold == 0.15
    assert signal.value == breach["lower"]  # the worst breach's judged bound
    assert verdict.state == "warn" and verdict.trigger is None
    assert "fairness breach: alerted, no retrain (gate.fairness.retrain_on_breach is false)" in verdict.reasons
    summary = {"partition": DS.isoformat(), "model_version": VERSION, "verdict": verdict.to_dict(), "score": 0.01,
               "performance": None, "fairness": entry}  # fmt: skip
    (alert,) = drift("cohort", summary)  # the warn is the breach: one alert, not a drift_warn beside it
    assert alert.kind == "fairness_breach" and alert.title == "Fairness breach"
    shown = next(b for b in alert.figures["breaches"] if b["disparity"] == "equalized_odds_difference")
    assert shown["column"] == "region" and shown["limit"] == 0.15 and shown["metric"] == "fpr"
    assert shown["interval"] == [round(breach["lower"], 4), round(breach["upper"], 4)]
    assert shown["groups"] == {"north": round(breach["high_value"], 4), "south": round(breach["low_value"], 4)}
    assert alert.figures["window"] == "2024-01-03..2024-01-09 (7 labelled days)"
    assert "no retrain (not_enabled)" in alert.headline
    retrain = _decide(entry, retrain=True)
    assert retrain.state == "retrain" and retrain.trigger == "fairness_breach"
    summary["verdict"] = retrain.to_dict()
    assert [a.kind for a in drift("cohort", summary)] == ["drift_retrain", "fairness_breach"]


def test_one_bad_day_in_a_good_window_does_not_fire(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    lake = _lake(tmp_path, biased_days={0})
    entry = monitor_fairness(lake, spec, DS, VERSION)
    assert entry is not None and entry["judged"] and entry["breaches"] == []
    day = _disparities(entry["day"])["equalized_odds_difference"]
    window = _disparities(entry["window"])["equalized_odds_difference"]
    assert day["lower"] > 0.4  # the day alone is far past the limit ...
    assert window["lower"] < 0.15 and window["value"] < 0.15  # ... the pooled window is not
    verdict = _decide(entry)
    signal = next(s for s in verdict.signals if s.kind == "fairness_breach")
    assert not signal.fired and verdict.state == "ok"
    assert signal.threshold is not None and signal.value is not None and signal.value < signal.threshold
    # a window of fewer labelled days than a majority of window_days is reported, not judged
    short = monitor_fairness(_lake(tmp_path / "short", biased_days={0, 1, 2}, days=3), spec, DS, VERSION)
    assert short is not None and not short["judged"] and short["breaches"] == []
    assert "not judged: the 3 labelled days 2024-01-07..2024-01-09 of v3, 4 of 7 needed" in short["text"]
    assert not next(s for s in _decide(short).signals if s.kind == "fairness_breach").fired


def test_a_too_small_group_is_reported_not_judged(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    entry = monitor_fairness(_lake(tmp_path, biased_days=set()), spec, DS, VERSION)
    assert entry is not None
    assert entry["window"]["too_small"] == [{"column": "region", "group": "island", "rows": 35}]
    island = next(g for g in entry["window"]["groups"] if g["group"] == "island")
    assert island["rows"] == 35 and not island["judged"]
    assert all(d["low_group"] != "island" and d["high_group"] != "island" for d in entry["window"]["disparities"])
    assert "too small to judge (< min_group_rows 50): region=island (35 rows)" in entry["text"]
    # rows another version scored are not this version's: nothing to measure
    other = monitor_fairness(_lake(tmp_path, biased_days=set()), spec, DS, VERSION + 1)
    assert other is not None and other["window"] is None and "no labelled rows" in other["text"]


def test_specs_without_fairness_keep_their_signals_and_the_gate_digest_ignores_the_monitors_fields(
    tmp_path: Path,
) -> None:
    from sklearn.metrics import roc_auc_score

    from include.monitoring.monitor import realized_performance

    plain = _spec(tmp_path, gate={})
    lake = _lake(tmp_path, biased_days={0})
    assert monitor_fairness(lake, plain, DS, VERSION) is None
    # the realized performance reads the labelled day through the same join as before
    measured = realized_performance(lake, plain, DS, None)
    rows = labelled_rows(lake, plain, LABEL_DAY)
    assert measured is not None and rows is not None and "region" not in rows.columns
    assert measured["rows"] == len(rows) == 805 and measured["label_day"] == LABEL_DAY.isoformat()
    assert measured["roc_auc"] == pytest.approx(roc_auc_score(rows["label"], rows["score"]), abs=1e-12)
    kinds = [s.kind for s in _decide(None).signals]
    assert kinds == ["data_drift", "prediction_drift", "performance_drop", "estimated_drop", "breach"]
    assert _spec(tmp_path).gate.hashed() == _spec(tmp_path, window_days=3, retrain_on_breach=True).gate.hashed()
    assert _spec(tmp_path).gate.hashed() != _spec(tmp_path, equalized_odds_difference=0.2).gate.hashed()


def test_the_dashboard_charts_the_windows_disparity_with_its_interval_and_limit(tmp_path: Path) -> None:
    import plotly.graph_objects as go

    from airloop.dashboard_view import dashboard_charts, model_html
    from include.dashboard import Dashboard, fairness_days

    spec = _spec(tmp_path)
    lake = _lake(tmp_path, biased_days={0, 1, 2, 3, 4, 5, 6})
    entry = monitor_fairness(lake, spec, DS, VERSION)
    assert entry is not None
    records = [{"partition": DS.isoformat(), "fairness": entry}, {"partition": "2024-01-11", "performance": None}]
    points = {p.name: p for p in fairness_days(records)}  # the record without fairness gives none
    assert set(points) == {"equalized_odds_difference", "demographic_parity_ratio"}  # the limited ones
    eod = points["equalized_odds_difference"]
    window = _disparities(entry["window"])["equalized_odds_difference"]
    assert (eod.day, eod.label_day, eod.column, eod.limit, eod.rows) == (DS, LABEL_DAY, "region", 0.15, 5635)
    assert (eod.value, eod.lower, eod.upper) == (window["value"], window["lower"], window["upper"])
    assert eod.breach and eod.judged and (eod.high_group, eod.low_group) == ("north", "south")
    empty: dict[str, Any] = {"champion": None, "challenger": None, "versions": (), "timeline": (), "features": ()}
    dash = Dashboard(model="cohort", **empty, drift=(), volume=(), realized=(), retrain_days=(), warn=0.1,
                     alert=0.25, fairness=tuple(fairness_days(records)))  # fmt: skip
    figure = dashboard_charts(dash)["fairness-chart"]
    go.Figure(figure)  # valid plotly
    lines = {t["name"]: t for t in figure["data"]}
    assert lines["equalized_odds_difference on region"]["y"] == [window["value"]]
    assert lines["equalized_odds_difference on region limit"]["y"] == [0.15]
    assert lines["equalized_odds_difference on region 95%"]["y"] == [window["upper"]]
    page = model_html(dash)
    assert 'id="fairness-table"' in page and "Fairness over time" in page
    assert '<span class="fail">breach</span>' in page
    plain = Dashboard(model="cohort", **empty, drift=(), volume=(), realized=(), retrain_days=(), warn=0.1, alert=0.25)
    assert "fairness-chart" not in dashboard_charts(plain) and "Fairness over time" not in model_html(plain)


def test_the_monitor_passes_the_spec_s_retrain_choice_to_the_decision(tmp_path: Path) -> None:
    from include.monitoring.monitor import _decide_day, _Measured

    lake = _lake(tmp_path, biased_days={0, 1, 2, 3, 4, 5, 6})
    today = DayDrift("cohort", DS.isoformat(), "ok", 0.01, 805, reference="v3")
    for retrain, state in ((False, "warn"), (True, "retrain")):
        spec = _spec(tmp_path, retrain_on_breach=retrain)
        entry = monitor_fairness(lake, spec, DS, VERSION)
        measured = _Measured(None, today, None, {}, None, None, entry)  # type: ignore[arg-type]
        verdict = _decide_day(spec, lake, DS, measured)
        assert verdict.state == state and (verdict.trigger == "fairness_breach") is retrain
