"""Loop latency: from a ``drift`` asset event to a new champion, under the real scheduler.

Starts the stack (Airflow on a throwaway PostgreSQL database + an MLflow server), lands and
validates the flights days the models need, trains and promotes a first champion by hand,
then sends ``--repeats`` drift asset events through the REST API (as the monitor would) and
times each one to the moment ``@champion`` moves, with the per-step breakdown.

    .venv/bin/python benchmarks/loop_latency.py [--repeats 2] [--budget 2]

A retrained challenger only becomes champion if the gate passes it; the breakdown is reported
either way (``champion_moved`` is empty when the gate rejected it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST_END = date(2013, 2, 4)  # first champion: 28 days to Feb 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget", type=int, default=2, help="hyperparameter trials per training")
    args = parser.parse_args()

    from devstack.api import AirflowClient
    from devstack.demo import drift_to_champion
    from devstack.stack import throwaway_stack
    from include.datasets.ingest import land_day
    from include.lake import Lake, Zone
    from include.spec import get_spec

    spec = get_spec("flights")
    root = Path(tempfile.mkdtemp(prefix="airloop-latency-"))
    lake = Lake((root / "lake").as_uri())
    days = [FIRST_END - timedelta(days=27) + timedelta(days=i) for i in range(28 + 7 * args.repeats + 2)]
    for ds in days:
        land_day(spec, lake, ds)
        lake.publish_copy(lake.partition_file(Zone.LANDING, spec.name, ds), Zone.VALIDATED, spec.name, ds)
    results = []
    t0 = time.monotonic()
    with throwaway_stack(root, lake.uri, db_prefix="airloop_bench") as stack:
        print(f"stack healthy in {time.monotonic() - t0:.0f} s", flush=True)
        client = AirflowClient.for_stack(stack)
        assert stack.mlflow_url
        for step in ("train", "promote"):
            client.wait_for_dag(f"{spec.name}__{step}", timeout=180)
            client.unpause(f"{spec.name}__{step}")
        run = client.trigger(
            f"{spec.name}__train",
            conf={"end_date": FIRST_END.isoformat(), "search_budget": args.budget, "reason": "benchmark"},
        )
        client.wait_dag_run(f"{spec.name}__train", run["dag_run_id"], timeout=1200)
        deadline = time.monotonic() + 600
        from mlflow import MlflowClient

        mlflow = MlflowClient(stack.mlflow_url, registry_uri=stack.mlflow_url)
        while "champion" not in mlflow.get_registered_model(spec.name).aliases:
            if time.monotonic() > deadline:
                raise TimeoutError("the first model was not promoted")
            time.sleep(2)
        print("first champion:", mlflow.get_registered_model(spec.name).aliases, flush=True)
        for i in range(args.repeats):
            partition = FIRST_END + timedelta(days=7 * (i + 1))
            result = drift_to_champion(client, spec, stack.mlflow_url, partition)
            results.append(result)
            print(json.dumps(result, indent=2), flush=True)
    moved = [r["champion_moved"] for r in results if r["champion_moved"] is not None]
    done = [r["promote_finished"] for r in results if r["promote_finished"] is not None]
    print(
        json.dumps(
            {
                "events": len(results),
                "promoted": len(moved),
                "event_to_champion_s": moved,
                "event_to_promote_finished_s": done,
                "budget": args.budget,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
