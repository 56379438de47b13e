"""What every airloop DAG shares: owner, retries, tags, failure alerts, and the specs to build.

DAG files call :func:`valid_specs` to get the specs that load; a spec that does not load is
reported by ``dags/airloop_specs.py`` as that file's import error (naming the spec file and
field), so one broken spec never takes the other models' DAGs down.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import DAG, Param

if TYPE_CHECKING:
    from include.spec import ModelSpec

T = TypeVar("T")
PerSpec = T | Callable[["ModelSpec"], T]  # a value, or a function of the spec giving it


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
        params=copy.deepcopy(params),  # a DAG's Params are its own, even when DAG files share them
        **dag_kwargs(spec, step=step, doc_md=doc_md),
    )


def int_param(
    default: int | None,
    *,
    minimum: int,
    maximum: int | None = None,
    title: str,
    description: str,
    optional: bool = False,
) -> Param:
    """An integer field of the trigger form, bounded; ``optional``: it may be left empty (None)."""
    bounds = {"minimum": minimum} if maximum is None else {"minimum": minimum, "maximum": maximum}
    kind: Any = ["null", "integer"] if optional else "integer"
    return Param(default, type=kind, **bounds, title=title, description=description)


def date_param(default: str | None, *, title: str, description: str, optional: bool = False) -> Param:
    """A ``YYYY-MM-DD`` field of the trigger form; ``optional``: it may be left empty (None)."""
    kind: Any = ["null", "string"] if optional else "string"
    return Param(default, type=kind, format="date", title=title, description=description)


def param_templates(params: Mapping[str, Any], **renamed: str) -> dict[str, str]:
    """The operator arguments that take the trigger form's values: ``{"<name>": "{{ params.<name> }}"}``
    for every Param, the argument named like its Param unless ``renamed`` (``param="argument"``)."""
    return {renamed.get(name, name): "{{ params.%s }}" % name for name in params}  # noqa: UP031 - braces


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


def daily_dag(
    spec: ModelSpec, *, step: str, description: str, doc_md: str | None, max_active_runs: int, extra_days: int = 0
) -> DAG:
    """The DAG ``<model>__<step>`` with one run per day of the spec's dataset (and ``extra_days``
    after its end), no catchup."""
    return DAG(
        dag_id=f"{spec.name}__{step}",
        description=description,
        schedule="@daily",
        start_date=_midnight(spec.dataset.start),
        end_date=_midnight(spec.dataset.end + timedelta(days=extra_days)),
        catchup=False,
        max_active_runs=max_active_runs,
        **dag_kwargs(spec, step=step, doc_md=doc_md),
    )


def _of(spec: ModelSpec, value: PerSpec[T]) -> T:
    return value(spec) if callable(value) else value  # type: ignore[return-value]


def _per_spec(
    dag_file: dict[str, Any], make: Callable[..., DAG], *, step: str, description: str, **options: PerSpec[Any]
) -> Iterator[tuple[ModelSpec, DAG]]:
    """Per valid spec, the DAG ``make(spec, step=..., ...)``, open (``with``) while the caller's
    loop body adds the tasks, then set in the DAG file's globals (``dag_file``) where the DagBag
    finds it. ``description`` is formatted with ``model``, the doc is the DAG file's docstring,
    each of ``options`` is a value or a function of the spec."""
    for spec in valid_specs():
        with make(
            spec,
            step=step,
            description=description.format(model=spec.name),
            doc_md=dag_file["__doc__"],
            **{name: _of(spec, value) for name, value in options.items()},
        ) as dag:
            yield spec, dag
        dag_file[dag.dag_id] = dag


def daily_dags(
    dag_file: dict[str, Any], *, step: str, description: str, max_active_runs: int, extra_days: PerSpec[int] = 0
) -> Iterator[tuple[ModelSpec, DAG]]:
    """Per valid spec, its :func:`daily_dag` (see :func:`_per_spec`)."""
    return _per_spec(
        dag_file, daily_dag, step=step, description=description, max_active_runs=max_active_runs, extra_days=extra_days
    )


def form_dags(
    dag_file: dict[str, Any],
    *,
    step: str,
    description: str,
    params: PerSpec[dict[str, Any]],
    schedule: PerSpec[Any] = None,
) -> Iterator[tuple[ModelSpec, DAG]]:
    """Per valid spec, its :func:`form_dag` (see :func:`_per_spec`); the operators take the
    form's values with :func:`param_templates` of ``dag.params``."""
    return _per_spec(dag_file, form_dag, step=step, description=description, params=params, schedule=schedule)
