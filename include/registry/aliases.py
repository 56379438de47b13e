"""Compare-and-set moves of MLflow registered-model aliases (``champion``, ``challenger``).

MLflow has no server-side compare-and-set: ``set_registered_model_alias`` silently overwrites
whatever another writer set a moment before. Promotions are therefore serialized in layers:

1. **Across hosts**, the promoting task runs in an Airflow pool of size 1 per model (the operator's
   job, see ``plugins/``): two promotions of one model never run at the same time by design.
2. **Within a host** (two task processes or threads), :func:`move_alias_cas` holds an exclusive
   ``flock`` on ``<lock_dir>/airloop-alias-<model>.lock`` (plus an in-process lock, since threads
   share nothing through flock on some platforms) around read-compare-set.
3. **The compare-and-set** itself: the alias is read again after the lock is taken and the move is
   refused with :class:`AliasRaceError` unless it still points at ``expected_current``. This is what
   catches anything that slipped through 1 and 2 (a manual move in the UI, a misconfigured pool);
   a window of a few milliseconds between the read and the write remains across hosts, which is
   why layer 1 is the real guarantee.

Version numbers are ints over SQLite and strings over REST: everything here returns
``int``. Aliases are read from ``get_registered_model(name).aliases`` because
``search_model_versions`` returns empty ``aliases``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class AliasRaceError(RuntimeError):
    """The alias moved under us: it no longer points at the version the caller expected."""

    def __init__(
        self,
        name: str,
        alias: str,
        expected: int | None,
        actual: int | None,
        new_version: int,
        message: str | None = None,
    ) -> None:
        self.name, self.alias = name, alias
        self.expected, self.actual, self.new_version = expected, actual, new_version
        super().__init__(
            message
            or f"{name}@{alias} points at {_show(actual)}, expected {_show(expected)}: refusing to move it to "
            f"v{new_version}. Another promotion or a manual change happened; re-read the registry and re-run the gate."
        )


class AliasLockTimeout(TimeoutError):
    """Another process held the model's alias lock for too long."""


def _show(version: int | None) -> str:
    return "nothing (unset)" if version is None else f"v{version}"


def normalise_version(version: int | str) -> int:
    """MLflow versions are ``int`` over SQLite and ``str`` over REST: always an ``int`` here."""
    try:
        return int(version)
    except (TypeError, ValueError):
        raise ValueError(f"not a model version number: {version!r}") from None


def current_alias(client: MlflowClient, name: str, alias: str) -> int | None:
    """The version ``alias`` points at as an ``int``, or ``None`` when it (or the model) is unset."""
    # Imported here: mlflow_registry may one day import this module (no cycle at import time).
    from include.registry.mlflow_registry import get_alias_version

    return get_alias_version(client, name, alias)


def tag_version(client: MlflowClient, name: str, version: int | str, tags: Mapping[str, Any]) -> None:
    """Set tags on a model version (values stringified; ``None`` values skipped)."""
    for key, value in tags.items():
        if value is not None:
            client.set_model_version_tag(name, str(normalise_version(version)), key, str(value))


def _lock_path(lock_dir: str | Path | None, name: str) -> Path:
    folder = Path(lock_dir) if lock_dir is not None else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"airloop-alias-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.lock"


@contextlib.contextmanager
def model_lock(name: str, lock_dir: str | Path | None = None, timeout: float = 120.0) -> Iterator[None]:
    """Hold the per-model promotion lock of this host (exclusive between threads and processes)."""
    path = _lock_path(lock_dir, name)
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(str(path), threading.Lock())
    deadline = time.monotonic() + timeout
    if not thread_lock.acquire(timeout=timeout):
        raise AliasLockTimeout(f"waited {timeout:.0f} s for the alias lock of {name!r} in this process")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                    if time.monotonic() > deadline:
                        raise AliasLockTimeout(
                            f"waited {timeout:.0f} s for {path}: another promotion of {name!r} holds it"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        thread_lock.release()


def move_alias_cas(
    client: MlflowClient,
    name: str,
    alias: str,
    new_version: int,
    expected_current: int | None,
    lock_dir: str | Path | None = None,
    timeout: float = 120.0,
) -> None:
    """Point ``name@alias`` at ``new_version`` only if it still points at ``expected_current``.

    ``expected_current=None`` means "the alias must be unset" (first model). Moving an alias that
    already points at ``new_version`` is a no-op, so a task that runs twice succeeds twice.
    Raises :class:`AliasRaceError` (nothing moved) when the alias points elsewhere.
    """
    new_version = normalise_version(new_version)
    expected = None if expected_current is None else normalise_version(expected_current)

    def check(actual: int | None) -> bool:
        """True: move; False: already done; raises on a race."""
        if actual == new_version:
            return False
        if actual != expected:
            raise AliasRaceError(name, alias, expected, actual, new_version)
        return True

    # Cheap early refusal before queueing behind the lock.
    if not check(current_alias(client, name, alias)):
        log.info("%s@%s already points at v%s: nothing to do", name, alias, new_version)
        return
    with model_lock(name, lock_dir, timeout):
        actual = current_alias(client, name, alias)  # re-check: the lock may have been held by a mover
        if not check(actual):
            log.info("%s@%s already points at v%s: nothing to do", name, alias, new_version)
            return
        client.set_registered_model_alias(name, alias, str(new_version))
        after = current_alias(client, name, alias)
    if after != new_version:
        # Someone on another host wrote between our set and our read: the outcome is theirs.
        raise AliasRaceError(
            name,
            alias,
            new_version,
            after,
            new_version,
            message=f"{name}@{alias} was set to v{new_version} but now points at {_show(after)}: another host "
            "moved it at the same moment (is the promotion pool of size 1 configured?)",
        )
    log.info("moved %s@%s: %s -> v%s", name, alias, _show(actual), new_version)
