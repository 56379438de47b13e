"""What the airloop view in the Airflow UI shows for one model, gathered from where it lives.

* **Registry** (MLflow): ``@champion`` and ``@challenger`` with their runs' key metrics, and every
  version with its gate outcome and promotion time (version tags).
* **Ledger** (``reports/<model>/ledger/``): the gate decisions, approvals and rollbacks, in order.
* **Drift records** (``reports/<model>/drift/ds=<date>.json``, one per monitored day, written by
  :func:`include.monitoring.monitor.monitor_day`): PSI per feature and of the predictions, the
  day's verdict (a ``retrain`` verdict is a retrain event) with the signals it weighed (which
  fired, which a guard held back, which one decided), the realized performance of the day whose
  labels arrived (delayed-label ROC AUC with its bootstrap interval) and the label-free estimate
  of the day's performance; for a spec with ``gate.fairness``, the window's disparities with
  their intervals and limits (``fairness``). Fields newer records carry (``verdict.signals``,
  ``verdict.trigger``, ``estimated_performance``) are read with ``.get``: older records show
  without them.
* **Predictions** (``predictions/<model>/ds=<date>/data.parquet``): rows in, scored and rejected,
  read from the file's ``airloop.*`` footer metadata (sharded and unsharded runs write the same
  keys), so no data is read.

* **Champion's importance** (``reports/<model>/cards/v<N>.importance.json``, written with the
  version's model card): its permutation importance and what shifted against the champion it
  replaced (:mod:`include.registry.explain`).

* **Alert records** (``reports/<model>/alerts/*.json``, written by the alert notifier): the index
  counts those of the last :data:`OPEN_ALERT_DAYS` days.

The registry is read over MLflow's REST API by :class:`RegistryReader`: no retries, and one time
budget (:data:`REGISTRY_BUDGET_S`) for all the requests of a page, so a registry that refuses or
never answers costs the page at most that budget and the lake's half is shown with a "registry
unreachable" banner; nothing is set in ``os.environ``. The index page (:func:`gather_index`)
summarizes each model's :class:`Dashboard` into a :class:`ModelSummary` row (:func:`summarize`),
so the index and the model page read the same files through the same functions.

Everything is plain data (frozen dataclasses) so the HTML is a pure function of it and tests can
assert the exact numbers. Nothing here imports Airflow; heavy imports stay inside functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from include.lake import Lake, LakeError, Zone
from include.monitoring.decision import EstimatedPerformance, Signal
from include.names import CHALLENGER, CHAMPION, GATE_OUTCOMES, Tag
from include.reports.format import finite

if TYPE_CHECKING:
    from include.registry.explain import FeatureShift
    from include.spec import ModelSpec

log = logging.getLogger(__name__)

KEY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy")
IMPORTANCE_TOP = 5  # columns of the champion's importance the panel shows (and any that shifted)
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
    promoted_at: datetime | None = None  # the ``airloop.promoted_at`` tag the gate sets

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
    circuit_open: bool = False  # a circuit breaker is open (a human must look)
    half_open: bool = False  # ... and lets one probe retrain through
    breach: bool = False  # the champion's realized AUC is below the floor

    @property
    def breaker(self) -> str:
        """``open``, ``half-open`` or ``closed``: the circuit breakers as this verdict saw them."""
        if self.half_open:
            return "half-open"
        return "open" if self.circuit_open else "closed"

    @property
    def breaker_reasons(self) -> tuple[str, ...]:
        """The verdict's sentences about a circuit breaker (which budget, how many rejections)."""
        return tuple(r for r in self.reasons if "circuit breaker" in r)

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
class FairnessDay:
    """One disparity of one sensitive column over the window of labelled days pooled on ``day``
    (the monitor's ``fairness.window``), with its 95% interval and the spec's ``limit`` (``None``:
    not limited); ``breach``: past the limit on its favourable bound; ``judged``: the window held
    enough labelled days to be judged."""

    day: date
    label_day: date
    column: str
    name: str
    value: float | None
    lower: float | None
    upper: float | None
    limit: float | None
    rows: int
    model_version: int | None
    judged: bool = False
    breach: bool = False
    high_group: str | None = None
    low_group: str | None = None
    metric: str | None = None
    high_value: float | None = None
    low_value: float | None = None

    @property
    def series(self) -> str:
        """``equalized_odds_difference on origin``: one line of the chart."""
        return f"{self.name} on {self.column}"


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
    registry_unreachable: bool = False  # the registry did not answer (not: no URI configured)
    champion_importance: tuple[FeatureShift, ...] = ()
    """The champion's importance rows (its card's), ranked; empty when its card has none."""
    champion_compared_with: int | None = None  # the version whose importance the rows compare with
    fairness: tuple[FairnessDay, ...] = ()
    """The window's limited disparities per monitored day (specs with ``gate.fairness`` only)."""

    @property
    def champion_importance_shown(self) -> tuple[FeatureShift, ...]:
        """The champion panel's rows: the top :data:`IMPORTANCE_TOP` columns and every shifted one."""
        return tuple(
            r for r in self.champion_importance if r.shifted or (r.rank or IMPORTANCE_TOP + 1) <= IMPORTANCE_TOP
        )

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


REGISTRY_BUDGET_S = 1.5
"""Seconds a page may wait on the MLflow registry, all its requests together: a person waits on
the page, and MLflow's client (default retries with backoff) took about 4 minutes to give up on a
server that was down."""


class RegistryUnreachable(RuntimeError):
    """The registry did not answer (refused, timed out, server error) within the page's budget."""


class RegistryReader:
    """The few MLflow REST reads the view needs, with no retries and one time budget for the page.

    Each request goes through MLflow's own ``http_request`` (the tracking credentials of
    ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``/``_TOKEN``, TLS settings) with ``max_retries=0`` and a
    timeout of what remains of ``budget_s``, counted from the first request; nothing is written to
    ``os.environ``, so requests served at the same time keep their own settings. The first request
    that fails to get an answer marks the registry unreachable: later reads (other models on the
    index) fail at once with the same message instead of waiting again.
    """

    def __init__(self, tracking_uri: str, budget_s: float = REGISTRY_BUDGET_S) -> None:
        if not tracking_uri.startswith(("http://", "https://")):
            raise ValueError(f"the airloop view reads MLflow over HTTP: tracking URI {tracking_uri!r} is not http(s)")
        self.tracking_uri = tracking_uri.rstrip("/")
        self.budget_s = budget_s
        self.error: str | None = None
        self._deadline: float | None = None

    def get(self, endpoint: str, **params: Any) -> dict[str, Any] | None:
        """``GET /api/2.0/mlflow/<endpoint>`` as JSON; None when the resource does not exist."""
        import time

        from mlflow.exceptions import MlflowException, RestException
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        if self.error:
            raise RegistryUnreachable(self.error)
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self.budget_s
        remaining = self._deadline - now
        if remaining <= 0:
            self.error = f"MLflow registry at {self.tracking_uri} unreachable: no answer within {self.budget_s:g} s"
            raise RegistryUnreachable(self.error)
        path = f"/api/2.0/mlflow/{endpoint}"
        try:
            response = http_request(
                get_default_host_creds(self.tracking_uri),
                path,
                "GET",
                max_retries=0,
                backoff_factor=0,
                timeout=remaining,
                params=params,
            )
        except MlflowException as exc:  # refused, timed out, or a server error
            log.debug("MLflow request %s failed: %s", path, exc.message)
            self.error = (
                f"MLflow registry at {self.tracking_uri} unreachable: {_why(exc, remaining)} "
                f"(no retries, {self.budget_s:g} s budget for the page)"
            )
            raise RegistryUnreachable(self.error) from None
        try:
            verify_rest_response(response, path)
        except RestException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        data: dict[str, Any] = response.json()
        return data


def _why(exc: BaseException, timeout_s: float) -> str:
    """A short reason for a failed request: MLflow wraps requests' error in a long message (the
    exception it wraps is the cause or the context)."""
    import requests
    from urllib3.exceptions import NewConnectionError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    cause = exc.__cause__ or exc.__context__
    # with retries off, urllib3's read timeout reaches requests as a ConnectionError's reason;
    # a refused connection is a NewConnectionError, which urllib3 derives from its timeout error
    reason = getattr(cause.args[0], "reason", None) if cause is not None and cause.args else None
    timed_out = isinstance(reason, Urllib3Timeout) and not isinstance(reason, NewConnectionError)
    if isinstance(cause, requests.exceptions.Timeout) or timed_out:
        return f"no answer within {timeout_s:.1f} s (timed out)"
    if isinstance(cause, requests.exceptions.ConnectionError):
        return f"connection failed ({str(reason or cause).rsplit('): ', 1)[-1]})"
    return str(getattr(exc, "message", exc))


def registry_versions(
    registry: RegistryReader | str, model: str
) -> tuple[VersionInfo | None, VersionInfo | None, list[VersionInfo]]:
    """``(champion, challenger, all versions newest first)`` from the MLflow registry (a
    :class:`RegistryReader` or a tracking URI, read with the default budget).

    Aliases come from the registered model (a version search leaves them empty); champion and
    challenger carry their training runs' metrics, other versions the ``metric.*`` tags
    registration copied onto them. A model that was never registered gives ``(None, None, [])``.
    Raises :class:`RegistryUnreachable` when the registry does not answer in time.
    """
    from mlflow.exceptions import RestException

    reader = RegistryReader(registry) if isinstance(registry, str) else registry
    found = reader.get("registered-models/get", name=model)
    if found is None:
        return None, None, []
    aliases = {str(a["alias"]): int(a["version"]) for a in found["registered_model"].get("aliases") or ()}
    by_version: dict[int, list[str]] = {}
    for alias, number in aliases.items():
        by_version.setdefault(number, []).append(alias)
    infos: dict[int, VersionInfo] = {}
    for mv in _model_versions(reader, model):
        number = int(mv["version"])
        tags = {str(t["key"]): str(t.get("value", "")) for t in mv.get("tags") or ()}
        metrics = _metric_tags(tags)
        run_id = mv.get("run_id") or None
        experiment_id = None
        if number in by_version and run_id:
            try:  # a deleted run, or one not readable, must not take the page down
                run = reader.get("runs/get", run_id=run_id)
            except RestException as exc:
                run, why = None, str(exc)
            else:
                why = "not found"
            if run is None:
                log.warning("%s v%s: run %s %s: metrics from the version's tags", model, number, run_id, why)
            else:
                experiment_id = run["run"]["info"].get("experiment_id")
                for metric in run["run"].get("data", {}).get("metrics") or ():
                    if metric["key"] in KEY_METRICS:
                        metrics[metric["key"]] = float(metric["value"])
        created = int(mv.get("creation_timestamp") or 0)
        infos[number] = VersionInfo(
            version=number,
            aliases=tuple(sorted(by_version.get(number, ()))),
            created=datetime.fromtimestamp(created / 1000, UTC) if created else None,
            estimator=tags.get(Tag.ESTIMATOR),
            data_window=tags.get(Tag.DATA_WINDOW),
            reason=tags.get(Tag.TRIGGER_REASON) or tags.get(Tag.REASON),
            gate=tags.get(Tag.GATE),
            run_id=run_id,
            experiment_id=experiment_id,
            metrics={k: metrics[k] for k in sorted(metrics) if k in KEY_METRICS},
            promoted_at=_timestamp(tags.get(Tag.PROMOTED_AT)),
        )
    versions = sorted(infos.values(), key=lambda v: -v.version)
    return infos.get(aliases.get(CHAMPION, -1)), infos.get(aliases.get(CHALLENGER, -1)), versions


def _model_versions(reader: RegistryReader, model: str) -> Iterator[dict[str, Any]]:
    """Every version of ``model`` (the search pages through ``next_page_token``)."""
    token = ""
    while True:
        params: dict[str, Any] = {"filter": f"name='{model}'", "max_results": 1000}
        if token:
            params["page_token"] = token
        page = reader.get("model-versions/search", **params) or {}
        yield from page.get("model_versions") or ()
        token = page.get("next_page_token") or ""
        if not token:
            return


def _timestamp(text: str | None) -> datetime | None:
    """An ISO time tag (``airloop.promoted_at``), None when absent or unreadable."""
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


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
                circuit_open=bool(verdict.get("circuit_open")),
                half_open=bool(verdict.get("half_open")),
                breach=bool(verdict.get("breach")),
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


def fairness_days(records: Sequence[Mapping[str, Any]]) -> list[FairnessDay]:
    """The window's disparities in the drift records' ``fairness`` entries: those the spec limits
    (or, with no limit, demographic parity and equalized odds differences); records without the
    entry (specs without ``gate.fairness``, older records) give none."""
    from include.registry.fairness import DEFAULT_COMPARED

    out: list[FairnessDay] = []
    for record in records:
        entry = record.get("fairness") or {}
        window = entry.get("window") or {}
        if not window or not entry.get("label_day"):
            continue
        limits = entry.get("limits") or {}
        shown = tuple(limits) or DEFAULT_COMPARED
        breached = {(b.get("column"), b.get("name")) for b in entry.get("breaches") or []}
        for d in window.get("disparities") or []:
            if d.get("name") not in shown:
                continue
            version = entry.get("model_version")
            out.append(
                FairnessDay(
                    day=_record_day(record),
                    label_day=date.fromisoformat(str(entry["label_day"])[:10]),
                    column=str(d["column"]),
                    name=str(d["name"]),
                    value=finite(d.get("value")),
                    lower=finite(d.get("lower")),
                    upper=finite(d.get("upper")),
                    limit=finite(limits.get(d["name"])),
                    rows=int(window.get("rows") or 0),
                    model_version=None if version is None else int(version),
                    judged=bool(entry.get("judged")),
                    breach=(d["column"], d["name"]) in breached,
                    high_group=d.get("high_group"),
                    low_group=d.get("low_group"),
                    metric=d.get("metric"),
                    high_value=finite(d.get("high_value")),
                    low_value=finite(d.get("low_value")),
                )
            )
    return out


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


def gather_dashboard(
    lake: Lake,
    model: str,
    tracking_uri: str | None,
    spec: ModelSpec | None = None,
    *,
    registry: RegistryReader | None = None,
    volume: bool = True,
) -> Dashboard:
    """Everything the model page shows. ``tracking_uri`` None (or a registry that does not answer
    within :data:`REGISTRY_BUDGET_S`) still gives the lake's half, with ``registry_error`` saying
    why the registry part is empty. ``registry``: a reader shared by several calls (the index: one
    budget for every model); ``volume`` False skips the predictions' footers (the index shows none)."""
    from include.spec import DriftSpec, get_spec

    if spec is None:
        try:
            spec = get_spec(model)
        except Exception as exc:  # noqa: BLE001 - a model without a (valid) spec still has history
            log.warning("%s: no spec (%s); using default drift thresholds", model, exc)
    policy = spec.drift if spec is not None else DriftSpec()

    champion = challenger = None
    versions: list[VersionInfo] = []
    registry_error, unreachable = None, False
    known = registry.error if registry is not None else None  # a shared reader's earlier failure
    try:
        if registry is None and tracking_uri:
            registry = RegistryReader(tracking_uri)
        if registry is None:
            registry_error = "no MLflow tracking URI configured"
        else:
            champion, challenger, versions = registry_versions(registry, model)
    except RegistryUnreachable as exc:
        registry_error, unreachable = str(exc), True
    except Exception as exc:  # noqa: BLE001 - MLflow down must not hide the lake's figures
        registry_error = f"MLflow registry at {tracking_uri} not readable: {exc}"
    if registry_error and registry is not None and registry_error != known:
        log.warning("%s: %s", model, registry_error)

    compared_with: int | None = None
    importance: list[FeatureShift] = []
    if champion is not None:
        from include.registry.explain import read_importance_record

        try:
            found = read_importance_record(lake, model, champion.version)
        except (LakeError, ValueError, TypeError, KeyError) as exc:  # a bad record must not cost the page
            log.warning("%s: importance record of v%s not readable: %s", model, champion.version, exc)
            found = None
        if found is not None:
            compared_with, importance = found
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
        volume=tuple(prediction_volume(lake, model)) if volume else (),
        realized=tuple(realized_days(records)),
        retrain_days=tuple(d.day for d in drift if d.verdict == "retrain"),
        warn=float(policy.warn),
        alert=float(policy.alert),
        ignored=tuple(policy.ignore),
        registry_error=registry_error,
        estimated=tuple(estimated_days(records)),
        registry_unreachable=unreachable,
        champion_importance=tuple(importance),
        champion_compared_with=compared_with,
        fairness=tuple(fairness_days(records)),
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
        fairness=tuple(f for f in dash.fairness if f.day >= since),
    )


# --------------------------------------------------------------------------- the index page

ALERTS_KIND = "alerts"  # the folder AlertNotifier writes (plugins/airloop/notifiers/alerts.py)
OPEN_ALERT_DAYS = 7
SPARK_POINTS = 30


@dataclass(frozen=True)
class AlertInfo:
    """One alert record (``reports/<model>/alerts/*.json``); ``time``: the record's ``time`` if
    it has one, else when the file was written."""

    time: datetime
    message: str
    dag_id: str | None = None
    task_id: str | None = None
    kind: str | None = None  # the alert's kind when the record names one (``kind``)


@dataclass(frozen=True)
class PendingApproval:
    """A version whose newest gate entry in the ledger is ``pending``: the gate waits (for clean
    shadow days or for a person's approval) and has neither promoted nor rejected it."""

    version: int
    since: datetime
    summary: str


@dataclass(frozen=True)
class ModelSummary:
    """One row of the index: where the model stands, from the same reads as its dashboard."""

    model: str
    champion: int | None = None
    champion_source: str = ""  # "registry" (the alias) or "ledger" (its last champion change)
    champion_since: datetime | None = None
    champion_age_days: int | None = None
    verdict: DriftDay | None = None  # the newest monitored day
    realized: tuple[RealizedDay, ...] = ()  # the last SPARK_POINTS labelled days
    estimated: tuple[EstimatedDay, ...] = ()  # the last SPARK_POINTS estimates
    alerts: tuple[AlertInfo, ...] = ()  # of the last OPEN_ALERT_DAYS days, newest first
    pending: tuple[PendingApproval, ...] = ()
    registry_error: str | None = None
    registry_unreachable: bool = False
    error: str | None = None  # the model's lake records could not be read

    @property
    def latest_realized(self) -> RealizedDay | None:
        return self.realized[-1] if self.realized else None

    @property
    def latest_estimated(self) -> EstimatedDay | None:
        return self.estimated[-1] if self.estimated else None

    @property
    def breaker(self) -> str:
        """The newest verdict's breaker state; ``unknown`` before the first monitored day."""
        return self.verdict.breaker if self.verdict is not None else "unknown"


@dataclass(frozen=True)
class ModelIndex:
    """The index page: one summary per model, at ``now``; ``registry_error`` when the registry
    did not answer (one banner for the page; each row then says so too)."""

    rows: tuple[ModelSummary, ...]
    now: datetime
    registry_error: str | None = None


def alert_records(lake: Lake, model: str) -> list[AlertInfo]:
    """Every alert record of ``model``, newest first. A record that is not valid JSON is logged
    and skipped: one bad file must not hide the others."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(lake.path(Zone.REPORTS.value, model, ALERTS_KIND), allow_not_found=True)
    alerts = []
    for info in lake.fs.get_file_info(selector):
        if info.type != pafs.FileType.File or not info.base_name.endswith(".json"):
            continue
        try:
            record = json.loads(lake.read_bytes(info.path))
        except (LakeError, ValueError) as exc:
            log.warning("%s: alert record %s unreadable: %s", model, info.path, exc)
            continue
        when = _timestamp(str(record["time"]) if record.get("time") else None) or info.mtime
        if when is None:
            continue
        alerts.append(
            AlertInfo(
                time=when if when.tzinfo else when.replace(tzinfo=UTC),
                message=str(record.get("message") or ""),
                dag_id=record.get("dag_id"),
                task_id=record.get("task_id"),
                kind=record.get("kind"),
            )
        )
    return sorted(alerts, key=lambda a: a.time, reverse=True)


def pending_approvals(events: Sequence[TimelineEvent], champion: int | None = None) -> list[PendingApproval]:
    """Versions (other than ``champion``) whose newest gate entry in the ledger is ``pending``."""
    newest: dict[int, TimelineEvent] = {}
    for event in events:
        if event.action in GATE_OUTCOMES and event.version is not None:
            newest[event.version] = event
    return [
        PendingApproval(version=version, since=event.time, summary=event.summary)
        for version, event in sorted(newest.items())
        if event.action == "pending" and version != champion
    ]


def summarize(dash: Dashboard, alerts: Sequence[AlertInfo], now: datetime) -> ModelSummary:
    """The index row of ``dash``: champion (the registry's alias, else the ledger's last champion
    change) and the days since it became champion (its newest promote or rollback entry in the
    ledger, else the version's ``airloop.promoted_at`` tag), the newest verdict, the last
    ``SPARK_POINTS`` realized and estimated ROC AUC, the alerts of the last ``OPEN_ALERT_DAYS``
    days before ``now``, pending gate entries and the breaker state of the newest verdict."""
    from datetime import timedelta

    changes = dash.champion_changes
    champion: int | None = None
    source = ""
    if dash.champion is not None:
        champion, source = dash.champion.version, "registry"
    elif changes:
        champion, source = changes[-1].version, "ledger"
    since = next((e.time for e in reversed(changes) if e.version == champion), None)
    if since is None and dash.champion is not None:
        since = dash.champion.promoted_at
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    recent = now - timedelta(days=OPEN_ALERT_DAYS)
    return ModelSummary(
        model=dash.model,
        champion=champion,
        champion_source=source,
        champion_since=since,
        champion_age_days=(now - since).days if since is not None else None,
        verdict=dash.drift[-1] if dash.drift else None,
        realized=dash.realized[-SPARK_POINTS:],
        estimated=dash.estimated[-SPARK_POINTS:],
        alerts=tuple(a for a in alerts if recent <= a.time <= now),
        pending=tuple(pending_approvals(dash.timeline, champion)),
        registry_error=dash.registry_error,
        registry_unreachable=dash.registry_unreachable,
    )


def gather_index(
    lake: Lake,
    tracking_uri: str | None,
    *,
    now: datetime | None = None,
    models: Sequence[str] | None = None,
) -> ModelIndex:
    """The index page's rows: :func:`gather_dashboard` of every model (``models``, default
    :func:`model_names`) without the predictions' footers, one registry budget for the whole page
    (an unreachable registry costs the page at most :data:`REGISTRY_BUDGET_S` once, not once per
    model), and the alert records. A model whose records cannot be read gets a row saying why."""
    now = now or datetime.now(UTC)
    registry: RegistryReader | None = None
    error: str | None = None
    if tracking_uri:
        try:
            registry = RegistryReader(tracking_uri)
        except ValueError as exc:
            error = str(exc)
    rows = []
    for model in model_names(lake) if models is None else models:
        try:
            dash = gather_dashboard(lake, model, tracking_uri, registry=registry, volume=False)
            rows.append(summarize(dash, alert_records(lake, model), now))
        except Exception as exc:  # noqa: BLE001 - one broken model must not take the index down
            log.warning("%s: cannot summarize: %s", model, exc)
            rows.append(ModelSummary(model=model, error=f"{type(exc).__name__}: {exc}"))
    if registry is not None and registry.error:
        error = registry.error
    return ModelIndex(rows=tuple(rows), now=now, registry_error=error)


def model_names(lake: Lake) -> list[str]:
    """Models to list on the index: every valid spec, plus models with reports in the lake."""
    import pyarrow.fs as pafs

    from include.spec import load_specs

    names = {spec.name for spec in load_specs()[0]}
    infos = lake.fs.get_file_info(pafs.FileSelector(lake.path(Zone.REPORTS.value), allow_not_found=True))
    names.update(info.base_name for info in infos if info.type == pafs.FileType.Directory)
    return sorted(names)


__all__ = [
    "REGISTRY_BUDGET_S",
    "AlertInfo",
    "Dashboard",
    "DriftDay",
    "EstimatedDay",
    "FairnessDay",
    "ModelIndex",
    "ModelSummary",
    "PendingApproval",
    "RealizedDay",
    "RegistryReader",
    "RegistryUnreachable",
    "Signal",
    "TimelineEvent",
    "VersionInfo",
    "VolumeDay",
    "alert_records",
    "drift_days",
    "drift_records",
    "estimated_days",
    "gather_dashboard",
    "gather_index",
    "last_days",
    "model_names",
    "pending_approvals",
    "prediction_volume",
    "fairness_days",
    "realized_days",
    "registry_versions",
    "summarize",
    "timeline",
]
