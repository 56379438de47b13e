"""A real MLflow tracking server for tests (and benchmarks), plus a small demo lake.

The ``mlflow_server`` and ``flights_lake`` session fixtures are registered for every test by
``tests/conftest.py`` (one server per session). The server runs on SQLite with proxied file artifacts, one
worker (2-core machine), in its own process group so that stopping it stops its workers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devstack.stack import free_port

if TYPE_CHECKING:
    from include.lake import Lake

STARTUP_TIMEOUT_S = 240.0  # ~20 s idle; 80+ s measured on a busy 2-core machine


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_mlflow_server(folder: Path, timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[str]:
    """Start ``mlflow server`` on SQLite under ``folder``; yield its URI; stop it on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        # MLflow 3.17 starts a job runner and 7 huey consumers (GenAI/trace jobs) next to the
        # server by default: 9 Python processes on a 2-core machine, for nothing we use.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    log_file = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            mlflow_bin,
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            (folder / "art").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group: we stop the server and its workers together
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(uri):
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}; see {folder / 'server.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not healthy after {timeout_s:.0f} s; see {folder / 'server.log'}")
            time.sleep(0.5)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log_file.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of a real MLflow tracking server (SQLite + file artifacts), shared by the session."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


DEMO_START = date(2013, 1, 1)
DEMO_END = date(2013, 1, 25)


def land_validated(lake: Lake, days: Iterable[date], model: str = "flights") -> None:
    """Land each day of the flights demo (features, and the labels due that day) and publish it
    to ``validated/`` as it is (validation itself is another step's job); days already
    validated are left alone."""
    from include.datasets.ingest import land_day
    from include.lake import Zone
    from include.spec import get_spec

    spec = get_spec(model)
    for day in days:
        if not lake.has_partition(Zone.VALIDATED, spec.name, day):
            land_day(spec, lake, day)
            lake.publish_copy(lake.partition_file(Zone.LANDING, spec.name, day), Zone.VALIDATED, spec.name, day)


def land_demo_days(lake_root: Path, start: date, end: date) -> None:
    """:func:`land_validated` for ``start..end`` into the lake folder ``lake_root``."""
    from include.lake import Lake

    land_validated(Lake(lake_root.as_uri()), (start + timedelta(days=i) for i in range((end - start).days + 1)))


@pytest.fixture(scope="session")
def flights_lake(tmp_path_factory: pytest.TempPathFactory, airloop_home: Path) -> Path:
    """A lake with the flights demo landed and validated for 2013-01-01..2013-01-25
    (labels up to 2013-01-23: they arrive two days late). Treat it as read-only."""
    root = tmp_path_factory.mktemp("flights-lake")
    land_demo_days(root, DEMO_START, DEMO_END)
    return root
