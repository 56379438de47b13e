"""``airloop``: the library's commands (include/cli.py: spec check, the steps, replay) plus the
embedded stack's:

    airloop up [--watch] | down | status     the embedded stack (Airflow + MLflow, state in .airloop/stack)
    airloop demo [--days 42]                 up, then the whole loop over the first weeks of data
    airloop airflow <args>                   Airflow's own CLI against the embedded stack, e.g.
                                             `airloop airflow dags list`, `airloop airflow tasks test ...`
    airloop preflight                        refuse insecure deployment settings (compose)

The ``airloop`` entry point is :func:`main` here; ``include/`` never imports this package.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from include.cli import _print
from include.cli import main as library_main
from include.lake import default_state_dir


def _metadata_db(choice: str) -> str | None:
    """Airflow's metadata DB for ``--db``: ``sqlite`` (None), ``postgres`` (a database of this
    state folder on the local server), a SQLAlchemy URL, or ``auto``: PostgreSQL when one answers on
    127.0.0.1:5432, else SQLite. SQLite cannot take concurrent writers: a backfill created
    while the scheduler runs can fail (HTTP 503) and has crashed the scheduler, so the demo
    prefers PostgreSQL."""
    import secrets

    from devstack.stack import local_postgres_database

    if choice == "sqlite":
        return None
    if "://" in choice:
        return choice
    # one database per state folder, named in it: deleting .airloop/ starts over here too
    marker = default_state_dir() / "stack" / "postgres-database"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"airloop_{secrets.token_hex(4)}\n")
    url = local_postgres_database(marker.read_text().strip())
    if url is None and choice == "postgres":
        raise SystemExit("--db postgres: no PostgreSQL answers on 127.0.0.1:5432 (user postgres)")
    if url is None:
        # on stderr: stdout of `airloop airflow ...` is Airflow's own (e.g. `dags list -o json`)
        print("note: no PostgreSQL on 127.0.0.1:5432, Airflow runs on SQLite (fine to look around;", file=sys.stderr)
        print("      long backfills need PostgreSQL: see docs/operations.md)", file=sys.stderr, flush=True)
    return url


def _stack(args: argparse.Namespace) -> Any:
    from devstack.stack import Stack
    from include.lake import default_lake_uri
    from include.spec import specs_dir

    home = default_state_dir()
    return Stack(
        home=home / "stack",
        db_url=_metadata_db(args.db),
        api_port=args.port,
        mlflow_port=args.mlflow_port,
        extra_env={
            "AIRLOOP_HOME": str(home),
            "AIRLOOP_LAKE_URI": default_lake_uri(),
            "AIRLOOP_SPECS_DIR": str(specs_dir()),
        },
    )


def cmd_up(args: argparse.Namespace) -> int:
    from devstack.stack import up

    stack = up(_stack(args))
    if args.watch:
        _watch(stack)
    return 0


def _watch(stack: Any) -> None:
    """Restart components that exit until Ctrl-C or SIGTERM; the stack keeps running after."""
    import signal
    import threading

    from devstack.supervisor import Supervisor

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    supervisor = Supervisor(stack)
    policy = supervisor.policy
    print(f"watching: a component that exits is restarted (after {policy.first_delay_s} s, doubling to "
          f"{policy.max_delay_s:.0f} s while it keeps exiting).", flush=True)  # fmt: skip
    print("Ctrl-C stops watching and leaves the stack running; `make down` stops it.", flush=True)
    supervisor.run(stop)
    print(f"stopped watching; restarts: {supervisor.restarts or 'none'}", flush=True)


def cmd_down(args: argparse.Namespace) -> int:
    from devstack.stack import down

    down(default_state_dir() / "stack")
    print("stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from devstack.stack import status_home

    status = status_home(default_state_dir() / "stack")
    _print(status)
    return 0 if status and all(status.values()) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the stack and run the whole loop over the first weeks of the demo data."""
    from mlflow import MlflowClient

    from devstack.api import AirflowClient
    from devstack.demo import run_demo_loop
    from devstack.stack import up
    from include.datasets.source import prepared_source
    from include.spec import get_spec

    spec = get_spec(args.spec)
    print(f"[1/4] preparing the {spec.name} source (once) ...", flush=True)
    prepared_source(spec)
    print("[2/4] starting Airflow (API server, scheduler, dag-processor, triggerer) and MLflow ...", flush=True)
    stack = up(_stack(args))
    print(f"      Airflow UI: {stack.api_url} (user {stack.username}, password {stack.password})", flush=True)
    print(f"      MLflow UI:  {stack.mlflow_url}", flush=True)
    client = AirflowClient.for_stack(stack)
    if stack.mlflow_url is None:
        raise RuntimeError("the demo needs the stack's MLflow server (it was started without one)")
    print(f"[3/4] running the loop over {args.days} days from {spec.dataset.start} ...", flush=True)
    summary = run_demo_loop(client, spec, stack.mlflow_url, days=args.days, budget=args.budget)
    print(f"[4/4] done in {summary.seconds:.0f} s. DAG runs by state:", flush=True)
    _print(summary.states)
    print("model versions (MLflow registry):", flush=True)
    _print(summary.versions)
    aliases = MlflowClient(stack.mlflow_url, registry_uri=stack.mlflow_url).get_registered_model(spec.name).aliases
    print(f"aliases: {aliases}")
    print(f"Open {stack.api_url} (DAG runs, Assets graph, the airloop view) and {stack.mlflow_url}; stop: make down")
    failed = {step: n.get("failed", 0) for step, n in summary.states.items() if n.get("failed")}
    return 1 if failed or summary.champion is None else 0


def airflow_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``airloop airflow <args>``: Airflow's CLI with the
    environment the stack gives its own components (database URL, auth, secrets, dags and plugins
    folders, the AIRLOOP_* variables)."""
    stack = _stack(args)
    return stack.airflow_cli(args.airflow_args), stack.env()


def cmd_airflow(args: argparse.Namespace) -> int:
    """Replace this process by Airflow's CLI (as ``astro dev run`` does in its container): its
    exit status, signals and terminal are the user's, with nothing in between."""
    argv, env = airflow_command(args)
    sys.stdout.flush()
    os.execve(argv[0], argv, env)
    return 0  # not reached: execve returns only by raising OSError


def cmd_preflight(args: argparse.Namespace) -> int:
    from devstack.preflight import main as preflight_main

    return preflight_main()


def add_commands(sub: Any) -> None:
    """The embedded stack's subcommands, added to the library's ``airloop`` parser."""
    for name, func, text in (
        ("up", cmd_up, "start the embedded stack"),
        ("demo", cmd_demo, "start the stack and replay the demo"),
        ("airflow", cmd_airflow, "Airflow's own CLI with the embedded stack's environment: airloop airflow dags list"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--port", type=int, default=int(os.environ.get("AIRLOOP_API_PORT", "8080")))
        p.add_argument("--mlflow-port", type=int, default=int(os.environ.get("AIRLOOP_MLFLOW_PORT", "5000")))
        p.add_argument(
            "--db",
            default=os.environ.get("AIRLOOP_DB", "auto"),
            help="Airflow metadata DB: auto (PostgreSQL on 127.0.0.1:5432 if it answers, else SQLite), "
            "postgres, sqlite, or a SQLAlchemy URL (env AIRLOOP_DB)",
        )
        p.set_defaults(func=func)
    sub.choices["up"].add_argument(
        "--watch",
        action="store_true",
        help="stay in the foreground and restart any component that exits (Docker's restart: always)",
    )
    demo = sub.choices["demo"]
    demo.add_argument("--spec", default="flights")
    demo.add_argument("--days", type=int, default=42, help="days of data to run the loop over (default 42)")
    demo.add_argument("--budget", type=int, default=2, help="hyperparameter trials per training (default 2)")
    sub.choices["airflow"].add_argument(
        "airflow_args",
        nargs=argparse.REMAINDER,
        help="Airflow's command and its options, passed on unchanged (the options above go before them)",
    )
    sub.add_parser("down", help="stop the embedded stack").set_defaults(func=cmd_down)
    sub.add_parser("status", help="which components run").set_defaults(func=cmd_status)
    sub.add_parser("preflight", help="refuse insecure deployment settings (exit 1 naming each variable)").set_defaults(
        func=cmd_preflight
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The ``airloop`` command: the library's commands and the embedded stack's."""
    return library_main(argv, extra=add_commands)


if __name__ == "__main__":
    sys.exit(main())
