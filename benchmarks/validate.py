"""Contract validation cost: the GX path against the same checks written directly in pandas.

Two partitions of the demo spec: one real day (2013-01-03, 914 rows) and 1M rows resampled from
it (unique keys, same day). Each measurement runs in a fresh interpreter that imports
everything, warms up on 10 rows, then reads the Parquet file and validates it, and reports its
own peak RSS (``VmHWM`` from ``/proc/self/status``) and its RSS just before the timed work. Engines:

- ``gx``: :func:`include.quality.validate.validate_partition` as shipped (BOOLEAN_ONLY for all
  rules, BASIC again for failed ones, no batch fingerprint, consolidated frame);
- ``gx-summary``: the same suite in one pass with GX's default SUMMARY result format and GX's
  batch fingerprint on (GX as it comes);
- ``pandas``: the same rules (``rules_for``) checked with plain pandas in this file.

Every engine must reach the same verdict per rule (checked). Prints a table, the median of
``--runs`` runs, and the GX/pandas ratios.

    .venv/bin/python benchmarks/validate.py [--runs 3] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DS = date(2013, 1, 3)
ENGINES = ("gx", "gx-summary", "pandas")


# ----------------------------------------------------------------------------------- pandas
def check_with_pandas(spec: Any, frame: Any, ds: date) -> dict[str, bool]:
    """The contract's rules (same list as the GX path) as direct pandas checks: rule -> passed."""
    import pandas as pd

    from include.quality.contract import partition_window, rules_for

    verdicts: dict[str, bool] = {}
    columns = set(frame.columns)
    start, end = (pd.Timestamp(t) for t in partition_window(ds))
    for rule in rules_for(spec, ds):
        expected = rule.expected
        if any(c not in columns for c in rule.columns):
            verdicts[rule.name] = False
            continue
        series = frame[rule.column] if rule.column else None
        if rule.kind == "row_count":
            ok = len(frame) >= expected["min"] and (expected["max"] is None or len(frame) <= expected["max"])
        elif rule.kind == "columns:required":
            ok = set(expected["columns"]) <= columns
        elif rule.kind == "columns:extra":
            ok = columns <= set(expected["allowed"])
        elif rule.kind == "unique":
            keys = frame[list(rule.columns)].dropna()
            ok = not keys.duplicated(keep=False).any()
        elif rule.kind in ("not_null", "null_rate"):
            ok = len(frame) == 0 or float(series.isna().mean()) <= expected["max_null_rate"]
        elif rule.kind == "dtype":
            kind = expected["dtype"]
            if kind == "datetime":
                ok = pd.api.types.is_datetime64_any_dtype(series)
            elif kind == "numeric":
                inferred = pd.api.types.infer_dtype(series, skipna=True)
                ok = inferred in ("floating", "integer", "mixed-integer-float", "empty")
            else:
                ok = pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")
        elif rule.kind == "range":
            values = series.dropna()
            low, high = expected["min"], expected["max"]
            outside = (values < low) if low is not None else pd.Series(False, index=values.index)
            if high is not None:
                outside |= values > high
            ok = not outside.any()
        elif rule.kind == "in_set":
            ok = bool(series.dropna().isin(expected["values"]).all())
        elif rule.kind == "time_in_partition":
            times = series.dropna()
            ok = bool(((times >= start) & (times < end)).all())
        else:
            raise ValueError(rule.kind)
        verdicts[rule.name] = bool(ok)
    return verdicts


# ----------------------------------------------------------------------------------- child
def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(engine: str, path: str) -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    started = time.perf_counter()
    import pyarrow.parquet as pq

    import include.quality.validate as validate
    from include.spec import get_spec

    spec = benchmark_spec(get_spec("flights"))
    gx_import = 0.0
    if engine != "pandas":
        t0 = time.perf_counter()
        import great_expectations  # noqa: F401

        gx_import = time.perf_counter() - t0
        if engine == "gx-summary":
            validate.RESULT_MODE = "SUMMARY"
            validate.SKIP_GX_FINGERPRINT = False
    imported = time.perf_counter() - started
    # warm up on 10 rows: lazy imports and registries inside GX and pandas are not the workload
    warm = next(pq.ParquetFile(path).iter_batches(batch_size=10)).to_pandas()
    if engine == "pandas":
        check_with_pandas(spec, warm, DS)
    else:
        validate.validate_partition(spec, warm, DS)
    del warm
    rss_before = _rss_mb("VmRSS")

    t0 = time.perf_counter()
    if engine == "pandas":
        frame = pq.read_table(path).to_pandas()
        t1 = time.perf_counter()
        verdicts = check_with_pandas(spec, frame, DS)
        rows = len(frame)
    else:
        result = validate.validate_partition(spec, path, DS)  # reads the file itself
        t1 = t0 + result.timings["read_s"]
        verdicts = {o.rule: o.success for o in result.outcomes if o.rule != "readable"}
        rows = result.rows
    t2 = time.perf_counter()
    print(
        json.dumps(
            {
                "rows": rows,
                "import_s": imported,
                "gx_import_s": gx_import,
                "read_s": t1 - t0,
                "check_s": t2 - t1,
                "total_s": t2 - t0,
                "rss_before_mb": rss_before,
                "hwm_mb": _rss_mb("VmHWM"),
                "verdicts": verdicts,
            }
        )
    )


def benchmark_spec(spec: Any) -> Any:
    """The shipped flights contract without a row ceiling (the 1M partition is synthetic)."""
    return spec.model_copy(update={"contract": spec.contract.model_copy(update={"max_rows": None})})


# ----------------------------------------------------------------------------------- parent
def prepare(folder: Path, rows: int) -> dict[str, Path]:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.datasets.ingest import landing_columns
    from include.datasets.source import read_day
    from include.spec import get_spec

    spec = get_spec("flights")
    day = read_day(spec, DS, columns=landing_columns(spec))
    paths = {"demo day": folder / "day.parquet", f"{rows:,} rows": folder / "big.parquet"}
    pq.write_table(day, paths["demo day"], compression="zstd")
    frame = day.to_pandas()
    rng = np.random.default_rng(42)
    big = frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)
    big["flight_id"] = big["flight_id"] + "-" + pd.Series(np.arange(rows)).astype(str)
    pq.write_table(pa.Table.from_pandas(big, preserve_index=False), paths[f"{rows:,} rows"], compression="zstd")
    return paths


def run_child(engine: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", engine, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "GX_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{engine} {path.name} failed:\n{out.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    data["peak_rss_mb"] = data["hwm_mb"]  # the child's own VmHWM: its peak resident set
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    print(f"# validate benchmark, {datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, median of {args.runs}")
    with tempfile.TemporaryDirectory(prefix="airloop-bench-") as tmp:
        paths = prepare(Path(tmp), args.rows)
        results: dict[tuple[str, str], dict[str, Any]] = {}
        for case, path in paths.items():
            for engine in ENGINES:
                samples = [run_child(engine, path) for _ in range(args.runs)]
                merged = {k: statistics.median(s[k] for s in samples) for k in samples[0] if k != "verdicts"}
                merged["verdicts"] = samples[0]["verdicts"]
                results[(case, engine)] = merged
    header = f"{'partition':<16}{'engine':<12}{'rows':>10}{'read s':>8}{'check s':>9}{'total s':>9}{'RSS before MB':>15}{'peak RSS MB':>13}"
    print(header)
    print("-" * len(header))
    for (case, engine), r in results.items():
        print(
            f"{case:<16}{engine:<12}{int(r['rows']):>10,}{r['read_s']:>8.3f}{r['check_s']:>9.3f}{r['total_s']:>9.3f}"
            f"{r['rss_before_mb']:>15.0f}{r['peak_rss_mb']:>13.0f}"
        )
    print()
    for case in paths:
        pandas = results[(case, "pandas")]
        for engine in ("gx", "gx-summary"):
            gx = results[(case, engine)]
            same = gx["verdicts"] == pandas["verdicts"]
            print(
                f"{case}: {engine}/pandas check time {gx['check_s'] / pandas['check_s']:.1f}x, "
                f"total {gx['total_s'] / pandas['total_s']:.1f}x, peak RSS {gx['peak_rss_mb'] / pandas['peak_rss_mb']:.1f}x, "
                f"extra peak over its own baseline {gx['peak_rss_mb'] - gx['rss_before_mb']:.0f} MB vs "
                f"{pandas['peak_rss_mb'] - pandas['rss_before_mb']:.0f} MB; same verdicts: {same}"
            )
            if not same:
                diff = {
                    k: (v, pandas["verdicts"].get(k))
                    for k, v in gx["verdicts"].items()
                    if v != pandas["verdicts"].get(k)
                }
                print(f"  verdicts differ (gx, pandas): {diff}")
        rules = len(pandas["verdicts"])
        print(f"{case}: {rules} rules; failed: {[k for k, v in pandas['verdicts'].items() if not v] or 'none'}")
    gx_import = statistics.median(r["gx_import_s"] for (c, e), r in results.items() if e != "pandas")
    print(f"importing great_expectations (once per process, not in the times above): {gx_import:.1f} s")


if __name__ == "__main__":
    main()
