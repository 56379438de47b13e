"""
### `<model>__rollback`: put the previous champion back, with a reason

Manual only. Moves `@champion` to the target version (default: the champion the current one
replaced, read from the promotion ledger) with a compare-and-set move, tags both versions,
appends a `rollback` entry to the ledger and emits `<model>.champion` so scoring picks the
restored model up. Re-score days the replaced version scored with a backfill of
`<model>__score` over those dates (UI: *Trigger > Backfill*, reprocess "completed").

Params: `target_version` (empty: the previous champion) and `reason` (required).
"""

from __future__ import annotations

from airflow.sdk import Param

from airloop.dag_defaults import form_dag, required_reason_param, valid_specs
from airloop.operators.promote import RollbackOperator

for spec in valid_specs():
    with form_dag(
        spec,
        step="rollback",
        description=f"Roll the {spec.name} champion back to an earlier version",
        params={
            "target_version": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                title="Target version",
                description="Registry version to restore. Empty: the champion the current one replaced.",
            ),
            "reason": required_reason_param("Why you roll back; recorded in the ledger and on both versions."),
        },
        doc_md=__doc__,
    ) as dag:
        RollbackOperator(
            task_id="rollback",
            model=spec.name,
            target_version="{{ params.target_version }}",
            reason="{{ params.reason }}",
        )
    globals()[dag.dag_id] = dag
