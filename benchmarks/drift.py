"""Drift computation: airloop's numpy drift vs Evidently 0.7's DataDriftPreset on the same data.

Data: a 100k-row reference and a 1M-row current frame, 25 columns (17 numeric, 8 categorical
object-string columns), some with nulls, 6 of them shifted. Each variant runs in its own
subprocess (fresh interpreter, so peak memory is its own ``ru_maxrss``); the "data" variant only
builds the frames, as the memory baseline. Printed per variant: wall time of the drift step,
import time, peak RSS, and for Evidently the per-column PSI compared with

- ours on Evidently's bins: Sturges bins over reference+current for numerics with more than 20
  distinct values, the categories otherwise, our :func:`~include.monitoring.drift.psi` formula
  with Evidently's empty-bin fill (``renormalize=False``). Columns where a bin is empty on a side
  whose smallest non-empty fraction is <= 1e-4 are listed apart: Evidently fills those with
  ``min/1e6``, not 1e-4.
- ours as decided on (decile bins of the reference profile): a different binning, so a
  different number; the table shows how far apart they are.

    .venv/bin/python benchmarks/drift.py [--rows 1000000] [--reference-rows 100000]
        [--evidently-timeout 330] [--fallback-rows 200000] [--default-method]

If Evidently's PSI run on ``--rows`` exceeds ``--evidently-timeout`` seconds it is killed and
measured on ``--fallback-rows`` current rows instead (say so when quoting the numbers).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
N_NUMERIC = 17
N_CATEGORICAL = 8
NUMERIC = [f"num_{i:02d}" for i in range(N_NUMERIC)]
CATEGORICAL = [f"cat_{i:02d}" for i in range(N_CATEGORICAL)]
SHIFTED = {"num_00": "mean +0.5 sd", "num_01": "sd x1.5", "num_02": "nulls 2% -> 20%", "cat_00": "new category 10%"}


def make_frames(reference_rows: int, rows: int, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    import numpy as np
    import pandas as pd

    def frame(n: int, current: bool, rng: np.random.Generator) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for i, name in enumerate(NUMERIC):
            kind = i % 4
            if kind == 0:
                values = rng.normal(10.0 + i, 2.0, n)
            elif kind == 1:
                values = rng.lognormal(3.0, 0.7, n)
            elif kind == 2:
                values = rng.gamma(2.0, 3.0, n)
            else:
                values = rng.integers(0, 24, n).astype(np.float64)  # discrete: an hour of day
            if current and name == "num_00":
                values = values + 1.0
            if current and name == "num_01":
                values = values.mean() + (values - values.mean()) * 1.5
            if current and name == "num_04":
                values = values + 0.2  # 0.1 sd: a KS p-value can flag it, PSI does not
            null_rate = 0.2 if current and name == "num_02" else 0.02 if i % 3 == 0 else 0.0
            if null_rate:
                values[rng.random(n) < null_rate] = np.nan
            data[name] = values
        for i, name in enumerate(CATEGORICAL):
            k = (3, 12, 40, 100)[i % 4]
            categories = np.array([f"{name}_v{j}" for j in range(k)], dtype=object)
            p = 1.0 / np.arange(1, k + 1) ** (1.0 + 0.1 * i)
            if current and name == "cat_01":
                p = p[::-1].copy()  # the category mix reverses
            values = categories[rng.choice(k, n, p=p / p.sum())]
            if current and name == "cat_00":
                values[rng.random(n) < 0.1] = f"{name}_new"
            data[name] = values
        return pd.DataFrame(data)

    rng = np.random.default_rng(seed)
    reference = frame(reference_rows, False, rng)
    current = frame(rows, True, rng)
    ref_scores = rng.beta(2, 5, reference_rows)
    cur_scores = rng.beta(2.4, 5, rows)
    return reference, current, ref_scores, cur_scores


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> float | None:
    """Reset the kernel's peak-RSS mark (VmHWM) and return the current RSS (Linux only)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_mb("VmRSS")


def evidently_bins_psi(reference: Any, current: Any) -> dict[str, dict[str, Any]]:
    """Our PSI formula on Evidently's own binning (see the module docstring)."""
    import numpy as np
    import pandas as pd

    from include.monitoring.drift import psi

    out: dict[str, dict[str, Any]] = {}
    for column in [*NUMERIC, *CATEGORICAL]:
        ref, cur = reference[column].dropna(), current[column].dropna()
        if column in NUMERIC and ref.nunique() > 20:
            edges = np.histogram_bin_edges(np.concatenate([ref.to_numpy(), cur.to_numpy()]), bins="sturges")
            ref_counts = np.histogram(ref, edges)[0]
            cur_counts = np.histogram(cur, edges)[0]
        else:
            keys = sorted(set(ref.unique()) | set(cur.unique()), key=str)
            ref_counts = pd.Series(ref).value_counts().reindex(keys, fill_value=0).to_numpy()
            cur_counts = pd.Series(cur).value_counts().reindex(keys, fill_value=0).to_numpy()
        special = False
        filled = []
        for counts in (ref_counts, cur_counts):
            fractions = counts / counts.sum()
            smallest = fractions[counts > 0].min()
            if (counts == 0).any() and smallest <= 1e-4:
                special = True
            # Evidently's fill (get_binned_data): zeros become 1e-4 (our eps, psi() does it), or
            # min/1e6 when min <= 1e-4 (done here; the ~1e-10 extra mass is below rounding).
            filled.append(np.where(counts == 0, smallest / 1e6, fractions) if smallest <= 1e-4 else fractions)
        out[column] = {
            "psi": float(psi(ref_counts, cur_counts, renormalize=False)),
            "psi_their_fill": float(psi(filled[0], filled[1], renormalize=False)),
            "min_fill_rule": special,
        }
    return out


def run_variant(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    reference, current, ref_scores, cur_scores = make_frames(args.reference_rows, args.rows)
    result: dict[str, Any] = {"variant": args.variant, "rows": args.rows, "data_s": time.perf_counter() - t0}
    import gc

    gc.collect()
    before = _reset_peak()  # from here on, VmHWM is the peak of the drift step (with its imports)
    if args.variant == "data":
        pass
    elif args.variant == "ours":
        t0 = time.perf_counter()
        import scipy.stats  # compute_drift imports it lazily: count it as import time

        from include.monitoring.drift import build_reference, compute_drift

        result["import_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        profile = build_reference(reference, NUMERIC, CATEGORICAL, scores=ref_scores)
        result["profile_s"] = time.perf_counter() - t0
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = compute_drift(profile, current, NUMERIC, CATEGORICAL, scores=cur_scores)
            times.append(time.perf_counter() - t0)
        result["drift_s"] = min(times)
        result["drift_s_all"] = times
        result["psi"] = {f.name: f.psi for f in report.features}
        result["status"] = {f.name: f.status for f in report.features}
        result["ks_pvalue"] = {f.name: f.ks_pvalue for f in report.features}
        result["prediction_psi"] = report.prediction.psi if report.prediction else None
        full = scipy.stats.ks_2samp(reference["num_04"], current["num_04"])  # KS on every row, Evidently's way
        result["num_04_full_ks_pvalue"] = float(full.pvalue)
    else:
        import warnings

        t0 = time.perf_counter()
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        result["import_s"] = time.perf_counter() - t0
        definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
        method = None if args.variant == "evidently-default" else "psi"
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snapshot = Report([DataDriftPreset(method=method)]).run(
                current_data=Dataset.from_pandas(current, data_definition=definition),
                reference_data=Dataset.from_pandas(reference, data_definition=definition),
            )
        result["drift_s"] = time.perf_counter() - t0
        values = {}
        for metric in snapshot.dict()["metrics"]:
            column = metric["config"].get("column")
            if column:
                values[column] = float(metric["value"])
        result["values"] = values
        result["method_names"] = sorted({m["config"].get("method", "") for m in snapshot.dict()["metrics"]} - {""})
        if method == "psi":
            result["ours_on_their_bins"] = evidently_bins_psi(reference, current)
    result["maxrss_mb"] = _maxrss_mb()
    peak = _status_mb("VmHWM")
    result["step_peak_mb"] = peak - before if peak is not None and before is not None else None
    return result


def spawn(variant: str, rows: int, args: argparse.Namespace, timeout: float | None = None) -> dict[str, Any] | None:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--variant",
        variant,
        "--rows",
        str(rows),
        "--reference-rows",
        str(args.reference_rows),
        "--repeat",
        str(args.repeat),
    ]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        print(f"  {variant} on {rows:,} rows: killed after {time.perf_counter() - t0:.0f} s", flush=True)
        return None
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0
    print(f"  {variant} on {rows:,} rows: {result.get('drift_s', 0):.2f} s, {result['maxrss_mb']:.0f} MB", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=["data", "ours", "evidently-psi", "evidently-default"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--evidently-timeout", type=float, default=330.0)
    parser.add_argument("--fallback-rows", type=int, default=200_000)
    parser.add_argument("--default-method", action="store_true", help="also run Evidently's default methods")
    args = parser.parse_args()
    if args.variant:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(run_variant(args)))
        return

    print(
        f"reference {args.reference_rows:,} rows, current {args.rows:,} rows, {N_NUMERIC} numeric + {N_CATEGORICAL} categorical"
    )
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    for rows in (args.rows, args.fallback_rows):
        for variant in ("data", "ours"):
            result = spawn(variant, rows, args)
            assert result is not None
            runs[(variant, rows)] = result
    evidently_rows = args.rows
    result = spawn("evidently-psi", args.rows, args, timeout=args.evidently_timeout)
    if result is None:
        evidently_rows = args.fallback_rows
        result = spawn("evidently-psi", evidently_rows, args, timeout=None)
    assert result is not None
    runs[("evidently-psi", evidently_rows)] = result
    if args.default_method:
        default = spawn("evidently-default", args.fallback_rows, args, timeout=args.evidently_timeout * 2)
        if default is not None:
            runs[("evidently-default", args.fallback_rows)] = default

    print()
    print("peak MB: the process's ru_maxrss; step MB: peak RSS above the RSS before the step (VmHWM reset)")
    print(f"{'variant':<20}{'rows':>11}{'drift s':>10}{'import s':>10}{'peak MB':>10}{'step MB':>10}")
    for (variant, rows), item in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        drift = f"{item['drift_s']:.3f}" if "drift_s" in item else "-"
        imp = f"{item['import_s']:.1f}" if "import_s" in item else "-"
        step = f"{item['step_peak_mb']:.0f}" if item.get("step_peak_mb") is not None else "-"
        print(f"{variant:<20}{rows:>11,}{drift:>10}{imp:>10}{item['maxrss_mb']:>10.0f}{step:>10}")
    ours = runs[("ours", evidently_rows)]
    ratio = result["drift_s"] / ours["drift_s"]
    print(f"\nEvidently PSI / ours on {evidently_rows:,} rows: {ratio:.0f}x slower")
    if ("ours", args.rows) in runs:
        print(f"ours on {args.rows:,} rows: {runs[('ours', args.rows)]['drift_s']:.3f} s (best of {args.repeat}), "
              f"profile of the reference {runs[('ours', args.rows)]['profile_s']:.3f} s")  # fmt: skip

    theirs = result["values"]
    on_bins = result["ours_on_their_bins"]
    print(f"\n{'column':<9}{'evidently':>11}{'ours/their bins':>17}{'|diff|':>10}{'ours decile':>13}  status  shift")
    exact: list[float] = []
    special: list[float] = []
    refilled: list[float] = []
    for column in [*NUMERIC, *CATEGORICAL]:
        e, o, d = theirs[column], on_bins[column]["psi"], ours["psi"][column]
        (special if on_bins[column]["min_fill_rule"] else exact).append(abs(e - o))
        refilled.append(abs(e - on_bins[column]["psi_their_fill"]))
        flag = " *" if on_bins[column]["min_fill_rule"] else ""
        print(
            f"{column:<9}{e:>11.5f}{o:>17.5f}{abs(e - o):>10.1e}{d:>13.5f}  {ours['status'][column]:<7} "
            f"{SHIFTED.get(column, '')}{flag}"
        )
    print(f"\nPSI agreement on Evidently's bins: max |diff| {max(exact):.1e} over {len(exact)} columns", end="")
    if special:
        print(f"; {len(special)} columns (*) hit Evidently's min/1e6 fill, max |diff| {max(special):.2e}")
    else:
        print()
    print(f"with Evidently's fill rule reproduced, all {len(refilled)} columns: max |diff| {max(refilled):.1e}")
    import numpy as np

    e_all = np.array([theirs[c] for c in [*NUMERIC, *CATEGORICAL]])
    d_all = np.array([ours["psi"][c] for c in [*NUMERIC, *CATEGORICAL]])
    print(
        f"decile PSI vs Evidently PSI: max |diff| {np.max(np.abs(e_all - d_all)):.3f}, "
        f"correlation {np.corrcoef(e_all, d_all)[0, 1]:.2f}"
    )
    print(
        f"num_04 (+0.1 sd): KS p-value {ours['ks_pvalue']['num_04']:.1e} on the 2,000-value reference sample, "
        f"{ours['num_04_full_ks_pvalue']:.1e} on all rows; decile PSI {ours['psi']['num_04']:.4f} (ok)"
    )
    print(
        "\n"
        + json.dumps({f"{k[0]}@{k[1]}": {x: v[x] for x in ("drift_s", "maxrss_mb") if x in v} for k, v in runs.items()})
    )


if __name__ == "__main__":
    main()
