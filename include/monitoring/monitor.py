"""One day of monitoring: drift of the scored day against the champion's reference, realized
performance of the day whose labels arrived today, the label-free estimate of today's performance
(CBPE, with the calibrator stored in the reference profile), fairness on realized labels for specs
with ``gate.fairness`` (:mod:`include.monitoring.fairness`), and the retrain decision.

The reference is the profile logged with the version that scored the day (so it switches
together with the champion). Every day writes ``reports/<model>/drift/ds=<date>.json`` (all
figures and the verdict: the history the decision engine and the UI read) and an Evidently
HTML page for people, computed on a bounded sample.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from include.lake import Lake, LakeError, Zone
from include.model_io import load_reference_profile
from include.names import Tag
from include.records import DRIFT_KIND, read_history, record_name
from include.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from include.monitoring.decision import DayDrift, DriftVerdict, EstimatedPerformance, RealizedPerformance
    from include.monitoring.drift import DriftReport

log = logging.getLogger(__name__)

REJECTED_ACTIONS = ("reject", "approval_rejected")
# A new champion, or a human who looked, closes the circuit breaker.
BREAKER_CLOSING_ACTIONS = ("promote", "rollback", "breaker_reset")


def rejected_budget(entry: dict[str, Any]) -> Any:
    """The breaker budget a gate rejection in the ledger counts toward: that of the trigger that
    asked for the challenger (``figures.trigger``); ``None`` for a challenger no trigger asked for
    (a person's or the calendar's run), ``data_drift`` for entries written before the ledger named
    the trigger (the budget of retrains of unknown kind)."""
    from include.monitoring.decision import BUDGET

    figures = entry.get("figures") or {}
    if "trigger" not in figures:
        return "data_drift"
    trigger = figures["trigger"]
    return BUDGET.get(trigger) if trigger else None


def loop_state(lake: Lake, model: str, history: list[dict[str, Any]]) -> Any:
    """Retrains decided so far, each in the budget of its trigger (from the drift history), and each
    circuit breaker's streak of gate rejections with the day of the latest (ledger).

    A record written before verdicts named their trigger counts as a data-drift retrain. A
    promotion, a rollback or a human ``breaker_reset`` entry closes every breaker."""
    from include.monitoring.decision import BUDGET, LoopState
    from include.registry.ledger import read_ledger

    untyped: list[date] = []
    kinds = []
    for record in history:
        verdict = record["verdict"]
        if verdict["state"] != "retrain":
            continue
        day = date.fromisoformat(record["partition"])
        if verdict.get("trigger"):
            kinds.append((day, BUDGET[verdict["trigger"]]))
        else:
            untyped.append(day)
    state = LoopState(retrain_dates=tuple(untyped), retrain_kinds=tuple(sorted(kinds)))
    for entry in read_ledger(lake, model):
        if entry["action"] in REJECTED_ACTIONS:
            state = state.with_gate_result(False, str(entry["time"])[:10], rejected_budget(entry))
        elif entry["action"] in BREAKER_CLOSING_ACTIONS:
            state = state.with_reset()
    return state


def _predictions(lake: Lake, spec: ModelSpec, ds: date) -> pd.DataFrame:
    return lake.read_table(Zone.PREDICTIONS, spec.name, ds).to_pandas()


def realized_performance(
    lake: Lake, spec: ModelSpec, ds: date, reference_auc: float | None, spread: tuple[float, int] | None = None
) -> dict[str, Any] | None:
    """Performance of the day whose labels arrived with ``ds`` (``ds - label_delay_days``); the
    drop's interval holds the reference's day-to-day ``spread`` (sd, days) when given
    (:func:`reference_spread_of`)."""
    from include.monitoring.drift import performance, performance_drop
    from include.monitoring.fairness import labelled_rows

    label_day = ds - timedelta(days=spec.dataset.label_delay_days)
    joined = labelled_rows(lake, spec, label_day)
    if joined is None:
        return None
    if joined.empty or joined[spec.dataset.target.name].nunique() < 2:
        return {"label_day": label_day.isoformat(), "rows": len(joined), "note": "too few labelled rows or one class"}
    y = joined[spec.dataset.target.name].to_numpy()
    result: dict[str, Any] = {
        "label_day": label_day.isoformat(),
        "rows": len(joined),
        "model_version": int(joined["model_version"].iloc[0]),
        **performance(joined["score"].to_numpy(), y, spec.training.threshold).to_dict(),
    }
    if reference_auc is not None:
        day_sd, reference_days = spread if spread is not None else (None, None)
        drop = performance_drop(
            reference_auc,
            joined["score"].to_numpy(),
            y,
            seed=spec.training.seed,
            day_sd=day_sd,
            reference_days=reference_days,
        )
        result["drop"] = drop.to_dict()
    return result


def _reference_frame(lake: Lake, spec: ModelSpec, tags: dict[str, str]) -> pd.DataFrame | None:
    """A sample of the raw rows of the version's training window, from its first day to its last
    holdout day, without anomalous days: the rows its reference profile was built from (for the
    Evidently page people read)."""
    from include.monitoring.report import MAX_ROWS
    from include.quality.anomaly import exclude_anomalous
    from include.sampling import sample_rows

    window, holdout = tags.get(Tag.DATA_WINDOW, ""), tags.get(Tag.HOLDOUT_DAYS, "")
    if ".." not in window or ".." not in holdout:
        return None
    start, end = date.fromisoformat(window.split("..")[0]), date.fromisoformat(holdout.split("..")[1])
    days = exclude_anomalous(lake, spec.name, lake.list_partitions(Zone.VALIDATED, spec.name, start, end))
    if not days:
        return None
    frames = (lake.read_table(Zone.VALIDATED, spec.name, d).to_pandas() for d in days)
    return sample_rows(frames, MAX_ROWS, seed=spec.training.seed)


@dataclass(frozen=True)
class _Inputs:
    """What one day is measured on: its ``predictions``, the ``version`` that scored it (the
    latest when several did), that version's reference ``profile`` and ``tags``, its reference
    AUC with its day-to-day spread and the day's validated rows (``current``)."""

    predictions: pd.DataFrame
    version: int
    profile: dict[str, Any]
    tags: dict[str, str]
    reference_auc: float | None
    current: pd.DataFrame
    reference_spread: tuple[float, int] | None = None


def reference_auc_of(tags: Mapping[str, str]) -> float | None:
    """The ROC AUC a labelled day of this version is measured against: the mean of its holdout's
    days (``metric.roc_auc_daily``), not the pooled holdout, which also credits ranking across
    days; the pooled figure for versions trained before the daily one existed."""
    reference = tags.get("metric.roc_auc_daily") or tags.get("metric.roc_auc")
    return float(reference) if reference else None


def reference_spread_of(tags: Mapping[str, str]) -> tuple[float, int] | None:
    """The standard deviation of the version's holdout days' ROC AUCs and how many days
    (``metric.roc_auc_daily_sd``, ``metric.roc_auc_days``): a labelled day is one draw from that
    spread. ``None`` for versions trained before the spread was recorded, with fewer than two
    days or without a daily reference: their drops are judged on the day's rows alone."""
    sd, days = tags.get("metric.roc_auc_daily_sd"), tags.get("metric.roc_auc_days")
    if not (tags.get("metric.roc_auc_daily") and sd and days):
        return None
    spread, count = float(sd), int(float(days))
    return (spread, count) if math.isfinite(spread) and spread >= 0.0 and count >= 2 else None


def _load_inputs(spec: ModelSpec, lake: Lake, tracking_uri: str, ds: date) -> _Inputs:
    """The day's predictions and rows, and the reference of the version that scored them."""
    try:
        predictions = _predictions(lake, spec, ds)
    except LakeError as exc:
        raise LakeError(f"{spec.name} {ds}: no predictions to monitor ({exc})") from None
    versions = sorted(predictions["model_version"].unique().tolist())
    version = int(versions[-1])
    profile, tags = load_reference_profile(tracking_uri, spec.name, version)
    reference_auc = reference_auc_of(tags)
    current = lake.read_table(Zone.VALIDATED, spec.name, ds).to_pandas()
    return _Inputs(predictions, version, profile, tags, reference_auc, current, reference_spread_of(tags))


@dataclass(frozen=True)
class _Measured:
    """The day's figures: the drift ``report``, its history line ``today`` (harm figures joined),
    the realized ``performance`` and ``estimated`` records as written, and the same two as the
    decision engine reads them (``realized``, ``estimate``)."""

    report: DriftReport
    today: DayDrift
    performance: dict[str, Any] | None
    estimated: dict[str, Any]
    realized: RealizedPerformance | None
    estimate: EstimatedPerformance | None
    fairness: dict[str, Any] | None = None


def _measure(spec: ModelSpec, lake: Lake, ds: date, inputs: _Inputs) -> _Measured:
    """Drift against the reference, realized performance of the labelled day and CBPE's estimate."""
    from include.monitoring.cbpe import estimate_performance
    from include.monitoring.decision import EstimatedPerformance, RealizedPerformance
    from include.monitoring.drift import compute_drift

    features = spec.dataset.features
    keys = spec.dataset.key_columns
    predictions = inputs.predictions
    frame = inputs.current.merge(predictions[[*keys, "score"]], on=keys, how="left")
    report = compute_drift(
        inputs.profile,
        frame,
        features.numeric,
        features.categorical,
        scores=predictions["score"].to_numpy(),
        spec_drift=spec.drift,
        threshold=spec.training.threshold,
        seed=spec.training.seed,
    )
    today = report.day(spec.name, ds.isoformat(), reference=f"v{inputs.version}")
    performance = realized_performance(lake, spec, ds, inputs.reference_auc, inputs.reference_spread)
    estimated = estimate_performance(
        inputs.profile.get("calibrator"),
        predictions["score"].to_numpy(),
        min_rows=spec.drift.min_rows,
        seed=spec.training.seed,
    )
    realized = RealizedPerformance.from_record(performance, serving_version=inputs.version)
    estimate = EstimatedPerformance.from_dict(estimated)
    prediction_psi = report.prediction.psi if report.prediction is not None else math.nan
    # The day's harm figures join its history line: later days read them for persistence.
    today = replace(
        today,
        prediction_psi=float(prediction_psi) if math.isfinite(prediction_psi) else None,
        drop_low=realized.drop_low if realized is not None and not realized.superseded else None,
        estimated_drop_low=estimate.drop_low if estimate is not None else None,
    )
    from include.monitoring.fairness import monitor_fairness

    fairness = monitor_fairness(lake, spec, ds, inputs.version)
    return _Measured(report, today, performance, estimated, realized, estimate, fairness)


def _decide_day(spec: ModelSpec, lake: Lake, ds: date, measured: _Measured) -> DriftVerdict:
    """The verdict on the day, against the drift history and the loop's state."""
    from include.monitoring.decision import DayDrift, decide
    from include.monitoring.fairness import FairnessWatch

    # Every other day's record: the window reads the earlier ones, the guards also the later ones
    # (this day may be decided late); the record of this very day (a rerun) is left out.
    history_records = [r for r in read_history(lake, spec.name, date.max) if r["partition"] != ds.isoformat()]
    history = [DayDrift.from_dict(r["day"]) for r in history_records]
    state = loop_state(lake, spec.name, history_records)
    return decide(
        history,
        measured.today,
        state,
        spec.drift,
        realized=measured.realized,
        estimated=measured.estimate,
        fairness=FairnessWatch.from_record(
            measured.fairness, retrain=spec.gate.fairness is not None and spec.gate.fairness.retrain_on_breach
        ),
    )


def _write_html(spec: ModelSpec, lake: Lake, ds: date, inputs: _Inputs, html_report: bool) -> str | None:
    """The Evidently page of the day against the version's training rows; ``None`` when skipped
    or when those rows cannot be found."""
    from include.monitoring.report import evidently_report_html

    features = spec.dataset.features
    html_path = lake.report_path(spec.name, DRIFT_KIND, f"ds={ds.isoformat()}.html")
    reference_frame = _reference_frame(lake, spec, inputs.tags) if html_report else None
    if reference_frame is None:
        return None
    html = evidently_report_html(
        reference_frame,
        inputs.current,
        features.numeric,
        features.categorical,
        logical_date=ds,
        title=f"{spec.name} drift {ds}",
    )
    return lake.write_bytes(html_path, html.encode())


def _write_record(
    spec: ModelSpec,
    lake: Lake,
    ds: date,
    inputs: _Inputs,
    measured: _Measured,
    verdict: DriftVerdict,
    report_uri: str | None,
) -> dict[str, Any]:
    """The day's record, written to ``reports/<model>/drift/``; returned with its ``record_uri``."""
    record = {
        "model": spec.name,
        "partition": ds.isoformat(),
        "model_version": inputs.version,
        "day": measured.today.to_dict(),
        "verdict": verdict.to_dict(),
        "drift": measured.report.to_dict(),
        "performance": measured.performance,
        "estimated_performance": measured.estimated,
        "reference_auc": inputs.reference_auc,
        "report_uri": report_uri,
        "rows_scored": int(len(inputs.predictions)),
    }
    if measured.fairness is not None:  # only specs with gate.fairness: the others' records are unchanged
        record["fairness"] = measured.fairness
    record["record_uri"] = lake.write_bytes(
        lake.report_path(spec.name, DRIFT_KIND, record_name(ds)), json.dumps(record, default=str).encode()
    )
    return record


def monitor_day(
    spec: ModelSpec, lake: Lake, tracking_uri: str, ds: date, *, html_report: bool = True
) -> dict[str, Any]:
    """Measure, decide and record one day; returns the day's record (JSON-able).

    ``html_report=False`` skips the Evidently page (seconds per day; ``airloop replay`` runs a
    year of days and reads only the record). The numbers and the decision are the same."""
    inputs = _load_inputs(spec, lake, tracking_uri, ds)
    measured = _measure(spec, lake, ds, inputs)
    verdict = _decide_day(spec, lake, ds, measured)
    report_uri = _write_html(spec, lake, ds, inputs, html_report)
    record = _write_record(spec, lake, ds, inputs, measured, verdict, report_uri)
    log.info(
        "%s %s: drift %s (score %s); verdict %s (trigger %s): %s",
        spec.name,
        ds,
        measured.report.status,
        measured.today.score,
        verdict.state,
        verdict.trigger,
        "; ".join(verdict.reasons),
    )
    return record
