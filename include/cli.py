"""``airloop``: one entry point per step (what a container runs) plus the embedded runtime.

    airloop spec check                       validate every spec in the specs folder
    airloop ingest --spec flights --ds 2013-01-01
    airloop validate | train | evaluate | promote | rollback | pin | score | publish | shadow | monitor
                                             the pipeline steps, one flag per parameter (`airloop <step> -h`)
    airloop step <step> --params JSON        a step with its parameters as JSON: what an operator
                                             runs with execution="docker"
    airloop infer-contract --data FILE --spec flights [--out contract.yaml]
    airloop up | down | status               the embedded stack (Airflow on SQLite + MLflow)
    airloop demo [--days 42]                 up, then the whole loop over the first weeks of data
    airloop replay --spec flights --from 2013-01-01 --to 2013-12-29 [--policy drift|calendar|frozen]

Every step prints one JSON object (its result) on stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

log = logging.getLogger("airloop")


def _print(result: Any) -> None:
    print(json.dumps(result, indent=2, default=str))


def _state_home() -> Path:
    from include.lake import default_state_dir

    return default_state_dir()


def _metadata_db(choice: str) -> str | None:
    """Airflow's metadata DB for ``--db``: ``sqlite`` (None), ``postgres`` (a database of this
    state folder on the local server), a SQLAlchemy URL, or ``auto``: PostgreSQL when one answers on
    127.0.0.1:5432, else SQLite. SQLite cannot take concurrent writers: a backfill created
    while the scheduler runs can fail (HTTP 503) and has crashed the scheduler, so the demo
    prefers PostgreSQL."""
    import secrets

    from include.runtime.stack import local_postgres_database

    if choice == "sqlite":
        return None
    if "://" in choice:
        return choice
    # one database per state folder, named in it: deleting .airloop/ starts over here too
    marker = _state_home() / "stack" / "postgres-database"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"airloop_{secrets.token_hex(4)}\n")
    url = local_postgres_database(marker.read_text().strip())
    if url is None and choice == "postgres":
        raise SystemExit("--db postgres: no PostgreSQL answers on 127.0.0.1:5432 (user postgres)")
    if url is None:
        print("note: no PostgreSQL on 127.0.0.1:5432, Airflow runs on SQLite (fine to look around;", flush=True)
        print("      long backfills need PostgreSQL: see docs/operations.md)", flush=True)
    return url


def _stack(args: argparse.Namespace) -> Any:
    from include.lake import default_lake_uri
    from include.runtime.stack import Stack
    from include.spec import specs_dir

    home = _state_home()
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


def cmd_spec_check(args: argparse.Namespace) -> int:
    from include.spec import load_specs

    good, bad = load_specs(Path(args.dir) if args.dir else None)
    _print({"valid": [s.name for s in good], "invalid": {str(p): str(e) for p, e in bad.items()}})
    return 1 if bad else 0


# ---------------------------------------------------------------------------------------------
# Pipeline steps (include.steps.STEPS): `airloop step <name> --params '<json>'` is what an
# operator runs with execution="docker"; `airloop <name> --<field> ...` is the same step with one
# flag per field of its parameters model (generated here, never written by hand). Both parse
# into the step's parameters model and print the result as ONE JSON line on stdout (the
# operator reads the last JSON line of the container output).
# ---------------------------------------------------------------------------------------------


def _print_step(result: dict[str, Any]) -> int:
    """Print a step's result on one line; exit 1 if it failed (broken contract, nothing to pin)."""
    print(json.dumps(result, default=str), flush=True)
    return 1 if result.get("passed") is False or result.get("failed") else 0


def _lake(args: argparse.Namespace) -> Any:
    from include.lake import Lake

    return Lake(args.lake)


def _run_step(name: str, params: Any, args: argparse.Namespace) -> int:
    from include.steps import run

    tracking_uri = getattr(args, "tracking_uri", None) or os.environ.get("MLFLOW_TRACKING_URI") or None
    return _print_step(run(name, params, _lake(args), tracking_uri))


def cmd_step(args: argparse.Namespace) -> int:
    """``airloop step <name> --params JSON``."""
    return _run_step(args.step, args.params, args)


def cmd_generated_step(args: argparse.Namespace) -> int:
    """``airloop <name> --<field> ...``: the flags given, as strings, into the step's model."""
    from include.steps import get_step

    fields = get_step(args.command).params.model_fields
    return _run_step(args.command, {f: getattr(args, f) for f in fields if hasattr(args, f)}, args)


def step_flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_step_parsers(sub: Any) -> None:
    """``airloop step`` and one generated subcommand per registered step (a name another command
    already has, ``replay``, is reachable through ``airloop step`` only)."""
    from include.steps import STEPS

    def environment(p: argparse.ArgumentParser, mlflow: bool = True) -> None:
        p.add_argument("--lake", default=None, help="lake URI (default AIRLOOP_LAKE_URI)")
        if mlflow:
            p.add_argument("--tracking-uri", default=None, help="MLflow server (default MLFLOW_TRACKING_URI)")

    generic = sub.add_parser("step", help="run a pipeline step with its parameters as JSON (what docker mode runs)")
    generic.add_argument("step", choices=sorted(STEPS), help="the step")
    generic.add_argument("--params", required=True, help="the step's parameters, a JSON object")
    environment(generic)
    generic.set_defaults(func=cmd_step)
    for name, entry in STEPS.items():
        if name in sub.choices:
            continue
        p = sub.add_parser(name, help=entry.help)
        for field, info in entry.params.model_fields.items():
            required = info.is_required()
            default = None if required else info.get_default(call_default_factory=True)
            text = info.description or ""
            if default not in (None, "", [], {}) and "default" not in text:
                text += f" (default {default})"
            p.add_argument(step_flag(field), dest=field, required=required, default=argparse.SUPPRESS, help=text)
        environment(p, entry.needs_mlflow)
        p.set_defaults(func=cmd_generated_step)


def cmd_infer_contract(args: argparse.Namespace) -> int:
    from include.quality.infer import infer_contract_file
    from include.spec import get_spec

    out = Path(args.out or f"{args.spec}.contract.yaml")
    contract = infer_contract_file(args.data, get_spec(args.spec), out)
    _print({"written": str(out), "columns_with_ranges": sorted(contract.get("ranges", {}))})
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from include.runtime.stack import up

    stack = up(_stack(args))
    if args.watch:
        _watch(stack)
    return 0


def _watch(stack: Any) -> None:
    """Restart components that exit until Ctrl-C or SIGTERM; the stack keeps running after."""
    import signal
    import threading

    from include.runtime.supervisor import Supervisor

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
    from include.runtime.stack import down

    down(_state_home() / "stack")
    print("stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from include.runtime.stack import status_home

    status = status_home(_state_home() / "stack")
    _print(status)
    return 0 if status and all(status.values()) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the stack and run the whole loop over the first weeks of the demo data."""
    from mlflow import MlflowClient

    from include.datasets.source import prepared_source
    from include.runtime.api import AirflowClient
    from include.runtime.loop import run_demo_loop
    from include.runtime.stack import up
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


def cmd_replay(args: argparse.Namespace) -> int:
    """The loop day by day without the scheduler, under several retraining policies."""
    from include.replay import POLICIES, ReplaySettings, replay
    from include.spec import get_spec, load_spec

    spec = load_spec(args.spec) if args.spec.endswith((".yaml", ".yml")) else get_spec(args.spec)
    policies = tuple(args.policies.split(",")) if args.policies else POLICIES
    if args.policy and args.policy not in policies:
        policies = (args.policy, *policies)
    settings = ReplaySettings(
        start=date.fromisoformat(args.start),
        end=date.fromisoformat(args.end),
        policies=policies,
        calendar_days=args.calendar_days,
        window_days=args.window_days,
        search_budget=args.budget,
    )
    out = Path(args.out or _state_home() / "replay" / spec.name)
    payload = replay(spec, out, settings)
    _print({"report": payload["report"], "summary": payload["summary"]})
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airloop", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    spec = sub.add_parser("spec", help="model specs")
    spec_sub = spec.add_subparsers(dest="spec_command", required=True)
    check = spec_sub.add_parser("check", help="validate every spec; exit 1 if any is invalid")
    check.add_argument("--dir", help="specs folder (default: AIRLOOP_SPECS_DIR or include/specs)")
    check.set_defaults(func=cmd_spec_check)

    infer = sub.add_parser("infer-contract", help="propose a data contract (YAML) from a sample file")
    infer.add_argument("--data", required=True, help="CSV or Parquet sample")
    infer.add_argument("--spec", required=True, help="model spec name")
    infer.add_argument("--out", help="output YAML (default <spec>.contract.yaml)")
    infer.set_defaults(func=cmd_infer_contract)

    rep = sub.add_parser("replay", help="replay the loop day by day under retraining policies; HTML report")
    rep.add_argument("--spec", required=True, help="model name, or a spec file path (.yaml)")
    rep.add_argument("--from", dest="start", required=True, help="first day of data (YYYY-MM-DD)")
    rep.add_argument("--to", dest="end", required=True, help="last day scored (YYYY-MM-DD)")
    rep.add_argument("--policy", choices=["drift", "calendar", "frozen"], help="the policy under study (always run)")
    rep.add_argument("--policies", help="comma-separated policies to compare (default drift,calendar,frozen)")
    rep.add_argument("--calendar-days", type=int, default=7, help="retrain period of the calendar policy")
    rep.add_argument("--window-days", type=int, help="training window (default: the spec's)")
    rep.add_argument("--budget", type=int, default=2, help="hyperparameter trials per training (default 2)")
    rep.add_argument("--out", help="output folder (default $AIRLOOP_HOME/replay/<model>)")
    rep.set_defaults(func=cmd_replay)
    add_step_parsers(sub)  # after every hand-written command: a step never takes a name one has

    for name, func, text in (
        ("up", cmd_up, "start the embedded stack"),
        ("demo", cmd_demo, "start the stack and replay the demo"),
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
    sub.add_parser("down", help="stop the embedded stack").set_defaults(func=cmd_down)
    sub.add_parser("status", help="which components run").set_defaults(func=cmd_status)

    def cmd_preflight(args: argparse.Namespace) -> int:
        from include.runtime.preflight import main as preflight_main

        return preflight_main()

    sub.add_parser("preflight", help="refuse insecure deployment settings (exit 1 naming each variable)").set_defaults(
        func=cmd_preflight
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name, value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("GX_ANALYTICS_ENABLED", "false"), ("DO_NOT_TRACK", "1")):
        os.environ.setdefault(name, value)
    try:
        return int(args.func(args))
    except (ValueError, RuntimeError, OSError) as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
