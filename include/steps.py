"""The pipeline steps: one registry entry per step (name, parameters model, function, needs).

These are the only implementations of the steps' work. A step is called three ways, always
with the same parameters object: in the worker (``execution="local"``:
:func:`run`), as ``airloop step <name> --params '<json>'`` (or the generated
``airloop <name> --<field> ...``, include/cli.py) and, in a container (``execution="docker"``),
as :func:`step_command`, which is that same ``airloop step`` line. So every mode writes the same
files and returns the same dict. What needs Airflow (asset events, report links, alerts, skips,
deferral) stays in the operators and is derived from the returned dict only.

Each step's parameters are one pydantic model (:class:`StepParams`): the values arrive as
Python objects (operator), rendered templates or command-line strings (CLI), or JSON (docker),
and are coerced in that one place: ``""`` and ``"None"`` mean "not given" for optional fields,
numeric and ISO date strings become numbers and dates, a list field takes a list, a JSON list
or ``a,b``; a dict field takes a dict or a JSON object. Adding a parameter to a step is a field
of its model plus the operator argument or DAG Param that sets it.

A result that means "nothing to do" carries ``"skipped": <reason>``, one that no retry can fix
``"failed": <reason>``; a broken data contract is ``"passed": False`` (the data was quarantined).
These are results, not exceptions, so they cross the container boundary intact.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from include.names import CHALLENGER, CHAMPION, POLICIES, GateMode

if TYPE_CHECKING:
    from include.lake import Lake
    from include.spec import ModelSpec

log = logging.getLogger(__name__)


# -- the one coercion rule ----------------------------------------------------------------------


def none_if_blank(value: Any) -> Any:
    """``None``, ``""`` and ``"None"`` (a rendered empty template) mean "not given"."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    return value


def _list(value: Any) -> Any:
    """A list field: a list, a JSON list, ``a,b`` (the command line) or blank (empty)."""
    value = none_if_blank(value)
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        return json.loads(text) if text.startswith("[") else [part for part in text.split(",") if part]
    return value


def _dict(value: Any) -> Any:
    """A dict field: a dict, a JSON object (the command line) or blank (None)."""
    value = none_if_blank(value)
    return json.loads(value) if isinstance(value, str) else value


_BLANK = BeforeValidator(none_if_blank)
OptInt = Annotated[int | None, _BLANK]
OptStr = Annotated[str | None, _BLANK]
OptDatetime = Annotated[datetime | None, _BLANK]
OptDate = Annotated[date | None, _BLANK]
OptDict = Annotated[dict[str, Any] | None, BeforeValidator(_dict)]
StrDict = Annotated[dict[str, str], BeforeValidator(lambda v: _dict(v) or {})]
StrList = Annotated[list[str], BeforeValidator(_list)]


class StepParams(BaseModel):
    """What every step takes: the model spec's name. Subclasses add the step's own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = Field(description="model spec name")


class DayParams(StepParams):
    ds: date = Field(description="the day (YYYY-MM-DD)")


@dataclass(frozen=True)
class StepEnv:
    """Where a step runs: the spec, the lake, and the MLflow server of steps that need one."""

    spec: ModelSpec
    lake: Lake
    mlflow_uri: str | None = None

    @property
    def tracking_uri(self) -> str:
        if not self.mlflow_uri:
            raise ValueError("no MLflow server: pass --tracking-uri or set MLFLOW_TRACKING_URI")
        return self.mlflow_uri


P = TypeVar("P", bound=StepParams)
StepFunc = Callable[[P, StepEnv], dict[str, Any]]


@dataclass(frozen=True)
class Step(Generic[P]):
    """One registry entry. ``result`` lists the keys the step's dict result always carries
    (on success; a skip or failure carries ``skipped`` / ``failed`` instead)."""

    name: str
    params: type[P]
    func: StepFunc[P]
    help: str
    result: tuple[str, ...]
    needs_lake: bool = True
    needs_mlflow: bool = False

    def parse(self, params: StepParams | Mapping[str, Any] | str) -> P:
        """The step's parameters from an object, a mapping or JSON; a ValueError names the
        step, the field and the rule broken."""
        from pydantic import ValidationError

        try:
            if isinstance(params, str):
                return self.params.model_validate_json(params)
            if isinstance(params, StepParams):
                params = params.model_dump()
            return self.params.model_validate(params)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(params)'}: {err['msg']}" for err in exc.errors()
            )
            raise ValueError(f"step {self.name!r} parameters: {problems}") from None


STEPS: dict[str, Step[Any]] = {}


def step(
    name: str, params: type[P], *, help: str, result: tuple[str, ...], mlflow: bool = False
) -> Callable[[StepFunc[P]], StepFunc[P]]:
    """Register the decorated function as step ``name`` taking ``params``."""

    def register(func: StepFunc[P]) -> StepFunc[P]:
        if name in STEPS:
            raise ValueError(f"step {name!r} is registered twice")
        STEPS[name] = Step(name, params, func, help, result, needs_mlflow=mlflow)
        return func

    return register


def get_step(name: str) -> Step[Any]:
    try:
        return STEPS[name]
    except KeyError:
        raise ValueError(f"unknown step {name!r}: use one of {', '.join(sorted(STEPS))}") from None


def run(
    name: str, params: StepParams | Mapping[str, Any] | str, lake: Lake | None = None, tracking_uri: str | None = None
) -> dict[str, Any]:
    """Run step ``name`` here with ``params`` (validated by the step's model); its result."""
    from include.lake import Lake
    from include.spec import get_spec

    entry = get_step(name)
    parsed = entry.parse(params)
    # a step that does not declare MLflow gets none: it cannot depend on it by accident
    env = StepEnv(
        get_spec(parsed.spec), lake if lake is not None else Lake(), tracking_uri if entry.needs_mlflow else None
    )
    if entry.needs_mlflow:
        env.tracking_uri  # noqa: B018 - fails before any work when the server is missing
    return entry.func(parsed, env)


def step_command(name: str, params: StepParams) -> list[str]:
    """The command that runs ``name`` with ``params`` in the project image (docker mode)."""
    entry = get_step(name)
    return ["airloop", "step", entry.name, "--params", entry.parse(params).model_dump_json()]


# -- the steps ----------------------------------------------------------------------------------


class IngestParams(DayParams):
    pass


@step(
    "ingest",
    IngestParams,
    help="land one day of a spec's history (and the labels due that day)",
    result=("model", "ds", "rows", "landing_uri", "label_ds", "label_rows"),
)
def ingest_step(p: IngestParams, env: StepEnv) -> dict[str, Any]:
    from include.datasets.ingest import land_day

    return dict(land_day(env.spec, env.lake, p.ds).to_dict())


class ValidateParams(DayParams):
    run_key: OptStr = Field(None, description="names the reports and the quarantine folder (default cli__<ds>)")


@step(
    "validate",
    ValidateParams,
    help="validate the landing partition; publish it or quarantine it",
    result=("passed", "summary", "warnings", "errors", "report_json_uri", "data_docs_uri", "partition"),
)
def validate_step(p: ValidateParams, env: StepEnv) -> dict[str, Any]:
    """Validate the landing partition of ``ds``; publish it to ``validated/`` or quarantine it.

    ``run_key`` (``<run id>__try<n>``) names the reports and the quarantine folder.
    """
    import time

    from include.lake import Zone
    from include.quality.validate import validate_partition

    spec, lake, ds = env.spec, env.lake, p.ds
    run_key = p.run_key or f"cli__{ds.isoformat()}"
    landing = lake.partition_file(Zone.LANDING, spec.name, ds)
    result = validate_partition(spec, landing, ds, lake=lake, report_prefix="validation", report_key=run_key)
    log.info("%s %s: %s", spec.name, ds, result.summary)
    summary: dict[str, Any] = {**result.to_dict(), "partition": ds.isoformat()}
    if result.passed:
        published = lake.publish_copy(landing, Zone.VALIDATED, spec.name, ds)
        return {**summary, "validated_uri": published.uri, "validated_rows": published.rows}
    target = lake.quarantine_dir(spec.name, ds, run_key)
    if lake.list_files(target):  # the same try twice (duplicate delivery): keep both
        target = lake.quarantine_dir(spec.name, ds, f"{run_key}__{time.time_ns()}")
    lake.move_partition_files(lake.partition_dir(Zone.LANDING, spec.name, ds), target)
    for uri in (result.report_json_uri, result.data_docs_uri):
        if uri:
            path = uri.split("://", 1)[1]
            lake.write_bytes(f"{target}/{path.rsplit('/', 1)[-1]}", lake.read_bytes(path))
    log.warning("quarantined %s %s at %s", spec.name, ds, lake.to_uri(target))
    return {
        **summary,
        "failures": [f"{o.rule} ({o.detail or o.observed})" for o in result.errors],
        "quarantine_uri": lake.to_uri(target),
    }


class TrainParams(StepParams):
    end: date = Field(description="last day of the training window (YYYY-MM-DD)")
    reason: str = Field("manual: airloop train", description="why (recorded on the run)")
    tags: StrDict = Field(default_factory=dict, description="extra MLflow run tags (lineage), a JSON object")
    decisions: StrList = Field(default_factory=list, description="drift decision ids this training answers")
    window_days: OptInt = Field(None, description="training window in days (default: the spec's)")
    search_budget: OptInt = Field(None, description="hyperparameter trials (default: the spec's)")
    estimator: OptStr = Field(None, description="model family (default: the spec's)")
    trigger: OptStr = Field(None, description="the monitor signal that asked for this retrain (drift event)")
    break_day: OptDate = Field(None, description="first labelled day of a performance break (drift event)")


@step(
    "train",
    TrainParams,
    help="train on the window ending at --end and register @challenger",
    result=("model", "run_id", "experiment_id", "version", "metrics", "end_date", "reason"),
    mlflow=True,
)
def train_step(p: TrainParams, env: StepEnv) -> dict[str, Any]:
    """Train on the window ending at ``end`` and register ``@challenger``.

    Drift ``decisions`` already answered by an earlier training are dropped; if none is left
    the result is ``{"skipped": ...}`` and nothing is trained.
    """
    from include.training.dedupe import answered_decisions
    from include.training.job import train_challenger

    decisions = list(p.decisions)
    if decisions:
        fresh = sorted(set(decisions) - answered_decisions(env.tracking_uri, env.spec.name, decisions))
        if not fresh:
            return {"skipped": f"drift decisions {decisions} were already answered by earlier trainings"}
        decisions = fresh
    result = train_challenger(
        env.spec,
        env.lake,
        env.tracking_uri,
        p.end,
        reason=p.reason,
        run_tags=dict(p.tags),
        decisions=decisions,
        window_days=p.window_days,
        search_budget=p.search_budget,
        estimator=p.estimator,
        break_day=p.break_day,
        trigger=p.trigger,
    )
    return result.to_dict()


class EvaluateParams(StepParams):
    mode: Annotated[GateMode | None, _BLANK] = Field(None, description="gate mode (default: the spec's)")
    report_key: str = Field("cli", description="names the gate report")


@step(
    "evaluate",
    EvaluateParams,
    help="run the promotion gate (challenger vs champion); write the gate report",
    result=("decision", "challenger_version", "champion_version", "report_json_uri", "report_html_uri"),
    mlflow=True,
)
def evaluate_step(p: EvaluateParams, env: StepEnv) -> dict[str, Any]:
    """Run the promotion gate (challenger vs champion); returns the gate report."""
    from include.registry.promotion import run_gate

    return run_gate(env.spec, env.lake, env.tracking_uri, mode_override=p.mode, report_key=p.report_key)


def read_gate_report(lake: Lake, report_json_uri: str) -> dict[str, Any]:
    """The gate report :func:`evaluate_step` wrote, with its own URIs (as the step returned it)."""
    report: dict[str, Any] = json.loads(lake.read_bytes(report_json_uri.split("://", 1)[1]))
    report.setdefault("report_json_uri", report_json_uri)
    report.setdefault("report_html_uri", report_json_uri.removesuffix(".json") + ".html")
    return report


class LedgerParams(StepParams):
    """What a champion move records in the ledger besides its own fields."""

    now: OptDatetime = Field(None, description="ISO timestamp recorded in the ledger (default: now)")
    dag_id: str = Field("cli", description="recorded in the ledger")
    run_id: str = Field("cli", description="recorded in the ledger")

    def when(self) -> datetime:
        return self.now or datetime.now(UTC)


class PromoteParams(LedgerParams):
    report_uri: str = Field(description="the gate report JSON written by the evaluate step")
    approval: OptDict = Field(None, description="the approval response (JSON), when approval is required")


@step(
    "promote",
    PromoteParams,
    help="act on a gate report: move @champion or record why not",
    result=("promoted", "action", "version", "champion"),
    mlflow=True,
)
def promote_step(p: PromoteParams, env: StepEnv) -> dict[str, Any]:
    """:func:`include.registry.promotion.apply_decision` on the report the evaluate step wrote."""
    from include.registry.promotion import apply_decision

    return apply_decision(
        env.spec,
        env.lake,
        env.tracking_uri,
        read_gate_report(env.lake, p.report_uri),
        approval=p.approval,
        now=p.when(),
        dag_id=p.dag_id,
        run_id=p.run_id,
    )


class RollbackParams(LedgerParams):
    target_version: OptInt = Field(None, description="default: the champion the current one replaced")
    reason: str = Field("", description="why (recorded in the ledger and on both versions)")


@step(
    "rollback",
    RollbackParams,
    help="move @champion back",
    result=("version", "previous_version", "reason"),
    mlflow=True,
)
def rollback_step(p: RollbackParams, env: StepEnv) -> dict[str, Any]:
    """Move ``@champion`` back to ``target_version`` (default: the one it replaced)."""
    from include.registry.promotion import rollback

    return rollback(
        env.spec,
        env.lake,
        env.tracking_uri,
        target_version=p.target_version,
        reason=p.reason,
        now=p.when(),
        dag_id=p.dag_id,
        run_id=p.run_id,
    )


class BreakerResetParams(LedgerParams):
    by: str = Field(description="who resets it (recorded in the ledger)")
    reason: str = Field(description="why (recorded in the ledger)")


@step(
    "breaker-reset",
    BreakerResetParams,
    help="close the retrain circuit breaker: the next monitor run may retrain again (a ledger entry)",
    result=("model", "action", "by", "reason", "ledger_uri"),
)
def breaker_reset_step(p: BreakerResetParams, env: StepEnv) -> dict[str, Any]:
    """Record a human reset of the circuit breaker; ``monitor.loop_state`` reads it."""
    from include.registry.ledger import record_breaker_reset

    uri = record_breaker_reset(
        env.lake, env.spec.name, by=p.by, reason=p.reason, time=p.when(), dag_id=p.dag_id, run_id=p.run_id
    )
    return {"model": env.spec.name, "action": "breaker_reset", "by": p.by, "reason": p.reason, "ledger_uri": uri}


class PinParams(DayParams):
    run_key: str = Field("cli", description="the scoring run (names the shard folder)")


@step(
    "pin",
    PinParams,
    help="resolve @champion once and plan the day's shards",
    result=("version", "rows", "shards"),
    mlflow=True,
)
def pin_step(p: PinParams, env: StepEnv) -> dict[str, Any]:
    """Resolve ``@champion`` once and plan the day's shards: ``{version, rows, shards: [...]}``;
    each shard is the :class:`ScoreParams` of one score task (without ``spec`` and ``run_id``)."""
    from mlflow import MlflowClient

    from include.registry.aliases import current_alias
    from include.scoring.shards import count_rows, plan_shards

    spec, lake, ds = env.spec, env.lake, p.ds
    version = current_alias(MlflowClient(env.tracking_uri, registry_uri=env.tracking_uri), spec.name, CHAMPION)
    if version is None:
        return {"failed": f"{spec.name}: no version has alias 'champion' yet: promote one first"}
    rows = count_rows(lake, spec, ds)
    shards = plan_shards(rows, spec.scoring.shard_rows)
    log.info("%s %s: %s rows, champion v%s pinned, %s shard(s)", spec.name, ds, rows, version, len(shards))
    plan = [
        {
            "ds": ds.isoformat(),
            "version": version,
            "run_key": p.run_key,
            "index": i,
            "start": s,
            "end": e,
            "n_shards": len(shards),
        }
        for i, (s, e) in enumerate(shards)
    ]
    return {"version": version, "rows": rows, "shards": plan}


class ScoreParams(DayParams):
    version: int = Field(description="the pinned champion version")
    index: int = Field(description="the shard's position in the plan")
    start: int = Field(description="first row of the shard")
    end: int = Field(description="row after the shard's last")
    n_shards: int = Field(1, description="shards in the plan")
    run_key: str = Field("cli", description="the scoring run (names the shard folder)")
    run_id: str = Field("cli", description="the run id recorded on every prediction row")


@step(
    "score",
    ScoreParams,
    help="score one shard planned by the pin step",
    result=("rows_scored", "rows_rejected", "rows_per_s"),
    mlflow=True,
)
def score_step(p: ScoreParams, env: StepEnv) -> dict[str, Any]:
    """Score one shard planned by :func:`pin_step` with onnxruntime."""
    from include.registry.mlflow_registry import load_onnx_bytes
    from include.scoring.reasons import reason_codes_for
    from include.scoring.shards import score_shard

    report = score_shard(
        env.spec,
        env.lake,
        p.ds,
        load_onnx_bytes(env.tracking_uri, env.spec.name, p.version),
        index=p.index,
        row_range=(p.start, p.end),
        run_key=p.run_key,
        model_name=env.spec.name,
        model_version=p.version,
        run_id=p.run_id,
        reasons=reason_codes_for(env.spec, env.tracking_uri, p.version),
    )
    return dict(report.to_dict())


class PublishParams(DayParams):
    n_shards: int = Field(description="shards in the plan")
    run_key: str = Field("cli", description="the scoring run whose shards are published")


@step(
    "publish",
    PublishParams,
    help="publish the run's shards as the day's predictions",
    result=("rows_scored", "rows_rejected"),
)
def publish_step(p: PublishParams, env: StepEnv) -> dict[str, Any]:
    """Commit the run's shards as the day's predictions; returns the manifest."""
    from include.scoring.shards import publish_shards

    return publish_shards(env.lake, env.spec, p.ds, p.run_key, p.n_shards)


class RescorePlanParams(StepParams):
    version: OptInt = Field(None, description="the version the rollback restored (default: the newest rollback's)")
    previous_version: OptInt = Field(None, description="the version it rolled back (default: the newest rollback's)")


@step(
    "rescore-plan",
    RescorePlanParams,
    help="list the days the rolled-back version scored since its promotion (from the ledger and manifests)",
    result=("version", "previous_version", "reason", "rollback_time", "since", "days"),
)
def rescore_plan_step(p: RescorePlanParams, env: StepEnv) -> dict[str, Any]:
    """:func:`include.scoring.rescore.plan_rescore`: one entry per day to re-score."""
    from include.registry.ledger import read_ledger
    from include.scoring.rescore import plan_rescore

    history = read_ledger(env.lake, env.spec.name)
    return plan_rescore(env.spec, env.lake, history, version=p.version, previous_version=p.previous_version)


class RescoreParams(DayParams):
    version: int = Field(description="the restored version, pinned")
    replaces: int = Field(description="the rolled-back version whose predictions are superseded")
    reason: str = Field("", description="the rollback's reason (recorded on the superseded copy)")
    run_key: str = Field("cli", description="the re-scoring run (names the shard folder)")
    run_id: str = Field("cli", description="the run id recorded on every prediction row")
    now: OptDatetime = Field(None, description="ISO timestamp recorded as the supersession time (default: now)")


@step(
    "rescore",
    RescoreParams,
    help="re-score one day with the restored version; keep the old predictions as superseded",
    result=("ds", "model_version", "rows_scored", "rows_rejected", "supersedes", "rescored"),
    mlflow=True,
)
def rescore_step(p: RescoreParams, env: StepEnv) -> dict[str, Any]:
    """:func:`include.scoring.rescore.rescore_day` with the pinned version's ONNX file (downloaded
    only when the day is to be scored)."""
    from include.registry.mlflow_registry import load_onnx_bytes
    from include.scoring.reasons import reason_codes_for
    from include.scoring.rescore import rescore_day

    return rescore_day(
        env.spec,
        env.lake,
        p.ds,
        lambda: load_onnx_bytes(env.tracking_uri, env.spec.name, p.version),
        version=p.version,
        replaces=p.replaces,
        run_key=p.run_key,
        run_id=p.run_id,
        reason=p.reason,
        now=p.now or datetime.now(UTC),
        reasons=lambda: reason_codes_for(env.spec, env.tracking_uri, p.version),
    )


class ShadowParams(DayParams):
    run_id: str = Field("cli", description="the run id recorded on every shadow row")


@step(
    "shadow",
    ShadowParams,
    help="score @challenger into shadow/ and record its agreement",
    result=("rows_scored", "challenger_version", "ds", "regate_due"),
    mlflow=True,
)
def shadow_step(p: ShadowParams, env: StepEnv) -> dict[str, Any]:
    """Score ``@challenger`` into ``shadow/`` and record its agreement with the champion's day."""
    from mlflow import MlflowClient

    from include.lake import Zone
    from include.registry.aliases import current_alias
    from include.registry.mlflow_registry import load_onnx_bytes
    from include.scoring.score import score_partition
    from include.scoring.shadow import shadow_partition_agreement

    spec, lake, ds, tracking_uri = env.spec, env.lake, p.ds, env.tracking_uri
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    challenger = current_alias(client, spec.name, CHALLENGER)
    champion = current_alias(client, spec.name, CHAMPION)
    if challenger is None or challenger == champion:
        return {"skipped": f"{spec.name}: no challenger distinct from the champion to shadow"}
    report = score_partition(
        spec,
        lake,
        ds,
        load_onnx_bytes(tracking_uri, spec.name, challenger),
        model_name=spec.name,
        model_version=challenger,
        run_id=p.run_id,
        zone=Zone.SHADOW,
    )
    agreement = {
        **shadow_partition_agreement(lake, spec, ds),
        "challenger_version": challenger,
        "ds": ds.isoformat(),
    }
    lake.write_bytes(
        lake.report_path(spec.name, "shadow", f"ds={ds.isoformat()}.json"),
        json.dumps(agreement, default=str).encode(),
    )
    from include.registry.promotion import regate_due

    # a challenger the gate left pending for want of clean shadow days is gated again once it has them
    return {"rows_scored": report.rows_scored, **agreement, "regate_due": regate_due(spec, lake, challenger)}


class MonitorParams(DayParams):
    pass


@step(
    "monitor",
    MonitorParams,
    help="measure and decide the day's drift",
    result=("partition", "model_version", "verdict", "score", "report_uri", "record_uri", "performance"),
    mlflow=True,
)
def monitor_step(p: MonitorParams, env: StepEnv) -> dict[str, Any]:
    """Measure and decide the day's drift; writes the day's record; returns its summary."""
    from include.monitoring.monitor import monitor_day

    record = monitor_day(env.spec, env.lake, env.tracking_uri, p.ds)
    return {
        "partition": record["partition"],
        "model_version": record["model_version"],
        "verdict": record["verdict"],
        "score": record["day"]["score"],
        "report_uri": record["report_uri"],
        "record_uri": record["record_uri"],
        "performance": record["performance"],
        **({"fairness": record["fairness"]} if "fairness" in record else {}),
    }


REPLAY_FILES = ("report.html", "replay.json")


class ReplayParams(StepParams):
    start: date = Field(description="first day of data (YYYY-MM-DD)")
    end: date = Field(description="last day scored (YYYY-MM-DD)")
    run_key: str = Field(description="publishes the report as reports/<model>/replay/<run_key>__*")
    policies: StrList = Field(
        default_factory=lambda: [str(p) for p in POLICIES], description="retraining policies to compare"
    )
    calendar_days: int = Field(7, description="retrain period of the calendar policy")
    window_days: OptInt = Field(None, description="training window (default: the spec's)")
    search_budget: int = Field(2, description="hyperparameter trials per training")

    def settings(self) -> Any:
        """The :class:`~include.replay.ReplaySettings` these parameters describe."""
        from include.replay import ReplaySettings

        return ReplaySettings(
            start=self.start,
            end=self.end,
            policies=tuple(self.policies),
            calendar_days=self.calendar_days,
            window_days=self.window_days,
            search_budget=self.search_budget,
        )


@step(
    "replay",
    ReplayParams,
    help="replay the loop under retraining policies and publish the report into the lake",
    result=("report_uri", "json_uri", "summary"),
)
def replay_step(p: ReplayParams, env: StepEnv) -> dict[str, Any]:
    """Replay in a scratch folder and publish the report into the lake as
    ``reports/<model>/replay/<run_key>__<file>``, where the airloop plugin serves it. The
    replay has its own lakes and MLflow stores: it never touches the model's lake data or
    registry. Returns the summary and the report's URI."""
    import shutil
    import tempfile
    from pathlib import Path

    from include.lake import safe_key
    from include.replay import replay

    spec, lake = env.spec, env.lake
    key = safe_key(p.run_key)
    scratch = Path(tempfile.mkdtemp(prefix=f"airloop-replay-{spec.name}-"))
    try:
        payload = replay(spec, scratch, p.settings())
        published = {}
        for name in REPLAY_FILES:
            data = (scratch / name).read_bytes()
            published[name] = lake.write_bytes(lake.report_path(spec.name, "replay", f"{key}__{name}"), data)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"report_uri": published["report.html"], "json_uri": published["replay.json"], "summary": payload["summary"]}
