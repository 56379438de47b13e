"""
### `<model>__promote`: gated promotion of the challenger

Evaluates `@challenger` against `@champion` on **the same evaluation set**: the most recent
`gate.evaluation_days` validated days with labels that come after the challenger's last
training day (its holdout days, plus any newer labelled days). Both models are scored from
their registered ONNX files with onnxruntime; metrics carry bootstrap confidence intervals
and the challenger/champion AUC gain a *paired* bootstrap interval.

The gate (`include.registry.gate.decide_promotion`) checks the absolute floor, no regression
on the lower bound of the gain, the optional minimum gain, the worst slice drop, ONNX parity,
latency and clean shadow days; with no champion yet only floors, parity and latency apply.
It never trades down: a gain interval entirely below zero rejects, whatever `max_regression`
allows, unless the champion is in a performance breach (its realized AUC below the floor) and
the challenger was judged on labelled days after the break: then the comparisons are waived and
the best candidate above the floor wins. A challenger trained to answer a break is judged on the
labelled days after it when they hold `gate.min_post_break_rows` rows; with fewer, and the
champion in breach, it is `pending` (waiting for post-break labels), not promoted on days
before the break.

* **Schedule**: the model's `challenger` asset; or by hand with the `mode` Param.
* **Approval**: when the spec sets `gate.approval_required`, a human approves or rejects in
  the Airflow UI (*Required actions*), with a comment; a reject is recorded with who and why.
  Nobody answering within `gate.approval_timeout` rejects it ("no decision in time"); a newer
  `@challenger` ends the request (ledger `superseded`, "superseded by vN"), checked every 5
  minutes while it waits and again before the promotion acts. Two runs may be active
  (`max_active_runs=2`) so that a newer challenger's run is not queued behind a waiting one.
* **Promotion**: compare-and-set move of `@champion` (fails, moving nothing, if the champion
  changed since evaluation); one promotion per model at a time (`max_active_runs=1` without
  approval); tags on both versions; model card; ledger entry; `<model>.champion` asset event with
  `extra = {version, previous_version, decision_id}`.
* **Rejected or dry run**: recorded in the ledger and on the version; `promote` is skipped and
  no champion event is emitted.
* **Pending**: a challenger that only lacks its clean shadow days, or post-break labels, is
  `pending`, not rejected (it never counts toward the circuit breaker); the score DAG's `regate`
  task emits `<model>.challenger` again once it has its shadow days.
* **Links**: *Gate report* (every check), *Model card*.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airloop.assets import model_asset
from airloop.dag_defaults import dag_kwargs, valid_specs
from airloop.operators.promote import EvaluateChallengerOperator, PromoteModelOperator, PromotionApprovalOperator
from include.names import GATE_MODES

for spec in valid_specs():
    with DAG(
        dag_id=f"{spec.name}__promote",
        description=f"Gate the {spec.name} challenger against the champion and promote it",
        schedule=model_asset(spec.name, "challenger"),
        start_date=datetime.combine(spec.dataset.start, datetime.min.time()),
        catchup=False,
        # a run waiting for a human counts as active: one more lets a newer challenger's run start
        # (and supersede the waiting one) instead of queueing behind it
        max_active_runs=2 if spec.gate.approval_required else 1,
        params={
            "mode": Param(
                spec.gate.mode,
                type="string",
                enum=list(GATE_MODES),
                values_display={
                    "enabled": "enabled: promote when the gate passes",
                    "dry_run": "dry run: decide and record, move nothing",
                    "disabled": "disabled: never promote",
                },
                title="Run mode",
                description="enabled: promote if the gate passes; dry_run: decide and record, move nothing; disabled: never promote.",
            ),
        },
        **dag_kwargs(spec, step="promote", doc_md=__doc__),
    ) as dag:
        evaluate = EvaluateChallengerOperator(task_id="evaluate", model=spec.name, mode="{{ params.mode }}")
        approval = None
        if spec.gate.approval_required:
            approval = PromotionApprovalOperator(
                task_id="approve", model=spec.name, report=evaluate.output, approval_timeout=spec.gate.approval_timeout
            ).output
        PromoteModelOperator(
            task_id="promote", model=spec.name, report=evaluate.output, approval=approval, trigger_rule="none_failed"
        )
    globals()[dag.dag_id] = dag
