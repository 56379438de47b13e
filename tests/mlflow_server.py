"""A real MLflow tracking server for tests (and benchmarks), plus a small demo lake.

The ``mlflow_server`` and ``flights_lake`` session fixtures are registered for every test by
``tests/conftest.py`` (one server per session, started with the session's first test when any
selected test uses it: see :func:`mlflow_server_process`). The server runs on SQLite with proxied
file artifacts, one worker (2-core machine), in its own process group so that stopping it stops
its workers.
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


class MlflowServer:
    """``mlflow server`` on SQLite under a folder, started at once; :meth:`wait_healthy` blocks
    until it answers, so the caller can do other work while it boots."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        port = free_port()
        self.uri = f"http://127.0.0.1:{port}"
        mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        env = {
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            # MLflow 3.17 starts a job runner and 7 huey consumers (GenAI/trace jobs) next to the
            # server by default: 9 Python processes on a 2-core machine, for nothing we use.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        self._log_file = (folder / "server.log").open("wb")
        self._proc = subprocess.Popen(
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
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: we stop the server and its workers together
        )
        self._started = time.monotonic()
        self._healthy = False

    def wait_healthy(self, timeout_s: float = STARTUP_TIMEOUT_S) -> str:
        """Block until the server answers (``timeout_s`` counted from its start); return its URI."""
        deadline = self._started + timeout_s
        while not self._healthy:
            self._healthy = _healthy(self.uri)
            if self._healthy:
                break
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {self._proc.returncode}; see {self.folder / 'server.log'}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server not healthy after {timeout_s:.0f} s; see {self.folder / 'server.log'}"
                )
            time.sleep(0.5)
        return self.uri

    def stop(self) -> None:
        """Stop the server and its workers (its process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=5)
        self._log_file.close()


@contextlib.contextmanager
def running_mlflow_server(folder: Path, timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[str]:
    """Start ``mlflow server`` on SQLite under ``folder``; yield its URI; stop it on exit."""
    server = MlflowServer(folder)
    try:
        yield server.wait_healthy(timeout_s)
    finally:
        server.stop()


def _selected_tests_use(session: pytest.Session, fixture: str) -> bool:
    return any(fixture in getattr(item, "fixturenames", ()) for item in session.items)


@pytest.fixture(scope="session", autouse=True)
def mlflow_server_process(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer | None]:
    """Started with the session's first test when any selected test uses ``mlflow_server``, so
    that its boot (~20 s idle, 80+ s on a busy 2-core machine) overlaps the tests that run
    before the first one needing it; ``None`` when no selected test does."""
    if not _selected_tests_use(request.session, "mlflow_server"):
        yield None
        return
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(mlflow_server_process: MlflowServer | None) -> str:
    """URI of a real MLflow tracking server (SQLite + file artifacts), shared by the session."""
    assert mlflow_server_process is not None, "started by mlflow_server_process for every session that uses it"
    return mlflow_server_process.wait_healthy()


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
