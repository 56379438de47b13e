"""``airloop replay``: the loop day by day without the scheduler, to choose a retraining policy.

For every day of ``start..end`` the replay does what the DAGs do, by calling the same
functions their operators call: land (:func:`~include.datasets.ingest.land_day`), validate
(:func:`~include.quality.validate.validate_partition`, then publish), score with the
champion of that day (:func:`~include.scoring.shards.score_shard` +
:func:`~include.scoring.shards.publish_shards`), monitor
(:func:`~include.monitoring.monitor.monitor_day`), and when the policy says so train
(:func:`~include.training.job.train_challenger`) and gate + promote
(:func:`~include.registry.promotion.run_gate`, :func:`~include.registry.promotion.apply_decision`).

Policies, each in its own lake and MLflow store under ``out_dir/<policy>/``:

* ``frozen``: the first model (trained on the first ``window_days`` of data) forever;
* ``calendar``: retrain every ``calendar_days`` days (default 7, a weekly schedule);
* ``drift``: retrain when the monitor decides ``retrain`` (hysteresis, cooldown, cap and
  circuit breaker exactly as in production).

The first window is landed and validated once; no day is scored before a first champion
exists (that is the same for every policy). Each day's ROC AUC is measured once its labels
have arrived, on the predictions the loop really made that day. The report (``report.html``,
self-contained with interactive charts, and ``replay.json``) puts the policies side by side with
their compute time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.lake import Lake, Zone
from include.names import CHALLENGER, CHAMPION, ORACLE, POLICIES, Tag
from include.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DAG_ID = "airloop_replay"


class ReplayError(ValueError):
    """The replay cannot run as asked (range, policy, or not enough data for a first model)."""


@dataclass
class DayResult:
    day: str
    champion: int | None
    rows_scored: int = 0
    rows_rejected: int = 0
    drift_state: str | None = None
    drift_score: float | None = None
    trained: int | None = None  # version trained this day
    promoted: bool = False
    gate: str | None = None  # gate summary of this day's challenger
    roc_auc: float | None = None
    labelled: int = 0
    positives: int = 0


@dataclass
class PolicyResult:
    policy: str
    tracking_uri: str = ""  # the policy's MLflow store (``mlflow ui --backend-store-uri`` it)
    days: list[DayResult] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # compute time per step
    # what decides the run's future, one digest per day (:func:`policy_state`; recorded on request)
    states: dict[str, str] = field(default_factory=dict)
    rejoined: str | None = None  # the day its state equalled a clean run's: the rest is that run's

    @property
    def retrains(self) -> int:
        """Trainings after the first model."""
        return max(0, sum(d.trained is not None for d in self.days) - 1)

    @property
    def promotions(self) -> int:
        return max(0, sum(d.promoted for d in self.days) - 1)

    def add_time(self, step: str, seconds: float) -> None:
        self.seconds[step] = round(self.seconds.get(step, 0.0) + seconds, 3)


@dataclass(frozen=True)
class ReplaySettings:
    start: date
    end: date
    policies: tuple[str, ...] = POLICIES
    calendar_days: int = 7
    window_days: int | None = None
    search_budget: int | None = 2
    estimator: str | None = None
    retrain_on: tuple[date, ...] = ()  # the oracle policy's retrain days
    # False: trainings skip what only a person reads (importance, plots, dataset inputs; see
    # include.training.train.train_model), as a drill's many retrains do
    explain: bool = True


@dataclass
class ScoreMemo:
    """Published prediction partitions by everything that made them, so that a run scoring the
    same rows with the same model under the same run key links the partition instead of
    scoring it again (a drill's faulted copies share every day their fault does not cover).

    The key: the run key (it is written into every row), the model version, the SHA-256 of
    its ONNX bytes and the identity of the validated partition the rows came from (device,
    inode, size and modification time of its file in the data lake: a hard-linked partition
    is the same file). Only valid while the lakes it points to are left unchanged, e.g.
    within one drill."""

    partitions: dict[tuple[Any, ...], Path] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0


@dataclass(frozen=True)
class Rejoin:
    """A clean run of the same policy (``clean``, run with its states recorded, in ``folder``) that
    a run on a faulted copy may rejoin from day ``after`` on: the first day on which both runs'
    :func:`policy_state` are equal, the faulted run stops and takes the clean run's later days
    (records and prediction partitions, hard-linked). ``after`` must be late enough that nothing
    the policy reads from then on (training windows, gate and monitor look-backs) still covers a
    faulted day."""

    clean: PolicyResult
    folder: Path
    after: date


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


class _Timer:
    def __init__(self, result: PolicyResult, step: str) -> None:
        self.result, self.step = result, step

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.result.add_time(self.step, time.perf_counter() - self.t0)


def prepare_days(spec: ModelSpec, lake: Lake, start: date, end: date) -> dict[str, Any]:
    """Land and validate ``start..end`` (plus the label delay, so the last days get labels).

    Idempotent: days already validated are skipped. Returns counts, the days that failed their
    contract (they are never published, as in production) and the seconds spent."""
    from include.datasets.ingest import land_day

    t0 = time.perf_counter()
    last = min(end + timedelta(days=spec.dataset.label_delay_days), spec.dataset.end)
    failed: dict[str, str] = {}
    landed = 0
    done = set(lake.list_partitions(Zone.VALIDATED, spec.name))
    for i, ds in enumerate(_days(start, last), 1):
        if ds in done:
            continue
        land_day(spec, lake, ds)
        landed += 1
        refused = publish_if_valid(spec, lake, ds, report_key="replay")
        if refused is not None:
            failed[ds.isoformat()] = refused
        if i % 30 == 0:
            log.info("prepared %s days (%.1f days/s)", i, i / (time.perf_counter() - t0))
    return {"landed": landed, "failed": failed, "seconds": round(time.perf_counter() - t0, 2)}


class _Arrivals:
    """Feeds a policy's lake day by day, as the ingest and validate DAGs would: on day ``d`` the
    validated partition of ``d`` and the labels of ``d - label_delay`` arrive. Nothing from the
    future is visible (the gate evaluates on "the most recent labelled days": in a lake holding
    the whole year those would be December's)."""

    def __init__(self, data_lake: Lake, lake: Lake, spec: ModelSpec) -> None:
        self.data_lake, self.lake, self.spec = data_lake, lake, spec
        self.delay = timedelta(days=spec.dataset.label_delay_days)
        self.validated = set(data_lake.list_partitions(Zone.VALIDATED, spec.name))
        self.labelled = set(data_lake.list_partitions(Zone.LABELS, spec.name))

    def _copy(self, zone: Zone, day: date) -> None:
        source = Path(self.data_lake.partition_dir(zone, self.spec.name, day))
        target = Path(self.lake.partition_dir(zone, self.spec.name, day))
        if not target.exists():
            shutil.copytree(source, target)

    def arrive(self, day: date) -> bool:
        """Make day ``day``'s arrivals visible; True if its validated partition exists."""
        if day - self.delay in self.labelled:
            self._copy(Zone.LABELS, day - self.delay)
        if day in self.validated:
            self._copy(Zone.VALIDATED, day)
            return True
        return False

    def all_labels(self, until: date) -> None:
        """The labels that arrive after the replay's last day (to score its last days)."""
        for day in sorted(d for d in self.labelled if d <= until):
            self._copy(Zone.LABELS, day)


def publish_if_valid(spec: ModelSpec, lake: Lake, day: date, *, report_key: str) -> str | None:
    """Validate ``day``'s landed partition against the contract and publish it to ``validated/``,
    as the validate DAG does; returns ``None``, or the failed validation's summary (the day is
    left in ``landing/``, unpublished: nothing downstream sees it). The summary names the rules
    that failed."""
    from include.quality.validate import validate_partition

    landing = lake.partition_file(Zone.LANDING, spec.name, day)
    result = validate_partition(spec, landing, day, lake=lake, report_prefix="validation", report_key=report_key)
    if not result.passed:
        return result.summary
    lake.publish_copy(landing, Zone.VALIDATED, spec.name, day)
    return None


def _policy_lake(folder: Path) -> Lake:
    """A fresh, empty lake for one policy."""
    if folder.exists():
        shutil.rmtree(folder)
    return Lake(folder.as_uri())


_EMPTY_STORE: list[Any] = []  # [TemporaryDirectory] holding the template, made once per process


def _empty_store() -> Path:
    """An MLflow SQLite database with every table created and nothing in it, made once per process
    and copied for each new store: creating (migrating) MLflow's tables takes 3-10 s on a 2-core
    machine, and a drill opens a store per policy and per checkpoint."""
    import tempfile

    from mlflow import MlflowClient

    if not _EMPTY_STORE:
        folder = tempfile.TemporaryDirectory(prefix="airloop-mlflow-template-")
        template = Path(folder.name) / "empty.db"
        client = MlflowClient(f"sqlite:///{template}", registry_uri=f"sqlite:///{template}")
        client.search_experiments()
        client.search_registered_models()
        _EMPTY_STORE.append(folder)
    return Path(_EMPTY_STORE[0].name) / "empty.db"


def _tracking_uri(folder: Path, spec: ModelSpec) -> str:
    """A fresh MLflow store in the policy's folder (SQLite + local artifacts), experiment ready.

    Wiped first, like the policy's lake: a champion left by an earlier replay in the same
    folder would otherwise skip the first model and continue that run's history."""
    from mlflow import MlflowClient

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    # a new file name per replay: MLflow caches one SQLAlchemy engine per URI in the process,
    # and an engine still open on the deleted file would keep writing to it
    database = folder / f"mlflow-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.db"
    shutil.copyfile(_empty_store(), database)
    uri = f"sqlite:///{database}"
    client = MlflowClient(uri)
    name = f"airloop-{spec.name}"
    if client.get_experiment_by_name(name) is None:
        client.create_experiment(name, artifact_location=(folder / "artifacts").as_uri(), tags={Tag.MODEL: name})
    return uri


def _train_and_gate(
    spec: ModelSpec,
    lake: Lake,
    uri: str,
    day: date,
    settings: ReplaySettings,
    result: PolicyResult,
    record: DayResult,
    reason: str,
    decisions: list[str] | None = None,
    trigger: str | None = None,
    break_day: date | None = None,
) -> None:
    from include.registry.promotion import apply_decision, run_gate
    from include.training.data import InsufficientDataError
    from include.training.job import train_challenger
    from include.training.window import training_end

    validated = lake.list_partitions(Zone.VALIDATED, spec.name)
    # as the train operator picks it: a drift event names its day, a calendar run has its logical day
    end = training_end(
        validated, model=spec.name, event_days=(day,) if decisions else (), logical_day=day, where=lake.uri
    )
    with _Timer(result, "train"):
        try:
            trained = train_challenger(
                spec,
                lake,
                uri,
                end,
                reason=reason,
                run_tags={Tag.STEP: "train", Tag.DAG_ID: DAG_ID, Tag.LOGICAL_DATE: day.isoformat()},
                decisions=decisions,
                window_days=settings.window_days,
                search_budget=settings.search_budget,
                estimator=settings.estimator,
                break_day=break_day,
                trigger=trigger,
                explain=settings.explain,
            )
        except InsufficientDataError as exc:  # the train task fails, as in production; the loop goes on
            record.gate = f"not trained: {exc}"
            log.warning("%s %s: not trained (%s): %s", result.policy, day, reason, exc)
            return
    record.trained = trained.version
    run_id = f"replay__{result.policy}__{day.isoformat()}__v{trained.version}"
    with _Timer(result, "gate"):
        report = run_gate(spec, lake, uri, report_key=run_id)
        outcome = apply_decision(
            spec,
            lake,
            uri,
            report,
            approval=None,
            now=datetime.combine(day, datetime.min.time(), tzinfo=UTC),
            dag_id=DAG_ID,
            run_id=run_id,
        )
    record.promoted = bool(outcome["promoted"])
    record.gate = report["decision"]["summary"]
    log.info("%s %s: trained v%s (%s): %s", result.policy, day, trained.version, reason, record.gate)


_ONNX_CACHE: dict[str, tuple[bytes, str]] = {}
_ONNX_CACHE_SIZE = 32


def _onnx_bytes(uri: str, name: str, version: int) -> tuple[bytes, str]:
    """The ONNX bytes of a version and their SHA-256, read from MLflow once per model: keyed by
    the version's artifact location, which a resumed copy of a store shares with its checkpoint
    and which no other version has (a scored day would otherwise download the same model again)."""
    from mlflow import MlflowClient

    from include.registry.mlflow_registry import load_onnx_bytes

    source = MlflowClient(uri, registry_uri=uri).get_model_version_download_uri(name, str(int(version)))
    if source not in _ONNX_CACHE:
        if len(_ONNX_CACHE) >= _ONNX_CACHE_SIZE:
            _ONNX_CACHE.pop(next(iter(_ONNX_CACHE)))
        raw = load_onnx_bytes(uri, name, version)
        _ONNX_CACHE[source] = (raw, hashlib.sha256(raw).hexdigest())
    return _ONNX_CACHE[source]


def _file_identity(lake: Lake, zone: Zone, model: str, day: date) -> tuple[int, int, int, int]:
    stat = os.stat(lake.partition_file(zone, model, day))
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def _link_dir(source: Path, target: Path) -> None:
    """Hard-link every file of ``source`` into ``target`` (created; lake writes replace files by
    rename, so a link is never written through)."""
    target.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        if file.is_file():
            os.link(file, target / file.name)


def _score(
    spec: ModelSpec,
    lake: Lake,
    uri: str,
    day: date,
    version: int,
    result: PolicyResult,
    data_lake: Lake,
    memo: ScoreMemo | None = None,
) -> dict[str, Any]:
    from include.scoring.reasons import reason_codes_for
    from include.scoring.shards import count_rows, plan_shards, publish_shards, read_manifest, score_shard

    run_key = f"replay__{result.policy}__{day.isoformat()}"
    with _Timer(result, "score"):
        onnx_bytes, digest = _onnx_bytes(uri, spec.name, version)
        key = (run_key, version, digest, _file_identity(data_lake, Zone.VALIDATED, spec.name, day))
        if memo is not None and key in memo.partitions:
            _link_dir(memo.partitions[key], Path(lake.partition_dir(Zone.PREDICTIONS, spec.name, day)))
            manifest = read_manifest(lake, spec, day)
            if manifest is not None:
                memo.hits += 1
                return manifest
        shards = plan_shards(count_rows(lake, spec, day), spec.scoring.shard_rows)
        reasons = reason_codes_for(spec, uri, version)
        for index, row_range in enumerate(shards):
            score_shard(
                spec,
                lake,
                day,
                onnx_bytes,
                index=index,
                row_range=row_range,
                run_key=run_key,
                model_name=spec.name,
                model_version=version,
                run_id=run_key,
                reasons=reasons,
            )
        manifest = publish_shards(lake, spec, day, run_key, len(shards))
        if memo is not None:
            memo.misses += 1
            memo.partitions[key] = Path(lake.partition_dir(Zone.PREDICTIONS, spec.name, day))
        return manifest


def replay_policy(
    spec: ModelSpec, data_lake: Lake, folder: Path, policy: str, settings: ReplaySettings
) -> PolicyResult:
    """Run one policy over ``settings.start..end`` in ``folder`` (wiped first)."""
    return _replay_policy(spec, data_lake, folder, policy, settings, _tracking_uri(folder / "mlflow", spec))


def replay_checkpoint(
    spec: ModelSpec,
    data_lake: Lake,
    folder: Path,
    policy: str,
    settings: ReplaySettings,
    memo: ScoreMemo | None = None,
) -> PolicyResult:
    """Run one policy over ``settings.start..end`` in ``folder`` and stop there, as on the eve of
    the next day: no label arrives early and no outcome is scored, so :func:`resume_policy` can
    continue the run, on the same data or on data that differs from the next day on. ``memo``:
    see :class:`ScoreMemo`."""
    uri = _tracking_uri(folder / "mlflow", spec)
    return _replay_policy(spec, data_lake, folder, policy, settings, uri, checkpoint=True, memo=memo)


def resume_policy(
    spec: ModelSpec,
    data_lake: Lake,
    checkpoint: PolicyResult,
    checkpoint_folder: Path,
    folder: Path,
    policy: str,
    settings: ReplaySettings,
    memo: ScoreMemo | None = None,
    *,
    record_states: bool = False,
    rejoin: Rejoin | None = None,
) -> PolicyResult:
    """Continue a :func:`replay_checkpoint` run in ``folder`` (wiped first, then a copy of
    ``checkpoint_folder``) from the day after its last day to ``settings.end``, as ``policy``.

    The copy's MLflow database is a new file; its runs and model versions keep their artifacts
    in ``checkpoint_folder`` (an artifact location is stored as an absolute URI), so the
    checkpoint folder must outlive the resumed run. The checkpoint itself is left unchanged.
    ``memo``: see :class:`ScoreMemo`."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(checkpoint_folder / "lake", folder / "lake")
    source = Path(checkpoint.tracking_uri.removeprefix("sqlite:///"))
    (folder / "mlflow").mkdir(parents=True)
    database = folder / "mlflow" / f"mlflow-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.db"  # a new engine per copy
    shutil.copyfile(source, database)
    uri = f"sqlite:///{database}"
    result = PolicyResult(
        policy=policy,
        tracking_uri=uri,
        days=[DayResult(**asdict(d)) for d in checkpoint.days],
        seconds=dict(checkpoint.seconds),
    )
    return _replay_policy(
        spec,
        data_lake,
        folder,
        policy,
        settings,
        uri,
        resume=result,
        memo=memo,
        record_states=record_states,
        rejoin=rejoin,
    )


def _replay_policy(
    spec: ModelSpec,
    data_lake: Lake,
    folder: Path,
    policy: str,
    settings: ReplaySettings,
    uri: str,
    *,
    checkpoint: bool = False,
    resume: PolicyResult | None = None,
    memo: ScoreMemo | None = None,
    record_states: bool = False,
    rejoin: Rejoin | None = None,
) -> PolicyResult:
    from mlflow import MlflowClient

    from include.monitoring.monitor import monitor_day
    from include.registry.aliases import current_alias
    from include.registry.mlflow_registry import global_tracking_uri

    if policy not in (*POLICIES, ORACLE):
        raise ReplayError(f"unknown policy {policy!r}: expected one of {', '.join(POLICIES)} or {ORACLE}")
    # An in-process SQLite registry resolves a new version's logged model through the global
    # tracking URI (a server resolves it itself): point it at this policy's store meanwhile.
    with global_tracking_uri(uri):
        lake = Lake((folder / "lake").as_uri()) if resume else _policy_lake(folder / "lake")
        arrivals = _Arrivals(data_lake, lake, spec)
        client = MlflowClient(uri, registry_uri=uri)
        result = resume or PolicyResult(policy=policy, tracking_uri=uri)
        window = settings.window_days or spec.training.window_days
        first_day = settings.start + timedelta(days=window)
        if resume is None:
            for day in _days(settings.start, first_day - timedelta(days=1)):
                arrivals.arrive(day)
        last_train, first_day = _resume_point(result, first_day)
        t0 = time.perf_counter()
        for n, day in enumerate(_days(first_day, settings.end), 1):
            champion = current_alias(client, spec.name, CHAMPION)
            record = DayResult(day=day.isoformat(), champion=champion)
            result.days.append(record)
            if champion is None:  # the first model, trained on the eve of its first day: same for every policy
                _train_and_gate(
                    spec, lake, uri, day - timedelta(days=1), settings, result, record, "replay: first model"
                )
                last_train = day
                champion = record.champion = current_alias(client, spec.name, CHAMPION)
            arrived = arrivals.arrive(day)
            if champion is None:
                continue  # the gate refused the first model: try again tomorrow
            if not arrived:
                continue  # quarantined or missing: nothing to score, as in production
            manifest = _score(spec, lake, uri, day, champion, result, data_lake, memo)
            record.rows_scored, record.rows_rejected = manifest["rows_scored"], manifest["rows_rejected"]
            if policy == "drift":
                with _Timer(result, "monitor"):
                    monitored = monitor_day(spec, lake, uri, day, html_report=False)
                verdict = monitored["verdict"]
                record.drift_state, record.drift_score = verdict["state"], monitored["day"]["score"]
                if verdict["state"] == "retrain":
                    _train_and_gate(
                        spec,
                        lake,
                        uri,
                        day,
                        settings,
                        result,
                        record,
                        f"drift:{verdict['decision_id']}",
                        [verdict["decision_id"]],
                        verdict.get("trigger"),
                        date.fromisoformat(verdict["break_day"]) if verdict.get("break_day") else None,
                    )
                    last_train = day
            elif policy == "calendar" and last_train and (day - last_train).days >= settings.calendar_days:
                _train_and_gate(spec, lake, uri, day, settings, result, record, "schedule")
                last_train = day
            elif policy == ORACLE and day in settings.retrain_on:
                _train_and_gate(spec, lake, uri, day, settings, result, record, "oracle: the true break day")
            if record_states or (rejoin is not None and day >= rejoin.after):
                state = policy_state(spec, lake, client, uri, policy, result, last_train)
                if record_states:
                    result.states[day.isoformat()] = state
                if rejoin is not None and day >= rejoin.after and rejoin.clean.states.get(day.isoformat()) == state:
                    _rejoin(spec, lake, rejoin, day, result)
                    break
            if n % 30 == 0:
                log.info(
                    "%s: %s days, %.1f days/s, %s retrains", policy, n, n / (time.perf_counter() - t0), result.retrains
                )
        if checkpoint:  # the eve of the next day: labels still to come stay out
            result.add_time("total", time.perf_counter() - t0)
            return result
        arrivals.all_labels(settings.end)
        _score_outcomes(spec, lake, result)
        result.add_time("total", time.perf_counter() - t0)
        return result


def policy_state(
    spec: ModelSpec, lake: Lake, client: Any, uri: str, policy: str, result: PolicyResult, last_train: date | None
) -> str:
    """A digest of everything that decides a policy run's future, at the end of its latest day:
    given the same data from then on, two runs with the same digest do the same thing every day.

    The champion and the challenger (version and ONNX digest), how many versions exist (the
    numbering of later ones), the versions that scored the days whose labels are still to come;
    for the calendar policy the day of its last training; for the drift policy what
    :func:`include.monitoring.decision.decide` reads: the drift history within its reach (the
    M-of-N windows, the label delay) with each day's verdict, and the retrains, cooldowns and
    circuit-breaker streaks within the cap period, the cooldowns and the breaker's probe time."""
    from include.registry.aliases import current_alias

    def model(version: int | None) -> list[Any]:
        return [version, None if version is None else _onnx_bytes(uri, spec.name, version)[1]]

    delay = spec.dataset.label_delay_days
    parts: dict[str, Any] = {
        "champion": model(current_alias(client, spec.name, CHAMPION)),
        "challenger": model(current_alias(client, spec.name, CHALLENGER)),
        "versions": max((d.trained for d in result.days if d.trained is not None), default=0),
        "served": [[d.day, *model(d.champion)] for d in result.days[-(delay + 1) :]],
    }
    if policy == "calendar":
        parts["last_train"] = None if last_train is None else last_train.isoformat()
    if policy == "drift":
        parts["drift"] = _decision_state(spec, lake, date.fromisoformat(result.days[-1].day))
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _decision_state(spec: ModelSpec, lake: Lake, day: date) -> dict[str, Any]:
    from include.monitoring.monitor import loop_state
    from include.records import read_history

    drift = spec.drift
    history = read_history(lake, spec.name, date.max)
    state = loop_state(lake, spec.name, history)
    since = [s.since for s in state.rejections.values() if s.since is not None]
    reach = max(drift.max_retrains_period_days, drift.cooldown_days, drift.performance_cooldown_days)
    horizon = min([day - timedelta(days=reach + drift.breaker_probe_days), *since])
    days = max(drift.window_n, drift.performance_window_n) + spec.dataset.label_delay_days + 1
    return {
        "history": [[r["day"], r["verdict"].get("state"), r["verdict"].get("trigger")] for r in history[-days:]],
        "retrains": sorted(
            [[d.isoformat(), None] for d in state.retrain_dates if d >= horizon]
            + [[d.isoformat(), kind] for d, kind in state.retrain_kinds if d >= horizon]
        ),
        "rejections": {k: [v.count, v.since] for k, v in sorted(state.rejections.items())},
    }


def _rejoin(spec: ModelSpec, lake: Lake, rejoin: Rejoin, day: date, result: PolicyResult) -> None:
    """Take the clean run's days after ``day``: its records and, hard-linked, its predictions."""
    clean_lake = Lake((rejoin.folder / "lake").as_uri())
    before = len(result.days)
    for record in rejoin.clean.days:
        later = date.fromisoformat(record.day)
        if later <= day:
            continue
        result.days.append(DayResult(**asdict(record)))
        source = Path(clean_lake.partition_dir(Zone.PREDICTIONS, spec.name, later))
        if source.exists():
            _link_dir(source, Path(lake.partition_dir(Zone.PREDICTIONS, spec.name, later)))
    result.rejoined = day.isoformat()
    log.info(
        "%s: its state on %s is the clean run's: its %s later days are that run's",
        result.policy,
        day,
        len(result.days) - before,
    )


def _resume_point(result: PolicyResult, first_day: date) -> tuple[date | None, date]:
    """The day of the last training so far and the next day to run (``first_day`` when new)."""
    trained = [date.fromisoformat(d.day) for d in result.days if d.trained is not None]
    if not result.days:
        return None, first_day
    return (max(trained) if trained else None), date.fromisoformat(result.days[-1].day) + timedelta(days=1)


def _score_outcomes(spec: ModelSpec, lake: Lake, result: PolicyResult) -> None:
    """Each scored day's realized ROC AUC, from its predictions and the labels that arrived."""
    from include.monitoring.drift import performance

    keys = spec.dataset.key_columns
    label = spec.dataset.target.name
    labelled = set(lake.list_partitions(Zone.LABELS, spec.name))
    for record in result.days:
        day = date.fromisoformat(record.day)
        if not record.rows_scored or day not in labelled or record.roc_auc is not None:
            continue  # nothing scored or labelled, or a day taken from a clean run (Rejoin): measured there
        predictions = lake.read_table(Zone.PREDICTIONS, spec.name, day, columns=[*keys, "score"]).to_pandas()
        labels = lake.read_table(Zone.LABELS, spec.name, day).to_pandas()
        joined = predictions.merge(labels[[*keys, label]], on=keys)
        perf = performance(joined["score"].to_numpy(), joined[label].to_numpy(), spec.training.threshold)
        record.roc_auc = None if perf.roc_auc != perf.roc_auc else round(perf.roc_auc, 6)
        record.labelled, record.positives = perf.n, perf.positives


def monthly_auc(spec: ModelSpec, folder: Path, days: Sequence[DayResult]) -> dict[str, float]:
    """ROC AUC of each month's pooled labelled predictions (what a monthly review would see)."""
    import pandas as pd

    from include.monitoring.drift import performance

    lake = Lake((folder / "lake").as_uri())
    keys, label = spec.dataset.key_columns, spec.dataset.target.name
    frames: dict[str, list[pd.DataFrame]] = {}
    for record in days:
        if record.roc_auc is None and not record.labelled:
            continue
        day = date.fromisoformat(record.day)
        predictions = lake.read_table(Zone.PREDICTIONS, spec.name, day, columns=[*keys, "score"]).to_pandas()
        labels = lake.read_table(Zone.LABELS, spec.name, day).to_pandas()
        frames.setdefault(record.day[:7], []).append(predictions.merge(labels[[*keys, label]], on=keys))
    out = {}
    for month, parts in sorted(frames.items()):
        joined = pd.concat(parts, ignore_index=True)
        perf = performance(joined["score"].to_numpy(), joined[label].to_numpy())
        out[month] = round(perf.roc_auc, 6)
    return out


def summarise(result: PolicyResult) -> dict[str, Any]:
    aucs = [d.roc_auc for d in result.days if d.roc_auc is not None]
    weights = [d.labelled for d in result.days if d.roc_auc is not None]
    return {
        "policy": result.policy,
        "days_scored": sum(bool(d.rows_scored) for d in result.days),
        "rows_scored": sum(d.rows_scored for d in result.days),
        "mean_daily_auc": round(sum(aucs) / len(aucs), 6) if aucs else None,
        "weighted_daily_auc": round(sum(a * w for a, w in zip(aucs, weights, strict=True)) / sum(weights), 6)
        if aucs
        else None,
        "retrains": result.retrains,
        "promotions": result.promotions,
        "seconds": result.seconds,
        "tracking_uri": result.tracking_uri,
    }


def replay(spec: ModelSpec, out_dir: Path, settings: ReplaySettings, data_lake: Lake | None = None) -> dict[str, Any]:
    """Prepare the data once, run every policy, write ``replay.json`` and ``report.html`` (with its charts).

    The policies' first models train on the same window: that fit (and any later one on the
    same rows) is done once (:func:`include.training.train.memoized_fits`)."""
    from include.training.train import memoized_fits

    with memoized_fits():
        return _replay(spec, out_dir, settings, data_lake)


def _replay(spec: ModelSpec, out_dir: Path, settings: ReplaySettings, data_lake: Lake | None) -> dict[str, Any]:
    unknown = [p for p in settings.policies if p not in POLICIES]
    if unknown:
        raise ReplayError(f"unknown policy {unknown[0]!r}: expected one of {', '.join(POLICIES)}")
    if settings.end < settings.start:
        raise ReplayError(f"--to {settings.end} is before --from {settings.start}")
    window = settings.window_days or spec.training.window_days
    if (settings.end - settings.start).days < window + 1:
        raise ReplayError(
            f"{spec.name}: {settings.start}..{settings.end} is too short: the first model needs {window} days "
            "and at least one day must be left to score"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    data_lake = data_lake or Lake((out_dir / "data").as_uri())
    prepared = prepare_days(spec, data_lake, settings.start, settings.end)
    log.info("data ready: %s", prepared)
    results = {}
    monthly = {}
    for policy in settings.policies:
        folder = out_dir / policy
        results[policy] = replay_policy(spec, data_lake, folder, policy, settings)
        monthly[policy] = monthly_auc(spec, folder, results[policy].days)
        log.info("%s done: %s", policy, summarise(results[policy]))
    payload = {
        "model": spec.name,
        "from": settings.start.isoformat(),
        "to": settings.end.isoformat(),
        "settings": {k: str(v) for k, v in asdict(settings).items()},
        "prepared": prepared,
        "summary": {p: summarise(r) for p, r in results.items()},
        "monthly_auc": monthly,
        "days": {p: [asdict(d) for d in r.days] for p, r in results.items()},
    }
    (out_dir / "replay.json").write_text(json.dumps(payload, indent=2))
    payload["report"] = render_report(out_dir)
    return payload


def render_report(out_dir: Path) -> str:
    """(Re)write ``report.html`` from ``out_dir/replay.json``; return the report path. The page
    is self-contained: its charts are plotly figures drawn by the plotly.js inlined in it."""
    from include.reports.render import write_page

    payload = json.loads((out_dir / "replay.json").read_text())
    results = {
        policy: PolicyResult(
            policy=policy,
            days=[DayResult(**d) for d in payload["days"][policy]],
            seconds=payload["summary"][policy]["seconds"],
        )
        for policy in payload["days"]
    }
    write_page(out_dir / "report.html", report_html(payload, replay_charts(results, payload["monthly_auc"])))
    return str(out_dir / "report.html")


def replay_charts(results: dict[str, PolicyResult], monthly: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The report's charts (element id -> plotly figure): daily ROC AUC with retrain markers,
    monthly ROC AUC and compute time, per policy."""
    from include.reports.charts import layout

    daily, floor = _auc_traces(results)
    return {
        "daily-auc": {
            "data": daily + _retrain_traces(results, floor),
            "layout": layout(
                height=380,
                yaxis={"title": {"text": "ROC AUC"}},
            ),
        },
        "monthly-auc": _monthly_figure(monthly),
        "compute": _compute_figure(results),
    }


def _auc_traces(results: dict[str, PolicyResult]) -> tuple[list[dict[str, Any]], float]:
    """Daily ROC AUC and its 7-day mean per policy, and the lowest daily value (1.0 if none)."""
    from include.reports.charts import POLICY_COLORS

    daily: list[dict[str, Any]] = []
    floor = 1.0
    for policy, result in results.items():
        points = [(d.day, d.roc_auc) for d in result.days if d.roc_auc is not None]
        if not points:
            continue
        xs, ys = (list(v) for v in zip(*points, strict=True))
        floor = min(floor, *ys)
        week = [sum(ys[max(0, i - 6) : i + 1]) / len(ys[max(0, i - 6) : i + 1]) for i in range(len(ys))]
        color = POLICY_COLORS.get(policy, "#424242")
        daily.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{policy} daily",
                "legendgroup": policy,
                "x": xs,
                "y": ys,
                "line": {"color": color, "width": 0.8},
                "opacity": 0.35,
                "hovertemplate": f"{policy} %{{x}}: ROC AUC %{{y:.4f}}<extra></extra>",
            }
        )
        daily.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{policy} (7-day mean)",
                "legendgroup": policy,
                "x": xs,
                "y": week,
                "line": {"color": color, "width": 2},
                "hovertemplate": f"{policy} %{{x}}: 7-day mean %{{y:.4f}}<extra></extra>",
            }
        )
    return daily, floor


def _retrain_traces(results: dict[str, PolicyResult], floor: float) -> list[dict[str, Any]]:
    """Retrains as a row of triangles per policy below ``floor`` (filled: promoted)."""
    from include.reports.charts import POLICY_COLORS

    markers: list[dict[str, Any]] = []
    for row, (policy, result) in enumerate(results.items()):  # retrains: a row of triangles per policy
        trained = [d for d in result.days if d.trained and d.trained > 1]
        if not trained:
            continue
        color = POLICY_COLORS.get(policy, "#424242")
        markers.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{policy} retrains",
                "legendgroup": policy,
                "x": [d.day for d in trained],
                "y": [round(floor - 0.03 - 0.025 * row, 4)] * len(trained),
                "marker": {
                    "symbol": ["triangle-up" if d.promoted else "triangle-up-open" for d in trained],
                    "size": 9,
                    "color": color,
                },
                "text": [f"v{d.trained} {'promoted' if d.promoted else 'rejected'}" for d in trained],
                "hovertemplate": f"{policy} retrain %{{x}}: %{{text}}<extra></extra>",
            }
        )
    return markers


def _monthly_figure(monthly: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Monthly ROC AUC bars per policy, the y range fitted to the values."""
    from include.reports.charts import POLICY_COLORS, layout

    months = sorted({m for values in monthly.values() for m in values})
    monthly_bars = [
        {
            "type": "bar",
            "name": policy,
            "x": months,
            "y": [by_month.get(m) for m in months],
            "marker": {"color": POLICY_COLORS.get(policy, "#424242")},
            "hovertemplate": f"{policy} %{{x}}: ROC AUC %{{y:.4f}}<extra></extra>",
        }
        for policy, by_month in monthly.items()
    ]
    lows = [v for by_month in monthly.values() for v in by_month.values()]
    return {
        "data": monthly_bars,
        "layout": layout(
            height=320,
            barmode="group",
            xaxis={"type": "category"},
            yaxis={"range": [max(0.0, min(lows, default=0.5) - 0.05), min(1.0, max(lows, default=1.0) + 0.03)]},
        ),
    }


def _compute_figure(results: dict[str, PolicyResult]) -> dict[str, Any]:
    """Compute seconds per step, stacked per policy."""
    from include.reports.charts import layout

    steps = ["train", "gate", "score", "monitor"]
    compute = [
        {
            "type": "bar",
            "name": step,
            "x": list(results),
            "y": [round(r.seconds.get(step, 0.0), 3) for r in results.values()],
            "hovertemplate": f"%{{x}} {step}: %{{y:.1f}} s<extra></extra>",
        }
        for step in steps
    ]
    return {
        "data": compute,
        "layout": layout(height=300, barmode="stack", yaxis={"title": {"text": "compute seconds"}}),
    }


def report_html(payload: dict[str, Any], charts: dict[str, Any], plotly_src: str | None = None) -> str:
    """The replay report page (the report kit's ``replay.html``); plotly.js inlined unless
    ``plotly_src`` says where to load it from."""
    from include.reports.render import charts_context, render

    trainings = [{"policy": policy, **d} for policy, days in payload["days"].items() for d in days if d["trained"]]
    months = sorted({m for v in payload["monthly_auc"].values() for m in v})
    return render(
        "replay.html",
        title=f"airloop replay {payload['model']}",
        payload=payload,
        months=months,
        trainings=trainings,
        failed_days=json.dumps(payload["prepared"]["failed"]),
        **charts_context(charts, plotly_src),
    )
