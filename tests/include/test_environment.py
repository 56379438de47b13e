"""The locked environment: the whole stack imports together, at the versions we designed for."""

from __future__ import annotations

import importlib
import importlib.metadata as md

import pytest

EXPECTED = {
    "apache-airflow": "3.3.2",
    "great-expectations": "1.",
    "mlflow": "3.",
    "evidently": "0.7.",
    "pandas": "2.",
}


def test_stack_imports_together() -> None:
    modules = [
        "airflow.sdk",
        "pandas",
        "numpy",
        "pyarrow",
        "sklearn",
        "skl2onnx",
        "onnx",
        "onnxruntime",
        "mlflow",
        "great_expectations",
        "evidently",
        "boto3",
        "pydantic",
        "yaml",
        "airflow.providers.docker",
        "airflow.providers.amazon",
        "airflow.providers.standard",
        "airflow.providers.celery",
        "airflow.providers.postgres",
        "airflow.providers.slack.notifications.slack_webhook",  # alert channels (airloop.notifiers)
        "airflow.providers.smtp.notifications.smtp",
        "airflow.providers.http.hooks.http",
    ]
    loaded = {name: importlib.import_module(name) for name in modules}
    assert set(loaded) == set(modules)
    # evidently 0.7 fails to import under pandas 3: the pin must hold
    assert int(loaded["pandas"].__version__.split(".")[0]) < 3
    from evidently import Report  # noqa: F401  (fails if evidently cannot import under this pandas)


@pytest.mark.parametrize(("dist", "prefix"), sorted(EXPECTED.items()))
def test_pinned_versions(dist: str, prefix: str) -> None:
    assert md.version(dist).startswith(prefix)


def test_celery_workers_start_with_the_locked_celery_and_the_stack_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What `airflow celery worker` loads at start, in the environment the stack gives a worker:
    celery 5.7 broke this import (the provider needs ``celery.backends.database.retry``)."""
    import json
    import subprocess
    import sys

    from devstack.stack import Stack

    stack = Stack(home=tmp_path, db_url="postgresql+psycopg2://airflow@db.example:5432/meta", executor="CeleryExecutor",
                  celery_broker_url="redis://127.0.0.1:6379/3", celery_workers=("alpha", "beta"))  # fmt: skip
    assert stack.components()[4:6] == ("worker-alpha", "worker-beta")
    assert stack.command("worker-beta")[-4:] == ["worker", "--celery-hostname", "beta@%h", "--skip-serve-logs"]
    probe = (
        "import json\n"
        "from airflow.providers.celery.executors.celery_executor import app\n"
        "from airflow.sdk.api.client import get_hostname\n"
        "print(json.dumps({'queue': app.conf.task_default_queue, 'backend': app.conf.result_backend,\n"
        "    'broker': app.conf.broker_url, 'acks_late': app.conf.task_acks_late, 'hostname': get_hostname()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=stack.component_env("worker-beta"), capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {
        "queue": stack.celery_queue,  # the stack's own queue, so another stack's workers never take its tasks
        "backend": "db+postgresql://airflow@db.example:5432/meta",
        "broker": "redis://127.0.0.1:6379/3",
        "acks_late": True,
        "hostname": "beta",  # what the task instances record: tells workers on one machine apart
    }
    assert stack.celery_queue.startswith("airloop_")
    # the queue follows from the home: a Stack rebuilt for it in another process sends to the same
    # queue its workers read; another home gets another queue
    assert Stack(home=tmp_path, celery_workers=("alpha",)).celery_queue == stack.celery_queue
    assert Stack(home=tmp_path / "other").celery_queue != stack.celery_queue
