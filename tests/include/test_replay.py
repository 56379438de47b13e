"""``airloop replay`` on a second real dataset (scikit-learn's breast-cancer data with synthetic
daily arrival times, spec in tests/specs/cancer.yaml): the same step functions as the DAGs,
three policies, a report whose numbers are checked against the lake."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from include.cli import main
from include.datasets.breast_cancer import build
from include.lake import Lake, Zone
from include.registry.ledger import read_ledger
from include.replay import ReplayError, ReplaySettings, replay
from include.spec import load_spec

SPEC_FILE = Path(__file__).resolve().parents[1] / "specs" / "cancer.yaml"
SPEC = load_spec(SPEC_FILE)
START, END = date(2024, 1, 1), date(2024, 2, 24)
FIRST_SCORED = START + timedelta(days=SPEC.training.window_days)  # 2024-01-15
SCORED_DAYS = (END - FIRST_SCORED).days + 1  # 41


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("replay")
    code = main(["replay", "--spec", str(SPEC_FILE), "--from", str(START), "--to", str(END), "--out", str(out)])
    assert code == 0
    return out, json.loads((out / "replay.json").read_text())


def test_the_second_dataset_is_real_and_daily() -> None:
    frame = build()
    assert len(frame) == 569 and frame["sample_id"].is_unique
    assert int(frame["diagnosis"].sum()) == 212  # malignant cases of the Wisconsin data
    per_day = frame.groupby(frame["seen_at"].dt.date).size()
    assert per_day.index[0] == START and per_day.index[-1] == date(2024, 2, 26)
    assert set(per_day.iloc[:-1]) == {10} and per_day.iloc[-1] == 9


def test_every_policy_scores_every_day_after_the_first_window(replayed: tuple[Path, dict[str, Any]]) -> None:
    out, payload = replayed
    assert payload["prepared"]["failed"] == {} and payload["prepared"]["landed"] == (END - START).days + 2
    for policy in ("drift", "calendar", "frozen"):
        summary = payload["summary"][policy]
        assert summary["days_scored"] == SCORED_DAYS and summary["rows_scored"] == 10 * SCORED_DAYS
        days = payload["days"][policy]
        assert [d["day"] for d in days] == [str(FIRST_SCORED + timedelta(days=i)) for i in range(SCORED_DAYS)]
        assert days[0]["trained"] == 1 and days[0]["promoted"] and "first model" in days[0]["gate"]
        # predictions carry the version that was champion that day
        lake = Lake((out / policy / "lake").as_uri())
        for record in days:
            table = lake.read_table(Zone.PREDICTIONS, SPEC.name, date.fromisoformat(record["day"]))
            assert set(table.column("model_version").to_pylist()) == {record["champion"]}
        # the models live in the policy's own store, not in a ./mlruns of the working directory
        uri = summary["tracking_uri"]
        assert uri.startswith(f"sqlite:///{out / policy / 'mlflow'}/mlflow-")
        store = MlflowClient(uri, registry_uri=uri)
        experiments = [e.experiment_id for e in store.search_experiments()]
        logged = store.search_logged_models(experiment_ids=experiments)
        assert len(logged) == sum(d["trained"] is not None for d in days)
        for model in logged:
            assert model.artifact_location.startswith((out / policy / "mlflow" / "artifacts").as_uri())
        # every gate decision is in the ledger, promotions as "promote"
        ledger = read_ledger(lake, SPEC.name)
        assert len(ledger) == sum(d["trained"] is not None for d in days)
        assert sum(e["action"] == "promote" for e in ledger) == sum(d["promoted"] for d in days)
        # no peeking: each gate judged on labelled days that had arrived by its decision day
        for entry in ledger:
            report = json.loads(lake.read_bytes(lake.report_path(SPEC.name, "gate", f"{entry['decision_id']}.json")))
            decided = date.fromisoformat(entry["time"][:10])
            days_seen = [date.fromisoformat(d) for d in report["evaluation_days"]]
            assert days_seen and max(days_seen) <= decided - timedelta(days=SPEC.dataset.label_delay_days)


def test_policies_retrain_as_they_say(replayed: tuple[Path, dict[str, Any]]) -> None:
    _, payload = replayed
    assert payload["summary"]["frozen"]["retrains"] == 0
    assert {d["champion"] for d in payload["days"]["frozen"]} == {1}
    calendar = [d["day"] for d in payload["days"]["calendar"] if d["trained"]]
    assert calendar == [str(FIRST_SCORED + timedelta(days=7 * i)) for i in range(6)]  # weekly
    drift = payload["days"]["drift"]
    assert all(d["drift_state"] in ("ok", "warn", "retrain") for d in drift)
    retrain_days = [date.fromisoformat(d["day"]) for d in drift if d["drift_state"] == "retrain"]
    assert [d["day"] for d in drift if d["trained"] and d["trained"] > 1] == [str(d) for d in retrain_days]
    policy = SPEC.drift
    for earlier, later in zip(retrain_days, retrain_days[1:], strict=False):
        assert (later - earlier).days >= policy.cooldown_days  # cooldown holds
    for day in retrain_days:
        recent = [d for d in retrain_days if 0 <= (day - d).days < policy.max_retrains_period_days]
        assert len(recent) <= policy.max_retrains  # the cap holds


def test_reported_auc_is_the_auc_of_the_real_predictions(replayed: tuple[Path, dict[str, Any]]) -> None:
    out, payload = replayed
    lake = Lake((out / "calendar" / "lake").as_uri())
    checked = 0
    for record in payload["days"]["calendar"]:
        day = date.fromisoformat(record["day"])
        predictions = lake.read_table(Zone.PREDICTIONS, SPEC.name, day).to_pandas()
        labels = lake.read_table(Zone.LABELS, SPEC.name, day).to_pandas()
        joined = predictions.merge(labels, on="sample_id")
        if joined["malignant"].nunique() < 2:
            assert record["roc_auc"] is None
            continue
        assert record["roc_auc"] == pytest.approx(roc_auc_score(joined["malignant"], joined["score"]), abs=1e-6)
        assert record["labelled"] == len(joined) == 10
        checked += 1
    assert checked >= 30
    aucs = [d["roc_auc"] for d in payload["days"]["calendar"] if d["roc_auc"] is not None]
    assert payload["summary"]["calendar"]["mean_daily_auc"] == pytest.approx(sum(aucs) / len(aucs), abs=1e-6)
    assert set(payload["monthly_auc"]["frozen"]) == {"2024-01", "2024-02"}


def test_report_shows_the_numbers_and_charts(replayed: tuple[Path, dict[str, Any]]) -> None:
    out, payload = replayed
    html = (out / "report.html").read_text()
    for policy, summary in payload["summary"].items():
        assert (
            f'<tr><td>{policy}</td><td class="num">{summary["days_scored"]}</td>'
            f'<td class="num">{summary["rows_scored"]}</td><td class="num">{summary["mean_daily_auc"]:.4f}</td>'
        ) in html
        assert summary["seconds"]["total"] > summary["seconds"]["train"] > 0
    # self-contained: plotly.js inlined, the charts' figures in the page, no PNG beside it
    assert "<script src=" not in html and "Plotly.newPlot" in html and not list(out.glob("*.png"))
    found = re.search(r'<script type="application/json" id="airloop-charts">(.*?)</script>', html, re.S)
    assert found
    charts = json.loads(found.group(1))
    assert set(charts) == {"daily-auc", "monthly-auc", "compute"}
    for policy, days in payload["days"].items():
        daily = next(t for t in charts["daily-auc"]["data"] if t["name"] == f"{policy} daily")
        assert daily["y"] == [d["roc_auc"] for d in days if d["roc_auc"] is not None]
        monthly = next(t for t in charts["monthly-auc"]["data"] if t["name"] == policy)
        assert dict(zip(monthly["x"], monthly["y"], strict=True)) == payload["monthly_auc"][policy]
    compute = {t["name"]: t["y"] for t in charts["compute"]["data"]}
    assert compute["train"] == [round(s["seconds"].get("train", 0.0), 3) for s in payload["summary"].values()]


def test_bad_requests_are_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="too short: the first model needs 14 days"):
        replay(SPEC, tmp_path, ReplaySettings(start=START, end=START + timedelta(days=10)))
    with pytest.raises(ReplayError, match="before --from"):
        replay(SPEC, tmp_path, ReplaySettings(start=END, end=START))
    with pytest.raises(ReplayError, match="unknown policy 'weekly'"):
        replay(SPEC, tmp_path, ReplaySettings(start=START, end=date(2024, 1, 20), policies=("weekly",)))
    assert not (tmp_path / "weekly").exists()


def test_a_second_replay_in_the_same_folder_starts_from_scratch(tmp_path: Path) -> None:
    settings = ReplaySettings(start=START, end=FIRST_SCORED + timedelta(days=2), policies=("frozen",))
    replay(SPEC, tmp_path, settings)
    payload = replay(SPEC, tmp_path, settings)
    days = payload["days"]["frozen"]
    assert days[0]["trained"] == 1 and days[0]["promoted"]  # not the champion the first run left
    uri = payload["summary"]["frozen"]["tracking_uri"]
    assert len(list((tmp_path / "frozen" / "mlflow").glob("mlflow-*.db"))) == 1
    versions = MlflowClient(uri, registry_uri=uri).search_model_versions(f"name='{SPEC.name}'")
    assert [int(v.version) for v in versions] == [1]
