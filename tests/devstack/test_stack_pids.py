"""Pid files: a component is recognised by its start ticks, not by comparing wall clocks; and its
heartbeat proves a live process even when the wall clock has stepped back."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from devstack.stack import _start_ticks, _write_pid_file, status_home, stop_home

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="start ticks come from /proc")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process leading its own group with a child, as a stack component does."""
    proc = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)
    deadline = time.monotonic() + 10
    while not psutil.Process(proc.pid).children() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield proc
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass
    proc.wait()


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _home_with(pid_file_text: str | None, pid: int, tmp_path: Path) -> Path:
    pids = tmp_path / "pids"
    pids.mkdir()
    if pid_file_text is None:
        _write_pid_file(pids / "scheduler.pid", pid)
    else:
        (pids / "scheduler.pid").write_text(pid_file_text)
    return tmp_path


def test_start_ticks_are_the_kernels_field_and_differ_between_processes(sleeper: subprocess.Popen[bytes]) -> None:
    child = psutil.Process(sleeper.pid).children()[0]
    mine, its, childs = _start_ticks(os.getpid()), _start_ticks(sleeper.pid), _start_ticks(child.pid)
    assert mine is not None and its is not None and childs is not None
    assert mine < its <= childs  # started in that order
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    # psutil's create_time is boot time + these ticks: same value modulo the wall clock
    assert abs(psutil.Process(sleeper.pid).create_time() - psutil.boot_time() - its / ticks_per_s) < 0.02
    assert _start_ticks(2**22 + 1) is None  # above pid_max: no such process


def test_a_wall_clock_step_after_start_does_not_hide_a_running_component(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    home = _home_with(None, sleeper.pid, tmp_path)
    pid_file = home / "pids" / "scheduler.pid"
    assert pid_file.read_text() == f"{sleeper.pid} {_start_ticks(sleeper.pid)}\n"
    # the pid file now looks an hour older than the process: what a clock stepped forward by an
    # hour makes psutil report (create_time = the new boot time + ticks); the old check took the
    # component for a stranger that had reused the pid, and stop left it and its children running
    an_hour_ago = time.time() - 3600
    os.utime(pid_file, (an_hour_ago, an_hour_ago))
    child = psutil.Process(sleeper.pid).children()[0]

    assert status_home(home) == {"scheduler": True}
    stop_home(home, timeout=10)

    assert sleeper.wait(timeout=10) is not None
    assert not _alive(child)
    assert not pid_file.exists()


def test_a_pid_reused_by_another_process_is_never_signalled(sleeper: subprocess.Popen[bytes], tmp_path: Path) -> None:
    ticks = _start_ticks(sleeper.pid)
    assert ticks is not None
    # same pid, different start: the component that wrote this file died and the pid was reused
    home = _home_with(f"{sleeper.pid} {ticks - 1}\n", sleeper.pid, tmp_path)

    assert status_home(home) == {"scheduler": False}
    stop_home(home, timeout=2)

    assert sleeper.poll() is None  # not signalled
    assert psutil.Process(sleeper.pid).children()  # nor its group
    assert not (home / "pids" / "scheduler.pid").exists()  # the stale file is cleared


def test_a_pid_file_without_ticks_falls_back_to_its_mtime(sleeper: subprocess.Popen[bytes], tmp_path: Path) -> None:
    home = _home_with(f"{sleeper.pid}\n", sleeper.pid, tmp_path)
    assert status_home(home) == {"scheduler": True}  # written after the process started

    an_hour_ago = time.time() - 3600
    os.utime(home / "pids" / "scheduler.pid", (an_hour_ago, an_hour_ago))
    assert status_home(home) == {"scheduler": False}  # process newer than the file: a stranger


def test_a_heartbeat_that_moves_proves_a_live_component_even_after_a_backwards_clock_step(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from devstack.stack import _heartbeat_problem

    pid_file = tmp_path / "scheduler.pid"
    _write_pid_file(pid_file, os.getpid())
    hour_ahead = time.time() + 3600  # the pid file was written before the clock went back an hour
    os.utime(pid_file, (hour_ahead, hour_ahead))

    def health(beat: datetime) -> dict[str, object]:
        return {"scheduler": {"status": "healthy", "latest_scheduler_heartbeat": beat.isoformat()}}

    first = datetime.now(UTC)
    beats: dict[str, str] = {}
    assert "from a previous run" in str(_heartbeat_problem(health(first), "scheduler", pid_file, beats))
    assert "from a previous run" in str(_heartbeat_problem(health(first), "scheduler", pid_file, beats))
    assert _heartbeat_problem(health(first + timedelta(seconds=5)), "scheduler", pid_file, beats) is None
    # without the memory of a first beat, only the (stepped) wall clock decides
    assert _heartbeat_problem(health(first + timedelta(seconds=5)), "scheduler", pid_file) is not None
    # and a heartbeat newer than the pid file is this incarnation's at once
    later = datetime.fromtimestamp(hour_ahead + 1, UTC)
    assert _heartbeat_problem(health(later), "scheduler", pid_file, {}) is None
