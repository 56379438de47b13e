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


def specs_with_data_drift_retraining(folder: Path) -> Path:
    """The project's specs, with flights also retraining on data drift alone.

    By default a model retrains on measured or estimated harm only; the loop test provokes data
    drift (tripled distances) to drive the drift event -> train -> promote chain through the real
    scheduler, so its stack opts back in (``drift.retrain_on``). The harm rules themselves are
    tested in tests/include/test_decision_harm.py."""
    import yaml

    from include.spec import DEFAULT_SPECS_DIR

    folder.mkdir(parents=True, exist_ok=True)
    for source in DEFAULT_SPECS_DIR.glob("*.yaml"):
        data = yaml.safe_load(source.read_text())
        if data["name"] == "flights":
            data["drift"]["retrain_on"] = ["performance", "estimated_performance", "data_drift"]
        (folder / source.name).write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


@pytest.fixture(scope="session")
def system_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemStack]:
    root = tmp_path_factory.mktemp("system")
    lake_uri = (root / "lake").as_uri()
    specs = specs_with_data_drift_retraining(root / "specs")
    with throwaway_stack(root, lake_uri, db_prefix="airloop_sys", env={"AIRLOOP_SPECS_DIR": str(specs)}) as stack:
        yield SystemStack(stack=stack, client=AirflowClient.for_stack(stack), lake=Lake(lake_uri), home=root)
