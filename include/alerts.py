"""Alerts as typed messages, built from what a step decided, and the rate limit that keeps them rare.

An :class:`Alert` says what happened (its ``kind``, one of :data:`include.names.ALERT_KINDS`), to
which model and partition, with the figures that decided it (the verdict's signals, the gate's
checks and figures, the contract's failed rules), a link to the report or the Airflow task, and
the section of the runbook (docs/operations.md) that says what to do. The builders below turn a
step's result into alerts; :meth:`Alert.text` and :meth:`Alert.payload` are what a channel sends
(an e-mail or Slack text, a webhook's JSON).

**Rate limit**: one message per model, kind and (UTC) day. A repeat the same day is not sent: it
is counted, and the next message sent for the model (any kind, any later day) carries the count
as its digest (:func:`rate_limit`). The state is one small JSON file per model in the lake
(:func:`load_rate_state`, :func:`save_rate_state`, written atomically). Each alert names its
``occurrence`` (DAG, run, task, partition: no try number), so a task that reruns finds its own
earlier message or repeat and neither sends nor counts it again. The caller writes the state after
sending: a crash between the two sends the message again on the rerun (at least once, never lost).

No Airflow here: the senders live in ``plugins/airloop/notifiers``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from include.names import ALERT_KINDS, NO_DECISION_IN_TIME, AlertKind

if TYPE_CHECKING:
    from include.lake import Lake

TITLES: dict[AlertKind, str] = {
    "contract_failure": "Contract failure",
    "anomalous_partition": "Anomalous partition",
    "drift_warn": "Drift warn",
    "drift_retrain": "Drift retrain",
    "performance_breach": "Performance breach",
    "fairness_breach": "Fairness breach",
    "gate_reject": "Gate reject",
    "promotion": "Promotion",
    "approval_needed": "Approval needed",
    "approval_expired": "Approval expired",
    "breaker_open": "Breaker open",
    "breaker_half_open": "Breaker half-open",
    "breaker_reset": "Breaker reset",
    "rollback": "Rollback",
    "task_failure": "Task failure",
}
"""The runbook's section title of each kind; its GitHub anchor is :func:`anchor` of the kind."""
assert set(TITLES) == set(ALERT_KINDS), "every alert kind has a title"

KEEP_DAYS = 30  # rate-limit state older than this is dropped
STATE_KIND, STATE_NAME = "alert-state", "rate_limit.json"  # reports/<model>/alert-state/rate_limit.json


class AlertError(ValueError):
    """An alert that cannot be built (unknown kind, missing figures)."""


def anchor(kind: str) -> str:
    """The runbook anchor of ``kind``: ``drift_retrain`` -> ``drift-retrain``."""
    if kind not in ALERT_KINDS:
        raise AlertError(f"unknown alert kind {kind!r}; kinds: {', '.join(ALERT_KINDS)}")
    return kind.replace("_", "-")


def runbook_link(base: str, kind: str) -> str:
    """``<base>#<anchor>``: where the runbook says what to do about ``kind``."""
    return f"{base}#{anchor(kind)}"


def _clean(value: Any) -> Any:
    """JSON-able figures: floats rounded to 4 places (non-finite -> None), tuples -> lists."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_clean(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class Suppressed:
    """A repeat that was not sent (same model, kind and day as a message already sent)."""

    kind: str
    day: str
    occurrence: str
    partition: str | None = None
    reported_by: str | None = None  # the occurrence of the message whose digest carried it

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "day": self.day,
            "occurrence": self.occurrence,
            "partition": self.partition,
            "reported_by": self.reported_by,
        }


def digest_lines(digest: Sequence[Suppressed]) -> list[str]:
    """``drift_warn: 3 more (2013-03-02, 2013-03-03, 2013-03-04)``, one line per kind."""
    by_kind: dict[str, list[Suppressed]] = {}
    for entry in digest:
        by_kind.setdefault(entry.kind, []).append(entry)
    lines = []
    for kind, entries in by_kind.items():
        partitions = sorted({e.partition for e in entries if e.partition})
        where = f" ({', '.join(partitions)})" if partitions else ""
        lines.append(f"{kind}: {len(entries)} more{where}")
    return lines


@dataclass(frozen=True)
class Alert:
    """One alert: ``headline`` (a sentence), ``figures`` (the numbers that decided, JSON-able),
    ``reasons`` (the decision's own sentences), ``link`` (report or task), ``occurrence`` (what
    happened once; a rerun of the same task gives the same one)."""

    model: str
    kind: AlertKind
    partition: str | None
    headline: str
    figures: dict[str, Any] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    link: str | None = None
    occurrence: str = ""

    def __post_init__(self) -> None:
        anchor(self.kind)  # refuses an unknown kind
        object.__setattr__(self, "figures", _clean(self.figures))

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    def with_context(self, *, link: str | None = None, occurrence: str = "") -> Alert:
        """The alert with a link (kept when it has one) and its occurrence."""
        return replace(self, link=self.link or link, occurrence=occurrence or self.occurrence)

    def subject(self) -> str:
        where = f" {self.partition}" if self.partition else ""
        return f"[airloop] {self.model}: {self.title}{where}"

    def text(self, runbook: str, digest: Sequence[Suppressed] = ()) -> str:
        """The message as plain text (e-mail body, Slack message)."""
        lines = [self.subject(), "", self.headline, ""]
        if self.figures:
            lines.append("Figures:")
            lines += [f"  {name}: {json.dumps(value)}" for name, value in self.figures.items()]
        if self.reasons:
            lines.append("Why:")
            lines += [f"  - {reason}" for reason in self.reasons]
        if self.link:
            lines.append(f"Link: {self.link}")
        lines.append(f"Runbook: {runbook}")
        if digest:
            lines += ["", "Also since the last message (one message per model, kind and day):"]
            lines += [f"  - {line}" for line in digest_lines(digest)]
        return "\n".join(lines)

    def payload(self, runbook: str, digest: Sequence[Suppressed] = ()) -> dict[str, Any]:
        """The message as a JSON object (webhook)."""
        return {
            "source": "airloop",
            "model": self.model,
            "kind": self.kind,
            "title": self.title,
            "partition": self.partition,
            "headline": self.headline,
            "figures": self.figures,
            "reasons": list(self.reasons),
            "link": self.link,
            "runbook": runbook,
            "occurrence": self.occurrence,
            "digest": [e.to_dict() for e in digest],
            "text": self.text(runbook, digest),
        }


# ------------------------------------------------------------------------------------ builders
def contract_failure(model: str, ds: str, result: Mapping[str, Any]) -> Alert:
    """The validate step's result for a partition that broke its contract (and was quarantined)."""
    failures = list(result.get("failures") or result.get("errors") or [])
    return Alert(
        model=model,
        kind="contract_failure",
        partition=ds,
        headline=f"{model} {ds} broke its data contract ({len(failures)} failed rule(s)); "
        f"the partition is quarantined at {result.get('quarantine_uri')}",
        figures={
            "rows": result.get("rows"),
            "failed_rules": list(result.get("errors") or []),
            "warnings": list(result.get("warnings") or []),
            "quarantine_uri": result.get("quarantine_uri"),
        },
        reasons=tuple(failures),
    )


def anomalous_partition(model: str, ds: str, result: Mapping[str, Any]) -> Alert:
    """The validate step's result for a partition that passed with a category mix out of bounds."""
    findings = list(result.get("mix_findings") or [])
    return Alert(
        model=model,
        kind="anomalous_partition",
        partition=ds,
        headline=f"{model} {ds}: {result.get('summary', '')}",
        figures={
            "rows": result.get("rows"),
            "mix_findings": [
                {k: f.get(k) for k in ("column", "category", "share", "bounds", "problem")} for f in findings
            ],
        },
    )


def _signals(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """The fired signals of a verdict: ``{kind: {value, threshold, held_by}}``."""
    return {
        s["kind"]: {"value": s.get("value"), "threshold": s.get("threshold"), "held_by": s.get("held_by")}
        for s in verdict.get("signals") or []
        if s.get("fired")
    }


def _fairness_figures(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The window's breaches as the ``fairness_breach`` alert shows them: per breach the column,
    the groups at its two ends with their figures, the disparity, its interval and the limit."""
    entry = summary.get("fairness") or {}
    breaches = [
        {
            "column": b.get("column"),
            "disparity": b.get("name"),
            "value": b.get("value"),
            "interval": [b.get("lower"), b.get("upper")],
            "limit": b.get("limit"),
            "metric": b.get("metric"),
            "groups": {str(b.get("high_group")): b.get("high_value"), str(b.get("low_group")): b.get("low_value")},
        }
        for b in entry.get("breaches") or []
    ]
    window = entry.get("window") or {}
    days = list(entry.get("window_label_days") or [])
    return {
        "breaches": breaches,
        "window": f"{days[0]}..{days[-1]} ({len(days)} labelled days)" if days else None,
        "window_rows": window.get("rows"),
        "too_small": window.get("too_small") or [],
        "model_version": entry.get("model_version") or summary.get("model_version"),
    }


def drift(model: str, summary: Mapping[str, Any], link: str | None = None) -> list[Alert]:
    """The monitor step's summary (``partition``, ``verdict``, ``score``, ``model_version``,
    ``performance``, and ``fairness`` for a spec with ``gate.fairness``) as its alerts: a
    performance breach, else ``drift_retrain`` or ``drift_warn`` by the verdict's state;
    ``fairness_breach`` when that signal fired (it replaces a ``drift_warn`` it alone caused); and
    ``breaker_half_open`` or ``breaker_open`` while a breaker is open. ``ok`` and
    ``insufficient_data`` days without an open breaker give none."""
    verdict = summary["verdict"]
    partition = str(summary.get("partition") or verdict.get("partition"))
    performance = summary.get("performance") or {}
    figures = {
        "state": verdict["state"],
        "trigger": verdict.get("trigger"),
        "psi_score": summary.get("score"),
        "window_alert_days": f"{verdict.get('window_alerts', 0)}/{verdict.get('window_days', 0)}",
        "model_version": summary.get("model_version"),
        "realized_roc_auc": performance.get("roc_auc") if isinstance(performance, Mapping) else None,
        "label_day": performance.get("label_day") if isinstance(performance, Mapping) else None,
        "top_features": list(verdict.get("top_features") or [])[:5],
        "signals": _signals(verdict),
        "decision_id": verdict.get("decision_id"),
    }
    reasons = tuple(verdict.get("reasons") or ())
    alerts: list[Alert] = []
    kind: AlertKind | None = None
    if verdict.get("breach"):
        kind = "performance_breach"
        what = "the champion's realized ROC AUC is below the floor"
    elif verdict["state"] == "retrain":
        kind = "drift_retrain"
        what = f"retrain launched on {verdict.get('trigger')}"
    elif verdict["state"] == "warn":
        kind = "drift_warn"
        what = "a signal fired and was held, or drift without impact"
    fired = figures["signals"]
    fairness = "fairness_breach" in fired
    if fairness and kind == "drift_warn" and set(fired) == {"fairness_breach"}:
        kind = None  # the warn is the fairness breach: its own alert says it
    if kind is not None:
        alerts.append(
            Alert(model, kind, partition, f"{model} {partition}: {verdict['state']}: {what}", figures, reasons, link)
        )
    if fairness:
        signal = fired["fairness_breach"]
        action = (
            "retrain launched"
            if verdict.get("trigger") == "fairness_breach"
            else f"no retrain ({signal.get('held_by') or 'another trigger decided'})"
        )
        alerts.append(
            Alert(
                model,
                "fairness_breach",
                partition,
                f"{model} {partition}: the champion's disparity over the window's realized labels is past its "
                f"limit: {action}",
                {**_fairness_figures(summary), "decision_id": verdict.get("decision_id")},
                tuple(s["text"] for s in verdict.get("signals") or [] if s.get("kind") == "fairness_breach"),
                link,
            )
        )
    if verdict.get("circuit_open"):
        breaker_kind: AlertKind = "breaker_half_open" if verdict.get("half_open") else "breaker_open"
        sentences = tuple(r for r in reasons if "circuit breaker" in r)
        state = "half-open: one probe retrain is allowed" if verdict.get("half_open") else "open: a human must look"
        alerts.append(
            Alert(
                model,
                breaker_kind,
                partition,
                f"{model} {partition}: retrain circuit breaker {state}",
                {
                    "state": verdict["state"],
                    "trigger": verdict.get("trigger"),
                    "decision_id": verdict.get("decision_id"),
                },
                sentences or reasons,
                link,
            )
        )
    return alerts


def _gate_figures(report: Mapping[str, Any]) -> dict[str, Any]:
    decision = report["decision"]
    days = list(report.get("evaluation_days") or [])
    failed = {
        c["name"]: {"observed": c.get("observed"), "threshold": c.get("threshold")}
        for c in decision.get("checks") or []
        if not c.get("passed")
    }
    own = {k: v for k, v in (decision.get("figures") or {}).items() if v is not None}
    return {
        "challenger_version": report.get("challenger_version"),
        "champion_version": report.get("champion_version"),
        "evaluation_rows": report.get("evaluation_rows"),
        "evaluation_days": f"{days[0]}..{days[-1]} ({len(days)} days)" if days else None,
        "failed_checks": failed,
        **own,
        "decision_id": decision.get("decision_id"),
    }


def _gate_partition(report: Mapping[str, Any]) -> str | None:
    days = list(report.get("evaluation_days") or [])
    return str(days[-1]) if days else None


def gate(model: str, report: Mapping[str, Any], outcome: Mapping[str, Any], link: str | None = None) -> Alert | None:
    """The promote step's ``outcome`` on the gate ``report``: ``promotion`` when it promoted,
    ``gate_reject`` when the gate rejected the challenger, ``approval_expired`` when nobody
    answered its approval request in time; ``None`` otherwise (a dry run, a challenger waiting
    for shadow days, a rejection by the approver: a person did that; a request a newer
    challenger superseded: that one's ``approval_needed`` follows)."""
    decision = report["decision"]
    figures = _gate_figures(report)
    failed = [f"{c['name']}: {c.get('detail', '')}" for c in decision.get("checks") or [] if not c.get("passed")]
    if outcome.get("promoted"):
        champion = outcome.get("champion")
        return Alert(
            model,
            "promotion",
            _gate_partition(report),
            f"{model}: v{outcome['version']} promoted to champion"
            + (f" (replaces v{champion})" if champion else " (first champion)"),
            figures,
            (str(decision.get("summary", "")),),
            link,
        )
    if outcome.get("action") == "reject":
        return Alert(
            model,
            "gate_reject",
            _gate_partition(report),
            f"{model}: the gate rejected challenger v{outcome.get('version')}: {decision.get('summary', '')}",
            figures,
            tuple(failed),
            link,
        )
    if outcome.get("action") == "approval_rejected" and outcome.get("approval") == "timeout":
        return Alert(
            model,
            "approval_expired",
            _gate_partition(report),
            f"{model}: challenger v{outcome.get('version')} passed the gate but nobody approved it in time:"
            " not promoted",
            figures,
            (NO_DECISION_IN_TIME,),
            link,
        )
    return None


def approval_needed(model: str, report: Mapping[str, Any], link: str | None = None) -> Alert:
    """The gate passed the challenger and the spec requires a human's approval."""
    decision = report["decision"]
    return Alert(
        model,
        "approval_needed",
        _gate_partition(report),
        f"{model}: challenger v{report.get('challenger_version')} passed the gate and waits for approval",
        _gate_figures(report),
        (str(decision.get("summary", "")),),
        link,
    )


def breaker_reset(model: str, result: Mapping[str, Any], link: str | None = None) -> Alert:
    """The breaker-reset step's result (``by``, ``reason``, ``ledger_uri``)."""
    return Alert(
        model,
        "breaker_reset",
        None,
        f"{model}: retrain circuit breakers reset by {result.get('by')}",
        {"by": result.get("by"), "reason": result.get("reason"), "ledger_uri": result.get("ledger_uri")},
        (str(result.get("reason") or ""),),
        link,
    )


def rollback(model: str, outcome: Mapping[str, Any], link: str | None = None) -> Alert:
    """The rollback step's result (``version``, ``previous_version``, ``reason``)."""
    return Alert(
        model,
        "rollback",
        None,
        f"{model}: champion rolled back from v{outcome.get('previous_version')} to v{outcome.get('version')}",
        {
            "version": outcome.get("version"),
            "previous_version": outcome.get("previous_version"),
            "reason": outcome.get("reason"),
        },
        (str(outcome.get("reason") or ""),),
        link,
    )


def task_failure(model: str, record: Mapping[str, Any], link: str | None = None) -> Alert:
    """A task (or run) that failed after its retries: the failure record of the notifier."""
    logical = str(record.get("logical_date") or "")
    return Alert(
        model,
        "task_failure",
        logical[:10] or None,
        str(record.get("message") or "task failed"),
        {k: record.get(k) for k in ("dag_id", "run_id", "task_id", "try_number")},
        (),
        link,
    )


# ---------------------------------------------------------------------------------- rate limit
@dataclass(frozen=True)
class RateDecision:
    """What to do with an alert: ``send`` it (with ``digest``, the repeats it reports), or not:
    ``repeat`` (counted for the digest) or ``duplicate`` (this occurrence was handled before)."""

    send: bool
    outcome: str  # "send" | "repeat" | "duplicate"
    digest: tuple[Suppressed, ...] = ()


def empty_rate_state() -> dict[str, Any]:
    return {"sent": {}, "suppressed": []}


def rate_limit(state: Mapping[str, Any], alert: Alert, day: date) -> tuple[RateDecision, dict[str, Any]]:
    """Decide ``alert`` on ``day`` (UTC) against ``state``; the decision and the new state.

    ``state``: ``{"sent": {"<kind>@<day>": occurrence}, "suppressed": [Suppressed...]}``. The
    first alert of a model, kind and day is sent, with every repeat not yet reported as its
    digest; later ones of that kind and day are repeats. An occurrence seen before (sent, or
    already a repeat) is a duplicate and changes nothing. Entries older than ``KEEP_DAYS`` go.
    """
    if not alert.occurrence:
        raise AlertError(f"{alert.model} {alert.kind}: an alert needs its occurrence to be rate-limited")
    oldest = (day - timedelta(days=KEEP_DAYS)).isoformat()
    sent = {k: v for k, v in dict(state.get("sent") or {}).items() if k.rsplit("@", 1)[-1] >= oldest}
    suppressed = [Suppressed(**e) for e in state.get("suppressed") or [] if e.get("day", "") >= oldest]
    key = f"{alert.kind}@{day.isoformat()}"
    seen = sent.get(key) == alert.occurrence or any(
        e.kind == alert.kind and e.occurrence == alert.occurrence for e in suppressed
    )
    if seen:
        decision = RateDecision(False, "duplicate")
    elif key in sent:
        suppressed.append(Suppressed(alert.kind, day.isoformat(), alert.occurrence, alert.partition))
        decision = RateDecision(False, "repeat")
    else:
        digest = tuple(e for e in suppressed if e.reported_by is None)
        suppressed = [e if e.reported_by else replace(e, reported_by=alert.occurrence) for e in suppressed]
        sent[key] = alert.occurrence
        decision = RateDecision(True, "send", digest)
    return decision, {"sent": sent, "suppressed": [e.to_dict() for e in suppressed]}


def rate_state_path(lake: Lake, model: str) -> str:
    return lake.report_path(model, STATE_KIND, STATE_NAME)


def load_rate_state(lake: Lake, model: str) -> dict[str, Any]:
    """The model's rate-limit state (empty when none was written yet)."""
    path = rate_state_path(lake, model)
    if not lake.exists(path):
        return empty_rate_state()
    try:
        data = json.loads(lake.read_bytes(path))
    except ValueError as exc:
        raise AlertError(f"{lake.to_uri(path)}: not valid JSON ({exc}); delete it to start counting afresh") from None
    return data if isinstance(data, dict) else empty_rate_state()


def save_rate_state(lake: Lake, model: str, state: Mapping[str, Any]) -> str:
    """Write the state atomically; its URI."""
    return lake.write_bytes(rate_state_path(lake, model), json.dumps(state, indent=2, sort_keys=True).encode())
