"""The gate's extra time for fairness: :func:`~include.registry.fairness.measure_fairness` on 7
evaluation days of real flights (2013-01-22..28, 5,894 labelled rows), challenger and champion,
``--samples`` bootstrap samples, beside the gate's existing work on the same rows (``evaluate``
of both models and the paired ``compare``). Scores come from two HistGradientBoosting models
trained on 2013-01-01..21 (the fairness figures do not depend on how good the models are).

    .venv/bin/python benchmarks/fairness_gate.py [--samples 200] [--repeats 3] [--columns origin carrier]

Printed: the median wall seconds of each step over ``--repeats`` runs, after one warm-up run (the
first call also imports fairlearn: its import time is printed apart).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--columns", nargs="+", default=["origin"])
    args = parser.parse_args()

    from sklearn.ensemble import HistGradientBoostingClassifier

    from include.datasets.nycflights13 import build
    from include.registry.gate import compare, evaluate
    from include.spec import FairnessSpec

    frame = build()
    frame = frame[frame["arr_delay"].notna()].assign(y=lambda f: (f["arr_delay"] > 15).astype(int))
    day = frame["sched_dep"].dt.date
    train = frame[(day >= date(2013, 1, 1)) & (day <= date(2013, 1, 21))]
    week = frame[(day >= date(2013, 1, 22)) & (day <= date(2013, 1, 28))].reset_index(drop=True)
    numeric = ["distance", "sched_hour", "temp", "dewp", "humid", "wind_speed", "precip", "visib"]
    scores = [
        HistGradientBoostingClassifier(max_iter=iters, random_state=0)
        .fit(train[numeric], train["y"])
        .predict_proba(week[numeric])[:, 1]
        for iters in (40, 80)
    ]
    labels = week["y"].to_numpy()
    groups = {c: week[c].astype(str).to_numpy() for c in args.columns}
    policy = FairnessSpec(sensitive=args.columns, equalized_odds_difference=0.2)

    started = time.perf_counter()
    from include.registry.fairness import measure_fairness

    import_s = time.perf_counter() - started

    def gate() -> None:
        ours = evaluate(scores[0], labels, None, 0.5, args.samples, 42)
        theirs = evaluate(scores[1], labels, None, 0.5, args.samples, 42)
        compare(ours, theirs, scores[0], scores[1], labels, args.samples, 42)

    def fairness() -> None:
        measure_fairness(policy, groups, labels, scores[0], scores[1], 0.5, args.samples, 42)

    timings: dict[str, list[float]] = {"gate (evaluate x2 + compare)": [], "fairness (measure_fairness)": []}
    for step, run in zip(timings, (gate, fairness), strict=True):
        run()  # warm-up (first fairlearn import, sklearn metrics)
        for _ in range(args.repeats):
            started = time.perf_counter()
            run()
            timings[step].append(time.perf_counter() - started)
    print(f"{len(labels):,} rows, {args.samples} bootstrap samples, columns {args.columns}")
    print(f"import include.registry.fairness: {import_s:.2f} s (fairlearn loads on the first call)")
    for step, values in timings.items():
        print(f"{step}: median {statistics.median(values):.2f} s of {', '.join(f'{v:.2f}' for v in values)}")


if __name__ == "__main__":
    main()
