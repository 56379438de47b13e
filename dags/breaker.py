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

from airloop.dag_defaults import form_dags, param_templates, required_reason_param
from airloop.operators.breaker import BreakerResetOperator

PARAMS = {
    "by": Param(
        "",
        type="string",
        minLength=2,
        maxLength=100,
        title="Your name (required)",
        description="Who resets the breaker; recorded in the ledger.",
    ),
    "reason": required_reason_param("What you checked and why retraining may resume; recorded in the ledger."),
}

for spec, dag in form_dags(
    globals(),
    step="breaker_reset",
    description="Reset the {model} retrain circuit breaker after a human looked",
    params=PARAMS,
):
    BreakerResetOperator(task_id="breaker_reset", model=spec.name, **param_templates(dag.params))
