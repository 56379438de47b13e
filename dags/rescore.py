"""
### `<model>__rescore`: after a rollback, re-score the days the rolled-back version scored

Scheduled on the model's `champion` asset. `<model>__rollback` emits it with
`extra = {rollback: true, version, previous_version, reason}`; a promotion's event carries no
`rollback` flag and the run skips.

1. `plan` reads the rollback from the ledger and lists the days whose current predictions carry
   the rolled-back version and were published since it became champion (the prediction
   manifests' `model_version` and `published_at`).
2. `rescore` is mapped, one task per day: it copies the day's predictions to
   `predictions/<model>/ds=<date>/_superseded/v<old>__<run>/` with their manifest marked
   `superseded` (who, when, why), scores the day with the **restored version pinned** (the score
   DAG's scorer, in shards of `scoring.shard_rows` rows) and publishes it atomically, with
   `supersedes` in the new `_manifest.json`. Emits `<model>.predictions` per day
   (`extra = {partition, rows, rejects, version, rescored, supersedes}`).

One run repairs every affected day, in parallel, and a cleared or repeated run is idempotent
(days already re-scored are kept, days carrying another version are skipped). This DAG rather
than a backfill of `<model>__score`: a backfill covers a date range and re-pins `@champion` per
day, while the affected days are a set (the rolled-back version may not have scored every day of
its reign) and must get the version the rollback restored, with the old predictions kept.

Params (manual runs): `version` and `previous_version` of the rollback to repair (empty: the
newest rollback in the ledger).
"""

from __future__ import annotations

# Airflow's safe-mode parser only reads files that mention both "airflow" and "dag".
from airloop.assets import model_asset
from airloop.dag_defaults import form_dags, int_param, param_templates
from airloop.operators.rescore import RescoreDayOperator, RescorePlanOperator

PARAMS = {
    "version": int_param(
        None,
        minimum=1,
        title="Restored version",
        description="The version the rollback restored. Empty: the newest rollback's.",
        optional=True,
    ),
    "previous_version": int_param(
        None,
        minimum=1,
        title="Rolled-back version",
        description="The version the rollback replaced. Empty: the newest rollback's.",
        optional=True,
    ),
}

for spec, dag in form_dags(
    globals(),
    step="rescore",
    description="Re-score the days a rolled-back {model} version scored, with the restored version",
    params=PARAMS,
    schedule=lambda spec: model_asset(spec.name, "champion"),
):
    plan = RescorePlanOperator(task_id="plan", model=spec.name, **param_templates(dag.params))
    # A mapped task's outlets must be given to partial(): __init__ runs only when a map index runs.
    RescoreDayOperator.partial(
        task_id="rescore", model=spec.name, outlets=[model_asset(spec.name, "predictions")]
    ).expand(day=plan.output)
