"""docs/deployment.md: the secret-generation commands, run as written, produce a .env that compose
accepts and the preflight passes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from devstack.preflight import PASSWORD_VARIABLES, SECRET_VARIABLES, check_environment
from tests.deploy.compose_file import ENV_EXAMPLE, interpolate, load_raw, read_env_file, required_variables
from tests.process import run_ok

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = ROOT / "docs" / "deployment.md"


def generate_secrets_block() -> str:
    text = DEPLOYMENT.read_text(encoding="utf-8")
    after = text[text.index("<!-- generate-secrets") :]
    match = re.search(r"```bash\n(.*?)```", after, re.S)
    assert match, "the generate-secrets block is a ```bash block after its marker"
    return match.group(1)


@pytest.fixture(scope="module")
def generated_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not (shutil.which("sed") and shutil.which("python3")):
        pytest.fail("the documented commands need sed and python3 on PATH")
    workdir = tmp_path_factory.mktemp("dotenv")
    shutil.copy(ENV_EXAMPLE, workdir / ".env")
    run_ok(["bash", "-euo", "pipefail", "-c", generate_secrets_block()], cwd=workdir)
    assert (workdir / ".env").stat().st_mode & 0o777 == 0o600
    return read_env_file(workdir / ".env")


def test_documented_commands_fill_every_required_secret(generated_env: dict[str, str]) -> None:
    empty = sorted(name for name in required_variables() if not generated_env.get(name))
    assert empty == []
    values = [generated_env[name] for name in required_variables()]
    assert len(set(values)) == len(values), "every secret is generated separately"
    # the rest of .env.example is untouched
    example = read_env_file()
    assert {k: v for k, v in generated_env.items() if k not in required_variables()} == {
        k: v for k, v in example.items() if k not in required_variables()
    }


def test_generated_env_passes_compose_and_the_preflight(generated_env: dict[str, str]) -> None:
    config = interpolate(load_raw(), generated_env)
    init_env = config["services"]["airflow-init"]["environment"]
    assert check_environment(init_env) == []
    for name in (*PASSWORD_VARIABLES, *SECRET_VARIABLES):
        assert init_env[name] == generated_env[name]
