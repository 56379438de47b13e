"""PartitionAvailableTrigger: wait for a lake partition without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class PartitionAvailableTrigger(BaseTrigger):
    """Polls the lake until ``zone/model/ds`` is published, or its deadline passes.

    The deadline is our own (an epoch timestamp) so the task can fail with a message that
    names the partition, instead of Airflow's generic deferral timeout.
    """

    def __init__(
        self,
        *,
        zone: str,
        model: str,
        ds: str,
        lake_uri: str | None = None,
        lake_conn_id: str | None = None,
        poke_interval: float = 30.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.zone = zone
        self.model = model
        self.ds = ds
        self.lake_uri = lake_uri
        self.lake_conn_id = lake_conn_id
        self.poke_interval = poke_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "zone": self.zone,
                "model": self.model,
                "ds": self.ds,
                "lake_uri": self.lake_uri,
                "lake_conn_id": self.lake_conn_id,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
            },
        )

    def _exists(self) -> tuple[bool, str]:
        from airloop.hooks.lake import LakeHook

        lake = LakeHook(lake_uri=self.lake_uri, aws_conn_id=self.lake_conn_id).lake
        path = lake.partition_file(self.zone, self.model, date.fromisoformat(self.ds))
        return lake.exists(path), lake.to_uri(path)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            found, uri = await asyncio.to_thread(self._exists)
            if found:
                yield TriggerEvent({"status": "available", "uri": uri})
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "uri": uri})
                return
            self.log.info("waiting for %s", uri)
            await asyncio.sleep(self.poke_interval)
