"""
### `<model>__replay`: compare retraining policies on past data, from the UI

Manual only. Runs `airloop replay` for the chosen range: the loop's own step functions day by
day (land, validate, train, gate and promote, score, monitor) under the chosen policies,
each in a scratch lake and MLflow store, so the model's data and registry are untouched.
The task's **Replay report** link opens the HTML report (daily and monthly ROC AUC per
policy, retrain and promotion markers, compute time). A year of flights takes ~15 minutes on
2 cores. See docs/replay.md for how to read it.

Params: `start` and `end` (the first day of data and the last day scored; the first
`window_days` train the first model), `policies`, `calendar_days` (the calendar policy's
period), `search_budget` (trials per training) and `window_days` (empty: the spec's).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from airflow.sdk import Param

from airloop.dag_defaults import date_param, form_dags, int_param, param_templates
from airloop.operators.replay import ReplayOperator
from include.names import POLICIES

if TYPE_CHECKING:
    from include.spec import ModelSpec


def form(spec: ModelSpec) -> dict[str, Param]:
    """The trigger form: its defaults and bounds come from the spec."""
    first_end = min(spec.dataset.end, spec.dataset.start + timedelta(days=spec.training.window_days + 41))
    return {
        "start": date_param(
            spec.dataset.start.isoformat(),
            title="First day of data",
            description=f"The first {spec.training.window_days} days train the first model.",
        ),
        "end": date_param(
            first_end.isoformat(),
            title="Last day scored",
            description=f"At most {spec.dataset.end.isoformat()} (the data's last day).",
        ),
        "policies": Param(
            list(POLICIES),
            type="array",
            items={"type": "string", "enum": list(POLICIES)},
            minItems=1,
            uniqueItems=True,
            title="Policies",
            description="drift: retrain on drift decisions; calendar: every N days; frozen: never.",
        ),
        "calendar_days": int_param(
            7,
            minimum=1,
            maximum=90,
            title="Calendar period (days)",
            description="How often the calendar policy retrains.",
        ),
        "search_budget": int_param(
            1,
            minimum=1,
            maximum=20,
            title="Search budget",
            description="Hyperparameter trials per training (compute grows with it).",
        ),
        "window_days": int_param(
            None,
            minimum=2,
            maximum=365,
            title="Training window (days)",
            description=f"Empty: the spec's ({spec.training.window_days}).",
            optional=True,
        ),
    }


for spec, dag in form_dags(
    globals(),
    step="replay",
    description="Replay {model} under drift / calendar / frozen retraining and compare",
    params=form,
):
    ReplayOperator(
        task_id="replay",
        model=spec.name,
        **param_templates(dag.params),
        retries=1,  # a replay is long and mostly deterministic: one retry for a lost worker
        execution_timeout=timedelta(hours=3),
    )
