"""DAG parse cost, as the dag-processor pays it: each DAG file in a fresh interpreter.

Prints, per file, the time to import ``airflow.sdk`` (paid once per processor) and the time
to execute the DAG file after it, the median of N runs, and which heavy modules the file
left in ``sys.modules`` (must be none).

    .venv/bin/python benchmarks/parse_time.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from include.names import HEAVY_MODULES  # noqa: E402 (needs ROOT on sys.path when run as a script)

PROBE = """
import json, sys, time, importlib.util
sys.path[:0] = [{root!r}, {plugins!r}]
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
spec = importlib.util.spec_from_file_location("probe_dag", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t2 = time.perf_counter()
print(json.dumps({{"sdk": t1 - t0, "file": t2 - t1, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def measure(path: Path, runs: int) -> dict[str, object]:
    samples = []
    for _ in range(runs):
        code = PROBE.format(root=str(ROOT), plugins=str(ROOT / "plugins"), path=str(path), heavy=list(HEAVY_MODULES))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "file": path.name,
        "airflow_sdk_import_s": statistics.median(s["sdk"] for s in samples),
        "dag_file_s": statistics.median(s["file"] for s in samples),
        "heavy_modules": samples[-1]["heavy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'DAG file':28} {'airflow.sdk import':>20} {'DAG file exec':>15}  heavy modules")
    for path in sorted((ROOT / "dags").glob("*.py")):
        row = measure(path, args.runs)
        print(
            f"{row['file']:28} {row['airflow_sdk_import_s']:>19.3f}s {row['dag_file_s']:>14.3f}s  {row['heavy_modules'] or 'none'}"
        )


if __name__ == "__main__":
    main()
