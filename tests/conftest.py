"""Shared fixtures: an isolated state folder per session and a real S3 API (moto's server)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import free_port
from tests.dashboard_world import dashboard_world, silent_port  # noqa: F401 (fixtures of the dashboard tests)
from tests.mlflow_server import (  # noqa: F401 (session fixtures for every test)
    flights_lake,
    mlflow_server,
    mlflow_server_process,
)

ROOT = Path(__file__).resolve().parents[1]

# Offline machine and quiet libraries, for every test process and the processes it starts.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# One OpenMP/BLAS thread, as `spec.training.threads` gives every training in the product: tests
# call `train_model` and fit pipelines without it, and on a shared 2-core machine a second
# spinning OpenMP thread fights the other processes for the cores (test_onnx_export: 22 s -> 15 s
# wall, user time halved). Results do not depend on the thread count. Set before scikit-learn or
# numpy load their thread pools; `_one_library_thread` covers any already loaded.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


@pytest.fixture(scope="session", autouse=True)
def _one_library_thread() -> Iterator[None]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session", autouse=True)
def airloop_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """All embedded state (prepared sources, lake) of the test session in one tmp folder."""
    home = tmp_path_factory.mktemp("airloop-home")
    old = {k: os.environ.get(k) for k in ("AIRLOOP_HOME", "AIRLOOP_LAKE_URI")}
    os.environ["AIRLOOP_HOME"] = str(home)
    os.environ["AIRLOOP_LAKE_URI"] = (home / "lake").as_uri()
    yield home
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a real HTTP S3 API); yields its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a loaded 2-core machine; MLflow's server gets 240 s
    while time.monotonic() < deadline:
        if proc.poll() is not None:  # e.g. the port was taken in between: do not talk to a stranger
            pytest.fail(f"moto server exited with {proc.returncode} before answering on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto server did not start within 180 s")
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def s3_bucket(s3_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test; returns its name."""
    import boto3

    name = "t-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40]
    client = boto3.client(
        "s3", endpoint_url=s3_server, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    client.create_bucket(Bucket=name)
    return name
