"""
### `<model>__validate`: the data contract gate

Validates the day's landing partition against the model's contract (Great Expectations,
suite built from the spec's `contract:` section).

* **Schedule**: daily and backfillable, like `__ingest`. A daily schedule was chosen over
  the landing asset because asset-triggered DAGs cannot be backfilled and Airflow may merge
  several landing events into one run; here each run owns exactly one partition (its logical
  date) and waits for it with a deferrable trigger that holds no worker slot.
* **Pass**: the partition is published atomically to `validated/<model>/ds=<date>/` and the
  model's `validated` asset event carries `{partition, rows, warnings, report_uri}`.
* **Fail**: the landing files move to `quarantine/<model>/ds=<date>/<run id>__try<n>/` next to
  the report; the task fails without retries, its message lists the failed rules, and the
  failure notifier fires. Fix the data, land it again (rerun `__ingest` for that day) and
  clear this task: it passes and the quarantine is kept.
* **Links**: *Data Docs* and *Validation result (JSON)* on the task open this run's report.
* **Idempotent**: a rerun overwrites the same validated partition; reports are per run.
"""

from __future__ import annotations

from airloop.dag_defaults import daily_dags
from airloop.operators.validate import ValidateDataOperator

for spec, _dag in daily_dags(
    globals(), step="validate", description="Validate each day of {model} against its data contract", max_active_runs=4
):
    ValidateDataOperator(task_id="validate", model=spec.name, poke_interval=10.0)
