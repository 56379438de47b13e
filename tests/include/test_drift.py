"""Drift numbers (PSI, KS, null rate, prediction drift, performance) and the Evidently HTML report."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import accuracy_score, average_precision_score, brier_score_loss, roc_auc_score

from include.monitoring.drift import (
    EPS,
    LEFT_CLOSED,
    OTHER,
    PREDICTION,
    RIGHT_CLOSED,
    ProfileError,
    build_reference,
    compute_drift,
    daily_auc,
    performance,
    performance_drop,
    psi,
)
from include.monitoring.report import evidently_report_html
from include.spec import DriftSpec

NUMERIC = ["distance", "temp", "hour", "wind"]
CATEGORICAL = ["carrier", "origin", "dest"]
DAILY_ROWS = 900
REFERENCE_ROWS = 20_000


def make_day(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Flight-like features: skewed, discrete, with nulls; Zipf-like categoricals; beta scores."""
    rng = np.random.default_rng(seed)
    temp = rng.normal(15, 8, n)
    temp[rng.random(n) < 0.03] = np.nan
    hours = np.arange(5, 24)
    hour_p = np.exp(-(((hours - 14) / 5) ** 2))
    dests = np.array([f"D{i:02d}" for i in range(40)], dtype=object)
    dest_p = 1 / np.arange(1, 41) ** 1.1
    carriers = np.array([f"C{i}" for i in range(12)], dtype=object)
    carrier_p = 1 / np.arange(1, 13)
    frame = pd.DataFrame(
        {
            "distance": rng.lognormal(6.5, 0.6, n),
            "temp": temp,
            "hour": rng.choice(hours, n, p=hour_p / hour_p.sum()).astype(float),
            "wind": rng.gamma(2, 5, n),
            "carrier": carriers[rng.choice(12, n, p=carrier_p / carrier_p.sum())],
            "origin": rng.choice(np.array(["EWR", "JFK", "LGA"], dtype=object), n, p=[0.4, 0.35, 0.25]),
            "dest": dests[rng.choice(40, n, p=dest_p / dest_p.sum())],
        }
    )
    return frame, rng.beta(2, 5, n)


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, np.ndarray, dict[str, object]]:
    frame, scores = make_day(REFERENCE_ROWS, seed=0)
    return frame, scores, build_reference(frame, NUMERIC, CATEGORICAL, scores=scores)


# --- PSI ----------------------------------------------------------------------------------------


def test_psi_plain_formula_and_counts() -> None:
    expected = [0.25, 0.25, 0.5]
    actual = [0.5, 0.25, 0.25]
    by_hand = (0.5 - 0.25) * math.log(0.5 / 0.25) + 0 + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert psi(expected, actual) == pytest.approx(by_hand, abs=1e-12)
    assert psi(expected, [200, 100, 100]) == pytest.approx(by_hand, abs=1e-12)  # counts are normalised
    assert psi(expected, expected) == 0.0
    batch = psi(np.array([expected, expected]), np.array([actual, expected]))
    assert batch == pytest.approx([by_hand, 0.0], abs=1e-12)


def test_psi_empty_bin_rule_is_eps_then_renormalise() -> None:
    expected = np.array([0.5, 0.5, 0.0])
    actual = np.array([0.5, 0.25, 0.25])
    e = np.array([0.5, 0.5, EPS]) / (1 + EPS)
    by_hand = float(np.sum((actual - e) * np.log(actual / e)))
    assert psi(expected, actual) == pytest.approx(by_hand, abs=1e-12)
    # Evidently's rule (no renormalisation) is available for comparisons.
    raw = float(np.sum((actual - [0.5, 0.5, EPS]) * np.log(actual / [0.5, 0.5, EPS])))
    assert psi(expected, actual, renormalize=False) == pytest.approx(raw, abs=1e-12)
    # A side without any mass has no PSI.
    assert math.isnan(psi(expected, [0, 0, 0]))


def _evidently_psi(reference: pd.Series, current: pd.Series, numerical: bool) -> float:
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Numerical if numerical else ColumnType.Categorical
    value, _ = _psi(reference, current, kind, 0.1)
    return float(value)


def test_psi_agrees_with_evidently_on_the_same_bins(reference: tuple[pd.DataFrame, np.ndarray, dict]) -> None:
    """Feed Evidently's psi stattest the bin index of each row: it then bins exactly like we do."""
    frame, _, profile = reference
    current, _ = make_day(5_000, seed=11)
    current["temp"] = current["temp"] * 1.3 + 2  # some real drift, so the values are not all ~0
    for column in ["distance", "temp", "hour", "wind"]:
        inner = np.asarray(profile["numeric"][column]["edges"][1:-1], dtype=float)
        ref_values = frame[column].dropna().to_numpy()
        cur_values = current[column].dropna().to_numpy()
        ref_bins = pd.Series(np.searchsorted(inner, ref_values, side="right"))
        cur_bins = pd.Series(np.searchsorted(inner, cur_values, side="right"))
        assert ref_bins.nunique() == cur_bins.nunique() == len(inner) + 1  # no empty bins here
        theirs = _evidently_psi(ref_bins, cur_bins, numerical=False)
        ours = psi(profile["numeric"][column]["fractions"], np.bincount(cur_bins, minlength=len(inner) + 1))
        assert abs(ours - theirs) < 1e-6, column
        drift = compute_drift(profile, current, NUMERIC, CATEGORICAL).feature(column)
        assert abs(drift.psi - theirs) < 1e-6, column
    # Categoricals: Evidently's categorical path on the raw values (all categories present).
    ref_origin, cur_origin = frame["origin"], current["origin"]
    theirs = _evidently_psi(ref_origin, cur_origin, numerical=False)
    ours = compute_drift(profile, current, NUMERIC, CATEGORICAL).feature("origin").psi
    assert abs(ours - theirs) < 1e-6


def test_psi_agrees_with_evidently_numeric_binning() -> None:
    """Evidently's own numeric path (Sturges bins over reference+current) with our formula on its bins."""
    rng = np.random.default_rng(3)
    ref = pd.Series(rng.normal(0, 1, 5_000))
    cur = pd.Series(rng.normal(0.3, 1.2, 5_000))
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    ref_counts = np.histogram(ref, edges)[0]
    cur_counts = np.histogram(cur, edges)[0]
    theirs = _evidently_psi(ref, cur, numerical=True)
    assert theirs > 0.1  # a real shift, not a comparison of zeros
    # Evidently fills empty bins with 1e-4 without renormalising (smallest fraction here is >= 2e-4).
    assert (ref_counts == 0).any()  # the reference misses the current's right tail
    assert abs(psi(ref_counts, cur_counts, renormalize=False) - theirs) < 1e-6


def test_psi_with_empty_bins_matches_evidently_without_renormalisation() -> None:
    ref = pd.Series(np.repeat([0, 1, 2, 3], [400, 300, 200, 100]))
    cur = pd.Series(np.repeat([0, 1, 2], [500, 300, 200]))  # bin 3 empty today
    theirs = _evidently_psi(ref, cur, numerical=False)
    ref_f = np.bincount(ref, minlength=4) / len(ref)
    cur_c = np.bincount(cur, minlength=4)
    assert abs(psi(ref_f, cur_c, renormalize=False) - theirs) < 1e-9
    # The documented default (renormalised) differs only in the eps mass: well below any threshold.
    assert abs(psi(ref_f, cur_c) - theirs) < 1e-3


# --- Reference profile ---------------------------------------------------------------------------


def test_build_reference_shape(reference: tuple[pd.DataFrame, np.ndarray, dict]) -> None:
    frame, _, profile = reference
    assert profile["n_rows"] == REFERENCE_ROWS
    for column in NUMERIC:
        entry = profile["numeric"][column]
        assert entry["edges"][0] == -math.inf and entry["edges"][-1] == math.inf
        assert len(entry["fractions"]) == len(entry["edges"]) - 1
        assert sum(entry["fractions"]) == pytest.approx(1.0)
        assert np.all(np.diff(entry["edges"]) > 0)
        assert len(entry["sample"]) == 2000 and entry["sample"] == sorted(entry["sample"])
        assert {"null_rate", "mean", "std"} <= set(entry)
    temp = profile["numeric"]["temp"]
    assert len(temp["edges"]) == 11 and all(f == pytest.approx(0.1, abs=1e-3) for f in temp["fractions"])
    assert temp["null_rate"] == pytest.approx(frame["temp"].isna().mean())
    hour = profile["numeric"]["hour"]  # integer hours: edges on values, so the bins are unequal
    assert all(float(e).is_integer() for e in hour["edges"][1:-1])
    assert max(hour["fractions"]) > 0.15
    dest = profile["categorical"]["dest"]
    assert sum(dest["frequencies"].values()) == pytest.approx(1.0)
    assert OTHER in dest["frequencies"] and dest["null_rate"] == 0.0
    assert set(profile["scores"]) == {"edges", "fractions", "sample"}
    json.dumps(profile)  # JSON-able (with Infinity for the outer edges)


def test_build_reference_pools_rare_categories() -> None:
    frame = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5 + [None] * 10})
    profile = build_reference(frame, [], ["c"], max_categories=2)
    entry = profile["categorical"]["c"]
    assert entry["frequencies"] == {"a": 0.5, "b": 0.3, OTHER: pytest.approx(0.2)}
    assert entry["other_categories"] == ["c", "d"] and entry["null_rate"] == pytest.approx(10 / 110)
    # "c" is known (pooled), "e" is new.
    today = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + ["e"] * 10})
    drift = compute_drift(profile, today, [], ["c"], spec_drift=DriftSpec(min_rows=1)).feature("c")
    assert drift.new_categories == ("e",) and drift.unseen_fraction == pytest.approx(0.1)


def test_bins_are_left_closed_and_consistent_on_discrete_values() -> None:
    frame = pd.DataFrame({"x": np.repeat(np.arange(10.0), 100)})
    profile = build_reference(frame, ["x"], [], bins=5)
    entry = profile["numeric"]["x"]
    assert profile["bin_rule"] == LEFT_CLOSED
    assert entry["edges"][1:-1] == pytest.approx([1.8, 3.6, 5.4, 7.2])  # linear quantiles 0.2..0.8
    assert entry["fractions"] == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.2])
    same = compute_drift(profile, frame.sample(frac=1.0, random_state=1), ["x"], [], spec_drift=DriftSpec(min_rows=1))
    assert same.feature("x").psi == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("rule", "counts"),
    [pytest.param(LEFT_CLOSED, [1, 3], id="left-closed"), pytest.param(RIGHT_CLOSED, [4, 0], id="right-closed")],
)
def test_values_on_an_edge_follow_the_profile_bin_rule(rule: str, counts: list[int]) -> None:
    """Discrete features put many values exactly on an edge: the profile's rule decides their bin."""
    profile = {"bin_rule": rule, "numeric": {"x": {"edges": [-math.inf, 2.0, math.inf], "fractions": [0.5, 0.5]}}}
    today = pd.DataFrame({"x": [2.0, 2.0, 2.0, 1.0]})
    drift = compute_drift(profile, today, ["x"], [], spec_drift=DriftSpec(min_rows=1))
    assert drift.feature("x").psi == pytest.approx(psi([0.5, 0.5], counts), abs=1e-12)
    with pytest.raises(ProfileError, match="unknown bin_rule"):
        compute_drift({**profile, "bin_rule": "x in bin"}, today, ["x"], [])


def test_reads_the_training_profile_layout() -> None:
    """``include.training.profile`` writes ``score`` (not ``scores``) and no numeric ``sample``."""
    frame, scores = make_day(5_000, seed=30)
    ours = build_reference(frame, NUMERIC, CATEGORICAL, scores=scores)
    theirs = {
        "n_rows": ours["n_rows"],
        "bin_rule": LEFT_CLOSED,
        "numeric": {c: {k: v for k, v in e.items() if k != "sample"} for c, e in ours["numeric"].items()},
        "categorical": {c: {"frequencies": e["frequencies"], "null_rate": e["null_rate"]}
                        for c, e in ours["categorical"].items()},
        "score": ours["scores"],
    }  # fmt: skip
    today, today_scores = make_day(DAILY_ROWS, seed=31)
    a = compute_drift(ours, today, NUMERIC, CATEGORICAL, scores=today_scores)
    b = compute_drift(theirs, today, NUMERIC, CATEGORICAL, scores=today_scores)
    assert [f.psi for f in a.features] == [f.psi for f in b.features]
    assert a.prediction == b.prediction and b.prediction is not None
    assert math.isnan(b.feature("temp").ks_statistic) and not math.isnan(a.feature("temp").ks_statistic)


@pytest.mark.parametrize(
    ("entry", "other", "unseen"),
    [
        # include.training.profile: __other__ = 1 - sum(listed) can be a rounding crumb above 0.
        pytest.param({"n_categories": 3}, 1e-17, True, id="n_categories-shows-nothing-pooled"),
        pytest.param({"n_categories": 9}, 0.05, False, id="pooled-names-unknown"),
        pytest.param({"other_categories": ["d"]}, 0.05, True, id="pooled-names-listed"),
        pytest.param({}, 0.0, True, id="nothing-pooled"),
    ],
)
def test_new_category_vs_pooled_rare_ones(entry: dict[str, object], other: float, unseen: bool) -> None:
    frequencies = {"a": 0.5, "b": 0.3, "c": 0.2 - other, OTHER: other}
    profile = {"categorical": {"c": {"frequencies": frequencies, "null_rate": 0.0, **entry}}}
    today = pd.DataFrame({"c": ["a"] * 45 + ["b"] * 30 + ["c"] * 15 + ["new"] * 10})
    drift = compute_drift(profile, today, [], ["c"], spec_drift=DriftSpec(min_rows=1)).feature("c")
    assert drift.new_categories == (("new",) if unseen else ())
    assert drift.status == ("alert" if unseen else "ok")  # 10% new vs 5% pooled: no alarm without the names


# --- Drift detection ----------------------------------------------------------------------------


def _shifted(kind: str) -> tuple[pd.DataFrame, np.ndarray]:
    frame, scores = make_day(DAILY_ROWS, seed=7)
    rng = np.random.default_rng(5)
    if kind == "mean_shift":
        frame["temp"] = frame["temp"] + 8  # one standard deviation
    elif kind == "variance_change":
        frame["temp"] = 15 + (frame["temp"] - 15) * 2
    elif kind == "new_category":
        frame["dest"] = np.where(rng.random(len(frame)) < 0.1, "ZZZ", frame["dest"])
    elif kind == "null_spike":
        frame["wind"] = np.where(rng.random(len(frame)) < 0.3, np.nan, frame["wind"])
    elif kind == "prediction_drift":
        scores = rng.beta(3, 4, len(frame))
    return frame, scores


@pytest.mark.parametrize(
    ("kind", "feature"),
    [
        pytest.param("mean_shift", "temp", id="mean-shift"),
        pytest.param("variance_change", "temp", id="variance-change"),
        pytest.param("new_category", "dest", id="new-category"),
        pytest.param("null_spike", "wind", id="null-spike"),
        pytest.param("prediction_drift", PREDICTION, id="prediction-drift"),
    ],
)
def test_synthetic_shift_is_flagged_on_the_right_feature(
    reference: tuple[pd.DataFrame, np.ndarray, dict], kind: str, feature: str
) -> None:
    _, _, profile = reference
    frame, scores = _shifted(kind)
    report = compute_drift(profile, frame, NUMERIC, CATEGORICAL, scores=scores)
    assert report.status == "alert"
    alerted = [f.name for f in report.features if f.status == "alert"]
    if feature == PREDICTION:
        assert report.prediction is not None and report.prediction.status == "alert"
        assert report.prediction.psi > 0.25 and alerted == []
    else:
        assert alerted == [feature] and report.top_features[0] == feature
        assert report.feature(feature).reasons
    assert report.day("flights", "2024-01-05").top_features[0] == feature
    if kind == "new_category":
        dest = report.feature("dest")
        assert dest.new_categories == ("ZZZ",) and dest.unseen_fraction == pytest.approx(0.1, abs=0.02)
    if kind == "null_spike":
        wind = report.feature("wind")
        assert wind.psi < 0.1  # the non-null values did not move: PSI alone (like Evidently) misses it
        assert wind.null_rate_change == pytest.approx(0.3, abs=0.05)


def test_ignored_features_are_reported_but_not_judged(reference: tuple[pd.DataFrame, np.ndarray, dict]) -> None:
    _, _, profile = reference
    frame, scores = make_day(DAILY_ROWS, seed=7)
    frame["temp"] = frame["temp"] + 40.0  # one day's weather: far outside the reference
    judged = compute_drift(profile, frame, NUMERIC, CATEGORICAL, scores=scores)
    assert judged.status == "alert" and judged.top_features[0] == "temp"
    ignoring = compute_drift(profile, frame, NUMERIC, CATEGORICAL, scores=scores, spec_drift=DriftSpec(ignore=["temp"]))
    assert ignoring.feature("temp").status == "alert"  # still measured and reported
    assert ignoring.feature("temp").psi == judged.feature("temp").psi > 0.25
    assert ignoring.status == "ok" and "temp" not in ignoring.top_features
    assert ignoring.score == max(f.psi for f in ignoring.features if f.name != "temp") < 0.1


def test_a_reference_most_of_the_day_has_never_seen_is_suspect_not_drift(
    reference: tuple[pd.DataFrame, np.ndarray, dict],
) -> None:
    _, _, profile = reference
    frame, scores = make_day(DAILY_ROWS, seed=11)
    frame["origin"] = np.where(np.arange(DAILY_ROWS) < 0.8 * DAILY_ROWS, "SWF", frame["origin"])  # 80% unseen
    report = compute_drift(profile, frame, NUMERIC, CATEGORICAL, scores=scores)
    origin = report.feature("origin")
    assert origin.unseen_fraction == pytest.approx(0.8) and origin.psi > 5 and origin.status == "alert"
    assert report.reference_suspect is True
    assert report.reference_note.startswith("reference suspect")
    assert "80% of today's origin values (900 rows)" in report.reference_note and "SWF" in report.reference_note
    assert report.status == "ok" and "origin" not in report.top_features  # reported, not judged
    assert report.score == max(f.psi for f in report.features if f.name != "origin") < 0.1
    assert report.to_dict()["reference_suspect"] is True and report.to_dict()["reference_note"] == report.reference_note
    # A new category on 40% of the day is drift the reference can judge: no suspicion, an alert.
    frame["origin"] = np.where(
        np.arange(DAILY_ROWS) < 0.4 * DAILY_ROWS, "SWF", make_day(DAILY_ROWS, seed=11)[0]["origin"]
    )
    partial = compute_drift(profile, frame, NUMERIC, CATEGORICAL, scores=scores)
    assert partial.reference_suspect is False and partial.reference_note == ""
    assert partial.status == "alert" and partial.top_features[0] == "origin"


def test_build_reference_samples_long_windows_with_scores_aligned() -> None:
    frame, scores = make_day(5_000, seed=3)
    profile = build_reference(frame, NUMERIC, CATEGORICAL, scores=frame["distance"].to_numpy(), max_rows=1_000, seed=4)
    assert profile["n_rows"] == 1_000
    # The scores were sampled with the same rows: profiled like distance, they bin identically.
    assert profile["scores"]["edges"] == profile["numeric"]["distance"]["edges"]
    assert profile["scores"]["fractions"] == profile["numeric"]["distance"]["fractions"]
    again = build_reference(frame, NUMERIC, CATEGORICAL, scores=frame["distance"].to_numpy(), max_rows=1_000, seed=4)
    assert json.dumps(again) == json.dumps(profile)
    whole = build_reference(frame, NUMERIC, CATEGORICAL, scores=scores)
    assert whole["n_rows"] == 5_000  # under the default cap: every row
    assert profile["categorical"]["origin"]["frequencies"]["EWR"] == pytest.approx(0.4, abs=0.05)


def test_sample_rows_is_uniform_over_the_stream_bounded_and_seeded() -> None:
    from include.sampling import sample_rows

    first = pd.DataFrame({"part": 0, "i": np.arange(1_000)})
    second = pd.DataFrame({"part": 1, "i": np.arange(3_000)})
    sample = sample_rows(iter([first, second]), max_rows=400, seed=9)
    assert len(sample) == 400 and list(sample.columns) == ["part", "i"]
    assert (sample["part"] == 1).mean() == pytest.approx(0.75, abs=0.06)  # proportional to rows, not to parts
    assert sample.equals(sample_rows([first, second], max_rows=400, seed=9))
    assert not sample.equals(sample_rows([first, second], max_rows=400, seed=10))
    ordered = sample[["part", "i"]].to_numpy().tolist()
    assert ordered == sorted(ordered)  # stream order kept
    assert sample_rows([first, second], max_rows=10_000).shape == (4_000, 2)
    with pytest.raises(ValueError, match="no frames"):
        sample_rows([], max_rows=10)


def test_resamples_of_the_same_distribution_raise_no_alarm(reference: tuple[pd.DataFrame, np.ndarray, dict]) -> None:
    """False-alarm rate at default thresholds: <= 1% of 200 daily-sized resamples (seeded)."""
    _, _, profile = reference
    alarms = warns = 0
    for i in range(200):
        frame, scores = make_day(DAILY_ROWS, seed=1000 + i)
        report = compute_drift(profile, frame, NUMERIC, CATEGORICAL, scores=scores)
        alarms += report.status == "alert"
        warns += report.status == "warn"
    assert alarms <= 2
    assert warns <= 10


def test_ks_is_scipys_and_is_not_decided_on(reference: tuple[pd.DataFrame, np.ndarray, dict]) -> None:
    _, _, profile = reference
    frame, _ = make_day(DAILY_ROWS, seed=3)
    drift = compute_drift(profile, frame, NUMERIC, CATEGORICAL).feature("distance")
    expected = ks_2samp(profile["numeric"]["distance"]["sample"], frame["distance"], method="asymp")
    assert drift.ks_statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert drift.ks_pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    # Big N, trivial shift: the KS p-value is tiny but PSI (what we decide on) stays quiet.
    big, _ = make_day(200_000, seed=4)
    big["temp"] = big["temp"] + 0.15 * 8
    temp = compute_drift(profile, big, NUMERIC, CATEGORICAL).feature("temp")
    assert temp.ks_pvalue < 1e-3 and temp.psi < 0.1 and temp.status == "ok"


def test_degenerate_inputs_never_crash_and_never_alarm(reference: tuple[pd.DataFrame, np.ndarray, dict]) -> None:
    _, _, profile = reference
    frame, scores = make_day(DAILY_ROWS, seed=5)
    empty = compute_drift(profile, frame.iloc[:0], NUMERIC, CATEGORICAL, scores=scores[:0])
    assert empty.status == "insufficient_data" and empty.n_rows == 0
    json.dumps(empty.to_dict(), allow_nan=False)
    small = compute_drift(profile, _shifted("mean_shift")[0].iloc[:10], NUMERIC, CATEGORICAL)
    assert small.status == "insufficient_data" and small.feature("temp").status == "insufficient_data"
    # An all-null column and a missing column are null-rate alerts, not crashes.
    broken = frame.assign(wind=np.nan).drop(columns=["carrier"])
    report = compute_drift(profile, broken, NUMERIC, CATEGORICAL, scores=scores)
    assert report.feature("wind").status == "alert" and math.isnan(report.feature("wind").psi)
    assert report.feature("carrier").status == "alert" and report.feature("carrier").null_rate_current == 1.0
    # Nullable and categorical dtypes read the same as float64/object.
    typed = frame.astype({"temp": "Float64", "carrier": "category", "origin": "string"})
    plain = compute_drift(profile, frame, NUMERIC, CATEGORICAL).to_dict()
    assert compute_drift(profile, typed, NUMERIC, CATEGORICAL).to_dict() == plain
    with pytest.raises(ProfileError, match="no numeric entry for feature 'altitude'"):
        compute_drift(profile, frame, [*NUMERIC, "altitude"], CATEGORICAL)


def test_report_to_dict_is_json(reference: tuple[pd.DataFrame, np.ndarray, dict]) -> None:
    _, _, profile = reference
    frame, scores = _shifted("mean_shift")
    labels = (np.random.default_rng(1).random(len(scores)) < scores).astype(int)
    report = compute_drift(profile, frame, NUMERIC, CATEGORICAL, scores=scores, labels=labels, reference_auc=0.7)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["status"] == "alert" and data["top_features"] == ["temp"]
    assert data["score"] == pytest.approx(report.feature("temp").psi)
    assert set(data["features"]) == {*NUMERIC, *CATEGORICAL}
    assert {"psi", "ks_statistic", "ks_pvalue", "null_rate_change", "status"} <= set(data["features"]["temp"])
    assert data["performance"]["n"] == DAILY_ROWS and data["performance_drop"]["n_boot"] == 200


# --- Performance --------------------------------------------------------------------------------


def test_performance_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(2)
    labels = rng.random(3_000) < 0.3
    scores = np.round(np.clip(0.3 + 0.25 * labels + rng.normal(0, 0.2, labels.size), 0, 1), 2)  # many ties
    result = performance(scores, labels, threshold=0.4)
    assert result.roc_auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert result.pr_auc == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert result.brier == pytest.approx(brier_score_loss(labels, scores), abs=1e-12)
    assert result.accuracy == pytest.approx(accuracy_score(labels, scores >= 0.4), abs=1e-12)
    assert result.n == 3_000 and result.positives == int(labels.sum())
    one_class = performance([0.2, 0.4], [1, 1])
    assert math.isnan(one_class.roc_auc) and one_class.accuracy == 0.0


def test_performance_drop_bootstrap() -> None:
    rng = np.random.default_rng(8)
    labels = rng.random(4_000) < 0.3
    good = 1 / (1 + np.exp(-(2.0 * labels - 1 + rng.normal(0, 1, labels.size))))
    reference_auc = roc_auc_score(labels, good)
    same = performance_drop(reference_auc, good, labels, n_boot=200, seed=1)
    assert same.ci_low < reference_auc < same.ci_high and not same.significant
    assert same.current_auc == pytest.approx(reference_auc)
    assert performance_drop(reference_auc, good, labels, n_boot=200, seed=1) == same  # seeded
    # The bootstrap standard error agrees with the Hanley-McNeil approximation within 25%.
    q1, q2 = reference_auc / (2 - reference_auc), 2 * reference_auc**2 / (1 + reference_auc)
    p, n = labels.sum(), (~labels).sum()
    se = math.sqrt(
        (reference_auc * (1 - reference_auc) + (p - 1) * (q1 - reference_auc**2) + (n - 1) * (q2 - reference_auc**2))
        / (p * n)
    )
    assert (same.ci_high - same.ci_low) / (2 * 1.96) == pytest.approx(se, rel=0.25)
    worse = 1 / (1 + np.exp(-(0.8 * labels - 0.4 + rng.normal(0, 1, labels.size))))
    drop = performance_drop(reference_auc, worse, labels, n_boot=200, seed=1)
    assert drop.significant and drop.drop > 0.1
    low, high = drop.drop_ci
    assert low <= drop.drop <= high and low > 0


def _day(auc: float, rows: int = 900, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """One day's labels and scores whose ROC AUC is near ``auc`` (binormal: Phi(mu / sqrt(2)))."""
    from statistics import NormalDist

    rng = np.random.default_rng(seed)
    labels = rng.random(rows) < 0.2
    scores = rng.normal(0.0, 1.0, rows) + labels * math.sqrt(2.0) * NormalDist().inv_cdf(auc)
    return scores, labels


def test_a_day_within_the_references_day_to_day_spread_is_no_drop() -> None:
    """A day 0.05 under a reference whose days spread by 0.03 (flights: +-0.02..0.05 by weather):
    the row bootstrap alone calls it a drop, the day-to-day spread says it is an ordinary day."""
    scores, labels = _day(0.60)
    current = roc_auc_score(labels, scores)
    reference = current + 0.05
    rows_only = performance_drop(reference, scores, labels, n_boot=200, seed=1)
    assert rows_only.significant and rows_only.drop_ci[0] > 0.0  # the rule before the spread
    day = performance_drop(reference, scores, labels, n_boot=200, seed=1, day_sd=0.03, reference_days=7)
    assert (day.ci_low, day.ci_high) == (rows_only.ci_low, rows_only.ci_high)  # the same bootstrap
    assert day.z == pytest.approx(1.959964, abs=1e-6)
    se_rows = (day.ci_high - day.ci_low) / (2 * day.z)
    se = math.sqrt(se_rows**2 + 0.03**2 * (1 + 1 / 7))
    assert day.drop_se == pytest.approx(se, abs=1e-12)
    assert day.drop_ci == (pytest.approx(0.05 - day.z * se, abs=1e-12), pytest.approx(0.05 + day.z * se, abs=1e-12))
    assert 0.07 < day.z * se < 0.09 and day.drop_ci[0] < 0.0 and not day.significant
    data = day.to_dict()
    assert (data["day_sd"], data["reference_days"], data["significant"]) == (0.03, 7, False)
    assert data["drop_ci_low"] == pytest.approx(0.05 - day.z * se, abs=1e-12)


def test_a_real_break_is_a_drop_whatever_the_spread() -> None:
    scores, labels = _day(0.30)
    assert roc_auc_score(labels, scores) == pytest.approx(0.30, abs=0.03)
    drop = performance_drop(0.65, scores, labels, n_boot=200, seed=1, day_sd=0.03, reference_days=7)
    low, high = drop.drop_ci
    assert drop.significant and 0.25 < low < drop.drop < high and drop.drop == pytest.approx(0.35, abs=0.03)
    # a reference spread wide enough to hold the break (sd 0.2) holds it
    assert not performance_drop(0.65, scores, labels, n_boot=200, seed=1, day_sd=0.2, reference_days=7).significant


def test_without_a_spread_the_drop_is_judged_on_the_rows_alone() -> None:
    """Versions trained before ``roc_auc_daily_sd`` existed, or with one holdout day."""
    scores, labels = _day(0.60)
    reference = roc_auc_score(labels, scores) + 0.05
    old = performance_drop(reference, scores, labels, n_boot=200, seed=1)
    assert old.drop_ci == (reference - old.ci_high, reference - old.ci_low)
    assert old.drop_se == pytest.approx((old.ci_high - old.ci_low) / (2 * old.z), abs=1e-12)
    assert old.to_dict()["day_sd"] is None and old.to_dict()["reference_days"] is None
    for day_sd, days in ((None, 7), (0.03, None), (0.03, 1), (math.nan, 7)):
        same = performance_drop(reference, scores, labels, n_boot=200, seed=1, day_sd=day_sd, reference_days=days)
        assert same.drop_ci == old.drop_ci and same.significant is old.significant is True
    empty = performance_drop(0.65, [], [], day_sd=0.03, reference_days=7)
    assert math.isnan(empty.drop_ci[0]) and not empty.significant


# --- Evidently HTML report ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    ref, _ = make_day(6_000, seed=20)
    cur, _ = make_day(1_500, seed=21)
    cur["temp"] = cur["temp"] + 5
    return ref, cur


def test_evidently_report_renders_normal_data(report_frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = report_frames
    page = evidently_report_html(ref, cur, NUMERIC, CATEGORICAL, max_rows=2_000, logical_date="2024-01-05")
    assert page.lstrip().startswith("<!DOCTYPE html>") and "</html>" in page[-200:].lower()
    assert "airloop note" in page and "2000 of 6000 reference rows" in page
    # Self-contained: every script is inline, no external stylesheet/script/image tags.
    assert not re.search(r"<(script|link|img)\b[^>]*\b(src|href)=", page)
    assert all(column in page for column in NUMERIC + CATEGORICAL)


def test_evidently_report_survives_all_nan_column_and_one_row(
    report_frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    ref, cur = report_frames
    page = evidently_report_html(
        ref, cur.assign(wind=np.nan, origin=None), NUMERIC, CATEGORICAL, max_rows=1_000, logical_date="2024-01-06"
    )
    assert "Left out" in page and "wind, origin" in page
    one_row = evidently_report_html(ref, cur.iloc[:1], NUMERIC, CATEGORICAL, logical_date="2024-01-07")
    assert "Insufficient data" in one_row and len(one_row) < 5_000
    nothing = evidently_report_html(ref, cur.assign(**{c: np.nan for c in NUMERIC + CATEGORICAL}), NUMERIC,
                                    CATEGORICAL, logical_date="2024-01-08")  # fmt: skip
    assert "No column can be compared" in nothing


def test_daily_auc_is_the_mean_of_the_days_not_the_pooled_auc() -> None:
    """A model that ranks a stormy day (everything late, high scores) above a calm day scores a
    high pooled AUC that no single day shows: a monitored day must be compared with a day."""
    rng = np.random.default_rng(7)
    days, scores, labels = [], [], []
    for day, (rate, shift) in enumerate([(0.8, 0.5), (0.2, 0.0), (0.5, 0.25)]):
        y = (rng.random(400) < rate).astype(int)
        s = shift + 0.1 * y + 0.3 * rng.random(400)
        days += [f"2013-03-0{day + 1}"] * 400
        scores.append(s)
        labels.append(y)
    s, y, d = np.concatenate(scores), np.concatenate(labels), np.asarray(days)
    per_day = [roc_auc_score(y[d == day], s[d == day]) for day in np.unique(d)]
    mean, n, sd = daily_auc(s, y, d) or (math.nan, 0, math.nan)
    assert n == 3 and mean == pytest.approx(float(np.mean(per_day)), abs=1e-12)
    assert sd == pytest.approx(float(np.std(per_day, ddof=1)), abs=1e-12) and sd > 0.0  # the days' spread
    assert roc_auc_score(y, s) > mean + 0.05  # the pooled figure credits ranking across days
    # a day with one class or under min_rows is left out; none left: None
    one_class = np.where(d == "2013-03-01", 1, y)
    expected = (pytest.approx(float(np.mean(per_day[1:]))), 2, pytest.approx(float(np.std(per_day[1:], ddof=1))))
    assert daily_auc(s, one_class, d) == expected
    single = daily_auc(s[d == "2013-03-02"], y[d == "2013-03-02"], d[d == "2013-03-02"])
    assert single is not None and single.days == 1 and math.isnan(single.sd)  # one day: no spread
    assert daily_auc(s, y, d, min_rows=401) is None
    with pytest.raises(ValueError, match=r"scores \(1200\), labels \(1200\) and days \(3\) differ in length"):
        daily_auc(s, y, d[:3])
