"""docker-compose.yaml: valid against the Compose Specification, healthy, pinned, secret-free.

tests/deploy/compose-spec.json is the Compose Specification's JSON schema (compose-spec/compose-spec,
schema/compose-spec.json, Apache-2.0) as vendored by check-jsonschema 0.39.0 on PyPI
(check_jsonschema/builtin_schemas/vendor/compose-spec.json, sha256 d549057e...0e64). No Docker needed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from devstack.preflight import PASSWORD_VARIABLES, SECRET_VARIABLES, check_environment
from tests.deploy.compose_file import (
    COMPOSE_FILE,
    MissingVariable,
    interpolate,
    load_raw,
    read_env_file,
    required_variables,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).with_name("compose-spec.json")
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"

# Run once and exit: no healthcheck, restart "no"; everything else is long-running.
ONE_SHOT = {"preflight", "mlflow-db-init", "minio-init", "airflow-init"}
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "flower",
}
CELERY_ONLY = {"airflow-worker", "flower"}
DEFAULT_CREDENTIALS = {"airflow", "minio123", "minioadmin", "postgres", "admin", "changeme", "password", "secret"}


def filled_env() -> dict[str, str]:
    """.env.example with every required secret generated, as a user following the docs would."""
    env = read_env_file()
    for name in required_variables():
        env[name] = secrets.token_hex(24)
    env["AIRFLOW__CORE__FERNET_KEY"] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    env["AIRFLOW__API_AUTH__JWT_SECRET"] = secrets.token_urlsafe(48)
    env["AIRFLOW__API__SECRET_KEY"] = secrets.token_urlsafe(48)
    return env


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load_raw()


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return filled_env()


@pytest.fixture(scope="module")
def config(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    return interpolate(raw, env)


def test_vendored_schema_is_the_recorded_file() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_validates_against_the_compose_spec(config: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schema_rejects_a_broken_compose_file(config: dict[str, Any]) -> None:
    """The validation above has teeth: a misspelt key and a bad depends_on condition fail."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = json.loads(json.dumps(config))
    broken["services"]["mlflow"]["healthchek"] = broken["services"]["mlflow"].pop("healthcheck")
    broken["services"]["airflow-scheduler"]["depends_on"]["postgres"]["condition"] = "service_ready"
    messages = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(broken)]
    assert any("healthchek" in m for m in messages)
    assert any("service_ready" in m for m in messages)


def test_the_services_of_the_design(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {
        "preflight",
        "postgres",
        "mlflow-db-init",
        "redis",
        "minio",
        "minio-init",
        "mlflow",
        *AIRFLOW_SERVICES,
    }


def test_every_long_running_service_has_a_healthcheck(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        if name in ONE_SHOT:
            assert "healthcheck" not in service, name
            assert service["restart"] == "no", name
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) >= 2, name
        assert not check.get("disable", False), name
        assert service["restart"] == "always", name


def test_startup_order_waits_for_health_and_init(config: dict[str, Any]) -> None:
    services = config["services"]
    # the preflight gates every data service, so nothing starts with a default password
    for name in ("postgres", "redis", "minio"):
        assert services[name]["depends_on"]["preflight"]["condition"] == "service_completed_successfully"
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
    assert services["mlflow"]["depends_on"] == {
        "mlflow-db-init": {"condition": "service_completed_successfully"},
        "minio-init": {"condition": "service_completed_successfully"},
    }
    # the components that run tasks need MLflow and the lake
    for name in ("airflow-scheduler", "airflow-worker"):
        assert services[name]["depends_on"]["mlflow"]["condition"] == "service_healthy", name


def test_every_image_is_pinned_to_a_version_tag(raw: dict[str, Any]) -> None:
    # With the defaults only (no .env), as the file itself pins them.
    defaults = interpolate(raw, {name: "x" for name in required_variables()})
    images = {name: service["image"] for name, service in defaults["services"].items()}
    assert set(images) == set(defaults["services"]), "every service names its image"
    for name, image in images.items():
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"
    assert images["postgres"] == "postgres:16.9-bookworm"
    assert images["minio"] == "minio/minio:RELEASE.2025-04-22T22-12-26Z"
    assert images["minio-init"] == "minio/mc:RELEASE.2025-04-16T18-13-26Z"
    assert images["redis"] == "redis:7.2-bookworm"
    # Airflow and MLflow run the project image built from ./Dockerfile (same locked versions)
    for name in (*AIRFLOW_SERVICES, "mlflow", "preflight"):
        assert images[name] == "airloop:0.1.0", name
        # each can build it, so compose never tries to pull the project image from a registry
        assert defaults["services"][name]["build"] == {"context": ".", "args": {"AIRLOOP_CODE_COMMIT": "unknown"}}, name
    for name in (ONE_SHOT | {"postgres", "redis", "minio"}) - {"preflight", "airflow-init"}:
        assert "build" not in defaults["services"][name], name
    assert "latest" not in COMPOSE_FILE.read_text(encoding="utf-8")


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _walk(value, f"{path}/{key}")]
    if isinstance(node, list):
        return [item for index, value in enumerate(node) for item in _walk(value, f"{path}[{index}]")]
    return [(path, node)]


SECRET_KEY = re.compile(r"(PASSWORD|SECRET|SECRET_KEY|FERNET_KEY|ACCESS_KEY(_ID)?|TOKEN|_AUTH)$")
FROM_DOTENV = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}")
URL_PASSWORD = re.compile(r"://[^:/@\s]*:(\$\{[^}]*\}|[^@\s]+)@")
JSON_CREDENTIAL = re.compile(r'"(?:login|password)": "([^"]*)"')


def secret_problems(raw: dict[str, Any]) -> tuple[list[str], int]:
    """(places where a credential is written literally, number of credentials checked)."""
    problems: list[str] = []
    checked = 0
    for path, value in _walk(raw):
        if not isinstance(value, str):
            continue
        candidates = URL_PASSWORD.findall(value) + JSON_CREDENTIAL.findall(value)
        if SECRET_KEY.search(path.rsplit("/", 1)[-1]):
            candidates.append(value)
        for candidate in candidates:
            checked += 1
            if not FROM_DOTENV.search(candidate):
                problems.append(path)
    return problems, checked


def test_no_secret_literal_in_the_compose_file(raw: dict[str, Any]) -> None:
    problems, checked = secret_problems(raw)
    assert problems == []
    # every credential of every service: env keys, URLs' passwords, the lake connection's JSON
    assert checked >= 40
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for default in DEFAULT_CREDENTIALS:
        assert not re.search(rf"(PASSWORD|SECRET|_KEY)\w*\s*[:=]\s*['\"]?{default}['\"]?\s*$", text, re.M), default


def test_secret_check_catches_literals(raw: dict[str, Any]) -> None:
    doctored = json.loads(json.dumps(raw))
    common = doctored["x-airflow-common"]["environment"]
    common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "postgresql+psycopg2://airflow:airflow@postgres/airflow"
    common["AIRFLOW_CONN_AWS_DEFAULT"] = '{"conn_type": "aws", "login": "minioadmin", "password": "minioadmin"}'
    doctored["services"]["minio"]["environment"]["MINIO_ROOT_PASSWORD"] = "minio123"
    problems, _ = secret_problems(doctored)
    assert problems == [
        "/x-airflow-common/environment/AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "/x-airflow-common/environment/AIRFLOW_CONN_AWS_DEFAULT",
        "/x-airflow-common/environment/AIRFLOW_CONN_AWS_DEFAULT",
        "/services/minio/environment/MINIO_ROOT_PASSWORD",
    ]


def test_every_secret_is_required_from_dotenv_and_declared_empty_in_the_example() -> None:
    required = required_variables()
    assert required >= {*PASSWORD_VARIABLES, *SECRET_VARIABLES, "AIRFLOW__CORE__FERNET_KEY"}
    assert required >= {"MINIO_ROOT_USER", "AIRLOOP_S3_ACCESS_KEY"}
    example = read_env_file()
    missing = required - set(example)
    assert not missing, f".env.example lacks {sorted(missing)}"
    filled = {name: example[name] for name in required if example[name]}
    assert not filled, f".env.example must not carry secret values: {sorted(filled)}"


def test_an_unfilled_env_is_refused_by_compose_naming_the_variable(raw: dict[str, Any]) -> None:
    env = filled_env()
    env["MINIO_ROOT_PASSWORD"] = ""
    with pytest.raises(MissingVariable) as caught:
        interpolate(raw, env)
    assert caught.value.name == "MINIO_ROOT_PASSWORD"
    assert "set MINIO_ROOT_PASSWORD in .env" in caught.value.message


def test_preflight_accepts_the_documented_env_and_sees_every_password(
    config: dict[str, Any], env: dict[str, str]
) -> None:
    init_env = config["services"]["airflow-init"]["environment"]
    preflight_env = config["services"]["preflight"]["environment"]
    for name in (*PASSWORD_VARIABLES, *SECRET_VARIABLES, "AIRFLOW__CORE__FERNET_KEY"):
        assert init_env[name] == env[name], name
        assert preflight_env[name] == env[name], name
    assert check_environment(init_env) == []
    assert config["services"]["preflight"]["entrypoint"] == ["python", "-m", "devstack.preflight"]
    init_script = config["services"]["airflow-init"]["command"][-1]
    assert init_script.splitlines()[0] == "python -m devstack.preflight"
    assert init_script.index("preflight") < init_script.index("airflow db migrate")


def test_mlflow_is_internal_on_postgres_with_s3_artifacts(config: dict[str, Any], env: dict[str, str]) -> None:
    mlflow = config["services"]["mlflow"]
    assert "ports" not in mlflow, "MLflow must not be published by default"
    assert [str(port) for port in mlflow["expose"]] == ["5000"]
    assert mlflow["command"][:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in mlflow["command"]
    assert "--host=0.0.0.0" in mlflow["command"]
    hosts = next(arg for arg in mlflow["command"] if arg.startswith("--allowed-hosts="))
    assert "mlflow:5000" in hosts.split("=", 1)[1].split(",")
    mlflow_env = mlflow["environment"]
    assert mlflow_env["MLFLOW_BACKEND_STORE_URI"] == (
        f"postgresql+psycopg2://mlflow:{env['MLFLOW_DB_PASSWORD']}@postgres:5432/mlflow"
    )
    assert mlflow_env["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://mlflow/artifacts"
    assert mlflow_env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert mlflow_env["AWS_SECRET_ACCESS_KEY"] == env["AIRLOOP_S3_SECRET_KEY"]
    assert mlflow_env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    assert mlflow["healthcheck"]["test"][-1] == "http://localhost:5000/health"
    # only the Airflow UI/API (and Flower in the celery profile) are published, on 127.0.0.1
    published = {name: s["ports"] for name, s in config["services"].items() if "ports" in s}
    assert published == {"airflow-apiserver": ["127.0.0.1:8080:8080"], "flower": ["127.0.0.1:5555:5555"]}


def test_airflow_common_uses_local_or_celery_executor(raw: dict[str, Any], env: dict[str, str]) -> None:
    common = interpolate(raw["x-airflow-common"], env)["environment"]
    assert common["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    celery = interpolate(raw["x-airflow-common"], {**env, "AIRLOOP_EXECUTOR": "CeleryExecutor"})["environment"]
    assert celery["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{env['REDIS_PASSWORD']}@redis:6379/0"
    assert common["AIRFLOW__CELERY__RESULT_BACKEND"] == (
        f"db+postgresql+psycopg2://airflow:{env['POSTGRES_PASSWORD']}@postgres:5432/airflow"
    )
    assert common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert common["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert common["AIRLOOP_LAKE_URI"] == "s3://airloop-lake/lake"
    lake = json.loads(common["AIRFLOW_CONN_AWS_DEFAULT"])
    assert lake == {
        "conn_type": "aws",
        "login": env["AIRLOOP_S3_ACCESS_KEY"],
        "password": env["AIRLOOP_S3_SECRET_KEY"],
        "extra": {"endpoint_url": "http://minio:9000", "region_name": "us-east-1"},
    }
    assert json.loads(common["AIRFLOW_CONN_MLFLOW_DEFAULT"]) == {"conn_type": "http", "host": "mlflow", "port": 5000}


def test_celery_parts_are_behind_the_celery_profile(config: dict[str, Any]) -> None:
    services = config["services"]
    for name, service in services.items():
        if name in CELERY_ONLY:
            assert service["profiles"] == ["celery"], name
        else:
            assert "profiles" not in service, name
    for name in AIRFLOW_SERVICES:
        assert services[name]["image"] == services["airflow-scheduler"]["image"]
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
    assert services["airflow-worker"]["command"] == "celery worker"
    assert services["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"
    assert services["flower"]["environment"]["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"].startswith("admin:")
    assert "container_name" not in services["airflow-worker"], "workers must scale"


def test_admin_password_file_only_where_needed(config: dict[str, Any]) -> None:
    with_auth = {
        name
        for name, service in config["services"].items()
        if any(str(volume).startswith("airflow-auth:") for volume in service.get("volumes", []))
    }
    assert with_auth == {"airflow-init", "airflow-apiserver"}
    init = config["services"]["airflow-init"]
    assert (
        init["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == "/opt/airflow/auth/passwords.json"
    )
    assert init["volumes"] == ["airflow-auth:/opt/airflow/auth"]
    assert "airflow db migrate" in init["command"][-1]


def _stub(bin_dir: Path, name: str, log: Path) -> None:
    """A command that only records how it was called (one line per call)."""
    script = bin_dir / name
    script.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n', encoding="utf-8")
    script.chmod(0o755)


def _run_script(service: dict[str, Any], tmp_path: Path, **overrides: str) -> tuple[int, str, list[str]]:
    """Run a one-shot service's shell script here, its tools stubbed; (exit code, stderr, calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    for tool in ("mc", "airflow"):
        _stub(bin_dir, tool, log)
    # a wrapper, not a symlink: the virtualenv is found from the interpreter's own path
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    python.chmod(0o755)
    shell = service["entrypoint"]
    flags, script = service["command"]
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", **service["environment"], **overrides}
    proc = subprocess.run(
        [shell, flags, script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return proc.returncode, proc.stderr, calls


def test_minio_init_script_creates_buckets_and_the_airloop_user(
    config: dict[str, Any], env: dict[str, str], tmp_path: Path
) -> None:
    code, stderr, calls = _run_script(config["services"]["minio-init"], tmp_path)
    assert code == 0, stderr
    assert calls == [
        f"alias set local http://minio:9000 {env['MINIO_ROOT_USER']} {env['MINIO_ROOT_PASSWORD']}",
        "mb --ignore-existing local/airloop-lake local/mlflow",
        f"admin user add local {env['AIRLOOP_S3_ACCESS_KEY']} {env['AIRLOOP_S3_SECRET_KEY']}",
        f"admin policy attach local readwrite --user {env['AIRLOOP_S3_ACCESS_KEY']}",
    ]
    # the buckets follow the lake and artifact URIs
    other = tmp_path / "other"
    other.mkdir()
    code, stderr, calls = _run_script(
        config["services"]["minio-init"],
        other,
        AIRLOOP_LAKE_URI="s3://my-lake/prefix/x",
        MLFLOW_ARTIFACTS_DESTINATION="s3://my-artifacts",
    )
    assert code == 0, stderr
    assert calls[1] == "mb --ignore-existing local/my-lake local/my-artifacts"


def test_airflow_init_script_runs_preflight_then_migrates_and_writes_the_admin(
    config: dict[str, Any], env: dict[str, str], tmp_path: Path
) -> None:
    service = config["services"]["airflow-init"]
    passwords = tmp_path / "passwords.json"
    code, stderr, calls = _run_script(
        service, tmp_path, AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords)
    )
    assert code == 0, stderr
    assert calls == ["db migrate", "version"]
    assert json.loads(passwords.read_text(encoding="utf-8")) == {"admin": env["AIRFLOW_ADMIN_PASSWORD"]}
    assert passwords.stat().st_mode & 0o777 == 0o600


def test_airflow_init_stops_before_migrating_on_a_default_password(config: dict[str, Any], tmp_path: Path) -> None:
    service = config["services"]["airflow-init"]
    passwords = tmp_path / "passwords.json"
    code, stderr, calls = _run_script(
        service,
        tmp_path,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        POSTGRES_PASSWORD="airflow",
    )
    assert code == 1
    assert "POSTGRES_PASSWORD: a known default or placeholder" in stderr
    assert calls == [] and not passwords.exists()
