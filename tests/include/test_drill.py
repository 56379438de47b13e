"""``airloop drill``: the faults (pure functions, checked on values), the faulted copy of the lake,
and one short drill end to end on the breast-cancer spec (tests/specs/cancer.yaml)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from include.cli import main
from include.drill import (
    DrillError,
    Fault,
    apply_fault,
    default_faults,
    drop_segment,
    invert_labels,
    keep_segment,
    measure,
    spike_nulls,
    table_rows,
    thin_below,
)
from include.lake import Lake, Zone
from include.spec import load_spec

SPEC_FILE = Path(__file__).resolve().parents[1] / "specs" / "cancer.yaml"
SPEC = load_spec(SPEC_FILE)
FLIGHTS = load_spec(Path(__file__).resolve().parents[2] / "include" / "specs" / "flights.yaml")
START, END, BREAK = date(2024, 1, 1), date(2024, 1, 28), date(2024, 1, 21)  # 14 days scored, 7 after


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key": [1, 2, 3, 4, 5, 6],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "seg": ["a", "b", "a", "c", "a", "b"],
            "y": [0.0, 1.0, np.nan, 1.0, 0.0, 1.0],
        }
    )


def test_label_inversion_flips_labels_and_nothing_else() -> None:
    frame = _frame()
    out = invert_labels(frame, "y")
    assert out["y"].tolist()[:2] == [1.0, 0.0] and np.isnan(out["y"][2]) and out["y"].tolist()[3:] == [0.0, 1.0, 0.0]
    pd.testing.assert_frame_equal(out.drop(columns="y"), frame.drop(columns="y"))
    assert frame["y"].tolist()[:2] == [0.0, 1.0]  # the input is left alone


def test_segment_vanish_and_segment_only_split_the_rows() -> None:
    frame = _frame()
    assert drop_segment(frame, "seg", "a")["key"].tolist() == [2, 4, 6]
    assert keep_segment(frame, "seg", "a")["key"].tolist() == [1, 3, 5]
    assert keep_segment(frame, "seg", "z").empty


def test_covariate_shift_thins_one_range_and_keeps_each_rows_label() -> None:
    frame = _frame()
    assert thin_below(frame, "x", 3.5, 0.0, seed=0)["key"].tolist() == [4, 5, 6]
    assert thin_below(frame, "x", 3.5, 1.0, seed=0)["key"].tolist() == [1, 2, 3, 4, 5, 6]
    big = pd.DataFrame({"x": np.arange(10_000, dtype=float), "y": np.arange(10_000) % 2})
    out = thin_below(big, "x", 5_000, 0.25, seed=1)
    below = int((out["x"] < 5_000).sum())
    assert 1_150 < below < 1_350 and int((out["x"] >= 5_000).sum()) == 5_000
    # the label of every kept row is the one it had: P(y|x) is unchanged
    assert (out["y"] == out["x"].astype(int) % 2).all()


def test_null_spike_nulls_the_share_asked_on_one_column() -> None:
    big = pd.DataFrame({"x": np.ones(10_000), "z": np.ones(10_000)})
    out = spike_nulls(big, "x", 0.3, seed=2)
    assert 0.28 < out["x"].isna().mean() < 0.32 and out["z"].notna().all()
    assert spike_nulls(big, "x", 0.3, seed=2)["x"].isna().equals(out["x"].isna())  # seeded
    assert spike_nulls(big, "x", 0.0, seed=2)["x"].notna().all()


def test_faults_parse_and_bad_ones_name_the_rule() -> None:
    fault = Fault.parse("segment_vanish,day=2013-03-01,days=55,column=origin,value=LGA")
    assert fault == Fault("segment_vanish", date(2013, 3, 1), 55, "origin", "LGA")
    assert (
        fault.last_day == date(2013, 4, 24) and fault.covers(date(2013, 4, 24)) and not fault.covers(date(2013, 4, 25))
    )
    assert Fault.parse("label_inversion,day=2013-06-01").covers(date(2013, 12, 31))
    with pytest.raises(DrillError, match="day=YYYY-MM-DD is required"):
        Fault.parse("null_spike,column=temp")
    with pytest.raises(DrillError, match=r"column='nope' is not a feature of spec flights"):
        Fault("null_spike", date(2013, 6, 1), 3, "nope").check(FLIGHTS)
    with pytest.raises(DrillError, match="must be numeric"):
        Fault("covariate_shift", date(2013, 6, 1), 3, "origin").check(FLIGHTS)
    with pytest.raises(DrillError, match="unknown kind"):
        Fault("meteor", date(2013, 6, 1)).check(FLIGHTS)


def test_default_faults_pick_columns_from_the_spec() -> None:
    sample = pd.DataFrame({"origin": ["EWR", "EWR", "JFK"], "carrier": ["UA", "AA", "AA"]})
    faults = {f.kind: f for f in default_faults(FLIGHTS, date(2013, 6, 1), sample)}
    assert list(faults) == ["label_inversion", "segment_vanish", "segment_only", "covariate_shift", "null_spike"]
    assert (faults["segment_vanish"].column, faults["segment_vanish"].value) == ("origin", "EWR")
    assert faults["covariate_shift"].column == "distance"  # the first numeric feature the monitor watches
    assert (faults["null_spike"].column, faults["null_spike"].rate) == ("pressure", 0.4)  # contract allows 0.8
    for fault in faults.values():
        fault.check(FLIGHTS)


def test_apply_fault_dispatches_on_the_kind() -> None:
    frame = _frame()
    day = date(2024, 1, 1)
    assert apply_fault(Fault("segment_only", day, 1, "seg", "b"), frame, "y")["key"].tolist() == [2, 6]
    assert apply_fault(Fault("covariate_shift", day, 1, "x", rate=0.0), frame, "y", 3.5)["key"].tolist() == [4, 5, 6]
    with pytest.raises(DrillError, match="needs the cut"):
        apply_fault(Fault("covariate_shift", day, 1, "x"), frame, "y")


def test_measure_counts_against_the_oracle() -> None:
    def day(d: int, auc: float | None, trained: int | None = None, promoted: bool = False) -> dict[str, Any]:
        return {"day": f"2024-01-{d:02d}", "roc_auc": auc, "trained": trained, "promoted": promoted}

    oracle = [day(1, 0.9, 1, True), day(2, 0.9), day(3, 0.8, 2, True), day(4, 0.9)]
    mine = [day(1, 0.9, 1, True), day(2, 0.7), day(3, 0.4), day(4, 0.5, 2, True)]
    figures = measure(Fault("label_inversion", date(2024, 1, 3)), mine, oracle, [{"bad": True}])
    assert figures["days_to_first_retrain"] == 1 and figures["first_retrain"] == "2024-01-04"
    assert figures["auc_lost_vs_oracle"] == pytest.approx((0 + 0.2 + 0.4 + 0.4) / 4)
    assert figures["auc_lost_vs_oracle_after_fault"] == pytest.approx(0.4)
    assert (figures["retrains"], figures["promotions"], figures["bad_promotions"]) == (1, 1, 1)
    never = measure(Fault("label_inversion", date(2024, 1, 3)), [day(1, 0.9, 1, True), day(3, 0.5)], oracle, [])
    assert never["days_to_first_retrain"] is None and never["retrains"] == 0


@pytest.fixture(scope="module")
def drilled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("drill")
    code = main(
        [
            "drill", "--spec", str(SPEC_FILE), "--from", str(START), "--to", str(END), "--out", str(out),
            "--fault", f"label_inversion,day={BREAK}",
            "--fault", f"null_spike,day={BREAK},days=2,column=mean_area,rate=0.02",
            "--policies", "drift,frozen",
        ]
    )  # fmt: skip
    assert code == 0
    return out, json.loads((out / "drill.json").read_text())


def test_a_short_drill_reports_coherent_figures(drilled: tuple[Path, dict[str, Any]]) -> None:
    out, payload = drilled
    result = payload["faults"][f"label_inversion@{BREAK}"]
    assert set(result["table"]) == {"drift", "frozen", "oracle"}
    frozen, oracle = result["table"]["frozen"], result["table"]["oracle"]
    assert frozen["retrains"] == 0 and frozen["promotions"] == 0 and frozen["days_to_first_retrain"] is None
    assert oracle["retrains"] == 1 and oracle["days_to_first_retrain"] == 0 and oracle["first_retrain"] == str(BREAK)
    assert oracle["auc_lost_vs_oracle"] == 0.0
    # the days before the break ran once per policy (the oracle is the frozen policy until then)
    assert sorted(k for k in payload["seconds"] if k.startswith("checkpoint")) == [
        f"checkpoint drift@{BREAK}",
        f"checkpoint frozen@{BREAK}",
    ]
    # and on from there without a fault: the clean runs each fault is measured against
    assert sorted(payload["clean"]) == [f"drift@{BREAK}", f"frozen@{BREAK}"]
    assert payload["clean"][f"frozen@{BREAK}"]["retrains"] == 0
    clean_drift = payload["clean"][f"drift@{BREAK}"]["retrains"]
    assert result["table"]["drift"]["retrains_caused"] == result["table"]["drift"]["retrains_after_fault"] - (
        clean_drift - sum(d["trained"] is not None for d in result["days"]["drift"][1:] if d["day"] < str(BREAK))
    )
    assert (frozen["retrains_caused"], oracle["retrains_caused"]) == (0, None)
    # a label inversion lasts to the end: no run can rejoin its clean run
    assert all(figures["rejoined"] is None for figures in result["table"].values())
    assert [d for d in result["days"]["oracle"] if d["day"] < str(BREAK)] == [
        d for d in result["days"]["frozen"] if d["day"] < str(BREAK)
    ]
    # the inverted concept: the frozen model ranks backwards once the labels flipped
    assert frozen["mean_daily_auc_after_fault"] < 0.5
    before = [d["roc_auc"] for d in result["days"]["frozen"] if d["day"] < str(BREAK) and d["roc_auc"] is not None]
    assert len(before) == 6 and min(before) > 0.8
    for policy, figures in result["table"].items():
        assert figures["bad_promotions"] <= figures["promotions"] <= figures["retrains"]
        # every promotion after the first model was read back from the policy's gate reports
        promoted = [d["day"] for d in result["days"][policy][1:] if d["promoted"]]
        assert [p["day"] for p in result["promotions"][policy]] == promoted
        assert all(p["gain_lower"] <= p["gain"] <= p["gain_upper"] for p in result["promotions"][policy])
    assert table_rows(payload)[0] == {
        "fault": f"label_inversion@{BREAK}",
        "policy": "drift",
        **result["table"]["drift"],
    }
    assert (out / "report.html").read_text().count("<tr>") == 2 * (1 + 3)  # per fault: a header, a row per policy
    assert (out / f"label_inversion_{BREAK}.png").exists()


def test_the_faulted_copy_changes_only_the_fault_days(drilled: tuple[Path, dict[str, Any]]) -> None:
    out, payload = drilled
    shared = Lake((out / "data").as_uri())
    faulted = Lake((out / f"label_inversion_{BREAK}" / "data").as_uri())
    label = SPEC.dataset.target.name
    assert faulted.list_partitions(Zone.VALIDATED, SPEC.name) == shared.list_partitions(Zone.VALIDATED, SPEC.name)
    for day in (date(2024, 1, 20), BREAK, END):
        before = shared.read_table(Zone.LABELS, SPEC.name, day).to_pandas()
        after = faulted.read_table(Zone.LABELS, SPEC.name, day).to_pandas()
        assert after["sample_id"].tolist() == before["sample_id"].tolist()
        flipped = day >= BREAK
        assert (after[label] == (1 - before[label] if flipped else before[label])).all()
        # a label inversion leaves the features alone: the shared validated partition, not a copy
        assert _same_file(shared, faulted, Zone.VALIDATED, day)
    assert payload["faults"][f"label_inversion@{BREAK}"]["injected"]["quarantined"] == {}
    covered = [d for d in shared.list_partitions(Zone.VALIDATED, SPEC.name) if d >= BREAK]  # and the label delay
    assert payload["faults"][f"label_inversion@{BREAK}"]["injected"]["days"] == len(covered) > (END - BREAK).days


def _same_file(a: Lake, b: Lake, zone: Zone, day: date) -> bool:
    return Path(a.partition_file(zone, SPEC.name, day)).samefile(b.partition_file(zone, SPEC.name, day))


def test_a_day_two_faults_share_is_scored_once_and_the_link_equals_a_new_score(
    drilled: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """The label inversion keeps every feature partition; the null spike covers two days: from
    the third day on both copies hold the same partitions, and the second fault's runs link the
    first fault's predictions. A linked day equals the same day scored again from scratch."""
    from mlflow import MlflowClient

    from include.names import CHAMPION
    from include.registry.aliases import current_alias
    from include.replay import PolicyResult, ScoreMemo, _score

    out, payload = drilled
    assert payload["shared"]["scores_linked"] > 0 and payload["shared"]["scores_computed"] > 0
    day = date(2024, 1, 24)
    first, second = (out / f"label_inversion_{BREAK}", out / f"null_spike_{BREAK}")
    for policy in ("drift", "frozen", "oracle"):
        mine = [d for d in payload["faults"][f"null_spike@{BREAK}"]["days"][policy] if d["day"] == str(day)][0]
        theirs = [d for d in payload["faults"][f"label_inversion@{BREAK}"]["days"][policy] if d["day"] == str(day)][0]
        if mine["champion"] != theirs["champion"]:
            continue  # another model scored that day
        linked = Lake((second / policy / "lake").as_uri())
        source = Lake((first / policy / "lake").as_uri())
        assert _same_file(linked, source, Zone.PREDICTIONS, day), policy
    # the frozen model scores the day again, without the memo, in a new lake: the same table
    uri = payload["faults"][f"null_spike@{BREAK}"]["summary"]["frozen"]["tracking_uri"]
    version = current_alias(MlflowClient(uri, registry_uri=uri), SPEC.name, CHAMPION)
    assert version is not None
    data_lake = Lake((second / "data").as_uri())
    fresh = Lake((tmp_path / "lake").as_uri())
    for zone in (Zone.VALIDATED, Zone.LABELS):
        target = Path(fresh.partition_dir(zone, SPEC.name, day))
        target.mkdir(parents=True)
        for file in Path(data_lake.partition_dir(zone, SPEC.name, day)).iterdir():
            (target / file.name).write_bytes(file.read_bytes())
    memo = ScoreMemo()
    manifest = _score(SPEC, fresh, uri, day, version, PolicyResult("frozen"), data_lake, memo)
    assert (memo.hits, memo.misses) == (0, 1)
    linked = Lake((second / "frozen" / "lake").as_uri())
    assert fresh.read_table(Zone.PREDICTIONS, SPEC.name, day).equals(
        linked.read_table(Zone.PREDICTIONS, SPEC.name, day)
    )
    assert (
        manifest["rows_scored"]
        == [d for d in payload["faults"][f"null_spike@{BREAK}"]["days"]["frozen"] if d["day"] == str(day)][0][
            "rows_scored"
        ]
    )


@pytest.mark.parametrize("policy", ["calendar", "drift"])
def test_a_run_whose_state_is_the_clean_runs_rejoins_it(
    policy: str, drilled: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """On the same data a resumed run has the clean run's state every day: it rejoins it on the
    first day it may, and takes the clean run's later days (records and predictions) unchanged.
    The state digest moves with what decides the future (a training)."""
    from include.replay import Rejoin, ReplaySettings, ScoreMemo, replay_checkpoint, resume_policy

    end, eve, after = date(2024, 1, 24), date(2024, 1, 16), date(2024, 1, 18)
    data = Lake((drilled[0] / "data").as_uri())  # the drill's clean history, landed and validated (read only)
    settings = ReplaySettings(start=START, end=end, policies=(policy,), calendar_days=3, search_budget=1, explain=False)
    memo = ScoreMemo()
    checkpoint = replay_checkpoint(SPEC, data, tmp_path / "cp", policy, replace(settings, end=eve), memo)
    clean = resume_policy(
        SPEC, data, checkpoint, tmp_path / "cp", tmp_path / "clean", policy, settings, memo, record_states=True
    )
    assert sorted(clean.states) == [str(date(2024, 1, d)) for d in range(17, 25)]
    again = resume_policy(
        SPEC,
        data,
        checkpoint,
        tmp_path / "cp",
        tmp_path / "again",
        policy,
        settings,
        ScoreMemo(),  # nothing linked from the clean run: it really ran its days up to the rejoin
        rejoin=Rejoin(clean, tmp_path / "clean", after),
    )
    assert again.rejoined == str(after) and clean.rejoined is None
    assert [asdict(d) for d in again.days] == [asdict(d) for d in clean.days]
    later = date(2024, 1, 22)
    linked = Lake((tmp_path / "again" / "lake").as_uri())
    assert Path(linked.partition_file(Zone.PREDICTIONS, SPEC.name, later)).samefile(
        Lake((tmp_path / "clean" / "lake").as_uri()).partition_file(Zone.PREDICTIONS, SPEC.name, later)
    )
    trained = [d.day for d in clean.days if d.trained is not None and d.day > str(eve)]
    if policy == "calendar":
        assert trained, "a calendar run every 3 days trains after its checkpoint"
    for day in trained:
        previous = str(date.fromisoformat(day) - timedelta(days=1))
        assert clean.states[day] != clean.states.get(previous, ""), day
    if policy == "drift":  # each monitored day adds a verdict the decision reads: every day's state is new
        assert len(set(clean.states.values())) == len(clean.states)
