"""What every airloop DAG shares: owner, retries, tags, failure alerts, and the specs to build.

DAG files call :func:`valid_specs` to get the specs that load; a spec that does not load is
reported by ``dags/airloop_specs.py`` as that file's import error (naming the spec file and
field), so one broken spec never takes the other models' DAGs down.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Param

if TYPE_CHECKING:
    from include.spec import ModelSpec


def valid_specs() -> list[ModelSpec]:
    from include.spec import load_specs

    good, _bad = load_specs()
    return good


def dag_kwargs(spec: ModelSpec, *, step: str, doc_md: str | None) -> dict[str, Any]:
    from airloop.notifiers.alerts import AlertNotifier

    return {
        "doc_md": doc_md,
        "tags": ["airloop", spec.name, step],
        "default_args": {
            "owner": spec.owner,
            "retries": 2,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": True,
            "on_failure_callback": AlertNotifier(model=spec.name, message=f"{spec.name}__{step} task failed"),
        },
        "on_failure_callback": AlertNotifier(model=spec.name, message=f"{spec.name}__{step} run failed"),
    }


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def form_dag(
    spec: ModelSpec,
    *,
    step: str,
    description: str,
    params: dict[str, Any],
    doc_md: str | None,
    schedule: Any = None,
) -> DAG:
    """The DAG ``<model>__<step>`` run from the trigger form: one run at a time, Params rendered
    as native objects, no catchup; manual only unless ``schedule`` is given."""
    return DAG(
        dag_id=f"{spec.name}__{step}",
        description=description,
        schedule=schedule,
        start_date=_midnight(spec.dataset.start),
        catchup=False,
        max_active_runs=1,
        render_template_as_native_obj=True,
        params=params,
        **dag_kwargs(spec, step=step, doc_md=doc_md),
    )


def required_reason_param(description: str) -> Param:
    """The form's required ``reason`` field (5 to 500 characters), recorded with the action."""
    return Param(
        "",
        type="string",
        minLength=5,
        maxLength=500,
        title="Reason (required)",
        description=description,
    )


def daily_dag(spec: ModelSpec, *, step: str, description: str, doc_md: str | None, max_active_runs: int) -> DAG:
    """The DAG ``<model>__<step>`` with one run per day of the spec's dataset, no catchup."""
    return DAG(
        dag_id=f"{spec.name}__{step}",
        description=description,
        schedule="@daily",
        start_date=_midnight(spec.dataset.start),
        end_date=_midnight(spec.dataset.end),
        catchup=False,
        max_active_runs=max_active_runs,
        **dag_kwargs(spec, step=step, doc_md=doc_md),
    )
