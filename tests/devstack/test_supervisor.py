"""``airloop up --watch``: components that exit are restarted with Docker's backoff, and
``airloop down`` stops the supervisor before the components. Real processes, no Airflow: the
stack's one component is a shell that leaves a child behind when its leader dies, as the
scheduler leaves its task processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from devstack.stack import PROJECT_ROOT, Stack, StackError, down, supervisor_pid_file
from devstack.supervisor import RestartPolicy, Supervisor

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="pid files use /proc")

STACK_CLASS = '''
from devstack.stack import Stack

class OneProcessStack(Stack):
    """A stack whose only component, "worker", is a shell with a child (sleep) in its group."""

    def components(self):
        return ("worker",)

    def command(self, component):
        return ["sh", "-c", "sleep 300 & wait"]

    def component_env(self, component):
        import os
        return dict(os.environ)
'''
namespace: dict[str, object] = {}
exec(STACK_CLASS, namespace)  # the same class the supervisor process below defines
OneProcessStack: type[Stack] = namespace["OneProcessStack"]  # type: ignore[assignment]


def _wait(predicate: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    one = OneProcessStack(home=tmp_path / "home", mlflow_port=None)
    try:
        yield one
    finally:
        one.stop(timeout=5)


def _kill_leader(stack: Stack) -> tuple[int, int]:
    """SIGKILL the component's leader only (its child lives on); return (leader, child) pids."""
    leader = stack.pids()["worker"]
    _wait(lambda: psutil.Process(leader).children(), "the component's child")
    child = psutil.Process(leader).children()[0].pid
    os.kill(leader, signal.SIGKILL)
    _wait(lambda: not stack.status()["worker"], "the leader to be seen dead")
    return leader, child


def _restart_at(supervisor: Supervisor, start: float) -> float:
    """Step a fake clock from ``start`` by 10 ms until the supervisor restarts; the delay taken."""
    now = start
    while not supervisor.step(now):
        now = round(now + 0.01, 2)
        assert now - start < 5, "no restart within 5 s of fake time"
    return round(now - start, 2)


def test_restarts_with_doubling_delay_capped_and_reset_after_a_long_run(stack: Stack) -> None:
    policy = RestartPolicy(first_delay_s=0.1, max_delay_s=0.3, reset_after_s=10.0)
    supervisor = Supervisor(stack, policy)
    stack.start()
    assert supervisor.step(0.0) == []  # running: nothing to do

    delays, leaders, orphans = [], [], []
    now = 1.0
    for _ in range(3):  # dies again at once: 0.1, then 0.2, then capped at 0.3
        leader, child = _kill_leader(stack)
        leaders.append(leader)
        orphans.append(child)
        delays.append(_restart_at(supervisor, now))
        now += 1.0  # each time before reset_after_s
    assert delays == [0.1, 0.2, 0.3]
    assert supervisor.restarts == {"worker": 3}
    # the restart stopped what the dead leader left behind, like a container restart
    assert [pid for pid in orphans if _alive(pid)] == []
    assert stack.status() == {"worker": True}
    assert stack.pids()["worker"] not in leaders

    # once it has run reset_after_s, the next delay starts over at first_delay_s
    assert supervisor.step(now + 10.0) == []
    _kill_leader(stack)
    assert _restart_at(supervisor, now + 11.0) == 0.1
    assert supervisor.restarts == {"worker": 4}


def test_a_start_that_fails_is_tried_again_after_the_next_delay(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(stack, RestartPolicy(first_delay_s=0.1, max_delay_s=1.0))
    stack.start()
    _kill_leader(stack)

    def refuse(component: str) -> list[str]:
        raise StackError("port 8080 is already in use")

    working = stack.command
    stack.command = refuse  # type: ignore[method-assign]
    assert supervisor.step(0.0) == []  # seen dead: due at 0.1
    assert supervisor.step(0.1) == []  # the try fails
    assert "could not restart worker: port 8080 is already in use" in caplog.text
    assert stack.status() == {"worker": False}
    stack.command = working  # type: ignore[method-assign]
    assert _restart_at(supervisor, 0.2) == 0.2  # the failed try doubled the delay
    assert supervisor.restarts == {"worker": 1} and stack.status() == {"worker": True}


def test_the_time_a_restart_takes_does_not_count_as_running(
    stack: Stack, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart can take seconds (the dead leader's leftovers get 10 s to stop). Counted as
    running time, it reset the delay of a component that dies at once: a crash loop at full speed."""
    supervisor = Supervisor(stack, RestartPolicy(first_delay_s=0.1, reset_after_s=0.2))
    stack.start()
    quick = stack.restart

    def slow_restart(name: str, timeout: float = 10.0) -> None:
        time.sleep(0.3)
        quick(name, timeout)

    monkeypatch.setattr(stack, "restart", slow_restart)
    _kill_leader(stack)
    _wait(lambda: supervisor.step(), "the first restart")
    assert supervisor.step() == []  # seen running right after its restart
    _kill_leader(stack)
    caplog.clear()
    supervisor.step()
    assert "worker is not running; restarting it in 0.2 s" in caplog.text  # doubled, not reset


SUPERVISOR_PROCESS = STACK_CLASS + textwrap.dedent("""
    import logging, sys
    from devstack.cli import _watch  # what `airloop up --watch` runs once the stack is up

    logging.basicConfig(level=logging.INFO)
    stack = OneProcessStack(home=sys.argv[1], mlflow_port=None)
    stack.start()
    _watch(stack)
""")


def test_down_stops_the_supervisor_first_so_nothing_comes_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR_PROCESS, str(home)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        watched = OneProcessStack(home=home, mlflow_port=None)
        _wait(lambda: supervisor_pid_file(home).exists() and watched.status()["worker"], "the watched stack")
        first, _ = _kill_leader(watched)
        _wait(lambda: watched.status()["worker"] and watched.pids()["worker"] != first, "the restart")

        # a second supervisor of the same home is refused
        with pytest.raises(StackError, match=rf"already supervised by pid {proc.pid}"):
            Supervisor(watched).run(threading.Event())

        second = watched.pids()["worker"]
        down(home, timeout=10)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert out.strip().splitlines()[-1] == "stopped watching; restarts: {'worker': 1}"
        assert "restarted (after 0.1 s, doubling to 60 s while it keeps exiting)" in out  # the policy in force
        assert not _alive(second)
        time.sleep(0.5)  # ten supervisor polls: nothing restarts it
        assert watched.status() == {"worker": False}
        assert not supervisor_pid_file(home).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        OneProcessStack(home=home, mlflow_port=None).stop(timeout=5)
