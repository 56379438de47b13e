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
    ]
    loaded = {name: importlib.import_module(name) for name in modules}
    assert set(loaded) == set(modules)
    # evidently 0.7 breaks under pandas 3 (TRAPS.md): the pin must hold
    assert int(loaded["pandas"].__version__.split(".")[0]) < 3
    from evidently import Report  # noqa: F401  (fails if evidently cannot import under this pandas)


@pytest.mark.parametrize(("dist", "prefix"), sorted(EXPECTED.items()))
def test_pinned_versions(dist: str, prefix: str) -> None:
    assert md.version(dist).startswith(prefix)
