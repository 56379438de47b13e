"""
### `<model>__ingest`: replay one day of history into the lake

For its logical date the run lands that day's feature rows in `landing/<model>/ds=<date>/`
and the labels of the day `label_delay_days` earlier in `labels/<model>/ds=<that date>/`,
so the rest of the loop sees data arrive as it would in production (labels late).

* **Schedule**: daily over the source's time range; `catchup` is off, so history is replayed
  by a backfill (UI: *Trigger > Backfill*, or `airflow backfill create --dag-id flights__ingest
  --from-date 2013-01-01 --to-date 2013-01-07`).
* **Emits**: the model's `landing` asset with `extra` = `{partition, rows, label_partition, label_rows}`.
* **Idempotent**: a rerun of a day atomically overwrites the same two partitions.
"""

from __future__ import annotations

from airloop.dag_defaults import daily_dags
from airloop.operators.ingest import ReplayIngestOperator

# the labels of the last days land label_delay_days after them
for spec, _dag in daily_dags(
    globals(),
    step="ingest",
    description="Replay {model} history into the lake, one day per run",
    max_active_runs=4,
    extra_days=lambda spec: spec.dataset.label_delay_days,
):
    ReplayIngestOperator(task_id="land", model=spec.name)
