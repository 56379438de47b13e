"""What every airloop DAG shares: owner, retries, tags, failure alerts, and the specs to build.

DAG files call :func:`valid_specs` to get the specs that load; a spec that does not load is
reported by ``dags/airloop_specs.py`` as that file's import error (naming the spec file and
field), so one broken spec never takes the other models' DAGs down.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

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
