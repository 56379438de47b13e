"""Order-preserving de-duplication, for lists whose first occurrence wins."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

T = TypeVar("T")


def unique_by(items: Iterable[T], key: Callable[[T], Hashable]) -> list[T]:
    """``items`` in order, without those whose ``key`` an earlier item already had."""
    seen: set[Hashable] = set()
    kept: list[T] = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            kept.append(item)
    return kept
