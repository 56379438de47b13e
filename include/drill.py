"""``airloop drill``: rehearse the loop's retraining policy on a spec's own history with faults.

A drill takes the replayed history of a spec (:func:`include.replay.prepare_days`: landed and
validated once, shared by every fault and policy), injects one named fault at a chosen day into a
copy of it, and replays every policy over the copy with :func:`include.replay.replay_policy`
(the same step functions as the DAGs). The faults are small pure functions over one day's frame
(features joined with their labels):

* ``label_inversion``: the label flips (``y -> 1 - y``) from the fault day on: a concept break
  that leaves every feature's distribution as it was;
* ``segment_vanish``: the rows whose ``column`` equals ``value`` are gone for ``days`` days;
* ``segment_only``: only those rows arrive for ``days`` days;
* ``covariate_shift``: rows whose ``column`` is below its median on the fault day are kept at
  rate ``rate`` (seeded) for ``days`` days: the feature's distribution moves, P(y|x) does not;
* ``null_spike``: ``column`` is null on a share ``rate`` of rows (seeded) for ``days`` days.

Only the faulted days are recomputed: the copy hard-links every other partition of the shared
lake, and each faulted day is validated again against the contract (a fault the contract
refuses is quarantined, as in production, and counted). Besides ``drift``, ``calendar`` and
``frozen``, the drill replays an ``oracle`` that retrains exactly on the fault's first day; each
policy is measured against it: days to the first retrain after the fault, ROC AUC lost (mean
daily difference, over the run and from the fault on), retrains, promotions and bad promotions
(the gate's gain interval entirely below zero). Output: ``drill.json``, one chart per fault and
``report.html``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.lake import Lake, Zone
from include.names import ORACLE
from include.names import POLICIES as LOOP_POLICIES
from include.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from include.replay import PolicyResult, ReplaySettings, ScoreMemo
    from include.training.train import FitMemo

log = logging.getLogger(__name__)

FAULTS = ("label_inversion", "segment_vanish", "segment_only", "covariate_shift", "null_spike")
POLICIES: tuple[str, ...] = (*LOOP_POLICIES, ORACLE)
_NEEDS_COLUMN = {"segment_vanish", "segment_only", "covariate_shift", "null_spike"}
_NEEDS_VALUE = {"segment_vanish", "segment_only"}
_LABELS_ONLY = {"label_inversion"}  # faults that leave every feature value as it was


class DrillError(ValueError):
    """A fault or drill setting that cannot run (unknown kind, column, value or range)."""


# --------------------------------------------------------------------------- faults (pure)
def invert_labels(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """``label`` flipped (0 <-> 1); unlabelled rows (null) stay null."""
    out = frame.copy()
    out[label] = (1 - out[label]).astype(frame[label].dtype)
    return out


def drop_segment(frame: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    """The rows whose ``column`` is not ``value`` (compared as text)."""
    return frame[frame[column].astype(str) != value].reset_index(drop=True)


def keep_segment(frame: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    """Only the rows whose ``column`` is ``value`` (compared as text)."""
    return frame[frame[column].astype(str) == value].reset_index(drop=True)


def thin_below(frame: pd.DataFrame, column: str, threshold: float, rate: float, seed: int) -> pd.DataFrame:
    """Rows with ``column < threshold`` kept with probability ``rate``, the others all kept.

    Selection on a feature only: within any value of the features the label is untouched, so the
    concept P(y|x) is the same and only the feature's distribution moves."""
    import numpy as np

    below = frame[column].to_numpy(dtype=float) < threshold
    keep = ~below | (np.random.default_rng(seed).random(len(frame)) < rate)
    return frame[keep].reset_index(drop=True)


def spike_nulls(frame: pd.DataFrame, column: str, rate: float, seed: int) -> pd.DataFrame:
    """``column`` set to null on a random share ``rate`` of the rows (seeded)."""
    import numpy as np

    out = frame.copy()
    out[column] = out[column].mask(np.random.default_rng(seed).random(len(frame)) < rate)
    return out


@dataclass(frozen=True)
class Fault:
    """One named fault from ``day`` on, for ``days`` days (``None``: to the end of the drill)."""

    kind: str
    day: date
    days: int | None = None
    column: str | None = None
    value: str | None = None
    rate: float = 0.5
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.kind}@{self.day.isoformat()}"

    @property
    def folder(self) -> str:
        """The fault's folder name (a file URI would percent-encode the ``@`` of its name)."""
        return f"{self.kind}_{self.day.isoformat()}"

    @property
    def last_day(self) -> date | None:
        return None if self.days is None else self.day + timedelta(days=self.days - 1)

    def covers(self, day: date) -> bool:
        return day >= self.day and (self.last_day is None or day <= self.last_day)

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``kind,day=YYYY-MM-DD[,days=N][,column=C][,value=V][,rate=R][,seed=S]``."""
        kind, *pairs = [part.strip() for part in text.split(",")]
        values: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or key not in {"day", "days", "column", "value", "rate", "seed"}:
                raise DrillError(f"fault {text!r}: {pair!r} is not one of day=, days=, column=, value=, rate=, seed=")
            values[key] = value
        if "day" not in values:
            raise DrillError(f"fault {text!r}: day=YYYY-MM-DD is required")
        try:
            return cls(
                kind=kind,
                day=date.fromisoformat(values["day"]),
                days=int(values["days"]) if "days" in values else None,
                column=values.get("column"),
                value=values.get("value"),
                rate=float(values.get("rate", 0.5)),
                seed=int(values.get("seed", 0)),
            )
        except ValueError as exc:
            raise DrillError(f"fault {text!r}: {exc}") from None

    def check(self, spec: ModelSpec) -> None:
        """Raise :class:`DrillError` naming the fault, the column and the rule it breaks."""
        features = spec.dataset.features
        if self.kind not in FAULTS:
            raise DrillError(f"fault {self.name}: unknown kind; expected one of {', '.join(FAULTS)}")
        if self.days is not None and self.days < 1:
            raise DrillError(f"fault {self.name}: days={self.days} must be at least 1")
        if not 0.0 <= self.rate <= 1.0:
            raise DrillError(f"fault {self.name}: rate={self.rate} must lie in [0, 1]")
        if self.kind in _NEEDS_COLUMN and self.column not in features.all:
            raise DrillError(f"fault {self.name}: column={self.column!r} is not a feature of spec {spec.name}")
        if self.kind in _NEEDS_VALUE and (self.column not in features.categorical or self.value is None):
            raise DrillError(f"fault {self.name}: needs a categorical column= and a value= (got {self.column!r})")
        if self.kind == "covariate_shift" and self.column not in features.numeric:
            raise DrillError(f"fault {self.name}: column={self.column!r} must be numeric for a covariate shift")


def apply_fault(fault: Fault, frame: pd.DataFrame, label: str, threshold: float | None = None) -> pd.DataFrame:
    """One day's frame (features and ``label``) as the fault makes it; ``threshold``: the
    covariate shift's cut (the column's median on the fault day)."""
    column, value = fault.column or "", fault.value or ""
    if fault.kind == "label_inversion":
        return invert_labels(frame, label)
    if fault.kind == "segment_vanish":
        return drop_segment(frame, column, value)
    if fault.kind == "segment_only":
        return keep_segment(frame, column, value)
    if fault.kind == "covariate_shift":
        if threshold is None:
            raise DrillError(f"fault {fault.name}: the covariate shift needs the cut of {column!r}")
        return thin_below(frame, column, threshold, fault.rate, fault.seed)
    if fault.kind == "null_spike":
        return spike_nulls(frame, column, fault.rate, fault.seed)
    raise DrillError(f"fault {fault.name}: unknown kind; expected one of {', '.join(FAULTS)}")


def default_faults(spec: ModelSpec, day: date, sample: pd.DataFrame, days: int = 14) -> list[Fault]:
    """The five faults at ``day`` on columns chosen from the spec and a sample of the data: the
    most frequent value of the first slice (or categorical) column, the first numeric feature
    the drift monitor watches, and the numeric feature whose contract tolerates most nulls."""
    features = spec.dataset.features
    segments = [c for c in (*spec.dataset.slice_columns, *features.categorical) if c in features.categorical]
    watched = [c for c in features.numeric if c not in spec.drift.ignore] or list(features.numeric)
    nullable = sorted(features.numeric, key=lambda c: -spec.contract.null_rate.get(c, spec.contract.max_null_rate))
    faults = [Fault("label_inversion", day)]
    if segments:
        column = segments[0]
        value = str(sample[column].astype(str).value_counts().index[0])
        faults += [Fault("segment_vanish", day, days, column, value), Fault("segment_only", day, days, column, value)]
    if watched:
        faults.append(Fault("covariate_shift", day, days, watched[0], rate=0.25))
    if nullable:
        column = nullable[0]
        allowed = spec.contract.null_rate.get(column, spec.contract.max_null_rate)
        faults.append(Fault("null_spike", day, days, column, rate=round(max(0.05, allowed / 2), 3)))
    return faults


# --------------------------------------------------------------------------- the faulted copy
def _link_partition(source: Lake, target: Lake, zone: Zone, model: str, day: date) -> None:
    """Hard-link one partition of the shared lake into the copy (no bytes copied)."""
    src = Path(source.partition_dir(zone, model, day))
    dst = Path(target.partition_dir(zone, model, day))
    dst.mkdir(parents=True, exist_ok=True)
    for file in src.iterdir():
        if file.is_file():
            os.link(file, dst / file.name)


def _day_frame(spec: ModelSpec, lake: Lake, day: date) -> tuple[pd.DataFrame, Any, Any]:
    """Validated features of ``day`` left-joined with its labels; the two Arrow schemas."""
    keys, label = spec.dataset.key_columns, spec.dataset.target.name
    features = lake.read_table(Zone.VALIDATED, spec.name, day)
    frame = features.to_pandas()
    labels_schema = None
    if lake.has_partition(Zone.LABELS, spec.name, day):
        labels = lake.read_table(Zone.LABELS, spec.name, day)
        labels_schema = labels.schema
        frame = frame.merge(labels.to_pandas()[[*keys, label]], on=keys, how="left")
    else:  # the labels of the last days arrive after the history's end
        frame[label] = float("nan")
    return frame, features.schema, labels_schema


def faulted_lake(spec: ModelSpec, data_lake: Lake, fault: Fault, folder: Path) -> tuple[Lake, dict[str, Any]]:
    """A copy of ``data_lake`` in ``folder`` (wiped first) with ``fault`` injected.

    Unfaulted partitions are hard links; each faulted day is rewritten and validated again (what
    fails its contract is quarantined, as the validate DAG would). A fault that changes labels
    only (a label inversion) leaves the features as they were: their validated partitions are
    hard-linked too (the contract would judge the same rows the same way) and only the labels
    are rewritten. Returns the lake and counts."""
    import pyarrow as pa

    from include.replay import publish_if_valid

    fault.check(spec)
    if folder.exists():
        shutil.rmtree(folder)
    lake = Lake(folder.as_uri())
    label = spec.dataset.target.name
    validated = data_lake.list_partitions(Zone.VALIDATED, spec.name)
    labelled = data_lake.list_partitions(Zone.LABELS, spec.name)
    labels_only = fault.kind in _LABELS_ONLY
    for zone, days in ((Zone.VALIDATED, validated), (Zone.LABELS, labelled)):
        for day in days:
            if not fault.covers(day) or (labels_only and zone == Zone.VALIDATED):
                _link_partition(data_lake, lake, zone, spec.name, day)
    threshold = None
    if fault.kind == "covariate_shift":
        if fault.day not in validated:
            raise DrillError(f"fault {fault.name}: {fault.day} has no validated partition to take the cut from")
        frame, _, _ = _day_frame(spec, data_lake, fault.day)
        threshold = float(frame[fault.column].median())
    injected: dict[str, int] = {}
    quarantined: dict[str, str] = {}
    for day in (d for d in validated if fault.covers(d)):
        frame, feature_schema, labels_schema = _day_frame(spec, data_lake, day)
        if fault.kind in _NEEDS_VALUE and not (frame[fault.column].astype(str) == fault.value).any():
            raise DrillError(f"fault {fault.name}: column {fault.column!r} has no value {fault.value!r} on {day}")
        out = apply_fault(fault, frame, label, threshold)
        injected[day.isoformat()] = len(out)
        if labels_schema is not None:
            labels = out[out[label].notna()][labels_schema.names]
            lake.write_partition(
                Zone.LABELS, spec.name, day, pa.Table.from_pandas(labels, schema=labels_schema, preserve_index=False)
            )
        if labels_only:
            continue  # the features are the shared lake's, validated once
        features = pa.Table.from_pandas(out[feature_schema.names], schema=feature_schema, preserve_index=False)
        lake.write_partition(Zone.LANDING, spec.name, day, features)
        refused = publish_if_valid(spec, lake, day, report_key="drill")
        if refused is not None:
            quarantined[day.isoformat()] = refused
    return lake, {"days": len(injected), "rows": injected, "quarantined": quarantined}


# --------------------------------------------------------------------------- measuring
def gate_promotions(spec: ModelSpec, lake: Lake) -> list[dict[str, Any]]:
    """Every promotion in a policy's ledger after the first model, with the gate's gain and its
    interval; ``bad``: the interval lies entirely below zero (a measurably worse challenger)."""
    from include.registry.ledger import read_ledger

    out = []
    for entry in read_ledger(lake, spec.name):
        if entry["action"] != "promote":
            continue
        report = json.loads(lake.read_bytes(lake.report_path(spec.name, "gate", f"{entry['decision_id']}.json")))
        comparison = report.get("comparison")
        if not comparison:
            continue  # the first model: nothing to compare with
        upper = comparison.get("gain_upper")
        out.append(
            {
                "day": entry["time"][:10],
                "version": report["challenger_version"],
                "gain": comparison.get("gain"),
                "gain_lower": comparison.get("gain_lower"),
                "gain_upper": upper,
                "bad": upper is not None and upper < 0,
            }
        )
    return out


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def measure(
    fault: Fault,
    days: list[dict[str, Any]],
    oracle: list[dict[str, Any]],
    promotions: list[dict[str, Any]],
    clean: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One policy's figures for one fault, against the oracle's days (``DayResult`` dicts) and,
    when given, the same policy's clean run (``clean``: its days without the fault)."""
    start = fault.day.isoformat()
    retrain_days = [d["day"] for d in days[1:] if d["trained"] is not None] if days else []
    after = [day for day in retrain_days if day >= start]
    clean_after = None if clean is None else sum(d["trained"] is not None and d["day"] >= start for d in clean[1:])
    mine = {d["day"]: d["roc_auc"] for d in days if d["roc_auc"] is not None}
    best = {d["day"]: d["roc_auc"] for d in oracle if d["roc_auc"] is not None}
    common = sorted(set(mine) & set(best))
    lost = [best[day] - mine[day] for day in common]
    lost_after = [best[day] - mine[day] for day in common if day >= start]
    return {
        "days_to_first_retrain": (date.fromisoformat(after[0]) - fault.day).days if after else None,
        "first_retrain": after[0] if after else None,
        "mean_daily_auc": _mean(list(mine.values())),
        "mean_daily_auc_after_fault": _mean([v for k, v in mine.items() if k >= start]),
        "auc_lost_vs_oracle": _mean(lost),
        "auc_lost_vs_oracle_after_fault": _mean(lost_after),
        "retrains": len(retrain_days),
        "retrains_after_fault": len(after),
        # what the fault cost in retrains: those after its day beyond the clean run's
        "retrains_caused": None if clean_after is None else len(after) - clean_after,
        "promotions": sum(d["promoted"] for d in days[1:]),
        "bad_promotions": sum(p["bad"] for p in promotions),
    }


# --------------------------------------------------------------------------- the drill
@dataclass(frozen=True)
class DrillSettings:
    start: date
    end: date
    faults: tuple[Fault, ...]
    policies: tuple[str, ...] = POLICIES
    calendar_days: int = 7
    window_days: int | None = None
    # one hyper-parameter trial per training: a drill compares policies on the same budget, and
    # the search is most of a retrain's time
    search_budget: int | None = 1


def drill(spec: ModelSpec, out_dir: Path, settings: DrillSettings, data_lake: Lake | None = None) -> dict[str, Any]:
    """Prepare the history once, replay every policy on a faulted copy per fault, write
    ``drill.json``, the charts and ``report.html``; return the payload.

    Work done twice is done once: a fit on the same rows (the first model of every policy, a
    calendar retrain whose window the fault no longer reaches) is memoized
    (:func:`include.training.train.memoized_fits`) and a day scored with the same model on the
    same partition is linked (:class:`include.replay.ScoreMemo`)."""
    from include.training.train import memoized_fits

    with memoized_fits() as fits:
        return _drill(spec, out_dir, settings, data_lake, fits)


def _drill(
    spec: ModelSpec, out_dir: Path, settings: DrillSettings, data_lake: Lake | None, fits: FitMemo
) -> dict[str, Any]:
    from include.replay import ReplaySettings, prepare_days, summarise

    unknown = [p for p in settings.policies if p not in POLICIES]
    if unknown:
        raise DrillError(f"unknown policy {unknown[0]!r}: expected some of {', '.join(POLICIES)}")
    if not settings.faults:
        raise DrillError(f"{spec.name}: no fault to inject")
    first_scored = settings.start + timedelta(days=settings.window_days or spec.training.window_days)
    for fault in settings.faults:
        fault.check(spec)
        if not first_scored <= fault.day <= settings.end:
            raise DrillError(
                f"fault {fault.name}: its day must lie in {first_scored}..{settings.end} (the first model "
                "trains on the clean window before the first scored day)"
            )
    policies = tuple(dict.fromkeys((*settings.policies, ORACLE)))  # the yardstick always runs
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    data_lake = data_lake or Lake((out_dir / "data").as_uri())
    prepared = prepare_days(spec, data_lake, settings.start, settings.end)
    log.info("data ready: %s", prepared)
    replay_settings = ReplaySettings(
        start=settings.start,
        end=settings.end,
        calendar_days=settings.calendar_days,
        window_days=settings.window_days,
        search_budget=settings.search_budget,
        explain=False,  # nobody reads a drill's importance plots: a third of each training's time
    )
    # Before its fault day every run sees the clean history, and the oracle is the frozen policy:
    # each policy runs those days once per fault day (a checkpoint) and every fault resumes from it.
    # A day a fault does not cover is the same hard-linked partition in every faulted copy: a
    # run scoring it with the same model as another fault's run links that run's predictions.
    runs = _Runs(spec, out_dir, data_lake, replay_settings, policies)
    runs.prepare(sorted({f.day for f in settings.faults}))
    results = {fault.name: runs.fault(fault) for fault in settings.faults}
    seconds, memo, clean = runs.seconds, runs.memo, runs.clean
    seconds["total"] = round(time.perf_counter() - started, 1)
    shared = {
        "scores_linked": memo.hits,
        "scores_computed": memo.misses,
        "fits_memoized": fits.hits,
        "fits_computed": fits.misses,
    }
    log.info("work shared between runs: %s", shared)
    payload = {
        "model": spec.name,
        "from": settings.start.isoformat(),
        "to": settings.end.isoformat(),
        "settings": {k: str(v) for k, v in asdict(settings).items() if k != "faults"},
        "prepared": prepared,
        "seconds": seconds,
        "shared": shared,
        "clean": {f"{base}@{day}": summarise(run) for (day, base), run in clean.items()},
        "faults": results,
    }
    _write_atomic(out_dir / "drill.json", json.dumps(payload, indent=2))
    payload["report"] = render_report(out_dir)
    return payload


_BASE = {"oracle": "frozen"}  # the policy a run follows before its fault day


def _score_memo() -> ScoreMemo:
    from include.replay import ScoreMemo

    return ScoreMemo()


@dataclass
class _Runs:
    """A drill's policy runs: per fault day a checkpoint and a clean run of each policy
    (:meth:`prepare`), then every policy on each fault's copy (:meth:`fault`)."""

    spec: ModelSpec
    out_dir: Path
    data_lake: Lake
    settings: ReplaySettings
    policies: tuple[str, ...]
    memo: ScoreMemo = field(default_factory=_score_memo)
    checkpoints: dict[tuple[date, str], PolicyResult] = field(default_factory=dict)
    clean: dict[tuple[date, str], PolicyResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def prepare(self, days: list[date]) -> None:
        """Each policy's checkpoint on the eve of each fault day, and its clean run from there on:
        what a fault changed is measured against it, and a faulted run whose whole state is the
        clean run's again rejoins it."""
        from include.replay import replay_checkpoint, resume_policy

        for day in days:
            for base in dict.fromkeys(_BASE.get(p, p) for p in self.policies):
                t0 = time.perf_counter()
                eve = replace(self.settings, end=day - timedelta(days=1), policies=(base,))
                folder = _checkpoint_folder(self.out_dir, day, base)
                self.checkpoints[day, base] = replay_checkpoint(self.spec, self.data_lake, folder, base, eve, self.memo)
                self.seconds[f"checkpoint {base}@{day}"] = round(time.perf_counter() - t0, 1)
        for (day, base), checkpoint in self.checkpoints.items():
            t0 = time.perf_counter()
            self.clean[day, base] = resume_policy(
                self.spec,
                self.data_lake,
                checkpoint,
                _checkpoint_folder(self.out_dir, day, base),
                _clean_folder(self.out_dir, day, base),
                base,
                replace(self.settings, policies=(base,)),
                self.memo,
                record_states=True,
            )
            self.seconds[f"clean {base}@{day}"] = round(time.perf_counter() - t0, 1)

    def fault(self, fault: Fault) -> dict[str, Any]:
        """Every policy on ``fault``'s copy of the lake, measured; the fault's part of ``drill.json``."""
        from include.replay import summarise

        t0 = time.perf_counter()
        folder = self.out_dir / fault.folder
        lake, injected = faulted_lake(self.spec, self.data_lake, fault, folder / "data")
        runs: dict[str, PolicyResult] = {}
        promotions: dict[str, list[dict[str, Any]]] = {}
        for policy in self.policies:
            runs[policy], promotions[policy] = self._run(fault, lake, folder, policy)
        days = {p: [asdict(d) for d in r.days] for p, r in runs.items()}
        table = {}
        for p in self.policies:
            clean = None if p == ORACLE else [asdict(d) for d in self.clean[fault.day, _BASE.get(p, p)].days]
            table[p] = {**measure(fault, days[p], days[ORACLE], promotions[p], clean), "rejoined": runs[p].rejoined}
        seconds = self.seconds[fault.name] = round(time.perf_counter() - t0, 1)
        log.info("%s done in %.0f s: %s", fault.name, seconds, table)
        return {
            "fault": {**asdict(fault), "day": fault.day.isoformat()},
            "injected": injected,
            "table": table,
            "summary": {p: summarise(r) for p, r in runs.items()},
            "promotions": promotions,
            "days": days,
            "seconds": seconds,
        }

    def _run(self, fault: Fault, lake: Lake, folder: Path, policy: str) -> tuple[PolicyResult, list[dict[str, Any]]]:
        """One policy resumed on the faulted ``lake``, and its promotions. After a windowed fault, once
        nothing the policy reads covers a faulted day (its training window, the gate's evaluation
        days inside it, the label delay, the monitor's windows), it may rejoin its clean run."""
        from include.replay import Rejoin, resume_policy

        base = _BASE.get(policy, policy)
        clean_folder = _clean_folder(self.out_dir, fault.day, base)
        rejoin = None
        if fault.last_day is not None:
            lookback = (
                self.settings.window_days or self.spec.training.window_days
            ) + self.spec.dataset.label_delay_days
            rejoin = Rejoin(self.clean[fault.day, base], clean_folder, fault.last_day + timedelta(lookback + 1))
        run = resume_policy(
            self.spec,
            lake,
            self.checkpoints[fault.day, base],
            _checkpoint_folder(self.out_dir, fault.day, base),
            folder / policy,
            policy,
            replace(self.settings, policies=(policy,), retrain_on=(fault.day,)),
            self.memo,
            rejoin=rejoin,
        )
        promotions = gate_promotions(self.spec, Lake((folder / policy / "lake").as_uri()))
        if run.rejoined is not None:  # the clean run's promotions after the day the run rejoined it
            later = gate_promotions(self.spec, Lake((clean_folder / "lake").as_uri()))
            promotions += [p for p in later if p["day"] > run.rejoined]
        return run, promotions


def _checkpoint_folder(out_dir: Path, day: date, policy: str) -> Path:
    return out_dir / "checkpoints" / f"{policy}_{day.isoformat()}"


def _clean_folder(out_dir: Path, day: date, policy: str) -> Path:
    return out_dir / "clean" / f"{policy}_{day.isoformat()}"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def table_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The fault x policy table of a drill payload (what ``benchmarks/loop_value.py`` prints)."""
    return [
        {"fault": name, "policy": policy, **figures}
        for name, result in payload["faults"].items()
        for policy, figures in result["table"].items()
    ]


# --------------------------------------------------------------------------- the report
_COLOURS = {"drift": "#c0392b", "calendar": "#2471a3", "frozen": "#7f8c8d", "oracle": "#27ae60"}
_COLUMNS = (
    ("policy", "policy"),
    ("days_to_first_retrain", "days to 1st retrain"),
    ("mean_daily_auc", "mean daily AUC"),
    ("auc_lost_vs_oracle", "AUC lost vs oracle (run)"),
    ("auc_lost_vs_oracle_after_fault", "AUC lost vs oracle (after fault)"),
    ("retrains", "retrains"),
    ("retrains_caused", "retrains caused (after the fault, beyond the clean run's)"),
    ("rejoined", "rejoined the clean run on"),
    ("promotions", "promotions"),
    ("bad_promotions", "bad promotions"),
)


def _chart(out_dir: Path, name: str, result: dict[str, Any]) -> str:
    """Daily ROC AUC per policy with the fault window shaded; returns the PNG's file name."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for policy, days in result["days"].items():
        points = [(date.fromisoformat(d["day"]), d["roc_auc"]) for d in days if d["roc_auc"] is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            dashed = policy == "oracle"  # it often overlaps another policy: keep both visible
            ax.plot(xs, ys, lw=1.2, ls="--" if dashed else "-", color=_COLOURS.get(policy), label=policy)
        for d in days[1:]:
            if d["trained"] is not None:
                ax.axvline(date.fromisoformat(d["day"]), color=_COLOURS.get(policy), lw=0.6, ls=":")  # type: ignore[arg-type]
    fault = result["fault"]
    first = date.fromisoformat(fault["day"])
    last_scored = max(date.fromisoformat(d["day"]) for days in result["days"].values() for d in days)
    last = first + timedelta(days=fault["days"]) if fault["days"] else last_scored + timedelta(days=1)
    ax.axvspan(first, last, color="#f5b041", alpha=0.25, label="fault window")  # type: ignore[arg-type]
    ax.axhline(0.5, color="black", lw=0.5)
    ax.set_ylabel("daily ROC AUC")
    ax.set_title(f"{name}: daily ROC AUC per policy (dotted: retrains)")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    file = f"{name.replace('@', '_')}.png"  # the fault's folder name
    fig.savefig(out_dir / file, dpi=100, bbox_inches="tight")
    return file


def render_report(out_dir: Path) -> str:
    """(Re)draw the charts and ``report.html`` from ``out_dir/drill.json``; return its path."""
    from html import escape

    payload = json.loads((out_dir / "drill.json").read_text())
    sections = []
    for name, result in payload["faults"].items():
        chart = _chart(out_dir, name, result)
        head = "".join(f"<th>{escape(title)}</th>" for _, title in _COLUMNS)
        rows = "".join(
            "<tr>"
            + "".join(f"<td>{escape(str({**figures, 'policy': policy}[key]))}</td>" for key, _ in _COLUMNS)
            + "</tr>"
            for policy, figures in result["table"].items()
        )
        injected = result["injected"]
        sections.append(
            f"<h2>{escape(name)}</h2><p>{escape(json.dumps(result['fault']))}; {injected['days']} days rewritten, "
            f"{len(injected['quarantined'])} quarantined by the contract; {result['seconds']} s.</p>"
            f"<table><tr>{head}</tr>{rows}</table>"
            f'<p><img src="{chart}" alt="{escape(name)}" style="max-width:100%"></p>'
        )
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>airloop drill {escape(payload["model"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head><body>
<h1>Drill of {escape(payload["model"])}: {payload["from"]} to {payload["to"]}</h1>
<p>Each fault is injected into a copy of the validated history; every policy is replayed on it with the
same step functions as the DAGs. The oracle retrains exactly on the fault's first day. AUC lost: mean daily
ROC AUC of the oracle minus the policy's, on the days both were measured. A bad promotion is one whose
gate gain interval lies entirely below zero.</p>
{"".join(sections)}
<p>Days that failed their data contract before any fault: {escape(json.dumps(payload["prepared"]["failed"]))}</p>
</body></html>"""
    _write_atomic(out_dir / "report.html", html)
    return str(out_dir / "report.html")
