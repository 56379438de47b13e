"""PartitionAvailableTrigger: wait for a lake partition without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


@dataclass(frozen=True)
class PartitionWatch:
    """What the trigger watches: ``zone/model/ds`` of a lake, how often, until when. The
    deadline is our own (an epoch timestamp) so the task can fail with a message that names
    the partition, instead of Airflow's generic deferral timeout."""

    zone: str
    model: str
    ds: str
    lake_uri: str | None = None
    lake_conn_id: str | None = None
    poke_interval: float = 30.0
    deadline: float | None = None


class PartitionAvailableTrigger(BaseTrigger):
    """Polls the lake until ``zone/model/ds`` is published, or its deadline passes; takes the
    fields of :class:`PartitionWatch` as keyword arguments (and serializes to them)."""

    def __init__(self, **watch: Any) -> None:
        super().__init__()
        self.watch = PartitionWatch(**watch)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", asdict(self.watch)

    def _exists(self) -> tuple[bool, str]:
        from airloop.hooks.lake import LakeHook

        watch = self.watch
        lake = LakeHook(lake_uri=watch.lake_uri, aws_conn_id=watch.lake_conn_id).lake
        path = lake.partition_file(watch.zone, watch.model, date.fromisoformat(watch.ds))
        return lake.exists(path), lake.to_uri(path)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            found, uri = await asyncio.to_thread(self._exists)
            if found:
                yield TriggerEvent({"status": "available", "uri": uri})
                return
            if self.watch.deadline is not None and time.time() >= self.watch.deadline:
                yield TriggerEvent({"status": "timeout", "uri": uri})
                return
            self.log.info("waiting for %s", uri)
            await asyncio.sleep(self.watch.poke_interval)


def defer_until_partition(operator: Any, lake: Any, zone: str) -> None:
    """Return at once when ``zone/operator.model/operator.ds`` is in ``lake``; otherwise defer
    ``operator`` (no worker slot held) until it arrives or ``operator.wait_timeout`` passes,
    resuming in its ``execute_complete``, which calls :func:`fail_unless_arrived` first.

    ``operator`` carries ``model``, ``ds``, ``lake_uri``, ``lake_conn_id``, ``poke_interval``
    and ``wait_timeout`` (a timedelta)."""
    if lake.has_partition(zone, operator.model, date.fromisoformat(operator.ds)):
        return
    operator.log.info("%s partition %s of %s not there yet: deferring", zone, operator.ds, operator.model)
    operator.defer(
        trigger=PartitionAvailableTrigger(
            zone=zone,
            model=operator.model,
            ds=operator.ds,
            lake_uri=operator.lake_uri,
            lake_conn_id=operator.lake_conn_id,
            poke_interval=operator.poke_interval,
            deadline=time.time() + operator.wait_timeout.total_seconds(),
        ),
        method_name="execute_complete",
    )


def fail_unless_arrived(operator: Any, event: dict[str, Any], zone: str, hint: str) -> None:
    """In ``execute_complete``: fail the task, naming the partition and what to do, on a timeout."""
    from airflow.sdk.exceptions import AirflowFailException

    if event.get("status") != "available":
        raise AirflowFailException(
            f"{operator.model} {operator.ds}: the {zone} partition {event.get('uri')} did not arrive "
            f"within {operator.wait_timeout}; {hint}"
        )
