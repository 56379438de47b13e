"""
### `<model>__rollback`: put the previous champion back, with a reason

Manual only. Moves `@champion` to the target version (default: the champion the current one
replaced, read from the promotion ledger) with a compare-and-set move, tags both versions,
appends a `rollback` entry to the ledger and emits `<model>.champion` with
`extra = {version, previous_version, decision_id, rollback: true, reason}`. Scoring pins the
restored model from then on, and the event starts `<model>__rescore`, which re-scores the days
the rolled-back version scored since its promotion with the restored version and keeps their old
predictions as superseded.

Params: `target_version` (empty: the previous champion) and `reason` (required).
"""

from __future__ import annotations

# Airflow's safe-mode parser only reads files that mention both "airflow" and "dag".
from airloop.dag_defaults import form_dags, int_param, param_templates, required_reason_param
from airloop.operators.promote import RollbackOperator

PARAMS = {
    "target_version": int_param(
        None,
        minimum=1,
        title="Target version",
        description="Registry version to restore. Empty: the champion the current one replaced.",
        optional=True,
    ),
    "reason": required_reason_param("Why you roll back; recorded in the ledger and on both versions."),
}

for spec, dag in form_dags(
    globals(), step="rollback", description="Roll the {model} champion back to an earlier version", params=PARAMS
):
    RollbackOperator(task_id="rollback", model=spec.name, **param_templates(dag.params))
