"""One ``airloop`` command: the library's commands plus the embedded stack's, and ``airloop airflow``
running Airflow's own CLI with the environment the stack gives its scheduler."""

from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path

import pytest

from devstack.cli import _stack, add_commands, airflow_command
from devstack.stack import PROJECT_ROOT
from include.cli import build_parser
from tests.process import run_ok

STACK_COMMANDS = {"up", "down", "status", "demo", "airflow", "preflight"}


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_one_airloop_command_holds_the_steps_and_the_stack_commands() -> None:
    library = _commands(build_parser())
    assert {"spec", "ingest", "train", "score", "monitor", "replay"} <= library
    assert library & STACK_COMMANDS == set()  # the library alone knows nothing of the dev stack
    assert _commands(build_parser(add_commands)) == library | STACK_COMMANDS


def test_include_never_imports_devstack() -> None:
    offenders = []
    for path in sorted((PROJECT_ROOT / "include").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(PROJECT_ROOT)}: {n}" for n in names if n.split(".")[0] == "devstack"]
    assert offenders == []


def test_airflow_arguments_pass_through_unchanged() -> None:
    argv = ["airflow", "--db", "sqlite", "tasks", "test", "flights__train", "train", "2013-01-20", "--map-index", "-1"]
    args = build_parser(add_commands).parse_args(argv)
    assert args.db == "sqlite"
    assert args.airflow_args == ["tasks", "test", "flights__train", "train", "2013-01-20", "--map-index", "-1"]
    # options after Airflow's command are Airflow's, even one spelled like ours
    args = build_parser(add_commands).parse_args(["airflow", "dags", "list", "--port", "1", "-o", "json"])
    assert (args.port, args.airflow_args) == (8080, ["dags", "list", "--port", "1", "-o", "json"])


def test_airflow_command_gets_the_environment_of_the_stacks_scheduler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRLOOP_HOME", str(tmp_path))
    parser = build_parser(add_commands)
    argv, env = airflow_command(parser.parse_args(["airflow", "--db", "sqlite", "--port", "8181", "dags", "list"]))
    scheduler = _stack(parser.parse_args(["up", "--db", "sqlite", "--port", "8181"])).component_env("scheduler")

    assert env == scheduler
    assert argv[-2:] == ["dags", "list"] and Path(argv[0]).name in ("airflow", Path(sys.executable).name)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(PROJECT_ROOT / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(PROJECT_ROOT / "plugins")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'stack' / 'airflow.db'}"
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:8181"
    assert env["AIRLOOP_HOME"] == str(tmp_path)
    assert env["AIRLOOP_SPECS_DIR"] == str(PROJECT_ROOT / "include" / "specs")


def _airloop_airflow(home: Path, *args: str) -> str:
    """``airloop airflow --db sqlite <args>`` in a fresh process (no stack running); its stdout."""
    env = {
        **os.environ,
        "AIRLOOP_HOME": str(home),
        "PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{PROJECT_ROOT / 'plugins'}",
    }
    proc = run_ok(
        [sys.executable, "-m", "devstack.cli", "airflow", "--db", "sqlite", *args], cwd=home, env=env, timeout=180
    )
    return proc.stdout.strip().splitlines()[-1]


def test_airloop_airflow_runs_airflows_cli_on_the_stacks_folders_and_database(tmp_path: Path) -> None:
    assert _airloop_airflow(tmp_path, "config", "get-value", "core", "dags_folder") == str(PROJECT_ROOT / "dags")
    conn = _airloop_airflow(tmp_path, "config", "get-value", "database", "sql_alchemy_conn")
    assert conn == f"sqlite:///{tmp_path / 'stack' / 'airflow.db'}"
