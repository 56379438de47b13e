"""The model card's explanations on real flights, and what they cost a training.

Lands the flights demo 2013-01-01..``--end`` into a fresh lake, starts ``mlflow server`` on
SQLite and trains, with the spec's estimator and one search trial, a *champion* on the 14 days
ending 2013-01-25 and a *challenger* on the 14 days ending ``--end``, plus a logistic regression
on the champion's window. Prints each model's permutation importance (mean, ± 1 std, share, rank)
and the shift table of each challenger against the champion (``include/registry/explain.py``),
the calibration bins, and the cost the explanation artifacts add to a training: computing the
calibration bins and logging the two JSON files (median of ``--repeats``). ``--card PATH`` writes
the HGB challenger's HTML card there (against the champion).

    .venv/bin/python benchmarks/explain_card.py [--end 2013-02-15] [--repeats 7] [--card card.html]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--end", type=date.fromisoformat, default=date(2013, 2, 15))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--card", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    with tempfile.TemporaryDirectory(prefix="airloop-bench-explain-") as tmp:
        os.environ.setdefault("AIRLOOP_HOME", str(Path(tmp) / "home"))
        run(args, Path(tmp))


def _print_importance(title: str, rows: list[Any], compared: bool) -> None:
    print(f"\n{title}")
    head = f"{'feature':<12} {'rank':>4} {'drop':>8} {'± std':>7} {'share':>6}"
    print(head + (f" {'champ rank':>10} {'champ share':>11}  shift" if compared else ""))
    for r in rows:
        line = f"{r.feature:<12} {r.rank or '-':>4} {r.importance:>8.4f} {r.std:>7.4f} {r.share:>6.3f}"
        if compared:
            line += f" {r.champion_rank or '-':>10} {r.champion_share:>11.3f}  {r.reason}"
        print(line)


def run(args: argparse.Namespace, work: Path) -> None:
    import numpy as np
    from mlflow import MlflowClient

    from include.lake import Lake
    from include.registry.card import model_card_html
    from include.registry.explain import importance_shift, run_explanations
    from include.spec import get_spec
    from include.training.data import assemble_training_data
    from include.training.train import calibration_bins, train_model
    from tests.mlflow_server import land_demo_days, running_mlflow_server

    spec = get_spec("flights")
    lake_root = work / "lake"
    t0 = time.perf_counter()
    land_demo_days(lake_root, date(2013, 1, 1), args.end)
    print(f"landed + validated 2013-01-01..{args.end}: {time.perf_counter() - t0:.1f} s", flush=True)
    lake = Lake(lake_root.as_uri())
    with running_mlflow_server(work / "mlflow") as uri:
        client = MlflowClient(uri)
        trained = {}
        for name, end, estimator in (
            ("champion", date(2013, 1, 25), None),
            ("challenger", args.end, None),
            ("logistic", date(2013, 1, 25), "logistic_regression"),
        ):
            data = assemble_training_data(spec, lake, end, window_days=14, holdout_days=3)
            t0 = time.perf_counter()
            result = train_model(
                spec, data, estimator=estimator, search_budget=1, tracking_uri=uri, tags={}, reason="benchmark"
            )
            print(
                f"{name}: {result.estimator} on 14 days ending {end} ({data.counts['train_rows']} train / "
                f"{data.counts['holdout_rows']} holdout rows), ROC AUC {result.metrics['roc_auc']:.4f}, "
                f"{time.perf_counter() - t0:.1f} s",
                flush=True,
            )
            trained[name] = (result, run_explanations(client, result.run_id))

        champion = trained["champion"][1]["importance"]
        _print_importance("champion importance", importance_shift(champion), compared=False)
        for name in ("challenger", "logistic"):
            ours = trained[name][1]["importance"]
            _print_importance(f"{name} against the champion", importance_shift(ours, champion), compared=True)
        calibration = trained["challenger"][1]["calibration"]
        print("\nchallenger calibration (predicted, observed, rows):")
        for p, o, n in zip(calibration["predicted"], calibration["observed"], calibration["bin_rows"], strict=True):
            print(f"  {p:.3f} {o:.3f} {n}")

        # what the explanation artifacts add to a training: the bins and two small JSON files
        result, explained = trained["challenger"]
        rng = np.random.default_rng(0)
        proba = rng.random(calibration["rows"])
        y = (rng.random(calibration["rows"]) < proba).astype(int)
        bins_s, log_s = [], []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            calibration_bins(y, proba)
            bins_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            client.log_dict(result.run_id, explained["importance"], f"bench/importance{i}.json")
            client.log_dict(result.run_id, calibration, f"bench/calibration{i}.json")
            log_s.append(time.perf_counter() - t0)
        print(
            f"\ncost per training: calibration bins on {calibration['rows']} rows {1000 * statistics.median(bins_s):.1f} ms, "
            f"two JSON artifacts {1000 * statistics.median(log_s):.1f} ms (medians of {args.repeats}; "
            f"the challenger's whole training took {result.timings['total_s']:.1f} s)"
        )
        if args.card:
            challenger, champ = trained["challenger"][0], trained["champion"][0]
            page = model_card_html(
                model="flights",
                version=2,
                description=spec.description,
                training_window=challenger.window,
                evaluation={"roc_auc": challenger.metrics["roc_auc"], "n": calibration["rows"]},
                champion={"roc_auc": champ.metrics["roc_auc"]},
                lineage={"run_id": challenger.run_id},
                importance=explained["importance"],
                champion_importance=champion,
                calibration=calibration,
            )
            args.card.write_text(page)
            print(f"card: {args.card}")


if __name__ == "__main__":
    main()
