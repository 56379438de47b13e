"""Training cost per estimator on 90 days of the flights demo, tracked in a real MLflow server.

Lands 2013-01-01..2013-04-01 into a fresh lake (and publishes each day to ``validated/``),
starts ``mlflow server`` on SQLite, assembles a 90-day window (14 holdout days) and trains
each estimator with the spec's search budget. Prints, per estimator: rows, wall time of
search / final fit / ONNX export / parity / artifacts, holdout ROC AUC, ONNX and sklearn
scoring cost (ms per 1k rows), ONNX size and the registration time.

    .venv/bin/python benchmarks/train.py [--budget N] [--threads N] [--estimators a,b] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2013, 1, 1))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2013, 4, 1))
    parser.add_argument("--window", type=int, default=90)
    parser.add_argument("--holdout", type=int, default=14)
    parser.add_argument("--budget", type=int, default=None, help="search budget (default: the spec's)")
    parser.add_argument("--threads", type=int, default=None, help="cap OpenMP/BLAS threads (default: none)")
    parser.add_argument("--estimators", default="hist_gradient_boosting,logistic_regression,random_forest")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep lake and MLflow here (default: a tmp dir)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

    with tempfile.TemporaryDirectory(prefix="airloop-bench-train-") as tmp:
        work = args.work_dir or Path(tmp)
        os.environ.setdefault("AIRLOOP_HOME", str(work / "home"))
        run(args, work)


def run(args: argparse.Namespace, work: Path) -> None:
    from include.lake import Lake
    from include.registry.mlflow_registry import register_challenger
    from include.spec import get_spec
    from include.training.data import assemble_training_data
    from include.training.train import train_model
    from tests.mlflow_server import land_demo_days, running_mlflow_server

    spec = get_spec("flights")
    lake_root = work / "lake"
    t0 = time.perf_counter()
    if not (lake_root / "validated").exists():
        land_demo_days(lake_root, args.start, args.end)
    print(f"landed + validated {args.start}..{args.end}: {time.perf_counter() - t0:.1f} s", flush=True)

    t0 = time.perf_counter()
    with running_mlflow_server(work / "mlflow") as uri:
        print(f"mlflow server healthy after {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        data = assemble_training_data(
            spec, Lake(lake_root.as_uri()), args.end, window_days=args.window, holdout_days=args.holdout
        )
        print(
            f"assembled {data.counts['rows']} rows ({data.counts['train_rows']} train / "
            f"{data.counts['holdout_rows']} holdout, {len(data.days_used)} labelled days) "
            f"in {time.perf_counter() - t0:.2f} s",
            flush=True,
        )
        budget = args.budget or spec.training.search_budget
        rows = []
        for estimator in args.estimators.split(","):
            t0 = time.perf_counter()
            result = train_model(
                spec,
                data,
                estimator=estimator,
                search_budget=budget,
                tracking_uri=uri,
                tags={"benchmark": "train"},
                reason="benchmark",
                threads=args.threads,
            )
            wall = time.perf_counter() - t0
            t0 = time.perf_counter()
            register_challenger(result, spec, tracking_uri=uri, tags={"benchmark": "train"})
            register_s = time.perf_counter() - t0
            row = {
                "estimator": estimator,
                "threads": args.threads or "default",
                "budget": budget,
                "train_rows": data.counts["train_rows"],
                "holdout_rows": data.counts["holdout_rows"],
                "search_s": result.timings["search_s"],
                "fit_s": result.timings["fit_s"],
                "export_s": result.timings["export_s"],
                "parity_s": result.timings["parity_s"],
                "artifacts_s": result.timings["artifacts_s"],
                "train_model_wall_s": round(wall, 2),
                "register_s": round(register_s, 2),
                "holdout_roc_auc": round(result.metrics["roc_auc"], 4),
                "val_roc_auc_best": round(result.search.get("best_val_roc_auc", float("nan")), 4),
                "onnx_ms_per_1k": round(result.parity["onnx_ms_per_1k_rows"], 2),
                "sklearn_ms_per_1k": round(result.parity["sklearn_ms_per_1k_rows"], 2),
                "parity_mean_abs_diff": result.parity["mean_abs_diff"],
                "parity_label_flips": int(result.parity["label_flips"]),
                "onnx_kb": round(result.onnx_size_bytes / 1024, 1),
                "best_params": result.params,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)

    header = (
        f"{'estimator':<24}{'search s':>9}{'fit s':>8}{'export s':>9}{'parity s':>9}{'artif s':>8}"
        f"{'total s':>8}{'reg s':>7}{'ROC AUC':>9}{'onnx ms/1k':>11}{'skl ms/1k':>10}{'onnx KB':>9}"
    )
    print(f"\n{data.counts['train_rows']} train / {data.counts['holdout_rows']} holdout rows, budget {budget}")
    print(header)
    for r in rows:
        print(
            f"{r['estimator']:<24}{r['search_s']:>9.1f}{r['fit_s']:>8.1f}{r['export_s']:>9.1f}{r['parity_s']:>9.1f}"
            f"{r['artifacts_s']:>8.1f}{r['train_model_wall_s']:>8.1f}{r['register_s']:>7.1f}"
            f"{r['holdout_roc_auc']:>9.4f}{r['onnx_ms_per_1k']:>11.2f}{r['sklearn_ms_per_1k']:>10.2f}{r['onnx_kb']:>9.1f}"
        )


if __name__ == "__main__":
    main()
