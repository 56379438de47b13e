"""What the airloop view in the Airflow UI shows for one model, gathered from where it lives.

* **Registry** (MLflow): ``@champion`` and ``@challenger`` with their runs' key metrics, and every
  version with its gate outcome (version tags).
* **Ledger** (``reports/<model>/ledger/``): the gate decisions, approvals and rollbacks, in order.
* **Drift records** (``reports/<model>/drift/ds=<date>.json``, one per monitored day, written by
  :func:`include.monitoring.monitor.monitor_day`): PSI per feature and of the predictions, the
  day's verdict (a ``retrain`` verdict is a retrain event) with the signals it weighed (which
  fired, which a guard held back, which one decided), the realized performance of the day whose
  labels arrived (delayed-label ROC AUC with its bootstrap interval) and the label-free estimate
  of the day's performance. Fields newer records carry (``verdict.signals``,
  ``verdict.trigger``, ``estimated_performance``) are read with ``.get``: older records show
  without them.
* **Predictions** (``predictions/<model>/ds=<date>/data.parquet``): rows in, scored and rejected,
  read from the file's ``airloop.*`` footer metadata (sharded and unsharded runs write the same
  keys), so no data is read.

Everything is plain data (frozen dataclasses) so the HTML is a pure function of it and tests can
assert the exact numbers. Nothing here imports Airflow; heavy imports stay inside functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from include.lake import Lake, LakeError, Zone
from include.monitoring.decision import EstimatedPerformance, Signal
from include.names import CHALLENGER, CHAMPION, Tag
from include.reports.format import finite

if TYPE_CHECKING:
    from include.spec import ModelSpec

log = logging.getLogger(__name__)

KEY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy")
DRIFT_KIND = "drift"  # same folder as include.monitoring.monitor.DRIFT_KIND


# --------------------------------------------------------------------------- value objects


@dataclass(frozen=True)
class VersionInfo:
    """One registered version: what it is, how the gate judged it, its key metrics."""

    version: int
    aliases: tuple[str, ...] = ()
    created: datetime | None = None
    estimator: str | None = None
    data_window: str | None = None
    reason: str | None = None
    gate: str | None = None
    run_id: str | None = None
    experiment_id: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def roc_auc(self) -> float | None:
        return self.metrics.get("roc_auc")


@dataclass(frozen=True)
class TimelineEvent:
    """One ledger entry as the timeline shows it."""

    time: datetime
    action: str
    version: int | None
    previous_version: int | None
    summary: str
    approver: str | None
    reason: str | None
    run_id: str | None


@dataclass(frozen=True)
class DriftDay:
    """One monitored day: PSI per feature and of the predictions, the day's score (max judged
    PSI), the verdict, the signals it weighed and the kind that decided it (``trigger``)."""

    day: date
    model_version: int | None
    psi: Mapping[str, float | None]
    score: float | None
    status: str
    verdict: str
    prediction_psi: float | None = None
    top_features: tuple[str, ...] = ()
    signals: tuple[Signal, ...] = ()
    trigger: str | None = None
    reasons: tuple[str, ...] = ()
    alert: float = 0.25  # the spec's drift.alert, the threshold of the fallback figure

    @property
    def fired(self) -> tuple[Signal, ...]:
        """Signals that fired and acted (no guard held them back)."""
        return tuple(s for s in self.signals if s.fired and not s.held_by)

    @property
    def held(self) -> tuple[Signal, ...]:
        """Signals that fired but a guard held back."""
        return tuple(s for s in self.signals if s.held_by)

    @property
    def deciding(self) -> Signal:
        """The figure that decided the verdict: the trigger's signal; else the first signal that
        fired; else the one nearest its threshold; records without signals give the day's
        data-drift score (max judged PSI) against ``drift.alert``."""
        if self.trigger:
            for signal in self.signals:
                if signal.kind == self.trigger:
                    return signal
        for signal in self.signals:
            if signal.fired:
                return signal
        measured = [s for s in self.signals if s.value is not None and s.threshold]
        if measured:
            return max(measured, key=lambda s: (s.value or 0.0) / (s.threshold or 1.0))
        return Signal("data_drift", self.score, self.alert, self.status == "alert", text="max judged PSI")


@dataclass(frozen=True)
class VolumeDay:
    """Rows of one scored day: ``rows_in = rows_scored + rows_rejected``."""

    day: date
    rows_in: int
    rows_scored: int
    rows_rejected: int
    model_version: int | None
    reject_reasons: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RealizedDay:
    """Delayed-label performance of ``label_day`` (measured when its labels arrived, on ``day``)."""

    day: date
    label_day: date
    roc_auc: float
    rows: int
    model_version: int | None
    reference_auc: float | None = None
    low: float | None = None  # bootstrap interval of the day's ROC AUC (``performance.drop``)
    high: float | None = None
    significant: bool = False  # the whole interval lies below the reference AUC


@dataclass(frozen=True)
class EstimatedDay(EstimatedPerformance):
    """The label-free estimate of ``day``'s ROC AUC (the monitor's record of it); ``valid`` False
    (with ``note``) when the estimate cannot be trusted (e.g. concept drift)."""

    day: date = field(kw_only=True)


@dataclass(frozen=True)
class Dashboard:
    """Everything the model page shows."""

    model: str
    champion: VersionInfo | None
    challenger: VersionInfo | None
    versions: tuple[VersionInfo, ...]
    timeline: tuple[TimelineEvent, ...]
    features: tuple[str, ...]
    drift: tuple[DriftDay, ...]
    volume: tuple[VolumeDay, ...]
    realized: tuple[RealizedDay, ...]
    retrain_days: tuple[date, ...]
    warn: float
    alert: float
    ignored: tuple[str, ...] = ()  # reported but not judged (the spec's ``drift.ignore``)
    registry_error: str | None = None
    estimated: tuple[EstimatedDay, ...] = ()

    @property
    def champion_changes(self) -> tuple[TimelineEvent, ...]:
        """Promotions and rollbacks: the moments ``@champion`` moved."""
        return tuple(e for e in self.timeline if e.action in ("promote", "rollback"))

    @property
    def total_rows_scored(self) -> int:
        return sum(v.rows_scored for v in self.volume)

    @property
    def total_rows_rejected(self) -> int:
        return sum(v.rows_rejected for v in self.volume)


# --------------------------------------------------------------------------- registry


def _metric_tags(tags: Mapping[str, str]) -> dict[str, float]:
    out = {}
    for key, value in tags.items():
        if key.startswith("metric."):
            try:
                out[key[len("metric.") :]] = float(value)
            except ValueError:
                continue
    return out


def registry_versions(
    tracking_uri: str, model: str
) -> tuple[VersionInfo | None, VersionInfo | None, list[VersionInfo]]:
    """``(champion, challenger, all versions newest first)`` from the MLflow registry.

    Aliases come from ``get_registered_model`` (``search_model_versions`` leaves them empty);
    champion and challenger carry their training runs' metrics, other versions the
    ``metric.*`` tags registration copied onto them. A model that was never registered gives
    ``(None, None, [])``.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    try:
        registered = client.get_registered_model(model)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None, None, []
        raise
    by_version: dict[int, list[str]] = {}
    for alias, version in (registered.aliases or {}).items():
        by_version.setdefault(int(version), []).append(alias)
    infos: dict[int, VersionInfo] = {}
    for mv in client.search_model_versions(filter_string=f"name='{model}'"):
        number = int(mv.version)
        tags = dict(mv.tags or {})
        metrics = _metric_tags(tags)
        experiment_id = None
        if number in by_version and mv.run_id:
            try:
                run = client.get_run(mv.run_id)
            except MlflowException as exc:  # a deleted run must not take the page down
                log.warning("%s v%s: cannot read run %s: %s", model, number, mv.run_id, exc)
            else:
                experiment_id = run.info.experiment_id
                metrics.update({k: float(v) for k, v in run.data.metrics.items() if k in KEY_METRICS})
        infos[number] = VersionInfo(
            version=number,
            aliases=tuple(sorted(by_version.get(number, ()))),
            created=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC) if mv.creation_timestamp else None,
            estimator=tags.get(Tag.ESTIMATOR),
            data_window=tags.get(Tag.DATA_WINDOW),
            reason=tags.get(Tag.TRIGGER_REASON) or tags.get(Tag.REASON),
            gate=tags.get(Tag.GATE),
            run_id=mv.run_id or None,
            experiment_id=experiment_id,
            metrics={k: metrics[k] for k in sorted(metrics) if k in KEY_METRICS},
        )
    versions = sorted(infos.values(), key=lambda v: -v.version)

    def aliased(name: str) -> VersionInfo | None:
        number = registered.aliases.get(name) if registered.aliases else None
        return infos.get(int(number)) if number is not None else None

    return aliased(CHAMPION), aliased(CHALLENGER), versions


# --------------------------------------------------------------------------- lake


def timeline(lake: Lake, model: str) -> list[TimelineEvent]:
    """The ledger as timeline events, oldest first."""
    from include.registry.ledger import read_ledger

    return [
        TimelineEvent(
            time=datetime.fromisoformat(entry["time"]),
            action=str(entry["action"]),
            version=entry.get("version"),
            previous_version=entry.get("previous_version"),
            summary=str(entry.get("summary") or ""),
            approver=entry.get("approver"),
            reason=entry.get("reason"),
            run_id=entry.get("run_id"),
        )
        for entry in read_ledger(lake, model)
    ]


def drift_records(lake: Lake, model: str) -> list[dict[str, Any]]:
    """Every drift record of ``model`` (``reports/<model>/drift/ds=*.json``), oldest first."""
    records = []
    for path in lake.list_files(lake.path(Zone.REPORTS.value, model, DRIFT_KIND)):
        name = path.rsplit("/", 1)[-1]
        if name.startswith("ds=") and name.endswith(".json"):
            records.append(json.loads(lake.read_bytes(path)))
    return sorted(records, key=lambda r: str(r["partition"]))


def drift_days(records: Sequence[Mapping[str, Any]], alert: float = 0.25) -> list[DriftDay]:
    """PSI per feature and of the predictions, score, verdict and signals of each monitored day
    (``alert``: the spec's ``drift.alert``, the threshold shown for records without signals)."""
    days = []
    for record in records:
        drift = record.get("drift") or {}
        features = drift.get("features") or {}
        prediction = drift.get("prediction") or {}
        verdict = record.get("verdict") or {}
        days.append(
            DriftDay(
                day=_record_day(record),
                model_version=record.get("model_version"),
                psi={name: finite(item.get("psi")) for name, item in features.items()},
                score=finite(drift.get("score")),
                status=str(drift.get("status", "")),
                verdict=str(verdict.get("state", "")),
                prediction_psi=finite(prediction.get("psi")),
                top_features=tuple(verdict.get("top_features") or ()),
                signals=tuple(Signal.from_dict(item) for item in verdict.get("signals") or ()),
                trigger=verdict.get("trigger") or None,
                reasons=tuple(str(r) for r in verdict.get("reasons") or ()),
                alert=alert,
            )
        )
    return days


def _record_day(record: Mapping[str, Any]) -> date:
    """The day a drift record is about (its ``partition``)."""
    return date.fromisoformat(str(record["partition"])[:10])


def realized_days(records: Sequence[Mapping[str, Any]]) -> list[RealizedDay]:
    """The delayed-label ROC AUC in the drift records (days whose labels had arrived)."""
    return [point for point in map(_realized_day, records) if point is not None]


def _realized_day(record: Mapping[str, Any]) -> RealizedDay | None:
    perf = record.get("performance") or {}
    auc = finite(perf.get("roc_auc"))
    if auc is None or not perf.get("label_day"):
        return None
    drop = perf.get("drop") or {}
    return RealizedDay(
        day=_record_day(record),
        label_day=date.fromisoformat(str(perf["label_day"])[:10]),
        roc_auc=auc,
        rows=int(perf.get("rows", perf.get("n", 0))),
        model_version=perf.get("model_version"),
        reference_auc=finite(record.get("reference_auc")),
        low=finite(drop.get("ci_low")),
        high=finite(drop.get("ci_high")),
        significant=bool(drop.get("significant")),
    )


def estimated_days(records: Sequence[Mapping[str, Any]]) -> list[EstimatedDay]:
    """The label-free performance estimates in the drift records (``estimated_performance``)."""
    return [point for point in map(_estimated_day, records) if point is not None]


def _estimated_day(record: Mapping[str, Any]) -> EstimatedDay | None:
    estimate = EstimatedPerformance.from_dict(record.get("estimated_performance"))
    if estimate is None or estimate.auc is None:
        return None
    return EstimatedDay(**asdict(estimate), day=_record_day(record))


def prediction_volume(lake: Lake, model: str) -> list[VolumeDay]:
    """Rows in, scored and rejected per published predictions day (footer metadata only)."""
    import pyarrow.parquet as pq

    from include.scoring.score import read_output_metadata

    days = []
    for ds in lake.list_partitions(Zone.PREDICTIONS, model):
        path = lake.partition_file(Zone.PREDICTIONS, model, ds)
        try:
            meta = read_output_metadata(lake, path)
        except LakeError as exc:  # published a moment ago and replaced: skip, the next load shows it
            log.warning("%s %s: cannot read predictions metadata: %s", model, ds, exc)
            continue
        if "rows_scored" in meta:
            scored = int(meta["rows_scored"])
        else:
            with lake.fs.open_input_file(path) as handle:
                scored = int(pq.read_metadata(handle).num_rows)
        rejected = int(meta.get("rows_rejected", 0))
        days.append(
            VolumeDay(
                day=ds,
                rows_in=int(meta.get("rows_in", scored + rejected)),
                rows_scored=scored,
                rows_rejected=rejected,
                model_version=int(meta["model_version"]) if meta.get("model_version") else None,
                reject_reasons=json.loads(meta.get("reject_reasons") or "{}"),
            )
        )
    return days


# --------------------------------------------------------------------------- the whole page


@contextmanager
def fail_fast_mlflow(timeout_s: int = 10) -> Iterator[None]:
    """MLflow requests inside fail at once instead of retrying: a person waits on the page, and
    with its default retries and backoff the client took 248 s to give up on a server that was
    down. MLflow reads both variables at each request; the previous values come back after."""
    from include.registry.mlflow_registry import environment

    with environment(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(timeout_s)):
        yield


def gather_dashboard(
    lake: Lake,
    model: str,
    tracking_uri: str | None,
    spec: ModelSpec | None = None,
) -> Dashboard:
    """Everything the model page shows. ``tracking_uri`` None (or an unreachable registry)
    still gives the lake's half, with ``registry_error`` saying why the registry part is empty."""
    from include.spec import DriftSpec, get_spec

    if spec is None:
        try:
            spec = get_spec(model)
        except Exception as exc:  # noqa: BLE001 - a model without a (valid) spec still has history
            log.warning("%s: no spec (%s); using default drift thresholds", model, exc)
    policy = spec.drift if spec is not None else DriftSpec()

    champion = challenger = None
    versions: list[VersionInfo] = []
    registry_error = None
    if tracking_uri:
        try:
            with fail_fast_mlflow():
                champion, challenger, versions = registry_versions(tracking_uri, model)
        except Exception as exc:  # noqa: BLE001 - MLflow down must not hide the lake's figures
            registry_error = f"MLflow registry at {tracking_uri} not readable: {exc}"
            log.warning("%s: %s", model, registry_error)
    else:
        registry_error = "no MLflow tracking URI configured"

    records = drift_records(lake, model)
    drift = drift_days(records, alert=float(policy.alert))
    if spec is not None:
        features = [*spec.dataset.features.numeric, *spec.dataset.features.categorical]
    else:
        features = []
    for day in drift:  # features of older records (a spec that changed) stay visible
        features.extend(name for name in day.psi if name not in features)
    return Dashboard(
        model=model,
        champion=champion,
        challenger=challenger,
        versions=tuple(versions),
        timeline=tuple(timeline(lake, model)),
        features=tuple(features),
        drift=tuple(drift),
        volume=tuple(prediction_volume(lake, model)),
        realized=tuple(realized_days(records)),
        retrain_days=tuple(d.day for d in drift if d.verdict == "retrain"),
        warn=float(policy.warn),
        alert=float(policy.alert),
        ignored=tuple(policy.ignore),
        registry_error=registry_error,
        estimated=tuple(estimated_days(records)),
    )


def last_days(dash: Dashboard, days: int) -> Dashboard:
    """The dashboard restricted to its last ``days`` days of drift, volume and realized
    performance (counted back from the newest day any of them has); ``days <= 0`` keeps all.
    The registry and the ledger stay whole: they are short."""
    from dataclasses import replace
    from datetime import timedelta

    newest = [
        *(d.day for d in dash.drift),
        *(v.day for v in dash.volume),
        *(r.day for r in dash.realized),
        *(e.day for e in dash.estimated),
    ]
    if days <= 0 or not newest:
        return dash
    since = max(newest) - timedelta(days=days - 1)
    return replace(
        dash,
        drift=tuple(d for d in dash.drift if d.day >= since),
        volume=tuple(v for v in dash.volume if v.day >= since),
        realized=tuple(r for r in dash.realized if r.day >= since),
        estimated=tuple(e for e in dash.estimated if e.day >= since),
        retrain_days=tuple(d for d in dash.retrain_days if d >= since),
    )


def model_names(lake: Lake) -> list[str]:
    """Models to list on the index: every valid spec, plus models with reports in the lake."""
    import pyarrow.fs as pafs

    from include.spec import load_specs

    names = {spec.name for spec in load_specs()[0]}
    infos = lake.fs.get_file_info(pafs.FileSelector(lake.path(Zone.REPORTS.value), allow_not_found=True))
    names.update(info.base_name for info in infos if info.type == pafs.FileType.Directory)
    return sorted(names)


__all__ = [
    "Dashboard",
    "DriftDay",
    "EstimatedDay",
    "RealizedDay",
    "Signal",
    "TimelineEvent",
    "VersionInfo",
    "VolumeDay",
    "drift_days",
    "drift_records",
    "estimated_days",
    "gather_dashboard",
    "last_days",
    "model_names",
    "prediction_volume",
    "realized_days",
    "registry_versions",
    "timeline",
]
