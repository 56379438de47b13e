"""``airloop``: one entry point per step (what a container runs) plus the embedded runtime.

    airloop spec check                       validate every spec in the specs folder
    airloop ingest --spec flights --ds 2013-01-01
    airloop validate | train | evaluate | promote | rollback | pin | score | publish | shadow | monitor
                                             the other pipeline steps (`airloop <step> -h`); what
                                             an operator runs with execution="docker"
    airloop infer-contract --data FILE --spec flights [--out contract.yaml]
    airloop up | down | status               the embedded stack (Airflow on SQLite + MLflow)
    airloop demo [--days 42]                 up, then the whole loop over the first weeks of data
    airloop replay --spec flights --from 2013-01-01 --to 2013-12-29 [--policy drift|calendar|frozen]
    airloop drill --spec flights [--from 2013-01-01] [--to 2013-12-29 | --days N] [--fault KIND,day=...]

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


def cmd_ingest(args: argparse.Namespace) -> int:
    from include.lake import Lake
    from include.spec import get_spec
    from include.steps import ingest_step

    return _print_step(ingest_step(get_spec(args.spec), Lake(args.lake), date.fromisoformat(args.ds)))


# ---------------------------------------------------------------------------------------------
# Pipeline steps: `airloop <step> ...` runs the include.steps function its operator runs
# (execution="docker" runs exactly these commands in the project image). Each prints its result
# as ONE JSON line on stdout (the operator reads the last JSON line of the container output).
# ---------------------------------------------------------------------------------------------


def _print_step(result: dict[str, Any]) -> int:
    """Print a step's result on one line; exit 1 if it failed (broken contract, nothing to pin)."""
    print(json.dumps(result, default=str), flush=True)
    return 1 if result.get("passed") is False or result.get("failed") else 0


def _lake(args: argparse.Namespace) -> Any:
    from include.lake import Lake

    return Lake(args.lake)


def _tracking_uri(args: argparse.Namespace) -> str:
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise ValueError("no MLflow server: pass --tracking-uri or set MLFLOW_TRACKING_URI")
    return str(uri)


def _json_arg(value: str | None) -> Any:
    return json.loads(value) if value not in (None, "") else None


def _optional_int(value: str | None) -> int | None:
    return None if value in (None, "", "None") else int(str(value))


def _now(value: str | None) -> Any:
    from datetime import UTC, datetime

    return datetime.fromisoformat(value) if value else datetime.now(UTC)


def cmd_validate(args: argparse.Namespace) -> int:
    from include.spec import get_spec
    from include.steps import validate_step

    run_key = args.run_key or f"cli__{args.ds}"
    return _print_step(validate_step(get_spec(args.spec), _lake(args), date.fromisoformat(args.ds), run_key))


def cmd_train(args: argparse.Namespace) -> int:
    from include.spec import get_spec
    from include.steps import train_step

    result = train_step(
        get_spec(args.spec),
        _lake(args),
        _tracking_uri(args),
        date.fromisoformat(args.end),
        reason=args.reason,
        run_tags=_json_arg(args.tags),
        decisions=[d for d in (args.decisions or "").split(",") if d],
        window_days=_optional_int(args.window_days),
        search_budget=_optional_int(args.search_budget),
        estimator=args.estimator or None,
    )
    return _print_step(result)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from include.spec import get_spec
    from include.steps import evaluate_step

    report_key = args.report_key or "cli"
    spec = get_spec(args.spec)
    return _print_step(evaluate_step(spec, _lake(args), _tracking_uri(args), mode=args.mode, report_key=report_key))


def cmd_promote(args: argparse.Namespace) -> int:
    from include.registry.promotion import apply_decision
    from include.spec import get_spec
    from include.steps import read_gate_report

    lake = _lake(args)
    result = apply_decision(
        get_spec(args.spec),
        lake,
        _tracking_uri(args),
        read_gate_report(lake, args.report_uri),
        approval=_json_arg(args.approval),
        now=_now(args.now),
        dag_id=args.dag_id,
        run_id=args.run_id,
    )
    return _print_step(result)


def cmd_rollback(args: argparse.Namespace) -> int:
    from include.spec import get_spec
    from include.steps import rollback_step

    result = rollback_step(
        get_spec(args.spec),
        _lake(args),
        _tracking_uri(args),
        target_version=_optional_int(args.target_version),
        reason=args.reason,
        now=_now(args.now),
        dag_id=args.dag_id,
        run_id=args.run_id,
    )
    return _print_step(result)


def cmd_pin(args: argparse.Namespace) -> int:
    from include.spec import get_spec
    from include.steps import pin_step

    spec = get_spec(args.spec)
    return _print_step(pin_step(spec, _lake(args), _tracking_uri(args), date.fromisoformat(args.ds), args.run_key))


def cmd_score(args: argparse.Namespace) -> int:
    from include.spec import get_spec
    from include.steps import score_step

    shard = {
        "ds": args.ds,
        "version": args.version,
        "run_key": args.run_key,
        "index": args.index,
        "start": args.start,
        "end": args.end,
        "n_shards": args.n_shards,
    }
    return _print_step(score_step(get_spec(args.spec), _lake(args), _tracking_uri(args), shard, args.run_id))


def cmd_publish(args: argparse.Namespace) -> int:
    from include.spec import get_spec
    from include.steps import publish_step

    spec = get_spec(args.spec)
    return _print_step(publish_step(spec, _lake(args), date.fromisoformat(args.ds), args.run_key, args.n_shards))


def cmd_shadow(args: argparse.Namespace) -> int:
    from include.spec import get_spec
    from include.steps import shadow_step

    spec = get_spec(args.spec)
    return _print_step(shadow_step(spec, _lake(args), _tracking_uri(args), date.fromisoformat(args.ds), args.run_id))


def cmd_monitor(args: argparse.Namespace) -> int:
    from include.spec import get_spec
    from include.steps import monitor_step

    spec = get_spec(args.spec)
    return _print_step(monitor_step(spec, _lake(args), _tracking_uri(args), date.fromisoformat(args.ds)))


def add_step_parsers(sub: Any) -> None:
    """The step subcommands (ingest has its own block above)."""

    def step(name: str, func: Any, text: str, *, ds: bool = True, mlflow: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=text)
        p.add_argument("--spec", required=True, help="model spec name")
        if ds:
            p.add_argument("--ds", required=True, help="YYYY-MM-DD")
        p.add_argument("--lake", default=None, help="lake URI (default AIRLOOP_LAKE_URI)")
        if mlflow:
            p.add_argument("--tracking-uri", default=None, help="MLflow server (default MLFLOW_TRACKING_URI)")
        p.set_defaults(func=func)
        return p

    p = step("validate", cmd_validate, "validate the landing partition; publish it or quarantine it", mlflow=False)
    p.add_argument("--run-key", help="names the reports and the quarantine folder (default cli__<ds>)")

    p = step("train", cmd_train, "train on the window ending at --end and register @challenger", ds=False)
    p.add_argument("--end", required=True, help="last day of the training window (YYYY-MM-DD)")
    p.add_argument("--reason", default="manual: airloop train", help="why (recorded on the run)")
    p.add_argument("--tags", help="JSON object of extra run tags (lineage)")
    p.add_argument("--decisions", help="comma-separated drift decision ids this training answers")
    p.add_argument("--window-days")
    p.add_argument("--search-budget")
    p.add_argument("--estimator")

    p = step("evaluate", cmd_evaluate, "run the promotion gate; write the gate report", ds=False)
    p.add_argument("--mode", choices=["enabled", "dry_run", "disabled"], help="default: the spec's gate mode")
    p.add_argument("--report-key", help="names the report (default cli)")

    p = step("promote", cmd_promote, "act on a gate report: move @champion or record why not", ds=False)
    p.add_argument("--report-uri", required=True, help="the gate report JSON written by `airloop evaluate`")
    p.add_argument("--approval", help="the approval response (JSON), when approval is required")
    p.add_argument("--now", help="ISO timestamp recorded in the ledger (default: now)")
    p.add_argument("--dag-id", default="cli")
    p.add_argument("--run-id", default="cli")

    p = step("rollback", cmd_rollback, "move @champion back", ds=False)
    p.add_argument("--target-version", help="default: the champion the current one replaced")
    p.add_argument("--reason", default="")
    p.add_argument("--now", help="ISO timestamp recorded in the ledger (default: now)")
    p.add_argument("--dag-id", default="cli")
    p.add_argument("--run-id", default="cli")

    p = step("pin", cmd_pin, "resolve @champion once and plan the day's shards")
    p.add_argument("--run-key", default="cli", help="the scoring run (names the shard folder)")

    p = step("score", cmd_score, "score one shard planned by `airloop pin`")
    for name in ("--version", "--index", "--start", "--end"):
        p.add_argument(name, type=int, required=True)
    p.add_argument("--n-shards", type=int, default=1)
    p.add_argument("--run-key", default="cli")
    p.add_argument("--run-id", default="cli")

    p = step("publish", cmd_publish, "publish the run's shards as the day's predictions", mlflow=False)
    p.add_argument("--run-key", default="cli")
    p.add_argument("--n-shards", type=int, required=True)

    p = step("shadow", cmd_shadow, "score @challenger into shadow/ and record its agreement")
    p.add_argument("--run-id", default="cli")

    step("monitor", cmd_monitor, "measure and decide the day's drift")


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
    if args.publish_key:  # what the __replay DAG runs: the report goes to the lake's reports/
        from include.steps import replay_step

        return _print_step(replay_step(spec, _lake(args), settings, args.publish_key))
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

    ingest = sub.add_parser("ingest", help="land one day of a spec's history (replay)")
    ingest.add_argument("--spec", required=True)
    ingest.add_argument("--ds", required=True, help="YYYY-MM-DD")
    ingest.add_argument("--lake", default=None, help="lake URI (default AIRLOOP_LAKE_URI)")
    ingest.set_defaults(func=cmd_ingest)
    add_step_parsers(sub)

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
    rep.add_argument("--publish-key", help="publish the report to the lake as reports/<model>/replay/<key>__*")
    rep.add_argument("--lake", default=None, help="with --publish-key: lake URI (default AIRLOOP_LAKE_URI)")
    rep.set_defaults(func=cmd_replay)

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
    add_drill_parser(sub)
    return parser


def cmd_drill(args: argparse.Namespace) -> int:
    """Inject faults into a copy of the replayed history and replay every policy on each."""
    from datetime import timedelta

    from include.drill import POLICIES, DrillError, DrillSettings, Fault, default_faults, drill
    from include.lake import Lake, Zone
    from include.replay import prepare_days
    from include.spec import get_spec, load_spec

    spec = load_spec(args.spec) if args.spec.endswith((".yaml", ".yml")) else get_spec(args.spec)
    start = date.fromisoformat(args.start) if args.start else spec.dataset.start
    if args.days:
        end = start + timedelta(days=args.days - 1)
    else:  # the last day whose labels exist
        end = date.fromisoformat(args.end) if args.end else spec.dataset.end - timedelta(spec.dataset.label_delay_days)
    out = Path(args.out or _state_home() / "drill" / spec.name)
    data_lake = Lake((out / "data").as_uri())
    faults = [Fault.parse(text) for text in args.fault]
    if not faults:  # the five faults at --at (default: the middle of the scored range)
        window = args.window_days or spec.training.window_days
        first_scored = start + timedelta(days=window)
        day = date.fromisoformat(args.at) if args.at else first_scored + (end - first_scored) // 2
        prepare_days(spec, data_lake, start, end)
        days = data_lake.list_partitions(Zone.VALIDATED, spec.name, day, end)
        if not days:
            raise DrillError(f"{spec.name}: no validated day on or after {day} to pick the fault columns from")
        sample = data_lake.read_table(Zone.VALIDATED, spec.name, days[0]).to_pandas()
        faults = default_faults(spec, days[0], sample, days=args.fault_days)
    settings = DrillSettings(
        start=start,
        end=end,
        faults=tuple(faults),
        policies=tuple(args.policies.split(",")) if args.policies else POLICIES,
        calendar_days=args.calendar_days,
        window_days=args.window_days,
        search_budget=args.budget,
    )
    payload = drill(spec, out, settings, data_lake)
    _print({"report": payload["report"], "table": {name: f["table"] for name, f in payload["faults"].items()}})
    return 0


def add_drill_parser(sub: Any) -> None:
    """``airloop drill``: rehearse the retraining policies on a spec's history with injected faults."""
    p = sub.add_parser("drill", help="inject faults into the replayed history and compare the retraining policies")
    p.add_argument("--spec", required=True, help="model name, or a spec file path (.yaml)")
    p.add_argument("--from", dest="start", help="first day of data (default: the spec's dataset.start)")
    p.add_argument("--to", dest="end", help="last day scored (default: the last labelled day of the spec)")
    p.add_argument("--days", type=int, help="instead of --to: the number of days from --from")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        help="KIND,day=YYYY-MM-DD[,days=N][,column=C][,value=V][,rate=R][,seed=S], repeatable; KIND: "
        "label_inversion, segment_vanish, segment_only, covariate_shift, null_spike "
        "(default: all five at --at, columns chosen from the spec)",
    )
    p.add_argument("--at", help="day of the default faults (default: the middle of the scored range)")
    p.add_argument("--fault-days", type=int, default=14, help="length of the default windowed faults (default 14)")
    p.add_argument("--policies", help="comma-separated, among drift,calendar,frozen,oracle (the oracle always runs)")
    p.add_argument("--calendar-days", type=int, default=7, help="retrain period of the calendar policy")
    p.add_argument("--window-days", type=int, help="training window (default: the spec's)")
    p.add_argument("--budget", type=int, default=1, help="hyperparameter trials per training (default 1)")
    p.add_argument("--out", help="output folder (default $AIRLOOP_HOME/drill/<model>)")
    p.set_defaults(func=cmd_drill)


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
