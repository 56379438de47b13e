"""The real stack for system tests, started once per session and shared.

Airflow's scheduler, dag-processor, triggerer and API server run as separate processes on a
throwaway PostgreSQL database (created per run, dropped after), with a real MLflow server.
Tests drive it through the REST API v2 like a user would. Each test uses its own dates or
model so tests do not see each other's assets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.api import AirflowClient
from devstack.stack import Stack, throwaway_stack
from include.lake import Lake


@dataclass
class SystemStack:
    stack: Stack
    client: AirflowClient
    lake: Lake
    home: Path


@pytest.fixture(scope="session")
def system_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemStack]:
    root = tmp_path_factory.mktemp("system")
    lake_uri = (root / "lake").as_uri()
    with throwaway_stack(root, lake_uri, db_prefix="airloop_sys") as stack:
        yield SystemStack(stack=stack, client=AirflowClient.for_stack(stack), lake=Lake(lake_uri), home=root)
