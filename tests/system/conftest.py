"""The real stack for system tests, started once per session and shared.

Airflow's scheduler, dag-processor, triggerer and API server run as separate processes on a
throwaway PostgreSQL database (created per run, dropped after), with a real MLflow server.
Tests drive it through the REST API v2 like a user would. Each test uses its own dates or
model so tests do not see each other's assets.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from include.lake import Lake
from include.runtime.api import AirflowClient
from include.runtime.stack import Stack, create_postgres_database, drop_postgres_database
from tests.conftest import ROOT, free_port


@dataclass
class SystemStack:
    stack: Stack
    client: AirflowClient
    lake: Lake
    home: Path


@pytest.fixture(scope="session")
def system_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemStack]:
    root = tmp_path_factory.mktemp("system")
    state = root / "airloop"
    lake_uri = (root / "lake").as_uri()
    db_url = create_postgres_database("airloop_sys")
    stack = Stack(
        home=root / "stack",
        db_url=db_url,
        api_port=free_port(),
        mlflow_port=free_port(),
        extra_env={
            "AIRLOOP_HOME": str(state),
            "AIRLOOP_LAKE_URI": lake_uri,
            "AIRLOOP_SPECS_DIR": str(ROOT / "include" / "specs"),
        },
    )
    try:
        stack.init()
        stack.start()
        stack.wait_healthy(timeout=300)
        yield SystemStack(stack=stack, client=AirflowClient.for_stack(stack), lake=Lake(lake_uri), home=root)
    finally:
        stack.stop()
        if os.environ.get("AIRLOOP_KEEP_SYSTEM_DB") != "1":
            drop_postgres_database(db_url)
