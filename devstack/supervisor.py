"""Keep an embedded stack's components running: ``airloop up --watch``.

The compose stack has ``restart: always``; the embedded one had nothing, so a component that
exited (the scheduler, dag-processor and triggerer exit when PostgreSQL goes away) stayed down
until someone ran ``airloop up`` again. :class:`Supervisor` applies Docker's restart policy to
the stack's processes: a component that is not running is restarted after a delay that starts
at 0.1 s and doubles on each restart up to 60 s, back to 0.1 s once it has run 10 s. It never
gives up, so it rides out an outage of any length, and a crash loop costs at most one start a
minute. It restarts on exit only, not on a failing health check (neither does Docker).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from devstack.stack import (
    Stack,
    StackError,
    _leader,
    _write_pid_file,
    supervisor_pid_file,
    tail,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    """Docker's ``restart: always`` timings (seconds)."""

    first_delay_s: float = 0.1
    max_delay_s: float = 60.0
    reset_after_s: float = 10.0  # a run this long counts as healthy: the next delay starts over
    poll_s: float = 1.0


@dataclass
class Supervisor:
    """Restart ``stack``'s components when they exit; :meth:`step` is one pass, :meth:`run` loops."""

    stack: Stack
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    restarts: dict[str, int] = field(default_factory=dict)  # component -> restarts so far
    _delay: dict[str, float] = field(default_factory=dict, repr=False)  # next delay
    _since: dict[str, float] = field(default_factory=dict, repr=False)  # seen running since
    _due: dict[str, float] = field(default_factory=dict, repr=False)  # restart at

    def step(self, now: float | None = None) -> list[str]:
        """Look at every component once; restart those whose delay is over. Returns them.

        ``now`` fixes the clock (tests); otherwise it is read for each component, since a restart
        can take seconds (what the dead leader left behind gets up to 10 s to stop)."""
        fixed = now
        restarted: list[str] = []
        running = self.stack.status()
        for name in self.stack.components():
            now = time.monotonic() if fixed is None else fixed
            delay = self._delay.get(name, self.policy.first_delay_s)
            if running.get(name):
                since = self._since.setdefault(name, now)
                if now - since >= self.policy.reset_after_s:
                    self._delay[name] = self.policy.first_delay_s
                continue
            self._since.pop(name, None)
            if name not in self._due:
                self._due[name] = now + delay
                log.warning(
                    "%s is not running; restarting it in %.1f s. Last lines of %s:\n%s",
                    name, delay, self.stack.logs_dir / f"{name}.log",
                    tail(self.stack.logs_dir / f"{name}.log", 15),
                )  # fmt: skip
                if delay > 0:
                    continue
            if now < self._due[name]:
                continue
            del self._due[name]
            self._delay[name] = min(self.policy.max_delay_s, max(delay, self.policy.first_delay_s) * 2)
            try:
                self.stack.restart(name)
            except StackError as exc:  # e.g. its port is still taken: try again after the next delay
                log.error("could not restart %s: %s", name, exc)
                continue
            self.restarts[name] = self.restarts.get(name, 0) + 1
            self._since[name] = time.monotonic() if fixed is None else fixed  # it runs from now on
            restarted.append(name)
            log.warning("restarted %s (restart %d; next delay %.1f s)", name, self.restarts[name], self._delay[name])
        return restarted

    def run(self, stop: threading.Event) -> None:
        """Supervise until ``stop`` is set (``airloop down`` sets it with SIGTERM, through
        ``home/supervisor.pid``, before it stops the components). One supervisor per home."""
        pid_file = supervisor_pid_file(self.stack.home)
        pid, other, _ = _leader(pid_file)
        if other is not None and pid != os.getpid():
            raise StackError(f"{self.stack.home} is already supervised by pid {pid} ({pid_file})")
        _write_pid_file(pid_file, os.getpid())
        log.info("supervising %s (restart delay %.1f-%.0f s)", ", ".join(self.stack.components()),
                 self.policy.first_delay_s, self.policy.max_delay_s)  # fmt: skip
        try:
            while not stop.is_set():
                try:
                    self.step()
                except Exception:  # the supervisor itself must not die of one bad pass
                    log.exception("supervisor pass failed; trying again")
                stop.wait(self.policy.poll_s)
        finally:
            if _leader(pid_file)[0] == os.getpid():
                pid_file.unlink(missing_ok=True)
