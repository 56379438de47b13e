"""Refuse to start a deployment with insecure settings.

The compose stack (``docker-compose.yaml``) runs this first, as its own one-shot ``preflight``
service that every other service waits for, and again at the top of ``airflow-init``:

    python -m devstack.preflight        # exit 0: OK; exit 1: one line per problem

It checks the environment it is given, so it names the variables exactly as they are written in
``.env``: an empty or malformed Fernet key, an empty, short or well-known JWT/API secret, and any
password that is empty, short, a well-known default (``airflow``, ``minio123``, ``minioadmin``,
``postgres``, ``admin``, ``changeme``, ...) or not URL-safe (passwords are embedded in database and
broker URLs and in the JSON of an Airflow connection). It never prints a value.

Plain standard library: no Airflow, so it runs anywhere the image's Python runs.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

FERNET_KEY_VARIABLE = "AIRFLOW__CORE__FERNET_KEY"
EXECUTOR_VARIABLE = "AIRFLOW__CORE__EXECUTOR"
BROKER_VARIABLE = "AIRFLOW__CELERY__BROKER_URL"

# Signing secrets shared by the Airflow components (JWTs for the task API, the API server's key).
SECRET_VARIABLES: tuple[str, ...] = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")

# Every password of the compose stack (see .env.example).
PASSWORD_VARIABLES: tuple[str, ...] = (
    "POSTGRES_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "REDIS_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "AIRLOOP_S3_SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "FLOWER_PASSWORD",
)

SUPPORTED_EXECUTORS: frozenset[str] = frozenset({"LocalExecutor", "CeleryExecutor"})

# Defaults shipped by the images and tutorials this stack is built from, plus the usual suspects.
KNOWN_DEFAULT_PASSWORDS: frozenset[str] = frozenset(
    {
        "admin",
        "administrator",
        "airflow",
        "airloop",
        "changeme",
        "change-me",
        "change_me",
        "default",
        "letmein",
        "minio",
        "minio123",
        "minioadmin",
        "mlflow",
        "password",
        "password1",
        "password123",
        "password1234",
        "postgres",
        "qwerty",
        "redis",
        "root",
        "secret",
        "test",
        "123456",
        "12345678",
    }
)

# Secrets published in Airflow's docs, config templates and popular examples.
KNOWN_DEFAULT_SECRETS: frozenset[str] = frozenset(
    {
        "{secret_key}",
        "{jwt_secret}",
        "secret",
        "secret_key",
        "secretkey",
        "jwt_secret",
        "temporary_key",
        "changeme",
        "change-me",
        "airflow",
        "your-secret-key",
        "supersecret",
    }
)

MIN_PASSWORD_LENGTH = 12
MIN_SECRET_LENGTH = 32
# Characters that survive unescaped in a URL's userinfo and in a JSON string.
_URL_SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")
# A placeholder left from .env.example ("<generate: ...>", "CHANGE_ME", "xxx").
_PLACEHOLDER = re.compile(r"^<.*>$|change[_-]?me|^x+$", re.IGNORECASE)


class PreflightError(RuntimeError):
    """The environment holds insecure settings; the message names every offending variable."""


@dataclass(frozen=True)
class Finding:
    """One problem with one variable (never its value)."""

    variable: str
    problem: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.problem}"


def check_fernet_key(value: str) -> str | None:
    """Why ``value`` is not a usable Fernet key list, or None.

    Airflow accepts several comma-separated keys (the first encrypts, all decrypt: the key
    rotation procedure); each must be 32 url-safe base64-encoded bytes.
    """
    if not value.strip():
        return "empty: connections and variables would be stored unencrypted"
    for position, key in enumerate(value.split(","), start=1):
        key = key.strip()
        try:
            raw = base64.b64decode(key.encode("ascii"), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            return f"key {position} is not url-safe base64 (generate one with the command in docs/deployment.md)"
        if len(raw) != 32:
            return f"key {position} decodes to {len(raw)} bytes, a Fernet key is 32"
    return None


def check_secret(value: str, min_length: int = MIN_SECRET_LENGTH) -> str | None:
    """Why ``value`` is not a usable signing secret, or None."""
    if not value.strip():
        return "empty"
    if value.strip().lower() in KNOWN_DEFAULT_SECRETS or _PLACEHOLDER.search(value):
        return "a known default or placeholder"
    if len(value) < min_length:
        return f"too short ({len(value)} characters, at least {min_length})"
    return None


def check_password(value: str, min_length: int = MIN_PASSWORD_LENGTH) -> str | None:
    """Why ``value`` is not an acceptable password, or None."""
    if not value:
        return "empty"
    if value.lower() in KNOWN_DEFAULT_PASSWORDS or _PLACEHOLDER.search(value):
        return "a known default or placeholder"
    if len(value) < min_length:
        return f"too short ({len(value)} characters, at least {min_length})"
    if not _URL_SAFE.match(value):
        return "use only letters, digits and . _ ~ - (it is embedded in URLs and JSON); e.g. `openssl rand -hex 24`"
    return None


def check_environment(
    env: Mapping[str, str],
    *,
    passwords: Sequence[str] = PASSWORD_VARIABLES,
    secrets: Sequence[str] = SECRET_VARIABLES,
) -> list[Finding]:
    """Every problem found in ``env``; an empty list means the settings may start."""
    findings: list[Finding] = []
    problem = check_fernet_key(env.get(FERNET_KEY_VARIABLE, ""))
    if problem:
        findings.append(Finding(FERNET_KEY_VARIABLE, problem))
    for name in secrets:
        problem = check_secret(env.get(name, ""))
        if problem:
            findings.append(Finding(name, problem))
    for name in passwords:
        problem = check_password(env.get(name, ""))
        if problem:
            findings.append(Finding(name, problem))
    seen: dict[str, str] = {}
    for name in (*secrets, *passwords):
        value = env.get(name, "")
        if value and value in seen:
            findings.append(Finding(name, f"same value as {seen[value]}: use a separate secret for each"))
        seen.setdefault(value, name)
    executor = env.get(EXECUTOR_VARIABLE, "")
    if executor and executor not in SUPPORTED_EXECUTORS:
        findings.append(Finding(EXECUTOR_VARIABLE, f"{executor!r} is not one of {sorted(SUPPORTED_EXECUTORS)}"))
    if executor == "CeleryExecutor" and not env.get(BROKER_VARIABLE, "").strip():
        findings.append(Finding(BROKER_VARIABLE, "empty while the executor is CeleryExecutor"))
    return findings


def ensure_secure(env: Mapping[str, str] | None = None) -> None:
    """Raise :class:`PreflightError` naming every insecure variable."""
    findings = check_environment(os.environ if env is None else env)
    if findings:
        raise PreflightError("insecure settings, refusing to start:\n" + "\n".join(f"  {f}" for f in findings))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: exit 0 when the environment is acceptable, 1 (with the reasons on stderr) otherwise."""
    del argv  # no options: the environment is the input
    try:
        ensure_secure()
    except PreflightError as exc:
        print(f"preflight: {exc}", file=sys.stderr)
        print("preflight: fix these in .env (see docs/deployment.md), then start again", file=sys.stderr)
        return 1
    checked = 1 + len(SECRET_VARIABLES) + len(PASSWORD_VARIABLES)
    print(f"preflight: OK ({checked} secrets checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
