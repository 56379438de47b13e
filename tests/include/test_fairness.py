"""Fairness in the gate: real flights models with and without an injected bias, Fairlearn's own
figures on the same rows, small groups, the champion comparison, the spec and the reports."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
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
from sklearn.ensemble import HistGradientBoostingClassifier

from include.lake import Lake, Zone
from include.registry.fairness import FairnessReport, measure_fairness
from include.registry.gate import GateDecision, decide_promotion, evaluate
from include.spec import FairnessSpec, GateSpec, SpecError, parse_spec
from tests.cohort_spec import cohort_spec

NUMERIC = ["distance", "sched_hour", "day_of_week", "temp", "dewp", "humid", "wind_dir", "wind_speed", "precip"]
PARITY = {"mean_abs_diff": 0.0, "label_agreement": 1.0, "onnx_ms_per_1k_rows": 1.0}
THRESHOLD, N_BOOT, SEED = 0.5, 200, 42


def _matrix(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[NUMERIC].copy()
    for origin in ("EWR", "JFK", "LGA"):
        out[f"origin_{origin}"] = (frame["origin"] == origin).astype(float)
    return out


@pytest.fixture(scope="module")
def flights() -> dict[str, Any]:
    """Three weeks of real flights to train on and the following week to gate on (5,894 rows);
    a fair model trained on the true labels and a biased one trained on labels where 20% of the
    EWR flights are marked delayed whatever happened (the injected bias); both judged on the
    true labels of the gate's week."""
    from include.datasets.nycflights13 import build

    frame = build()
    frame = frame[frame["arr_delay"].notna()].assign(y=lambda f: (f["arr_delay"] > 15).astype(int))
    day = frame["sched_dep"].dt.date
    train = frame[(day >= date(2013, 1, 1)) & (day <= date(2013, 1, 21))]
    week = frame[(day >= date(2013, 1, 22)) & (day <= date(2013, 1, 28))].reset_index(drop=True)
    biased_labels = train["y"].to_numpy().copy()
    ewr = (train["origin"] == "EWR").to_numpy()
    biased_labels[ewr & (np.random.default_rng(7).random(len(train)) < 0.2)] = 1

    def fit(labels: Any) -> np.ndarray:
        model = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(_matrix(train), labels)
        return model.predict_proba(_matrix(week))[:, 1]

    return {
        "labels": week["y"].to_numpy(),
        "origin": week["origin"].to_numpy(),
        "fair": fit(train["y"]),
        "biased": fit(biased_labels),
    }


def _gate(
    flights: dict[str, Any], challenger: str, champion: str | None, policy: FairnessSpec
) -> tuple[GateDecision, FairnessReport]:
    labels = flights["labels"]
    report = measure_fairness(
        policy,
        {"origin": flights["origin"]},
        labels,
        flights[challenger],
        flights[champion] if champion else None,
        THRESHOLD,
        N_BOOT,
        SEED,
    )
    gate = GateSpec(min_roc_auc=0.5, max_regression=1.0, fairness=policy)
    ours = evaluate(flights[challenger], labels, None, THRESHOLD, 50, SEED)
    theirs = comparison = None
    if champion:
        from include.registry.gate import compare

        theirs = evaluate(flights[champion], labels, None, THRESHOLD, 50, SEED)
        comparison = compare(ours, theirs, flights[challenger], flights[champion], labels, 50, SEED)
        # the AUC comparison is not under test here: a biased model also loses AUC
        comparison = replace(comparison, gain_upper=max(comparison.gain_upper, 0.0))
    decision = decide_promotion(gate, ours, theirs, comparison, PARITY, None, fairness=report)
    return decision, report


LIMITS = FairnessSpec(sensitive=["origin"], equalized_odds_difference=0.20, demographic_parity_difference=0.15)


def test_a_model_trained_with_an_injected_bias_is_rejected_naming_the_group_and_the_figure(flights: Any) -> None:
    decision, report = _gate(flights, "biased", None, LIMITS)
    assert not decision.promote
    check = decision.check("fairness")
    assert not check.passed
    # measured: EWR's flights are predicted delayed far more often than the other airports' (selection
    # rate 0.47 vs 0.08), its delayed ones caught more often (TPR), so both disparities exceed their
    # limits with confidence
    eod = report.challenger.disparity("origin", "equalized_odds_difference")
    dpd = report.challenger.disparity("origin", "demographic_parity_difference")
    assert eod is not None and dpd is not None
    assert eod.value == pytest.approx(0.5080, abs=1e-4) and eod.lower > 0.20
    assert dpd.value == pytest.approx(0.3982, abs=1e-4) and dpd.lower > 0.15
    assert (eod.metric, eod.high_group, eod.low_group) == ("tpr", "EWR", "LGA")
    assert check.detail.startswith(
        f"equalized_odds_difference on origin 0.5080 [{eod.lower:.4f}, {eod.upper:.4f}] "
        "(group EWR: TPR 0.6052 vs LGA 0.0971) over 0.2000; "
        f"demographic_parity_difference on origin 0.3982 [{dpd.lower:.4f}, {dpd.upper:.4f}] "
        "(group EWR: selection rate 0.4739 vs LGA 0.0757) over 0.1500"
    )
    assert (check.threshold, check.observed) == (0.20, pytest.approx(eod.lower))
    assert "fairness (equalized_odds_difference on origin 0.5080" in decision.summary


def test_an_unbiased_model_on_the_same_rows_passes(flights: Any) -> None:
    decision, report = _gate(flights, "fair", None, LIMITS)
    assert decision.promote and decision.check("fairness").passed
    eod = report.challenger.disparity("origin", "equalized_odds_difference")
    assert eod is not None and eod.value == pytest.approx(0.1184, abs=1e-4)
    # the point value is not zero: delays differ by airport; the limit is judged on the lower bound
    assert eod.lower < 0.20
    assert (
        "equalized_odds_difference on origin 0.1184 [0.0821, 0.1590] within 0.2000" in decision.check("fairness").detail
    )


def test_the_gates_figures_agree_with_fairlearn_on_the_same_rows(flights: Any) -> None:
    _, report = _gate(flights, "biased", None, LIMITS)
    labels, origin, scores = flights["labels"], flights["origin"], flights["biased"]
    predicted = scores >= THRESHOLD
    figures = {d.name: d.value for d in report.challenger.disparities}
    assert figures["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(labels, predicted, sensitive_features=origin), abs=1e-12
    )
    assert figures["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(labels, predicted, sensitive_features=origin), abs=1e-12
    )
    assert figures["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(labels, predicted, sensitive_features=origin), abs=1e-12
    )
    frame = MetricFrame(
        metrics={"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=labels,
        y_pred=predicted,
        sensitive_features=origin,
    )
    assert figures["max_tpr_gap"] == pytest.approx(frame.difference()["tpr"], abs=1e-12)
    assert figures["max_fpr_gap"] == pytest.approx(frame.difference()["fpr"], abs=1e-12)
    for group in report.challenger.groups:
        expected = frame.by_group.loc[group.group]
        assert group.selection_rate == pytest.approx(expected["selection_rate"], abs=1e-12)
        assert group.tpr == pytest.approx(expected["tpr"], abs=1e-12)
        assert group.fpr == pytest.approx(expected["fpr"], abs=1e-12)
        mask = origin == group.group
        assert group.rows == int(mask.sum()) and group.positives == int(labels[mask].sum())
        assert group.calibration_gap == pytest.approx(scores[mask].mean() - labels[mask].mean(), abs=1e-12)
    calibration = [g.calibration_gap for g in report.challenger.groups]
    assert figures["max_calibration_gap"] == pytest.approx(max(calibration) - min(calibration), abs=1e-12)


def test_bootstrap_replicates_equal_fairlearn_on_the_resampled_rows(flights: Any) -> None:
    """The cells' shortcut is exact: replicate 1 equals Fairlearn on the rows it resampled."""
    from include.registry.resample import bootstrap_weights

    labels, origin, scores = flights["labels"], flights["origin"], flights["biased"]
    weights = next(bootstrap_weights(len(labels), 1, SEED))
    rows = np.repeat(np.arange(len(labels)), weights.astype(int))
    expected = equalized_odds_difference(labels[rows], scores[rows] >= THRESHOLD, sensitive_features=origin[rows])
    one = measure_fairness(LIMITS, {"origin": origin}, labels, scores, None, THRESHOLD, 1, SEED)
    eod = one.challenger.disparity("origin", "equalized_odds_difference")
    assert eod is not None and eod.lower == pytest.approx(expected, abs=1e-12) == eod.upper


def test_a_group_below_min_group_rows_is_reported_not_judged(flights: Any) -> None:
    labels, scores = flights["labels"], flights["fair"].copy()
    origin = flights["origin"].astype(object).copy()
    # 30 flights of a made-up airport, every one predicted delayed and all on time: FPR 1.0
    small = np.flatnonzero(labels == 0)[:30]
    origin[small], scores[small] = "SMALL", 0.99
    policy = FairnessSpec(sensitive=["origin"], max_fpr_gap=0.20, min_group_rows=50)
    report = measure_fairness(policy, {"origin": origin}, labels, scores, None, THRESHOLD, N_BOOT, SEED)
    tiny = [g for g in report.challenger.groups if g.group == "SMALL"][0]
    assert (tiny.rows, tiny.fpr, tiny.judged) == (30, 1.0, False)
    fpr = report.challenger.disparity("origin", "max_fpr_gap")
    assert fpr is not None and fpr.value < 0.2 and "SMALL" not in (fpr.high_group, fpr.low_group)
    gate = GateSpec(min_roc_auc=0.5, fairness=policy)
    decision = decide_promotion(
        gate, evaluate(scores, labels, None, THRESHOLD, 20, SEED), None, None, PARITY, None, fairness=report
    )
    check = decision.check("fairness")
    assert check.passed and decision.promote
    assert check.detail.endswith("; too small to judge (< min_group_rows 50): origin=SMALL (30 rows)")
    # judged, the same group fails the limit
    judged = FairnessSpec(sensitive=["origin"], max_fpr_gap=0.20, min_group_rows=20)
    report = measure_fairness(judged, {"origin": origin}, labels, scores, None, THRESHOLD, N_BOOT, SEED)
    decision = decide_promotion(
        GateSpec(min_roc_auc=0.5, fairness=judged),
        evaluate(scores, labels, None, THRESHOLD, 20, SEED),
        None,
        None,
        PARITY,
        None,
        fairness=report,
    )
    assert not decision.check("fairness").passed and "(group SMALL: FPR 1.0000 vs" in decision.check("fairness").detail


def test_a_challenger_measurably_less_fair_than_the_champion_is_rejected_unless_allowed(flights: Any) -> None:
    loose = FairnessSpec(sensitive=["origin"], equalized_odds_difference=0.5)
    decision, report = _gate(flights, "biased", "fair", loose)
    assert decision.check("fairness").passed  # inside the limit ...
    check = decision.check("fairness_vs_champion")
    assert not check.passed and not decision.promote  # ... but measurably less fair than the champion
    shift = report.shifts[0]
    assert (shift.column, shift.name) == ("origin", "equalized_odds_difference")
    assert shift.delta == pytest.approx(0.3897, abs=1e-4) and shift.lower > 0
    assert check.detail.startswith(
        "measurably less fair than the champion: equalized_odds_difference on origin 0.5080 vs champion 0.1184, "
        "difference +0.3897 [+0.3481, +0.4224]"
    )
    allowed = loose.model_copy(update={"allow_less_fair": True})
    decision, _ = _gate(flights, "biased", "fair", allowed)
    assert decision.check("fairness_vs_champion").passed and decision.promote
    assert decision.check("fairness_vs_champion").detail.startswith("allowed (allow_less_fair): less fair,")
    # the other way round: a fairer challenger passes
    decision, _ = _gate(flights, "fair", "biased", loose)
    assert decision.check("fairness_vs_champion").passed


def test_fairness_report_survives_json_and_lands_in_the_gate_report_and_the_card(flights: Any) -> None:
    from include.registry.card import model_card_markdown
    from include.registry.promotion import gate_report_html

    decision, report = _gate(flights, "biased", "fair", LIMITS)
    data = json.loads(json.dumps(report.to_dict()))
    assert FairnessReport.from_dict(data) == report
    page = gate_report_html(
        {
            "model": "flights",
            "challenger_version": 3,
            "champion_version": 2,
            "evaluation_rows": 5894,
            "evaluation_days": ["2013-01-22"],
            "decision": decision.to_dict(),
            "fairness": data,
        }
    )
    assert '<table id="fairness-groups">' in page
    assert '<td>challenger</td><td>origin</td><td>EWR</td><td class="num">2,129</td>' in page
    assert '<td>equalized_odds_difference</td><td class="num">0.5080</td>' in page
    card = model_card_markdown(
        model="flights",
        version=3,
        description="",
        training_window=("2013-01-01", "2013-01-21"),
        evaluation=evaluate(flights["biased"], flights["labels"], None, THRESHOLD, 20, SEED),
        lineage={},
        fairness=data,
    )
    assert "## Fairness" in card and "| origin=EWR | 2,129 |" in card
    # the HTML card adds a chart of the same per-group rates (inline SVG, bars on a 0..1 scale of 340 px)
    from include.registry.card import model_card_html

    html_card = model_card_html(
        model="flights",
        version=3,
        description="",
        training_window=("2013-01-01", "2013-01-21"),
        evaluation={},
        lineage={},
        fairness=data,
    )
    ewr = next(g for g in data["challenger"]["groups"] if g["group"] == "EWR")
    assert round(ewr["tpr"], 4) == 0.6052  # the figure the rejection names
    assert (
        f'width="{round(340 * ewr["tpr"], 1)}" height="8.0" fill="#2e7d32"><title>origin=EWR: TPR 0.6052</title>'
        in (html_card)
    )


# --------------------------------------------------------------------------- the spec
SPEC_YAML = cohort_spec(
    "2024-01-10", {"fairness": {"sensitive": ["region", "kind"], "equalized_odds_difference": 0.1, "min_group_rows": 5}}
)


def _write_source(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "row_id": [f"r{i}" for i in range(n)],
            "seen_at": [pd.Timestamp("2024-01-01") + timedelta(hours=int(h)) for h in np.sort(rng.integers(0, 240, n))],
            "x": rng.normal(size=n),
            "kind": rng.choice(["a", "b"], n),
            "region": rng.choice(["north", "south"], n),
            "outcome": rng.integers(0, 2, n),
            "unused": 1,
        }
    )
    path = folder / "cohort.csv"
    frame.to_csv(path, index=False)
    return path


def _spec(folder: Path, **gate: Any) -> Any:
    data = json.loads(json.dumps(SPEC_YAML))
    data["gate"]["fairness"].update(gate)
    return parse_spec(data, folder / "cohort.yaml")


def test_a_pass_through_column_lands_is_validated_and_read_by_the_gate_but_never_trained_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from include.datasets.ingest import land_day, landing_columns
    from include.quality.contract import rules_for
    from include.registry.promotion import evaluation_set
    from include.training.data import assemble_training_data

    monkeypatch.setenv("AIRLOOP_HOME", str(tmp_path / "state"))
    _write_source(tmp_path)
    spec = _spec(tmp_path)
    assert spec.passthrough_columns == ["region"] and spec.sensitive_columns == ["region", "kind"]
    assert landing_columns(spec) == ["row_id", "seen_at", "x", "kind", "region"]
    rules = {r.name: r for r in rules_for(spec)}
    assert "region" in rules["columns:required"].expected["columns"]
    assert rules["null_rate:region"].expected == {"max_null_rate": 0.05}
    lake = Lake((tmp_path / "lake").as_uri())
    for day in range(1, 12):
        ds = date(2024, 1, day)
        land_day(spec, lake, ds)
        if ds <= spec.dataset.end:
            lake.write_partition(Zone.VALIDATED, spec.name, ds, lake.read_table(Zone.LANDING, spec.name, ds))
    landed = lake.read_table(Zone.LANDING, spec.name, date(2024, 1, 3)).to_pandas()
    assert list(landed.columns) == ["row_id", "seen_at", "x", "kind", "region"]
    data = assemble_training_data(spec, lake, date(2024, 1, 8), window_days=6, holdout_days=2)
    assert "region" not in data.train.columns and "region" not in data.holdout.columns
    assert {"x", "kind"} <= set(data.train.columns)
    # scoring reads the pass-through column and carries every sensitive column into the predictions
    from include.scoring.score import carried_columns, output_schema, source_columns

    assert source_columns(spec) == ["row_id", "seen_at", "x", "kind", "region"]
    assert carried_columns(spec) == ["row_id", "seen_at", "region", "kind"]
    predictions = output_schema(lake.read_table(Zone.VALIDATED, spec.name, date(2024, 1, 3)).schema, spec)
    assert predictions.names[:5] == ["row_id", "seen_at", "region", "kind", "score"]
    gate_rows = evaluation_set(spec, lake, date(2024, 1, 8)).frame
    assert set(gate_rows["region"]) == {"north", "south"} and "label" in gate_rows.columns
    # run_gate reads the pass-through column on its evaluation days and judges by it; the models
    # (registry and ONNX scoring) are stand-ins: a challenger that favours "north", a fair champion
    import include.registry.aliases as aliases
    import include.registry.mlflow_registry as registry
    import include.registry.promotion as promotion

    versions = {"challenger": 2, "champion": 1}
    monkeypatch.setattr(promotion, "_client", lambda uri: None)
    monkeypatch.setattr(promotion, "_tags", lambda client, name, version: {"airloop.train_end": "2024-01-06"})
    monkeypatch.setattr(aliases, "current_alias", lambda client, name, alias: versions[alias])
    monkeypatch.setattr(registry, "load_onnx_bytes", lambda uri, name, version: bytes([version]))

    def scores(model: bytes, frame: pd.DataFrame, spec: Any) -> np.ndarray:
        noise = np.random.default_rng(1).random(len(frame)) * 0.5
        return np.where((frame["region"] == "north") & (model == b"\x02"), 0.5, 0.0) + noise

    monkeypatch.setattr(promotion, "onnx_scores", scores)
    report = promotion.run_gate(spec, lake, "unused", report_key="k")
    rows = report["evaluation_rows"]
    groups = {g["group"]: g for g in report["fairness"]["challenger"]["groups"] if g["column"] == "region"}
    assert sum(g["rows"] for g in groups.values()) == rows and groups["north"]["selection_rate"] == 1.0
    failed = {c["name"]: c["detail"] for c in report["decision"]["checks"] if not c["passed"]}
    assert "(group north: TPR 1.0000 vs south" in failed["fairness"]
    assert failed["fairness_vs_champion"].startswith("measurably less fair than the champion: equalized_odds")
    page = lake.read_bytes(lake.report_path(spec.name, "gate", f"{report['decision']['decision_id']}.html")).decode()
    assert '<table id="fairness-groups">' in page and "<td>region</td><td>north</td>" in page
    # specs without fairness keep the digests they had (no re-prepared sources, same decision ids)
    plain = parse_spec({**SPEC_YAML, "gate": {}}, tmp_path / "cohort.yaml")
    assert plain.gate.hashed() == plain.gate.model_dump(mode="json", exclude={"fairness"})
    assert plain.spec_hash() != spec.spec_hash()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tpr_gapp": 0.1}, "gate.fairness.max_tpr_gapp: unknown field"),
        (
            {"demographic_parity_difference": 1.5},
            "gate.fairness.demographic_parity_difference: expected input should be less than or equal to 1",
        ),
        (
            {"demographic_parity_ratio": -0.1},
            "gate.fairness.demographic_parity_ratio: expected input should be greater than or equal to 0",
        ),
        ({"sensitive": []}, "gate.fairness.sensitive: expected list should have at least 1 item"),
        ({"sensitive": ["region", "region"]}, "gate.fairness.sensitive: expected each sensitive column once"),
        ({"sensitive": ["bad column"]}, "gate.fairness.sensitive.0: expected string should match pattern"),
        ({"min_group_rows": 0}, "gate.fairness.min_group_rows: expected input should be greater than or equal to 1"),
        ({"allow_less_fair": "perhaps"}, "gate.fairness.allow_less_fair: expected input should be a valid boolean"),
        (
            {"sensitive": ["row_id"]},
            "gate.fairness.sensitive must name features or pass-through columns, not a key, time or target column: ['row_id']",
        ),
        ({"sensitive": ["outcome"]}, "not a key, time or target column: ['outcome']"),
    ],
)
def test_a_bad_fairness_block_is_refused_naming_the_field(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    _write_source(tmp_path)
    with pytest.raises(SpecError) as raised:
        _spec(tmp_path, **change)
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(tmp_path / "cohort.yaml"))
