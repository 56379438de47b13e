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

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airloop.dag_defaults import dag_kwargs, valid_specs
from airloop.operators.ingest import ReplayIngestOperator

for spec in valid_specs():
    dataset = spec.dataset
    with DAG(
        dag_id=f"{spec.name}__ingest",
        description=f"Replay {spec.name} history into the lake, one day per run",
        schedule="@daily",
        start_date=datetime.combine(dataset.start, datetime.min.time()),
        end_date=datetime.combine(dataset.end + timedelta(days=dataset.label_delay_days), datetime.min.time()),
        catchup=False,
        max_active_runs=4,
        **dag_kwargs(spec, step="ingest", doc_md=__doc__),
    ) as dag:
        ReplayIngestOperator(task_id="land", model=spec.name)
    globals()[dag.dag_id] = dag
