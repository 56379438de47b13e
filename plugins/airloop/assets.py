"""Every asset of the loop, declared once. Events carry ``extra`` (partition, version, ...).

Consumers reconcile events against their own records: Airflow may merge or skip events
under load, so an event is a wake-up call, not a work item count.
"""

from __future__ import annotations

from typing import Literal

from airflow.sdk import Asset

AssetKind = Literal["landing", "validated", "challenger", "champion", "predictions", "drift"]
KINDS: tuple[AssetKind, ...] = ("landing", "validated", "challenger", "champion", "predictions", "drift")


def model_asset(model: str, kind: AssetKind) -> Asset:
    """The asset ``kind`` of ``model`` (e.g. ``x-airloop://flights/landing``; the ``x-`` scheme skips
    provider URI normalisers, which would import the Amazon provider at DAG parse time: 2 s)."""
    if kind not in KINDS:
        raise ValueError(f"unknown asset kind {kind!r}; expected one of {KINDS}")
    return Asset(name=f"{model}.{kind}", uri=f"x-airloop://{model}/{kind}", group="airloop")
