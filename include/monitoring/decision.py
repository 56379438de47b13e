"""Turn a day's drift into a verdict: ``ok``, ``warn``, ``retrain`` or ``insufficient_data``.

:func:`decide` is a pure function of the drift history, today's drift, the loop's state and the
model's :class:`~include.spec.DriftSpec`; it reads no clock and no files, so a rerun of the same
partition with the same inputs gives the same verdict and the same ``decision_id``.

Rules, in order (each verdict's ``reasons`` says which ones fired, in words):

1. **Insufficient data**: fewer than ``min_rows`` rows today (or a report already marked
   ``insufficient_data``) gives ``insufficient_data``: never an alarm, never a retrain.
2. **Level of a day**: ``alert`` if its status is ``alert`` or its score (max feature PSI) is at
   least ``policy.alert``; ``warn`` likewise with ``policy.warn``; else ``ok``. The status carries
   alerts the score cannot (a null-rate jump, prediction drift).
3. **M-of-N window**: the window is today plus the ``window_n - 1`` latest earlier days of the same
   model (one entry per partition, the last one wins; days with insufficient data are skipped; when
   ``today.reference`` is set, only days measured against the same reference count). A retrain
   needs at least ``window_m`` alert days in the window **and** today must be an alert day: an old
   streak that has ended never retrains.
4. **Guards** (checked only when rule 3 asks for a retrain; each one that holds is reported):
   - *cooldown*: fewer than ``cooldown_days`` days since the last retrain;
   - *cap*: ``max_retrains`` retrains already within the last ``max_retrains_period_days`` days;
   - *circuit breaker*: ``circuit_breaker_rejections`` challengers in a row were rejected by the
     gate: retraining again would most likely fail again; a human must look.
   A suppressed retrain becomes ``warn`` with the flag set. ``circuit_open`` is set whenever the
   breaker is open, also on quiet days, so the alert to a human repeats until someone resets it.

A retrain recorded on today's own partition is ignored, so a rerun of a day whose retrain was
already recorded decides exactly as the first run did. Retrains recorded on *later* partitions do
count for the guards (cooldown either side, cap over every period through today): a day whose
event arrives late must not retrain next to a retrain decided in the meantime.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Literal

from include.spec import DriftSpec

DayStatus = Literal["ok", "warn", "alert", "insufficient_data"]
VerdictState = Literal["ok", "warn", "retrain", "insufficient_data"]
Level = Literal["ok", "warn", "alert"]


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
    """

    model: str
    partition: str
    status: DayStatus
    score: float | None
    n_rows: int
    top_features: tuple[str, ...] = ()
    reference: str | None = None

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
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DayDrift:
        score = data.get("score")
        return cls(
            model=str(data["model"]),
            partition=str(data["partition"]),
            status=data["status"],
            score=None if score is None else float(score),
            n_rows=int(data["n_rows"]),
            top_features=tuple(data.get("top_features") or ()),
            reference=data.get("reference"),
        )


@dataclass(frozen=True)
class LoopState:
    """What the loop remembers between days; the caller builds it from its history file.

    ``retrain_dates`` are the partitions on which a retrain was decided (any order, older ones
    are fine: the cap only counts those inside its period); ``last_retrain`` defaults to the
    latest of them. ``consecutive_rejections`` counts gate rejections of challengers since the
    last accepted one (or since a human reset the breaker).
    """

    last_retrain: date | None = None
    retrain_dates: tuple[date, ...] = ()
    consecutive_rejections: int = 0

    def retrains_before(self, day: date) -> list[date]:
        """Retrain dates strictly before ``day`` (a rerun must not see its own retrain)."""
        dates = set(self.retrain_dates)
        if self.last_retrain is not None:
            dates.add(self.last_retrain)
        return sorted(d for d in dates if d < day)

    def retrains_except(self, day: date) -> list[date]:
        """Retrain dates on any other partition than ``day``, earlier or later. A rerun must not
        see its own retrain; a late day (decided after later days) must see the later ones."""
        dates = set(self.retrain_dates)
        if self.last_retrain is not None:
            dates.add(self.last_retrain)
        return sorted(d for d in dates if d != day)

    def with_retrain(self, day: str | date) -> LoopState:
        """The state after a retrain was decided on ``day``."""
        when = _as_date(day)
        dates = tuple(sorted({*self.retrain_dates, when}))
        last = max(when, self.last_retrain) if self.last_retrain else when
        return replace(self, last_retrain=last, retrain_dates=dates)

    def with_gate_result(self, accepted: bool) -> LoopState:
        """The state after the gate judged a challenger: acceptance closes the breaker."""
        return replace(self, consecutive_rejections=0 if accepted else self.consecutive_rejections + 1)


@dataclass(frozen=True)
class DriftVerdict:
    """What to do about today's drift, with the reasons a human reads.

    ``state`` is ``retrain`` only when the window asks for it and no guard holds. Flags:
    ``cooldown`` and ``capped`` mean they suppressed a retrain today; ``circuit_open`` means the
    breaker is open (a human must look), whatever today's drift. ``decision_id`` is a digest of
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

    @property
    def retrain(self) -> bool:
        return self.state == "retrain"

    @property
    def needs_human(self) -> bool:
        """True when the loop cannot help itself: breaker open, or drift persists at the cap."""
        return self.circuit_open or self.capped

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


def _fmt(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.3f}"


def decide(history: Sequence[DayDrift], today: DayDrift, state: LoopState, policy: DriftSpec) -> DriftVerdict:
    """Decide what today's drift calls for (see the module docstring for the rules)."""
    reasons: list[str] = []
    breaker_open = state.consecutive_rejections >= policy.circuit_breaker_rejections
    breaker_reason = (
        f"circuit breaker open: the last {state.consecutive_rejections} challengers were rejected by the gate "
        f"(limit {policy.circuit_breaker_rejections}); no automatic retrain until a human resets it"
    )

    def verdict(
        verdict_state: VerdictState,
        *,
        alerts: int = 0,
        days: int = 0,
        cooldown: bool = False,
        capped: bool = False,
    ) -> DriftVerdict:
        if breaker_open and breaker_reason not in reasons:
            reasons.append(breaker_reason)
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
            circuit_open=breaker_open,
        )

    if not _sufficient(today, policy):
        reasons.append(
            f"insufficient data: {today.n_rows} rows, at least {policy.min_rows} needed to judge drift; "
            "no alarm and no retrain for this day"
        )
        return verdict("insufficient_data")

    level = day_level(today, policy)
    days = window(history, today, policy)
    alerts = sum(day_level(day, policy) == "alert" for day in days)
    top = f" (top: {', '.join(today.top_features[:3])})" if today.top_features else ""
    span = f"{alerts} of the last {len(days)} days at alert level (need {policy.window_m} of {policy.window_n})"

    if level == "ok":
        reasons.append(f"no drift: score {_fmt(today.score)} below warn {policy.warn}")
        if alerts:
            reasons.append(f"earlier alert days in the window do not count once today is quiet ({span})")
        return verdict("ok", alerts=alerts, days=len(days))
    if level == "warn":
        reasons.append(f"drift warning: score {_fmt(today.score)} at or above warn {policy.warn}{top}")
        reasons.append(f"no retrain: today is below alert level {policy.alert}; {span}")
        return verdict("warn", alerts=alerts, days=len(days))

    reasons.append(f"drift alert: score {_fmt(today.score)}, status {today.status}{top}")
    if alerts < policy.window_m:
        reasons.append(f"no retrain yet: {span}")
        return verdict("warn", alerts=alerts, days=len(days))
    reasons.append(f"sustained drift: {span}")

    day = today.day
    # Guards look both ways: a day decided late (a delayed or re-delivered event, after later
    # days were decided) must not retrain inside a later retrain's cooldown or break the cap.
    others = state.retrains_except(day)
    earlier = [d for d in others if d < day]
    later = [d for d in others if d > day and (d - day).days < policy.cooldown_days]
    cooldown = False
    if earlier and (day - earlier[-1]).days < policy.cooldown_days:
        cooldown = True
        since = (day - earlier[-1]).days
        reasons.append(
            f"retrain suppressed (cooldown): last retrain on {earlier[-1].isoformat()}, {since} days ago, "
            f"cooldown is {policy.cooldown_days} days"
        )
    elif later:
        cooldown = True
        reasons.append(
            f"retrain suppressed (cooldown): a retrain was already decided on {later[0].isoformat()}, "
            f"{(later[0] - day).days} days after this late day; cooldown is {policy.cooldown_days} days"
        )
    period = policy.max_retrains_period_days
    busiest = _busiest_period(day, others, period)
    capped = busiest >= policy.max_retrains
    if capped:
        reasons.append(
            f"retrain suppressed (cap): {busiest} retrains in the last {period} days "
            f"(cap {policy.max_retrains}); drift persists after retraining, a human should look"
        )
    if breaker_open or cooldown or capped:
        if breaker_open:
            reasons.append(breaker_reason)
        return verdict("warn", alerts=alerts, days=len(days), cooldown=cooldown, capped=capped)
    reasons.append("retrain: train a challenger on recent data and send it through the gate")
    return verdict("retrain", alerts=alerts, days=len(days))


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
    """The loop state after acting on ``verdict`` (a retrain is recorded on its partition)."""
    return state.with_retrain(verdict.partition) if verdict.retrain else state


__all__ = [
    "DayDrift",
    "DriftVerdict",
    "LoopState",
    "apply_verdict",
    "day_level",
    "decide",
    "decision_id",
    "window",
]
