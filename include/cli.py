"""``airloop``: one entry point per step (what a container runs), spec check and replay.

    airloop spec check                       validate every spec in the specs folder
    airloop ingest --spec flights --ds 2013-01-01
    airloop validate | train | evaluate | promote | rollback | rescore-plan | rescore | pin | score | publish | shadow | monitor
                                             the pipeline steps, one flag per parameter (`airloop <step> -h`)
    airloop step <step> --params JSON        a step with its parameters as JSON: what an operator
                                             runs with execution="docker"
    airloop infer-contract --data FILE --spec flights [--out contract.yaml]
    airloop replay --spec flights --from 2013-01-01 --to 2013-12-29 [--policy drift|calendar|frozen]
    airloop breaker-reset --spec flights --by WHO --reason TEXT
                                             close the retrain circuit breaker (recorded in the ledger)
    airloop drill --spec flights [--from 2013-01-01] [--to 2013-12-29 | --days N] [--fault KIND,day=...]

Every step prints one JSON object (its result) on stdout; logs go to stderr.
The embedded stack's commands (up, down, status, demo, airflow, preflight) are added to this
parser by devstack/cli.py, whose ``main`` is the ``airloop`` entry point.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from include.spec import ModelSpec

log = logging.getLogger("airloop")


def _print(result: Any) -> None:
    print(json.dumps(result, indent=2, default=str))


def _state_home() -> Path:
    from include.lake import default_state_dir

    return default_state_dir()


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


def _spec_arg(text: str) -> ModelSpec:
    """``--spec``: a model name, or a spec file path (.yaml)."""
    from include.spec import get_spec, load_spec

    return load_spec(text) if text.endswith((".yaml", ".yml")) else get_spec(text)


def add_policy_arguments(p: argparse.ArgumentParser, *, command: str, policies: str, budget: int) -> None:
    """The options ``replay`` and ``drill`` share: the policies compared, their settings, the output."""
    p.add_argument("--policies", help=policies)
    p.add_argument("--calendar-days", type=int, default=7, help="retrain period of the calendar policy")
    p.add_argument("--window-days", type=int, help="training window (default: the spec's)")
    p.add_argument("--budget", type=int, default=budget, help=f"hyperparameter trials per training (default {budget})")
    p.add_argument("--out", help=f"output folder (default $AIRLOOP_HOME/{command}/<model>)")


def _policy_settings(args: argparse.Namespace, default_policies: tuple[str, ...]) -> dict[str, Any]:
    """The settings :func:`add_policy_arguments` parsed, as ReplaySettings / DrillSettings fields."""
    return {
        "policies": tuple(args.policies.split(",")) if args.policies else default_policies,
        "calendar_days": args.calendar_days,
        "window_days": args.window_days,
        "search_budget": args.budget,
    }


def cmd_replay(args: argparse.Namespace) -> int:
    """The loop day by day without the scheduler, under several retraining policies."""
    from include.replay import POLICIES, ReplaySettings, replay

    spec = _spec_arg(args.spec)
    shared = _policy_settings(args, POLICIES)
    if args.policy and args.policy not in shared["policies"]:
        shared["policies"] = (args.policy, *shared["policies"])
    settings = ReplaySettings(start=date.fromisoformat(args.start), end=date.fromisoformat(args.end), **shared)
    out = Path(args.out or _state_home() / "replay" / spec.name)
    payload = replay(spec, out, settings)
    _print({"report": payload["report"], "summary": payload["summary"]})
    return 0


def build_parser(extra: Callable[[Any], None] | None = None) -> argparse.ArgumentParser:
    """The ``airloop`` parser; ``extra(subparsers)`` adds more commands (devstack/cli.py)."""
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
    add_policy_arguments(
        rep, command="replay", policies="comma-separated policies to compare (default drift,calendar,frozen)", budget=2
    )
    rep.set_defaults(func=cmd_replay)
    add_step_parsers(sub)  # after every hand-written command: a step never takes a name one has

    add_drill_parser(sub)
    if extra is not None:
        extra(sub)
    return parser


def cmd_drill(args: argparse.Namespace) -> int:
    """Inject faults into a copy of the replayed history and replay every policy on each."""
    from datetime import timedelta

    from include.drill import POLICIES, DrillError, DrillSettings, Fault, default_faults, drill
    from include.lake import Lake, Zone
    from include.replay import prepare_days

    spec = _spec_arg(args.spec)
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
        **_policy_settings(args, POLICIES),
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
    add_policy_arguments(
        p,
        command="drill",
        policies="comma-separated, among drift,calendar,frozen,oracle (the oracle always runs)",
        budget=1,
    )
    p.set_defaults(func=cmd_drill)


def main(argv: Sequence[str] | None = None, extra: Callable[[Any], None] | None = None) -> int:
    args = build_parser(extra).parse_args(argv)
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
