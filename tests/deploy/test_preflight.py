"""devstack/preflight.py: good settings pass; each bad one fails naming its variable, never its value."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.cli import main as airloop_main
from devstack.preflight import (
    PASSWORD_VARIABLES,
    SECRET_VARIABLES,
    Finding,
    PreflightError,
    check_environment,
    check_fernet_key,
    ensure_secure,
)
from tests.process import run

ROOT = Path(__file__).resolve().parents[2]


def fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def good_env() -> dict[str, str]:
    env = {name: secrets.token_hex(24) for name in PASSWORD_VARIABLES}
    env.update({name: secrets.token_urlsafe(48) for name in SECRET_VARIABLES})
    env["AIRFLOW__CORE__FERNET_KEY"] = fernet_key()
    env["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    return env


def test_generated_settings_pass() -> None:
    assert check_environment(good_env()) == []
    ensure_secure(good_env())
    celery = {**good_env(), "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW__CELERY__BROKER_URL": "redis://r"}
    assert check_environment(celery) == []


def test_fernet_key_list_for_rotation_passes() -> None:
    assert check_fernet_key(f"{fernet_key()},{fernet_key()}") is None


PLACEHOLDER = "a known default or placeholder"
URL_SAFE = "use only letters, digits and . _ ~ - (it is embedded in URLs and JSON); e.g. `openssl rand -hex 24`"


def _cases(variables: list[str] | tuple[str, ...], bad: list[tuple[str, str, str]]) -> list[Any]:
    """A case per variable and bad value: ``(id, value, problem)``."""
    return [pytest.param(v, value, problem, id=f"{v}-{case}") for v in variables for case, value, problem in bad]


BAD_VALUES = [
    *_cases(
        ["AIRFLOW__CORE__FERNET_KEY"],
        [
            ("empty", "", "empty: connections and variables would be stored unencrypted"),
            ("blank", "   ", "empty: connections and variables would be stored unencrypted"),
            ("not-base64", "not-a-key!", "key 1 is not url-safe base64"),
            ("short", base64.urlsafe_b64encode(b"short").decode(), "key 1 decodes to 5 bytes, a Fernet key is 32"),
            ("second-key-bad", f"{'A' * 43}=,oops!", "key 2 is not url-safe base64"),
        ],
    ),
    *_cases(
        SECRET_VARIABLES,
        [
            ("empty", "", "empty"),
            ("secret", "secret", PLACEHOLDER),
            ("temporary_key", "temporary_key", PLACEHOLDER),
            ("placeholder", "<generate: token_urlsafe(48)>", PLACEHOLDER),
            ("short", "tooshort0123456789", "too short (18 characters, at least 32)"),
        ],
    ),
    *_cases(
        PASSWORD_VARIABLES,
        [
            (v, v, PLACEHOLDER)
            for v in ["airflow", "minio123", "minioadmin", "postgres", "admin", "changeme", "ChangeMe"]
        ],
    ),
    *_cases(
        ["MINIO_ROOT_PASSWORD"],
        [
            ("empty", "", "empty"),
            ("short", "Xy7-short", "too short (9 characters, at least 12)"),
            ("not-url-safe", "pa ss@word:12345", URL_SAFE),
            ("json-quote", 'quote"in-json-1234', URL_SAFE),
        ],
    ),
]


@pytest.mark.parametrize(("variable", "value", "problem"), BAD_VALUES)
def test_bad_value_is_named(variable: str, value: str, problem: str) -> None:
    """One finding, naming the variable and the problem: the whole message, except a Fernet key's,
    which goes on with the decoder's own words."""
    findings = check_environment({**good_env(), variable: value})
    assert [f.variable for f in findings] == [variable]
    if variable == "AIRFLOW__CORE__FERNET_KEY":
        assert findings[0].problem.startswith(problem)
    else:
        assert findings[0].problem == problem


def test_reused_secret_is_named() -> None:
    env = good_env()
    env["REDIS_PASSWORD"] = env["POSTGRES_PASSWORD"]
    assert check_environment(env) == [
        Finding("REDIS_PASSWORD", "same value as POSTGRES_PASSWORD: use a separate secret for each")
    ]


def test_executor_must_be_local_or_celery_with_a_broker() -> None:
    assert check_environment({**good_env(), "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor"}) == [
        Finding("AIRFLOW__CORE__EXECUTOR", "'SequentialExecutor' is not one of ['CeleryExecutor', 'LocalExecutor']")
    ]
    findings = check_environment({**good_env(), "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"})
    assert [f.variable for f in findings] == ["AIRFLOW__CELERY__BROKER_URL"]


def test_ensure_secure_names_every_variable_and_no_value() -> None:
    env = {**good_env(), "POSTGRES_PASSWORD": "postgres", "AIRFLOW__API_AUTH__JWT_SECRET": ""}
    env["AIRFLOW__CORE__FERNET_KEY"] = ""
    with pytest.raises(PreflightError) as caught:
        ensure_secure(env)
    message = str(caught.value)
    assert message.splitlines() == [
        "insecure settings, refusing to start:",
        "  AIRFLOW__CORE__FERNET_KEY: empty: connections and variables would be stored unencrypted",
        "  AIRFLOW__API_AUTH__JWT_SECRET: empty",
        "  POSTGRES_PASSWORD: a known default or placeholder",
    ]
    for name, value in env.items():
        if len(value) > 8:
            assert value not in message, name


def _run_module(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "devstack.preflight"], cwd=ROOT, env={"PATH": os.environ.get("PATH", ""), **env})


def test_module_exit_codes_as_airflow_init_runs_it() -> None:
    ok = _run_module(good_env())
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "preflight: OK (10 secrets checked)"
    bad_env = {**good_env(), "MINIO_ROOT_PASSWORD": "minio123"}
    bad = _run_module(bad_env)
    assert bad.returncode == 1
    assert "MINIO_ROOT_PASSWORD: a known default or placeholder" in bad.stderr
    assert "minio123" not in bad.stderr
    assert bad.stdout == ""


def test_airloop_preflight_subcommand(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in good_env().items():
        monkeypatch.setenv(name, value)
    assert airloop_main(["preflight"]) == 0
    monkeypatch.setenv("AIRFLOW__API__SECRET_KEY", "changeme")
    assert airloop_main(["preflight"]) == 1
    assert "AIRFLOW__API__SECRET_KEY: a known default or placeholder" in capsys.readouterr().err
