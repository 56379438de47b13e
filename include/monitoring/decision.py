"""Turn a day's signals into a verdict: ``ok``, ``warn``, ``retrain`` or ``insufficient_data``.

:func:`decide` is a pure function of the drift history, today's drift, the realized performance of
the day whose labels arrived today, the label-free estimate of today's performance
(:mod:`include.monitoring.cbpe`), the loop's state and the model's :class:`~include.spec.DriftSpec`;
it reads no clock and no files, so a rerun of the same partition with the same inputs gives the
same verdict and the same ``decision_id``.

The loop retrains when not retraining costs something: measured or estimated harm decides, data
drift alone only warns (``drift.retrain_on`` opts back in). Every verdict lists its ``signals``
(kind, value, threshold, fired, what held it back, a sentence) and names the ``trigger`` that
decided. Rules, in order:

1. **Insufficient data**: fewer than ``min_rows`` rows today (or a report already marked
   ``insufficient_data``) gives ``insufficient_data``: never an alarm, never a retrain.
2. **Level of a day**: ``alert`` if its status is ``alert`` or its score (max feature PSI) is at
   least ``policy.alert``; ``warn`` likewise with ``policy.warn``; else ``ok``. The status carries
   alerts the score cannot (a null-rate jump, prediction drift).
3. **Data drift (M-of-N window)**: the window is today plus the ``window_n - 1`` latest earlier days
   of the same model (one entry per partition, the last one wins; days with insufficient data are
   skipped; when ``today.reference`` is set, only days measured against the same reference
   count). Drift is *sustained* with at least ``window_m`` alert days in the window **and** today
   an alert day: an old streak that has ended never fires. It fires as ``prediction_drift`` when
   the day's prediction PSI is at alert level, as ``data_drift`` when the features are; both
   count as data drift below.
4. **Realized performance** (labels arrived): ``performance_drop`` fires when the whole interval
   of the drop from the reference AUC lies above ``performance_drop`` (the day's row bootstrap,
   and the reference's day-to-day spread when the version recorded it:
   ``include.monitoring.drift.PerformanceDrop``), today and on
   ``performance_window_m`` of the last ``performance_window_n`` measured days (one bad day is
   noise; the data-drift window plays no part); ``breach`` fires at once
   when the whole interval of the AUC lies below 0.5 (worse than random) or below
   ``performance_floor`` when the spec sets one. A labelled day scored by a version that no
   longer serves measures nothing about today's model: held ``superseded``.
5. **Estimated performance** (CBPE, no labels): ``estimated_drop`` fires when the estimate is valid
   and the whole interval of its drop from the reference lies above ``estimated_drop``, with the
   same persistence rule.
5b. **Fairness** (only for a spec with ``gate.fairness``; ``fairness``, a
   :class:`~include.monitoring.fairness.FairnessWatch`): ``fairness_breach`` fires when the window
   of labelled days pooled has a limited disparity past its limit on its favourable bound. It
   retrains only with ``gate.fairness.retrain_on_breach`` (else held ``not_enabled``), in a
   ``fairness`` budget with the performance cooldown and cap. Without ``gate.fairness`` the
   verdict has no such signal.
6. **Drift without impact**: when no harm signal (4, 5) fired, sustained data drift is reported
   (``warn``, held ``no_impact``) and does not retrain, unless ``retrain_on`` lists ``data_drift``.
   Kinds not listed in ``retrain_on`` are reported, held ``not_enabled``; a breach always counts.
7. **Guards per trigger kind** (each budget counts only the retrains its kind decided):
   - ``data_drift`` (and prediction drift): ``cooldown_days``; ``max_retrains`` per
     ``max_retrains_period_days``;
   - ``performance_drop`` (and estimated drop): ``performance_cooldown_days``;
     ``performance_max_retrains`` per the same period;
   - ``breach``: no cooldown and no cap. It is held only while a retrain (of any kind) decided on
     or after the labelled day is being answered (``answered``: those labels were scored before
     the answer existed).
   - *circuit breaker* (one per budget: data drift, performance drop, breach):
     ``circuit_breaker_rejections`` challengers of that kind in a row rejected by the gate open it:
     no automatic retrain of that kind, a human must look (the other kinds still answer harm of
     their own: a storm of drift retrains does not silence a breach). After ``breaker_probe_days``
     days since its last rejection with no retrain of its kind decided since, it is *half-open*:
     one probe retrain is allowed (the probe's rejection re-opens it for another
     ``breaker_probe_days``). A promotion closes every breaker, and so does
     ``airloop breaker-reset`` (a human looked).
   The fired signals are tried by priority (breach, performance_drop, estimated_drop,
   fairness_breach, data_drift, prediction_drift); the first one no guard holds is the
   ``trigger`` and the verdict is ``retrain``. A fired signal held back makes the verdict
   ``warn`` with the flags set.
   ``circuit_open`` is set whenever a breaker is open, also on quiet days, so the alert to a human
   repeats until someone resets it; ``needs_human`` also on a breach and at a cap.

A retrain recorded on today's own partition is ignored, so a rerun of a day whose retrain was
already recorded decides exactly as the first run did. Retrains recorded on *later* partitions do
count for the guards (cooldown either side, cap over every period through today): a day whose
event arrives late must not retrain next to a retrain decided in the meantime.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from include.names import BREAK_TRIGGERS, RANDOM_AUC
from include.reports.format import fmt_psi as _fmt
from include.spec import DriftSpec

if TYPE_CHECKING:
    from include.monitoring.fairness import FairnessWatch

DayStatus = Literal["ok", "warn", "alert", "insufficient_data"]
VerdictState = Literal["ok", "warn", "retrain", "insufficient_data"]
Level = Literal["ok", "warn", "alert"]
SignalKind = Literal[
    "data_drift", "prediction_drift", "performance_drop", "estimated_drop", "breach", "fairness_breach"
]
Budget = Literal["data_drift", "performance_drop", "breach", "fairness"]

PREDICTION = "__prediction__"  # the name drift.py gives prediction drift among the top features
# Which budget (cooldown, cap) a signal spends, and which ``retrain_on`` entry enables it
# (``None``: always enabled, a breach cannot be opted out of).
BUDGET: dict[str, Budget] = {
    "data_drift": "data_drift",
    "prediction_drift": "data_drift",
    "performance_drop": "performance_drop",
    "estimated_drop": "performance_drop",
    "breach": "breach",
    "fairness_breach": "fairness",
}
ENABLED_BY: dict[str, str | None] = {
    "data_drift": "data_drift",
    "prediction_drift": "data_drift",
    "performance_drop": "performance",
    "estimated_drop": "estimated_performance",
    "breach": None,
    "fairness_breach": "fairness",  # gate.fairness.retrain_on_breach, not drift.retrain_on
}
PRIORITY: tuple[SignalKind, ...] = (
    "breach",
    "performance_drop",
    "estimated_drop",
    "fairness_breach",
    "data_drift",
    "prediction_drift",
)


def _as_date(value: str | date) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class DayDrift:
    """The drift summary of one model on one partition (one line of the drift history).

    ``partition`` is the ISO date of the day (``YYYY-MM-DD``); ``score`` is the day's overall drift
    score (max feature PSI, ``None`` when it could not be computed); ``status`` is the report's
    overall status; ``reference`` optionally names the reference the day was measured against
    (e.g. the champion version), so days measured against an older model do not count.
    ``prediction_psi`` is the PSI of the day's scores; ``drop_low`` and ``estimated_drop_low`` the
    lower ends of the day's realized and estimated AUC drop intervals (``None``: not measured),
    kept so later days can tell a persistent drop from one bad day.
    """

    model: str
    partition: str
    status: DayStatus
    score: float | None
    n_rows: int
    top_features: tuple[str, ...] = ()
    reference: str | None = None
    prediction_psi: float | None = None
    drop_low: float | None = None
    estimated_drop_low: float | None = None

    @property
    def day(self) -> date:
        return _as_date(self.partition)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "partition": self.partition,
            "status": self.status,
            "score": self.score,
            "n_rows": self.n_rows,
            "top_features": list(self.top_features),
            "reference": self.reference,
            "prediction_psi": self.prediction_psi,
            "drop_low": self.drop_low,
            "estimated_drop_low": self.estimated_drop_low,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DayDrift:
        score = data.get("score")
        prediction = data.get("prediction_psi")
        return cls(
            model=str(data["model"]),
            partition=str(data["partition"]),
            status=data["status"],
            score=None if score is None else float(score),
            n_rows=int(data["n_rows"]),
            top_features=tuple(data.get("top_features") or ()),
            reference=data.get("reference"),
            prediction_psi=None if prediction is None else float(prediction),
            drop_low=_finite(data.get("drop_low")),
            estimated_drop_low=_finite(data.get("estimated_drop_low")),
        )


@dataclass(frozen=True)
class Streak:
    """Gate rejections in a row of the challengers one trigger kind asked for: ``count`` since the
    last promotion (or human reset), ``since`` the partition of the latest (the half-open probe is
    timed from it; ``None``: unknown, that breaker never turns half-open)."""

    count: int = 0
    since: date | None = None


@dataclass(frozen=True)
class LoopState:
    """What the loop remembers between days; the caller builds it from its history file.

    ``retrain_dates`` are the partitions on which a retrain was decided (any order, older ones
    are fine: the cap only counts those inside its period); ``last_retrain`` defaults to the
    latest of them. Both are retrains whose trigger kind is unknown (records written before
    verdicts named their trigger): they spend the ``data_drift`` budget. ``retrain_kinds`` holds
    ``(day, budget)`` of the retrains whose trigger is known. ``rejections`` holds the circuit
    breaker's :class:`Streak` of each budget (a budget absent: no rejection in a row).
    """

    last_retrain: date | None = None
    retrain_dates: tuple[date, ...] = ()
    retrain_kinds: tuple[tuple[date, Budget], ...] = ()
    rejections: Mapping[Budget, Streak] = field(default_factory=dict)

    def _dates(self, budget: Budget | None) -> set[date]:
        dates = {d for d, kind in self.retrain_kinds if budget is None or kind == budget}
        if budget in (None, "data_drift"):
            dates.update(self.retrain_dates)
            if self.last_retrain is not None:
                dates.add(self.last_retrain)
        return dates

    def retrains_before(self, day: date, budget: Budget | None = None) -> list[date]:
        """Retrain dates strictly before ``day`` (a rerun must not see its own retrain); of one
        ``budget`` or, with ``None``, of every kind."""
        return sorted(d for d in self._dates(budget) if d < day)

    def retrains_except(self, day: date, budget: Budget | None = None) -> list[date]:
        """Retrain dates on any other partition than ``day``, earlier or later. A rerun must not
        see its own retrain; a late day (decided after later days) must see the later ones."""
        return sorted(d for d in self._dates(budget) if d != day)

    def streak(self, budget: Budget) -> Streak:
        """The rejections in a row of ``budget``'s challengers."""
        return self.rejections.get(budget, Streak())

    def with_retrain(self, day: str | date, budget: Budget = "data_drift") -> LoopState:
        """The state after a retrain was decided on ``day`` by a trigger of ``budget``."""
        when = _as_date(day)
        kinds = tuple(sorted({*self.retrain_kinds, (when, budget)}))
        return replace(self, retrain_kinds=kinds)

    def with_gate_result(self, accepted: bool, day: str | date | None, budget: Budget | None) -> LoopState:
        """The state after the gate judged a challenger of ``budget`` (on ``day``): a promotion closes
        every breaker; a rejection adds to ``budget``'s streak (``None``: a challenger no trigger asked
        for, a person's or the calendar's, counts toward no breaker)."""
        if accepted:
            return self.with_reset()
        if budget is None:
            return self
        old = self.streak(budget)
        since = _as_date(day) if day is not None else old.since
        return replace(self, rejections={**self.rejections, budget: Streak(old.count + 1, since)})

    def with_reset(self) -> LoopState:
        """The state after a human reset the circuit breakers (or a promotion)."""
        return replace(self, rejections={})


@dataclass(frozen=True)
class RealizedPerformance:
    """Realized ROC AUC of the day whose labels arrived today (``monitor.realized_performance``).

    ``auc_high`` is the upper end of the AUC's bootstrap interval over the day's rows,
    ``drop_low``/``drop_high`` the interval of ``reference - auc`` (positive: worse), which also
    holds the reference's day-to-day spread ``day_sd`` when the version recorded it
    (``include.monitoring.drift.PerformanceDrop``). ``model_version`` scored the labelled day;
    ``serving_version`` scores today: when they differ the labels judge a retired model.
    """

    label_day: str
    auc: float | None
    rows: int
    auc_high: float | None = None
    drop: float | None = None
    drop_low: float | None = None
    drop_high: float | None = None
    reference_auc: float | None = None
    model_version: int | None = None
    serving_version: int | None = None
    day_sd: float | None = None

    @property
    def superseded(self) -> bool:
        return (
            self.model_version is not None
            and self.serving_version is not None
            and self.model_version != self.serving_version
        )

    @classmethod
    def from_record(
        cls, record: Mapping[str, Any] | None, serving_version: int | None = None
    ) -> RealizedPerformance | None:
        """From the ``performance`` entry of a drift record; ``None`` without a measured AUC."""
        if not record or _finite(record.get("roc_auc")) is None:
            return None
        drop = record.get("drop") or {}
        version = record.get("model_version")
        return cls(
            label_day=str(record.get("label_day", "")),
            auc=_finite(record["roc_auc"]),
            rows=int(record.get("rows") or 0),
            auc_high=_finite(drop.get("ci_high")),
            drop=_finite(drop.get("drop")),
            drop_low=_finite(drop.get("drop_ci_low")),
            drop_high=_finite(drop.get("drop_ci_high")),
            reference_auc=_finite(drop.get("reference_auc")),
            model_version=None if version is None else int(version),
            serving_version=serving_version,
            day_sd=_finite(drop.get("day_sd")),
        )


@dataclass(frozen=True)
class EstimatedPerformance:
    """Label-free estimate of today's ROC AUC (``include.monitoring.cbpe``), with its interval."""

    auc: float | None
    low: float | None
    high: float | None
    rows: int
    reference_auc: float | None
    valid: bool
    note: str = ""

    @property
    def drop_low(self) -> float | None:
        """Lower end of the estimated drop's interval (``reference - high``), when valid."""
        if not self.valid or self.high is None or self.reference_auc is None:
            return None
        return self.reference_auc - self.high

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> EstimatedPerformance | None:
        if not data:
            return None
        return cls(
            auc=_finite(data.get("auc")),
            low=_finite(data.get("low")),
            high=_finite(data.get("high")),
            rows=int(data.get("rows") or 0),
            reference_auc=_finite(data.get("reference_auc")),
            valid=bool(data.get("valid")),
            note=str(data.get("note") or ""),
        )


@dataclass(frozen=True)
class Signal:
    """One input of a verdict as the dashboard shows it: ``value`` compared with ``threshold``;
    ``fired`` when it crossed it; ``held_by`` names what kept a fired signal from deciding
    (``cooldown``, ``cap``, ``breaker``, ``no_impact``, ``not_enabled``, ``superseded``,
    ``answered``, ``insufficient_data``)."""

    kind: SignalKind
    value: float | None
    threshold: float | None
    fired: bool
    held_by: str | None = None
    text: str = ""

    @property
    def label(self) -> str:
        """``prediction_drift`` -> ``prediction drift``."""
        return self.kind.replace("_", " ")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "threshold": self.threshold,
            "fired": self.fired,
            "held_by": self.held_by,
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signal:
        """A signal as a drift record stores it (``verdict.signals``)."""
        return cls(
            kind=data.get("kind", ""),
            value=_finite(data.get("value")),
            threshold=_finite(data.get("threshold")),
            fired=bool(data.get("fired")),
            held_by=data.get("held_by") or None,
            text=str(data.get("text") or ""),
        )


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class DriftVerdict:
    """What to do about today's drift, with the reasons a human reads.

    ``state`` is ``retrain`` only when a fired signal is enabled and no guard holds it; ``trigger``
    names that signal's kind, ``signals`` lists every signal with its numbers. Flags:
    ``cooldown`` and ``capped`` mean they suppressed a retrain today; ``circuit_open`` means the
    breaker is open (a human must look), whatever today's drift, ``half_open`` that it lets one
    probe through; ``breach`` that the champion's realized AUC is below the floor (an alert
    whatever the loop does about it). ``decision_id`` is a digest of
    model, partition and state: a rerun that decides the same thing gets the same id, so
    downstream side effects (the retrain trigger, the alert) can be keyed by it.
    """

    model: str
    partition: str
    state: VerdictState
    reasons: tuple[str, ...]
    decision_id: str
    score: float | None
    top_features: tuple[str, ...] = ()
    window_alerts: int = 0
    window_days: int = 0
    cooldown: bool = False
    capped: bool = False
    circuit_open: bool = False
    signals: tuple[Signal, ...] = field(default=(), compare=True)
    trigger: SignalKind | None = None
    breach: bool = False
    half_open: bool = False
    break_day: str | None = None

    @property
    def retrain(self) -> bool:
        return self.state == "retrain"

    @property
    def needs_human(self) -> bool:
        """True when the loop cannot help itself (breaker open, a signal persists at its cap) or
        the champion is in a performance breach."""
        return self.circuit_open or self.capped or self.breach

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "partition": self.partition,
            "state": self.state,
            "reasons": list(self.reasons),
            "decision_id": self.decision_id,
            "score": self.score,
            "top_features": list(self.top_features),
            "window_alerts": self.window_alerts,
            "window_days": self.window_days,
            "cooldown": self.cooldown,
            "capped": self.capped,
            "circuit_open": self.circuit_open,
            "needs_human": self.needs_human,
            "signals": [signal.to_dict() for signal in self.signals],
            "trigger": self.trigger,
            "breach": self.breach,
            "half_open": self.half_open,
            "break_day": self.break_day,
        }


def decision_id(model: str, partition: str, state: str) -> str:
    """Deterministic id of a decision: the same model, partition and state give the same id."""
    payload = f"{model}|{partition}|{state}".encode()
    return hashlib.sha256(payload).hexdigest()[:20]


def day_level(day: DayDrift, policy: DriftSpec) -> Level:
    """``alert``/``warn``/``ok`` of one day under ``policy`` (status or score, whichever is worse)."""
    if day.status == "alert" or (day.score is not None and day.score >= policy.alert):
        return "alert"
    if day.status == "warn" or (day.score is not None and day.score >= policy.warn):
        return "warn"
    return "ok"


def _sufficient(day: DayDrift, policy: DriftSpec) -> bool:
    return day.status != "insufficient_data" and day.n_rows >= policy.min_rows


def window(history: Iterable[DayDrift], today: DayDrift, policy: DriftSpec) -> list[DayDrift]:
    """Today plus the ``window_n - 1`` latest earlier usable days (oldest first)."""
    latest: dict[str, DayDrift] = {}
    for day in history:
        if day.model != today.model or day.day >= today.day or not _sufficient(day, policy):
            continue
        if today.reference is not None and day.reference != today.reference:
            continue
        latest[day.day.isoformat()] = day  # one entry per partition: the last one wins
    earlier = [latest[key] for key in sorted(latest)]
    keep = earlier[-(policy.window_n - 1) :] if policy.window_n > 1 else []
    return [*keep, today]


def _realized_signals(realized: RealizedPerformance | None, policy: DriftSpec) -> tuple[Signal, Signal]:
    """The ``performance_drop`` and ``breach`` signals of the day whose labels arrived today."""
    floor_value = policy.breach_floor
    if realized is None:
        text = "no labelled day measured today (labels not arrived, or one class only)"
        return (
            Signal("performance_drop", None, policy.performance_drop, False, None, text),
            Signal("breach", None, floor_value, False, None, text),
        )
    held = "superseded" if realized.superseded else None
    retired = (
        f"; that day was scored by v{realized.model_version}, v{realized.serving_version} serves now: "
        "it says nothing about today's model"
        if held
        else ""
    )
    measured = f"realized ROC AUC {_fmt(realized.auc)} on {realized.label_day} ({realized.rows} labelled rows)"
    if realized.drop_low is None:
        drop_fired = False
        drop_text = f"{measured}; no reference AUC, so no drop interval"
    else:
        drop_fired = realized.drop_low > policy.performance_drop
        noise = "rows" if realized.day_sd is None else f"rows and day-to-day spread {_fmt(realized.day_sd)}"
        drop_text = (
            f"{measured}: drop {_fmt(realized.drop)} from the reference {_fmt(realized.reference_auc)}, "
            f"interval ({noise}) [{_fmt(realized.drop_low)}, {_fmt(realized.drop_high)}] "
            f"{'entirely above' if drop_fired else 'not entirely above'} {policy.performance_drop}"
        )
    breach_value = realized.auc_high if realized.auc_high is not None else realized.auc
    breach_fired = breach_value is not None and breach_value < floor_value
    bound = "upper end of its interval" if realized.auc_high is not None else "point estimate"
    if breach_fired and breach_value is not None and breach_value < RANDOM_AUC:
        breach_text = f"performance breach: {measured}, worse than random ({bound} {_fmt(breach_value)} < 0.5)"
    elif breach_fired:
        breach_text = f"performance breach: {measured}, below the floor {floor_value} ({bound} {_fmt(breach_value)})"
    else:
        breach_text = f"{measured}: not below the floor {floor_value} ({bound} {_fmt(breach_value)})"
    return (
        Signal("performance_drop", realized.drop_low, policy.performance_drop, drop_fired, held if drop_fired else None,
               drop_text + (retired if drop_fired else "")),
        Signal("breach", breach_value, floor_value, breach_fired, held if breach_fired else None,
               breach_text + (retired if breach_fired else "")),
    )  # fmt: skip


def _estimated_signal(estimated: EstimatedPerformance | None, policy: DriftSpec) -> Signal:
    """The ``estimated_drop`` signal: CBPE's estimate of today's AUC against the reference."""
    threshold = policy.estimated_drop
    if estimated is None:
        return Signal("estimated_drop", None, threshold, False, None, "no label-free estimate (no calibrator)")
    value = estimated.drop_low
    if value is None:
        return Signal("estimated_drop", None, threshold, False, None, f"no valid estimate: {estimated.note}")
    fired = value > threshold
    return Signal(
        "estimated_drop",
        value,
        threshold,
        fired,
        None,
        f"estimated ROC AUC {_fmt(estimated.auc)} [{_fmt(estimated.low)}, {_fmt(estimated.high)}] from "
        f"{estimated.rows} unlabelled rows against the reference {_fmt(estimated.reference_auc)}: drop at least "
        f"{_fmt(value)}, {'above' if fired else 'not above'} {threshold}",
    )


def _fairness_signal(fairness: FairnessWatch | None) -> Signal | None:
    """The ``fairness_breach`` signal: the window's worst limited disparity on its favourable
    bound against its limit; fired when one is past its limit (``include.monitoring.fairness``)."""
    if fairness is None:
        return None
    if not fairness.judged:
        return Signal("fairness_breach", None, None, False, None, fairness.text)
    if fairness.breaches:
        worst = fairness.breaches[0]
        return Signal("fairness_breach", worst.judged, worst.limit, True, None, fairness.text)
    value, threshold = fairness.worst if fairness.worst is not None else (None, None)
    return Signal("fairness_breach", value, threshold, False, None, fairness.text)


def _persistent(
    signal: Signal, history: Iterable[DayDrift], today: DayDrift, policy: DriftSpec, attribute: str
) -> Signal:
    """A drop fires only when it is significant today and on ``performance_window_m`` of the last
    ``performance_window_n`` days that measured it (today included): one day's AUC swings with its
    weather and mix (flights, March to May 2013: realized daily AUC 0.52-0.73 around a reference
    of 0.64, a significant single-day drop on 11 of 92 days, mostly gone the next day)."""
    if not signal.fired or signal.threshold is None:
        return signal
    latest: dict[str, float] = {}
    for day in history:
        value = getattr(day, attribute)
        if day.model != today.model or day.day >= today.day or value is None:
            continue
        if today.reference is not None and day.reference != today.reference:
            continue
        latest[day.day.isoformat()] = value
    n, m = policy.performance_window_n, policy.performance_window_m
    earlier = [latest[key] for key in sorted(latest)][-(n - 1) :] if n > 1 else []
    hits = 1 + sum(value > signal.threshold for value in earlier)
    span = f"significant on {hits} of the last {len(earlier) + 1} measured days (need {m} of {n})"
    return replace(signal, fired=hits >= m, text=f"{signal.text}; {span}")


def _half_open(day: date, streak: Streak, budget: Budget, state: LoopState, policy: DriftSpec) -> bool:
    """``breaker_probe_days`` after the budget's last rejection, with no retrain of its kind decided
    since: one probe."""
    since = streak.since
    if since is None or (day - since).days < policy.breaker_probe_days:
        return False
    return not any(d > since for d in state.retrains_except(day, budget))


def _guards(
    day: date, state: LoopState, policy: DriftSpec, kind: SignalKind, realized: RealizedPerformance | None
) -> list[tuple[str, str]]:
    """``(held_by, reason)`` of every budget guard that holds a ``kind`` retrain on ``day``."""
    budget = BUDGET[kind]
    held: list[tuple[str, str]] = []
    if kind in ("performance_drop", "breach", "fairness_breach") and realized is not None and realized.label_day:
        # Labels scored before the latest retrain (of any kind) was decided ask for nothing new:
        # that retrain's challenger is the answer.
        labelled = _as_date(realized.label_day)
        answering = [d for d in state.retrains_except(day) if labelled <= d < day]
        if answering:
            held.append(("answered", f"{kind} retrain held (answered): a retrain was decided on "
                         f"{answering[-1].isoformat()}, on or after the labelled day {labelled.isoformat()}"))  # fmt: skip
    if budget == "breach":
        return held  # no cooldown and no cap
    if budget == "data_drift":
        cooldown_days, cap, what = policy.cooldown_days, policy.max_retrains, "drift"
    else:
        cooldown_days, cap = policy.performance_cooldown_days, policy.performance_max_retrains
        what = "the fairness breach" if budget == "fairness" else "the drop"
    # Guards look both ways: a day decided late (a delayed or re-delivered event, after later
    # days were decided) must not retrain inside a later retrain's cooldown or break the cap.
    others = state.retrains_except(day, budget)
    earlier = [d for d in others if d < day]
    later = [d for d in others if d > day and (d - day).days < cooldown_days]
    if earlier and (day - earlier[-1]).days < cooldown_days:
        since = (day - earlier[-1]).days
        held.append(("cooldown", f"{kind} retrain suppressed (cooldown): last {budget} retrain on "
                     f"{earlier[-1].isoformat()}, {since} days ago, cooldown is {cooldown_days} days"))  # fmt: skip
    elif later:
        held.append(("cooldown", f"{kind} retrain suppressed (cooldown): a {budget} retrain was already decided on "
                     f"{later[0].isoformat()}, {(later[0] - day).days} days after this late day; "
                     f"cooldown is {cooldown_days} days"))  # fmt: skip
    period = policy.max_retrains_period_days
    busiest = _busiest_period(day, others, period)
    if busiest >= cap:
        held.append(("cap", f"{kind} retrain suppressed (cap): {busiest} {budget} retrains in the last {period} days "
                     f"(cap {cap}); {what} persists after retraining, a human should look"))  # fmt: skip
    return held


@dataclass(frozen=True)
class _Breaker:
    """One budget's circuit breaker on ``day``: ``open`` after too many rejections in a row,
    ``half_open`` when it lets one probe through; ``reason`` is the sentence every verdict adds
    while it is open."""

    budget: Budget
    open: bool
    half_open: bool
    reason: str


BUDGETS: tuple[Budget, ...] = ("breach", "performance_drop", "data_drift", "fairness")


def _breaker(day: date, state: LoopState, policy: DriftSpec, budget: Budget) -> _Breaker:
    """``budget``'s breaker on ``day`` and the sentence that explains it."""
    streak = state.streak(budget)
    breaker_open = streak.count >= policy.circuit_breaker_rejections
    half_open = breaker_open and _half_open(day, streak, budget, state, policy)
    what = f"{streak.count} {budget} challengers"
    if half_open and streak.since is not None:
        reason = (
            f"{budget} circuit breaker half-open: {what} rejected in a row, the last on "
            f"{streak.since.isoformat()}, {(day - streak.since).days} days ago (probe after "
            f"{policy.breaker_probe_days}): one probe retrain is allowed"
        )
    else:
        reason = (
            f"{budget} circuit breaker open: the last {what} were rejected by the gate "
            f"(limit {policy.circuit_breaker_rejections}); no automatic {budget} retrain until a human resets it"
            + (f" or the probe after {policy.breaker_probe_days} days" if streak.since is not None else "")
        )
    return _Breaker(budget, breaker_open, half_open, reason)


def _breakers(day: date, state: LoopState, policy: DriftSpec) -> dict[Budget, _Breaker]:
    return {budget: _breaker(day, state, policy, budget) for budget in BUDGETS}


@dataclass(frozen=True)
class _Harm:
    """The harm signals of a day: realized drop (persistence applied), estimated drop (likewise)
    and the breach."""

    performance: Signal
    estimated: Signal
    breach: Signal

    @property
    def deciding(self) -> list[Signal]:
        """Fired signals nothing holds (harm measured on a retired version's labels says nothing
        about today's model)."""
        return [s for s in (self.breach, self.performance, self.estimated) if s.fired and s.held_by is None]


def _harm(
    history: Sequence[DayDrift],
    today: DayDrift,
    policy: DriftSpec,
    realized: RealizedPerformance | None,
    estimated: EstimatedPerformance | None,
) -> _Harm:
    """Rules 4 and 5: the realized and estimated performance signals of today."""
    performance_signal, breach_signal = _realized_signals(realized, policy)
    return _Harm(
        performance=_persistent(performance_signal, history, today, policy, "drop_low"),
        estimated=_persistent(_estimated_signal(estimated, policy), history, today, policy, "estimated_drop_low"),
        breach=breach_signal,
    )


def _insufficient_data(today: DayDrift, policy: DriftSpec, harm: _Harm) -> tuple[list[Signal], list[str]]:
    """Rule 1: the signals and reasons of a day with too few rows (fired harm is held, not acted on)."""
    reasons = [
        f"insufficient data: {today.n_rows} rows, at least {policy.min_rows} needed to judge drift; "
        "no alarm and no retrain for this day"
    ]
    quiet = [
        Signal("data_drift", today.score, policy.alert, False, None, "insufficient data: drift not judged"),
        Signal("prediction_drift", today.prediction_psi, policy.alert, False, None, "insufficient data"),
    ]
    measured = [
        replace(s, held_by=s.held_by or "insufficient_data") if s.fired else s
        for s in (harm.performance, harm.estimated, harm.breach)
    ]
    reasons.extend(s.text for s in measured if s.fired)
    return [*quiet, *measured], reasons


@dataclass(frozen=True)
class _DataDrift:
    """Rules 2 and 3 on today: its ``level``, the M-of-N window (``alerts`` of ``days`` at alert
    level), the ``data_drift`` and ``prediction_drift`` signals and the reasons that explain them."""

    level: Level
    alerts: int
    days: int
    signals: tuple[Signal, Signal]
    reasons: tuple[str, ...]


def _data_drift(history: Sequence[DayDrift], today: DayDrift, policy: DriftSpec) -> _DataDrift:
    """Today's level, the window's count of alert days and the two data-drift signals."""
    level = day_level(today, policy)
    days = window(history, today, policy)
    alerts = sum(day_level(d, policy) == "alert" for d in days)
    top = f" (top: {', '.join(today.top_features[:3])})" if today.top_features else ""
    span = f"{alerts} of the last {len(days)} days at alert level (need {policy.window_m} of {policy.window_n})"
    sustained = level == "alert" and alerts >= policy.window_m
    prediction_alert = today.prediction_psi is not None and today.prediction_psi >= policy.alert
    feature_alert = level == "alert" and (
        not prediction_alert
        or (today.score is not None and today.score >= policy.alert)
        or any(name != PREDICTION for name in today.top_features)
    )
    signals = (
        Signal(
            "data_drift", today.score, policy.alert, sustained and feature_alert, None,
            f"feature drift: score {_fmt(today.score)}, status {today.status}{top}; {span}",
        ),
        Signal(
            "prediction_drift", today.prediction_psi, policy.alert, sustained and prediction_alert, None,
            f"prediction drift: PSI {_fmt(today.prediction_psi)} (alert {policy.alert}); {span}",
        ),
    )  # fmt: skip
    reasons: list[str] = []
    if level == "ok":
        reasons.append(f"no drift: score {_fmt(today.score)} below warn {policy.warn}")
        if alerts:
            reasons.append(f"earlier alert days in the window do not count once today is quiet ({span})")
    elif level == "warn":
        reasons.append(f"drift warning: score {_fmt(today.score)} at or above warn {policy.warn}{top}")
        reasons.append(f"no retrain from drift: today is below alert level {policy.alert}; {span}")
    else:
        reasons.append(f"drift alert: score {_fmt(today.score)}, status {today.status}{top}")
        reasons.append(f"sustained drift: {span}" if sustained else f"no retrain from drift yet: {span}")
    return _DataDrift(level, alerts, len(days), signals, tuple(reasons))


@dataclass(frozen=True)
class _Choice:
    """Rules 6 and 7: the ``trigger`` (``None``: no retrain), every signal in report order with
    what held it, the cooldown and cap flags and the reasons the guards gave."""

    trigger: SignalKind | None
    signals: tuple[Signal, ...]
    cooldown: bool
    capped: bool
    reasons: tuple[str, ...]


def _choose_trigger(
    signals: dict[str, Signal],
    harm: _Harm,
    day: date,
    state: LoopState,
    policy: DriftSpec,
    realized: RealizedPerformance | None,
    breakers: Mapping[Budget, _Breaker],
    fairness: FairnessWatch | None = None,
) -> _Choice:
    """Try the fired signals by priority: a kind not enabled is reported, a guarded one held; the
    first one nothing holds is the trigger. A kind held by its open circuit breaker holds every
    lower kind fired the same day too (a breach's rejected answers are not retried as a drop)."""
    signals = dict(signals)
    harm_fired = bool(harm.deciding)
    reasons: list[str] = []
    trigger: SignalKind | None = None
    tripped: _Breaker | None = None
    cooldown = capped = False
    enabled = {*policy.retrain_on, *(["fairness"] if fairness is not None and fairness.retrain else [])}
    for kind in PRIORITY:
        signal = signals.get(kind)
        if signal is None or not signal.fired or signal.held_by is not None:
            continue
        enabling = ENABLED_BY[kind]
        if enabling is not None and enabling not in enabled:
            if kind == "fairness_breach":
                held_by = "not_enabled"
                reasons.append("fairness breach: alerted, no retrain (gate.fairness.retrain_on_breach is false)")
            elif BUDGET[kind] == "data_drift" and not harm_fired:
                held_by = "no_impact"
                reasons.append(
                    f"drift without impact: {kind.replace('_', ' ')} is sustained but neither the realized nor the "
                    "estimated performance dropped; reported, no retrain (drift.retrain_on does not list data_drift)"
                )
            else:
                held_by = "not_enabled"
                reasons.append(f"{kind} fired but drift.retrain_on does not list {enabling}: reported, no retrain")
            signals[kind] = replace(signal, held_by=held_by)
            continue
        if trigger is not None:
            continue
        guards = _guards(day, state, policy, kind, realized)
        breaker = breakers[BUDGET[kind]]
        if breaker.open and not breaker.half_open:
            guards.append(("breaker", f"{kind} retrain suppressed ({breaker.budget} circuit breaker)"))
            tripped = tripped or breaker
        elif tripped is not None:
            # a lower kind must not carry the retrain a higher kind's open breaker holds today
            guards.append(("breaker", f"{kind} retrain suppressed ({tripped.budget} circuit breaker, same day)"))
        if guards:
            cooldown = cooldown or any(name == "cooldown" for name, _ in guards)
            capped = capped or any(name == "cap" for name, _ in guards)
            reasons.extend(text for name, text in guards if name != "breaker")
            signals[kind] = replace(signal, held_by=guards[0][0])
            continue
        trigger = kind
    ordered = tuple(
        signals[kind]
        for kind in (
            "data_drift",
            "prediction_drift",
            "performance_drop",
            "estimated_drop",
            "breach",
            "fairness_breach",
        )
        if kind in signals
    )
    return _Choice(trigger, ordered, cooldown, capped, tuple(reasons))


def _verdict(
    today: DayDrift,
    realized: RealizedPerformance | None,
    breakers: Mapping[Budget, _Breaker],
    harm: _Harm,
    verdict_state: VerdictState,
    signals: Sequence[Signal],
    reasons: list[str],
    *,
    alerts: int = 0,
    days: int = 0,
    cooldown: bool = False,
    capped: bool = False,
    trigger: SignalKind | None = None,
    break_day: str | None = None,
) -> DriftVerdict:
    """The verdict record; each open breaker's sentence closes the reasons. ``half_open``: the
    trigger's breaker lets its probe through (or, on a day without retrain, a breaker would)."""
    opened = [b for b in breakers.values() if b.open]
    reasons = [*reasons, *(b.reason for b in opened if b.reason not in reasons)]
    half_open = breakers[BUDGET[trigger]].half_open if trigger is not None else any(b.half_open for b in opened)
    return DriftVerdict(
        model=today.model,
        partition=today.partition,
        state=verdict_state,
        reasons=tuple(reasons),
        decision_id=decision_id(today.model, today.partition, verdict_state),
        score=today.score,
        top_features=today.top_features,
        window_alerts=alerts,
        window_days=days,
        cooldown=cooldown,
        capped=capped,
        circuit_open=bool(opened),
        signals=tuple(signals),
        trigger=trigger,
        breach=harm.breach.fired,
        half_open=half_open,
        break_day=break_day,
    )


def decide(
    history: Sequence[DayDrift],
    today: DayDrift,
    state: LoopState,
    policy: DriftSpec,
    *,
    realized: RealizedPerformance | None = None,
    estimated: EstimatedPerformance | None = None,
    fairness: FairnessWatch | None = None,
) -> DriftVerdict:
    """Decide what today's signals call for (see the module docstring for the rules).

    ``realized``: the labelled day's performance; ``estimated``: CBPE's estimate of today's;
    ``fairness``: the window's fairness figures (``None``: the spec has no ``gate.fairness``, and
    the verdict has no ``fairness_breach`` signal)."""
    breakers = _breakers(today.day, state, policy)
    harm = _harm(history, today, policy, realized, estimated)
    fairness_signal = _fairness_signal(fairness)
    if not _sufficient(today, policy):
        quiet, quiet_reasons = _insufficient_data(today, policy, harm)
        if fairness_signal is not None:
            if fairness_signal.fired:
                fairness_signal = replace(fairness_signal, held_by="insufficient_data")
                quiet_reasons.append(fairness_signal.text)
            quiet.append(fairness_signal)
        return _verdict(today, realized, breakers, harm, "insufficient_data", quiet, quiet_reasons)

    drift = _data_drift(history, today, policy)
    reasons = list(drift.reasons)
    reasons.extend(s.text for s in (harm.breach, harm.performance, harm.estimated) if s.fired or s.value is not None)
    data_signal, prediction_signal = drift.signals
    signals: dict[str, Signal] = {
        "data_drift": data_signal,
        "prediction_drift": prediction_signal,
        "performance_drop": harm.performance,
        "estimated_drop": harm.estimated,
        "breach": harm.breach,
    }
    if fairness_signal is not None:
        signals["fairness_breach"] = fairness_signal
        reasons.append(fairness_signal.text)
    choice = _choose_trigger(signals, harm, today.day, state, policy, realized, breakers, fairness)
    reasons.extend(choice.reasons)
    verdict_state: VerdictState
    if choice.trigger is not None:
        probe = " (the half-open breaker's one probe)" if breakers[BUDGET[choice.trigger]].open else ""
        reasons.append(
            f"retrain on {choice.trigger}{probe}: train a challenger on recent data and send it through the gate"
        )
        verdict_state = "retrain"
    else:
        verdict_state = "warn" if drift.level != "ok" or any(s.fired for s in choice.signals) else "ok"
    return _verdict(
        today,
        realized,
        breakers,
        harm,
        verdict_state,
        choice.signals,
        reasons,
        alerts=drift.alerts,
        days=drift.days,
        cooldown=choice.cooldown,
        capped=choice.capped,
        trigger=choice.trigger,
        break_day=_break_day(history, today, realized, policy) if choice.trigger in BREAK_TRIGGERS else None,
    )


def _break_day(
    history: Sequence[DayDrift], today: DayDrift, realized: RealizedPerformance | None, policy: DriftSpec
) -> str | None:
    """The first labelled day of the harm a retrain answers: the labelled day of the earliest
    measured day in the unbroken run, up to today, of days whose realized drop was significant
    (``drop_low`` above ``performance_drop``; a breach is a larger drop), whichever version
    scored them. A retrain answering a break learns from that day on, and is judged on the days
    from it: the break is not today's labelled day, or every day of a long breach would look like
    a break one day old (a flights drill's label inversion retrained five times on "one labelled
    day since the break", each time on the old concept, and took 21 days to recover)."""
    if realized is None or not realized.label_day:
        return None
    delay = today.day - _as_date(realized.label_day)  # a measured day's labelled day is this far back
    latest: dict[date, float | None] = {}
    for record in history:
        if record.model == today.model and record.day < today.day:
            latest[record.day] = record.drop_low
    first = today.day
    for measured in sorted(latest, reverse=True):
        value = latest[measured]
        if value is None:
            continue  # nothing labelled was measured that day: the run goes on
        if value <= policy.performance_drop:
            break
        first = measured
    return (first - delay).isoformat()


def _busiest_period(day: date, others: Sequence[date], period_days: int) -> int:
    """Most retrains of ``others`` in one ``period_days``-long window that also holds ``day``.

    With only earlier retrains this is the count in the last ``period_days`` days; with later
    ones (a late day) every window through ``day`` is checked, so retraining on ``day`` can
    never put more than the cap into any period."""
    starts = [d for d in [*others, day] if 0 <= (day - d).days < period_days]
    return max(
        (sum(1 for d in others if 0 <= (d - start).days < period_days) for start in starts),
        default=0,
    )


def apply_verdict(state: LoopState, verdict: DriftVerdict) -> LoopState:
    """The loop state after acting on ``verdict`` (a retrain is recorded on its partition, in the
    budget of its trigger)."""
    if not verdict.retrain:
        return state
    return state.with_retrain(verdict.partition, BUDGET[verdict.trigger or "data_drift"])


__all__ = [
    "BUDGET",
    "DayDrift",
    "DriftVerdict",
    "EstimatedPerformance",
    "LoopState",
    "RealizedPerformance",
    "Signal",
    "apply_verdict",
    "day_level",
    "decide",
    "decision_id",
    "window",
]
