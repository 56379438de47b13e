"""Fairness over time on real flights: what the monitor records and judges day by day, and what
it costs.

Two HistGradientBoosting models are trained on 2013-01-01..21 as in the gate's fairness test: a
fair one on the true labels, a biased one on labels where 20% of the EWR flights are marked
delayed whatever happened. Both score 2013-01-22..02-28, and for each labelled day from
2013-01-28 the monitor's :func:`~include.monitoring.fairness.fairness_entry` measures the day and
the window of the last 7 labelled days pooled (``--samples`` bootstrap samples) against the
limits of docs/fairness.md (equalized odds difference 0.20, demographic parity difference 0.15).
A third run is the fair model with one bad day: on 2013-02-20 EWR's scores are raised by 0.3.

    .venv/bin/python benchmarks/fairness_monitor.py [--samples 100] [--columns origin]

Printed: per model, the days judged and in breach, the window's equalized odds difference
(point and judged lower bound) at its smallest, median and largest; for the bad day, the day's
and the windows' figures around it; the median wall seconds of one ``fairness_entry`` call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date, timedelta
from typing import Any

NUMERIC = ["distance", "sched_hour", "day_of_week", "temp", "dewp", "humid", "wind_dir", "wind_speed", "precip"]
BAD_DAY = date(2013, 2, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--columns", nargs="+", default=["origin"])
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    from include.datasets.nycflights13 import build
    from include.monitoring.fairness import fairness_entry
    from include.spec import FairnessSpec

    frame = build()
    frame = frame[frame["arr_delay"].notna()].assign(y=lambda f: (f["arr_delay"] > 15).astype(int))
    frame["day"] = frame["sched_dep"].dt.date
    train = frame[(frame["day"] >= date(2013, 1, 1)) & (frame["day"] <= date(2013, 1, 21))]
    later = frame[(frame["day"] >= date(2013, 1, 22)) & (frame["day"] <= date(2013, 2, 28))].reset_index(drop=True)

    def matrix(rows: pd.DataFrame) -> pd.DataFrame:
        out = rows[NUMERIC].copy()
        for origin in ("EWR", "JFK", "LGA"):
            out[f"origin_{origin}"] = (rows["origin"] == origin).astype(float)
        return out

    biased = train["y"].to_numpy().copy()
    ewr = (train["origin"] == "EWR").to_numpy()
    biased[ewr & (np.random.default_rng(7).random(len(train)) < 0.2)] = 1
    scores = {
        name: HistGradientBoostingClassifier(max_iter=60, random_state=0)
        .fit(matrix(train), labels)
        .predict_proba(matrix(later))[:, 1]
        for name, labels in (("fair", train["y"]), ("biased", biased))
    }
    bad = ((later["day"] == BAD_DAY) & (later["origin"] == "EWR")).to_numpy()
    one_bad = np.clip(scores["fair"] + 0.3 * bad, 0.0, 1.0)
    scores["fair, one bad day"] = one_bad
    policy = FairnessSpec(
        sensitive=args.columns, equalized_odds_difference=0.2, demographic_parity_difference=0.15, window_days=7
    )
    days = [date(2013, 1, 28) + timedelta(days=i) for i in range((date(2013, 2, 28) - date(2013, 1, 28)).days + 1)]
    timings: list[float] = []
    for name, score in scores.items():
        rows = later.assign(score=score)
        results: list[tuple[date, dict[str, Any]]] = []
        for label_day in days:
            window = rows[(rows["day"] > label_day - timedelta(days=7)) & (rows["day"] <= label_day)]
            started = time.perf_counter()
            entry = fairness_entry(
                policy,
                rows[rows["day"] == label_day],
                window,
                sorted({d.isoformat() for d in window["day"]}),
                target="y",
                threshold=0.5,
                seed=42,
                window=7,
                label_day=label_day.isoformat(),
                version=1,
                n_boot=args.samples,
            )
            timings.append(time.perf_counter() - started)
            results.append((label_day, entry))
        _report(name, results, args.columns[0])
    print(f"fairness_entry (day + window, {args.samples} samples, columns {args.columns}): median "
          f"{statistics.median(timings[1:]):.2f} s, range {min(timings[1:]):.2f}-{max(timings[1:]):.2f} s "
          f"over {len(timings) - 1} calls")  # fmt: skip


def _eod(figures: dict[str, Any] | None, column: str) -> dict[str, Any]:
    found = [d for d in (figures or {}).get("disparities", []) if d["column"] == column]
    return next((d for d in found if d["name"] == "equalized_odds_difference"), {})


def _report(name: str, results: list[tuple[date, dict[str, Any]]], column: str) -> None:
    judged = [e for _, e in results if e["judged"]]
    breach = [d for d, e in results if e["breaches"]]
    lows = sorted((_eod(e["window"], column).get("lower") or float("nan"), d) for d, e in results)
    values = [(_eod(e["window"], column).get("value"), _eod(e["window"], column).get("lower")) for _, e in results]
    rows = statistics.median(e["window"]["rows"] for _, e in results)
    print(f"{name}: {len(judged)} of {len(results)} windows judged (median {rows:,.0f} rows), {len(breach)} in breach"
          + (f" ({breach[0]}..{breach[-1]})" if breach else ""))  # fmt: skip
    for day, entry in results:
        if entry["breaches"] and len(breach) <= 3:
            print(f"  {day}: " + "; ".join(f"{b['name']} {b['value']:.4f} [{b['lower']:.4f}, {b['upper']:.4f}] "
                                           f"({b['high_group']} vs {b['low_group']})" for b in entry["breaches"]))  # fmt: skip
    point = sorted(v for v, _ in values if v is not None)
    print(f"  window equalized odds difference on {column}: point {point[0]:.4f} / {statistics.median(point):.4f} / "
          f"{point[-1]:.4f}; judged lower bound {lows[0][0]:.4f} / {statistics.median(v for v, _ in lows):.4f} / "
          f"{lows[-1][0]:.4f} (min / median / max)")  # fmt: skip
    for day, entry in results:
        if day in (BAD_DAY - timedelta(days=1), BAD_DAY, BAD_DAY + timedelta(days=6), BAD_DAY + timedelta(days=7)):
            d, w = _eod(entry["day"], column), _eod(entry["window"], column)
            print(f"  {day}: day {d.get('value', float('nan')):.4f} [{d.get('lower', float('nan')):.4f}, "
                  f"{d.get('upper', float('nan')):.4f}], window {w['value']:.4f} [{w['lower']:.4f}, "
                  f"{w['upper']:.4f}], breaches {[b['name'] for b in entry['breaches']]}")  # fmt: skip


if __name__ == "__main__":
    main()
