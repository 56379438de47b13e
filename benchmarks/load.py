"""Load test of batch scoring: one 5M-row day, and a 60-day backfill (issue 11).

Setup (parent process, cached in ``--workdir``): land 2013-01-01..16 of the flights demo with
the real ingest, train a HistGradientBoosting pipeline (``build_pipeline``, default
parameters) on the 14 labelled days, export it to ONNX (the model scoring serves). Then build
validated partitions by resampling the landed rows with replacement (seeded), each row given
a fresh unique ``flight_id``; rows keep their real missing values, so the serving contract
rejects some of them as it would in production:

* ``2013-06-01``: one day of ``--day-rows`` rows (default 5,000,000), 64k-row row groups;
* ``2013-07-01`` .. ``+59``: ``--backfill-days`` days of ``--backfill-rows`` rows each
  (default 60 x 50,000 = 3M rows).

Measured, each in a fresh child process so that ``ru_maxrss`` is that step's own peak:

* ``day``: :func:`include.scoring.score.score_partition` on the 5M day (one task);
* ``day_sharded``: the score DAG's path: ``plan_shards`` with the spec's ``shard_rows``
  (1M), one child per shard (:func:`score_shard`, as mapped tasks run), then
  :func:`publish_shards` in a child; wall time is the sum (shards run one after another here:
  2 cores) and peak RSS the largest child's;
* ``backfill``: the 60 days scored one after another in ONE child (a worker running the
  backfill's tasks back to back: memory must not grow with the days).

Wall time excludes interpreter start and imports (paid once per worker). Run::

    .venv/bin/python benchmarks/load.py [--day-rows 5000000] [--backfill-days 60] [--backfill-rows 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LANDED = [date(2013, 1, 1) + timedelta(days=i) for i in range(16)]
BIG_DAY = date(2013, 6, 1)
BACKFILL_START = date(2013, 7, 1)
ROW_GROUP = 65536


def build(workdir: Path, day_rows: int, backfill_days: int, backfill_rows: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from include.datasets.ingest import land_day
    from include.lake import Lake, Zone
    from include.spec import get_spec
    from include.training.onnx_export import build_pipeline, export_onnx, prepare_features

    os.environ.setdefault("AIRLOOP_HOME", str(workdir / "home"))
    spec = get_spec("flights")
    lake = Lake((workdir / "lake").as_uri())
    numeric, categorical = spec.dataset.features.numeric, spec.dataset.features.categorical
    started = time.perf_counter()
    for ds in LANDED:
        if not lake.has_partition(Zone.LANDING, spec.name, ds):
            land_day(spec, lake, ds)
    onnx_path = workdir / "model.onnx"
    frames = []
    for ds in LANDED:
        if lake.has_partition(Zone.LABELS, spec.name, ds):
            features = lake.read_table(Zone.LANDING, spec.name, ds).to_pandas()
            labels = lake.read_table(Zone.LABELS, spec.name, ds).to_pandas()
            frames.append(features.merge(labels, on=spec.dataset.key_columns))
    train = pd.concat(frames, ignore_index=True)
    if not onnx_path.exists():  # cached in --workdir: the same seed and data give the same model
        pipeline = build_pipeline("hist_gradient_boosting", numeric, categorical, {}, spec.training.seed)
        pipeline.fit(prepare_features(train, numeric, categorical), train[spec.label_column].to_numpy())
        onnx_path.write_bytes(export_onnx(pipeline, numeric, categorical))
    base = pa.concat_tables([lake.read_table(Zone.LANDING, spec.name, ds) for ds in LANDED])
    rng = np.random.default_rng(11)
    key = spec.dataset.key_columns[0]

    def publish(ds: date, rows: int) -> None:
        if (
            lake.has_partition(Zone.VALIDATED, spec.name, ds)
            and lake.parquet_file(lake.partition_file(Zone.VALIDATED, spec.name, ds)).metadata.num_rows == rows
        ):
            return
        with lake.partition_writer(Zone.VALIDATED, spec.name, ds, base.schema) as writer:
            for start in range(0, rows, 500_000):
                n = min(500_000, rows - start)
                chunk = base.take(pa.array(rng.integers(0, base.num_rows, n)))
                numbers = pc.cast(pa.array(np.arange(start, start + n)), pa.string())
                ids = pc.binary_join_element_wise(f"load{ds:%Y%m%d}-", numbers, "").cast(base.schema.field(key).type)
                writer.write_table(chunk.set_column(chunk.schema.get_field_index(key), key, ids), ROW_GROUP)

    publish(BIG_DAY, day_rows)
    for i in range(backfill_days):
        publish(BACKFILL_START + timedelta(days=i), backfill_rows)
    return {
        "lake": lake.uri,
        "onnx": str(onnx_path),
        "source_rows": base.num_rows,
        "train_days": len(frames),
        "train_rows": len(train),
        "setup_s": round(time.perf_counter() - started, 1),
    }


# --------------------------------------------------------------------------- children


def child(step: str, args: dict[str, Any]) -> None:
    import resource

    from include.lake import Lake
    from include.scoring.score import score_partition
    from include.scoring.shards import publish_shards, score_shard
    from include.spec import get_spec

    spec = get_spec("flights")
    lake = Lake(args["lake"])
    onnx = Path(args["onnx"]).read_bytes()
    common = {"model_name": "flights", "model_version": 1}
    started = time.perf_counter()
    out: dict[str, Any] = {}
    if step == "day":
        report = score_partition(spec, lake, BIG_DAY, onnx, run_id="load_day", **common)
        out = {"rows_in": report.rows_in, "rows_scored": report.rows_scored, "rows_rejected": report.rows_rejected}
    elif step == "shard":
        report = score_shard(spec, lake, BIG_DAY, onnx, index=args["index"], row_range=tuple(args["range"]),
                             run_key="load_sharded", run_id="load_sharded", **common)  # fmt: skip
        out = {"rows_in": report.rows_in}
    elif step == "publish":
        manifest = publish_shards(lake, spec, BIG_DAY, "load_sharded", args["n"])
        out = {"rows_scored": manifest["rows_scored"], "rows_rejected": manifest["rows_rejected"]}
    elif step == "backfill":
        per_day = []
        rows = 0
        for i in range(args["days"]):
            t0 = time.perf_counter()
            report = score_partition(
                spec, lake, BACKFILL_START + timedelta(days=i), onnx, run_id=f"backfill_{i}", **common
            )
            per_day.append(time.perf_counter() - t0)
            rows += report.rows_in
        per_day.sort()
        out = {
            "days": len(per_day),
            "rows_in": rows,
            "day_mean_s": round(sum(per_day) / len(per_day), 3),
            "day_p95_s": round(per_day[int(0.95 * (len(per_day) - 1))], 3),
            "day_max_s": round(per_day[-1], 3),
        }
    out["wall_s"] = round(time.perf_counter() - started, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


def run_child(step: str, **args: Any) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", step, json.dumps(args)], capture_output=True, text=True, cwd=ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day-rows", type=int, default=5_000_000)
    parser.add_argument("--backfill-days", type=int, default=60)
    parser.add_argument("--backfill-rows", type=int, default=50_000)
    parser.add_argument("--workdir", type=Path, default=None, help="keep data here (default: a temp folder)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child[0], json.loads(options.child[1]))
        return
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory(prefix="airloop-load-") as tmp:
        workdir = options.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        setup = build(workdir, options.day_rows, options.backfill_days, options.backfill_rows)
        print(f"setup: {setup}", flush=True)
        base = {"lake": setup["lake"], "onnx": setup["onnx"]}
        day = run_child("day", **base)
        print(f"day: {day}", flush=True)

        from include.lake import Lake
        from include.scoring.shards import count_rows, plan_shards
        from include.spec import get_spec

        spec = get_spec("flights")
        ranges = plan_shards(count_rows(Lake(setup["lake"]), spec, BIG_DAY), spec.scoring.shard_rows)
        shards = [run_child("shard", index=i, range=list(r), **base) for i, r in enumerate(ranges)]
        publish = run_child("publish", n=len(ranges), **base)
        sharded = {
            "shards": len(ranges),
            "wall_s": round(sum(s["wall_s"] for s in shards) + publish["wall_s"], 2),
            "score_wall_s": round(sum(s["wall_s"] for s in shards), 2),
            "publish_wall_s": publish["wall_s"],
            "peak_rss_mb": max(s["peak_rss_mb"] for s in [*shards, publish]),
            "rows_scored": publish["rows_scored"],
        }
        print(f"day_sharded: {sharded}", flush=True)
        backfill = run_child("backfill", days=options.backfill_days, **base)
        print(f"backfill: {backfill}", flush=True)
        summary = {
            "day_rows": options.day_rows,
            "backfill": f"{options.backfill_days} days x {options.backfill_rows} rows",
            "setup": setup,
            "day": day,
            "day_sharded": sharded,
            "backfill_result": backfill,
        }
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
