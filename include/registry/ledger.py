"""The promotion ledger: an append-only history of what the gate and people did to a model.

S3 has no append, so every entry is one immutable JSON object under
``reports/<model>/ledger/<time>-<decision_id>-<action>.json`` (time in compact UTC, so names
sort by time). The ledger is append-only by construction: entries are never rewritten, and
:func:`append_entry` is idempotent, because Airflow may run the same task twice:

- the same entry again (same name) is an atomic overwrite with identical content;
- the same ``decision_id`` and ``action`` at another time (a retry that took a later clock) is not
  written again: the first record stands and its URI is returned.

Two retries racing at the very same moment could still both write; :func:`read_ledger` therefore
keeps only the earliest entry per ``(decision_id, action)``.

``time`` is always passed in by the caller (the run's logical date or the task's start): nothing
here reads the clock, so reruns and backfills write the same names.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from include.names import GATE_ACTIONS, GateAction
from include.reports.format import jsonable
from include.unique import unique_by

if TYPE_CHECKING:
    from include.lake import Lake

log = logging.getLogger(__name__)

LEDGER_KIND = "ledger"
Action = GateAction
ACTIONS = GATE_ACTIONS


class LedgerError(ValueError):
    """A ledger entry that cannot be recorded as given."""


@dataclass(frozen=True)
class LedgerEntry:
    """One line of the ledger. ``version``/``previous_version`` are registry versions (ints)."""

    time: datetime
    action: Action
    model: str
    version: int | None
    previous_version: int | None
    decision_id: str = ""
    summary: str = ""
    figures: Mapping[str, Any] = field(default_factory=dict)
    approver: str | None = None
    reason: str | None = None
    dag_id: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise LedgerError(f"unknown ledger action {self.action!r}: expected one of {list(ACTIONS)}")
        if self.time.tzinfo is None:
            raise LedgerError(f"ledger time {self.time.isoformat()} has no time zone: pass an aware datetime")

    @property
    def entry_id(self) -> str:
        """``decision_id`` or, for entries without one (manual rollback), a digest of the entry."""
        if self.decision_id:
            return self.decision_id
        key = json.dumps(
            [self.action, self.model, self.version, self.previous_version, self.dag_id, self.run_id, self.reason]
        )
        return "m" + hashlib.sha256(key.encode()).hexdigest()[:15]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["time"] = self.time.astimezone(UTC).isoformat()
        out["decision_id"] = self.entry_id
        out["figures"] = dict(self.figures)
        return jsonable(out)


def ledger_dir(lake: Lake, model: str) -> str:
    return lake.report_path(model, LEDGER_KIND, "entry").rsplit("/", 1)[0]


def entry_name(entry: LedgerEntry) -> str:
    stamp = entry.time.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{entry.entry_id}-{entry.action}.json"


def append_entry(lake: Lake, entry: LedgerEntry) -> str:
    """Record ``entry``; returns the URI of its object (the existing one on a rerun)."""
    suffix = f"-{entry.entry_id}-{entry.action}.json"
    for path in lake.list_files(ledger_dir(lake, entry.model)):
        name = path.rsplit("/", 1)[-1]
        if name.endswith(suffix) and name != entry_name(entry):
            log.info("ledger already records %s %s as %s: not appending again", entry.action, entry.entry_id, name)
            return lake.to_uri(path)
    payload = json.dumps(entry.to_dict(), sort_keys=True).encode() + b"\n"
    uri = lake.write_bytes(lake.report_path(entry.model, LEDGER_KIND, entry_name(entry)), payload)
    log.info("ledger %s: %s v%s (%s) -> %s", entry.model, entry.action, entry.version, entry.entry_id, uri)
    return uri


def read_ledger(lake: Lake, model: str) -> list[dict[str, Any]]:
    """Every entry of ``model``, oldest first (ties broken by name); duplicates of a rerun dropped."""
    entries = []
    for path in lake.list_files(ledger_dir(lake, model)):
        if not path.endswith(".json"):
            continue
        entries.append((path.rsplit("/", 1)[-1], json.loads(lake.read_bytes(path))))
    entries.sort(key=lambda item: (datetime.fromisoformat(item[1]["time"]), item[0]))
    return unique_by((entry for _, entry in entries), key=lambda entry: (entry["decision_id"], entry["action"]))


def record_breaker_reset(
    lake: Lake,
    model: str,
    *,
    by: str,
    reason: str,
    time: datetime,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> str:
    """Record that a human closed the retrain circuit breaker (``monitor.loop_state`` reads it:
    the rejections before it no longer count). ``by`` and ``reason`` are required, as for any
    manual override. The entry's id digests time, person and reason: a retried task (same time)
    records it once, a later reset is a new entry. Returns the entry's URI."""
    who, why = by.strip(), reason.strip()
    if not who or not why:
        raise LedgerError(f"{model}: a breaker reset must say who resets it (--by) and why (--reason)")
    digest = hashlib.sha256(json.dumps([model, time.astimezone(UTC).isoformat(), who, why]).encode()).hexdigest()
    entry = LedgerEntry(
        time=time,
        action="breaker_reset",
        model=model,
        version=None,
        previous_version=None,
        decision_id="r" + digest[:19],
        summary=f"circuit breaker reset by {who}: {why}",
        approver=who,
        reason=why,
        dag_id=dag_id,
        run_id=run_id,
    )
    return append_entry(lake, entry)


def ledger_jsonl(lake: Lake, model: str) -> str:
    """The whole history as JSON lines (what the UI shows and rollback reads)."""
    return "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in read_ledger(lake, model))


def last_entry(
    history: list[dict[str, Any]], actions: tuple[str, ...] = ("promote", "rollback")
) -> dict[str, Any] | None:
    """The most recent entry with one of ``actions`` (default: the last champion change)."""
    for entry in reversed(history):
        if entry["action"] in actions:
            return entry
    return None
