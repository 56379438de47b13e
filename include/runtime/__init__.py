"""Process supervisor for the airloop runtime (Airflow 3 components + MLflow).

Nothing in this package imports Airflow: components are started through the
``airflow`` / ``mlflow`` command-line interfaces as separate process groups, so
the supervisor can run from a plain test process or a small CLI.
"""

from __future__ import annotations

from include.runtime.api import AirflowAPIError, AirflowClient, DagRunError
from include.runtime.stack import (
    AIRFLOW_COMPONENTS,
    Stack,
    StackError,
    create_postgres_database,
    down,
    drop_postgres_database,
    status_home,
    stop_home,
    up,
)

__all__ = [
    "AIRFLOW_COMPONENTS",
    "AirflowAPIError",
    "AirflowClient",
    "DagRunError",
    "Stack",
    "StackError",
    "create_postgres_database",
    "down",
    "drop_postgres_database",
    "status_home",
    "stop_home",
    "up",
]
