"""
### `<model>__breaker_reset`: close the retrain circuit breaker, with a name and a reason

Manual only. When the gate has rejected `drift.circuit_breaker_rejections` challengers in a row,
the monitor stops retraining automatically (every verdict says `circuit breaker open` and alerts)
until a probe is allowed (`drift.breaker_probe_days`) or a human resets it here, after looking
at why the challengers failed. The reset is a `breaker_reset` entry in the promotion ledger; the
next `<model>__monitor` run reads it and may retrain again. Same as
`airloop breaker-reset --spec <model> --by WHO --reason TEXT`.

Params: `by` (who) and `reason` (why), both required and recorded.
"""

from __future__ import annotations

from airflow.sdk import Param

from airloop.dag_defaults import form_dag, required_reason_param, valid_specs
from airloop.operators.breaker import BreakerResetOperator

for spec in valid_specs():
    with form_dag(
        spec,
        step="breaker_reset",
        description=f"Reset the {spec.name} retrain circuit breaker after a human looked",
        params={
            "by": Param(
                "",
                type="string",
                minLength=2,
                maxLength=100,
                title="Your name (required)",
                description="Who resets the breaker; recorded in the ledger.",
            ),
            "reason": required_reason_param("What you checked and why retraining may resume; recorded in the ledger."),
        },
        doc_md=__doc__,
    ) as dag:
        BreakerResetOperator(
            task_id="breaker_reset", model=spec.name, by="{{ params.by }}", reason="{{ params.reason }}"
        )
    globals()[dag.dag_id] = dag
