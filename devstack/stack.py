"""Supervisor for a local Airflow 3 (+ optional MLflow) runtime.

Every component runs as its own CLI process (``airflow scheduler``,
``airflow dag-processor``, ``airflow triggerer``, ``airflow api-server``,
``mlflow server``) in its own session/process group.  All state lives under
``Stack.home``:

``home/airflow.cfg``                 (written by Airflow itself; everything we need is in env vars)
``home/airflow.db``                  SQLite metadata DB when ``db_url`` is None
``home/secrets.json``                Fernet key, JWT secret, API secret key, admin password (0600)
``home/simple_auth_manager_passwords.json``  pre-seeded ``{"admin": <password>}``
``home/stack.json``                  URLs of the running stack (for other processes)
``home/logs/<component>.log``        stdout+stderr of each component (Airflow task logs live here too)
``home/pids/<component>.pid``        PID of each component's process-group leader

With ``executor="CeleryExecutor"`` the stack also runs one ``airflow celery worker`` process per
name in ``celery_workers`` (component ``worker-<name>``), on a Redis broker with PostgreSQL as
the result backend, in a queue of its own so two stacks never take each other's tasks. Each
worker reports its own name as the task instances' ``hostname``, so a test can tell them apart
on one machine.

Because only pid files are needed to stop the stack, ``down(home)`` works from
any other process.  No Airflow module is imported here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import requests

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_COMPONENTS: tuple[str, ...] = ("scheduler", "dag-processor", "triggerer", "api-server")
MLFLOW = "mlflow"
WORKER_PREFIX = "worker-"
# Set by the stack in each Celery worker's environment; read back by :func:`worker_hostname`.
WORKER_HOSTNAME_ENV = "AIRLOOP_WORKER_HOSTNAME"
# Stopped first: they talk to the API server (execution API) while shutting down.
_STOP_FIRST: tuple[str, ...] = ("scheduler", "triggerer", "dag-processor")
# component -> (key in /api/v2/monitor/health, heartbeat field)
_HEARTBEATS: dict[str, tuple[str, str]] = {
    "scheduler": ("scheduler", "latest_scheduler_heartbeat"),
    "dag-processor": ("dag_processor", "latest_dag_processor_heartbeat"),
    "triggerer": ("triggerer", "latest_triggerer_heartbeat"),
}
# Tolerance (s) between a pid file's mtime and a wall-clock time: a heartbeat, or the process'
# create_time for pid files that carry no start ticks (not on Linux).
_PID_CLOCK_SLACK = 2.0
_SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


class StackError(RuntimeError):
    """A component failed to start, become healthy, or a CLI step failed."""


@dataclass
class Stack:
    """Configuration and control of one local runtime rooted at ``home``.

    ``db_url`` None means a SQLite file ``home/airflow.db``; for PostgreSQL pass a
    ``postgresql+psycopg2://`` URL.  ``mlflow_port`` None means MLflow is not managed.
    ``mlflow_artifacts_uri`` (e.g. ``s3://bucket/mlartifacts``) is where the MLflow server
    stores artifacts (clients upload through the server), with ``mlflow_env`` (S3 endpoint and
    credentials) given to the MLflow server only.  ``executor="CeleryExecutor"`` needs a
    PostgreSQL ``db_url`` (also the result backend), ``celery_broker_url`` and worker names.
    """

    home: Path
    db_url: str | None = None
    api_port: int = 8080
    mlflow_port: int | None = 5000
    dags_folder: Path = field(default_factory=lambda: PROJECT_ROOT / "dags")
    plugins_folder: Path = field(default_factory=lambda: PROJECT_ROOT / "plugins")
    project_root: Path = PROJECT_ROOT
    extra_env: dict[str, str] = field(default_factory=dict)
    admin_password: str | None = None
    host: str = "127.0.0.1"
    mlflow_backend_uri: str | None = None
    mlflow_workers: int = 1
    parallelism: int = 4
    mlflow_artifacts_uri: str | None = None
    mlflow_env: dict[str, str] = field(default_factory=dict)
    executor: str = "LocalExecutor"
    celery_broker_url: str | None = None
    celery_workers: tuple[str, ...] = ()
    celery_concurrency: int = 2
    celery_queue: str = ""  # "" means airloop_<hash of home>: its own, and the same in every process
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser().resolve()
        self.dags_folder = Path(self.dags_folder).expanduser().resolve()
        self.plugins_folder = Path(self.plugins_folder).expanduser().resolve()
        self.project_root = Path(self.project_root).expanduser().resolve()
        if not self.celery_queue:
            self.celery_queue = "airloop_" + hashlib.sha256(str(self.home).encode()).hexdigest()[:8]

    # ------------------------------------------------------------------ paths / URLs
    @property
    def logs_dir(self) -> Path:
        """Directory of component logs (also Airflow's ``base_log_folder``)."""
        return self.home / "logs"

    @property
    def pids_dir(self) -> Path:
        """Directory of ``<component>.pid`` files."""
        return self.home / "pids"

    @property
    def passwords_file(self) -> Path:
        """Simple auth manager passwords file (pre-seeded by :meth:`init`)."""
        return self.home / "simple_auth_manager_passwords.json"

    @property
    def api_url(self) -> str:
        """Base URL of the Airflow API server (UI, REST API, execution API)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.api_port}"

    @property
    def mlflow_url(self) -> str | None:
        """MLflow tracking URI, or None when MLflow is not managed."""
        return None if self.mlflow_port is None else f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def sql_alchemy_conn(self) -> str:
        """Airflow metadata DB URL (SQLite file in ``home`` by default)."""
        return self.db_url or f"sqlite:///{self.home / 'airflow.db'}"

    @property
    def mlflow_backend(self) -> str:
        """MLflow backend store URI (SQLite file in ``home`` by default)."""
        return self.mlflow_backend_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def username(self) -> str:
        """Admin user of the simple auth manager."""
        return "admin"

    @property
    def password(self) -> str:
        """Admin password (generated once and persisted in ``home/secrets.json``)."""
        return self._secrets()["admin_password"]

    @property
    def celery_result_backend(self) -> str:
        """Celery's result backend: the metadata database, through Celery's SQLAlchemy backend."""
        if not self.sql_alchemy_conn.startswith("postgresql"):
            raise StackError("CeleryExecutor needs a PostgreSQL db_url (it is also the result backend)")
        return "db+postgresql://" + self.sql_alchemy_conn.split("://", 1)[1]

    def workers(self) -> tuple[str, ...]:
        """Component names of the Celery workers (``worker-<name>``)."""
        return tuple(f"{WORKER_PREFIX}{name}" for name in self.celery_workers)

    def components(self) -> tuple[str, ...]:
        """All components this stack manages by default."""
        return AIRFLOW_COMPONENTS + self.workers() + ((MLFLOW,) if self.mlflow_port is not None else ())

    # ------------------------------------------------------------------ config
    def _secrets(self) -> dict[str, str]:
        """Load (or create once) the per-home secrets; honour an explicit admin password."""
        path = self.home / "secrets.json"
        data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        wanted: dict[str, Callable[[], str]] = {
            "fernet_key": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "jwt_secret": lambda: secrets.token_urlsafe(48),
            "api_secret_key": lambda: secrets.token_urlsafe(32),
            "admin_password": lambda: secrets.token_urlsafe(12),
        }
        changed = False
        for key, make in wanted.items():
            if not data.get(key):
                data[key] = make()
                changed = True
        if self.admin_password is not None and data["admin_password"] != self.admin_password:
            data["admin_password"] = self.admin_password
            changed = True
        if changed:
            _write_private(path, json.dumps(data, indent=2) + "\n")
        return data

    def env(self) -> dict[str, str]:
        """Full environment for every component (os.environ + airloop settings + ``extra_env``).

        Creates ``home`` and its persisted secrets on first call.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        sec = self._secrets()
        env = dict(os.environ)
        pythonpath = [str(self.project_root)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW_CONFIG": str(self.home / "airflow.cfg"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.plugins_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__AUTH_MANAGER": _SIMPLE_AUTH_MANAGER,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                # heavy ML imports on 2 cores: the 30 s default import timeout is tight
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
                "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "180",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                # task -> execution API calls time out after 5 s by default; the first
                # PATCH .../run on a cold API server took 5.2 s here and was retried
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
                # 5 attempts give up after ~6 s: a task started while the metadata database
                # restarts then fails unrun; 10 ride out about a minute (exponential waits)
                "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "10",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__API__HOST": self.host,
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
                "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs_dir),
                # per-stack log-server ports so two stacks (demo + tests) can coexist
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.api_port + 1),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.api_port + 2),
                "MLFLOW_DISABLE_TELEMETRY": "true",
                # MLflow 3 server otherwise forks a job runner + 7 huey consumers (~0.75 GB RSS)
                # for GenAI jobs that airloop does not use
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "GX_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1",
                "PYTHONPATH": os.pathsep.join(pythonpath),
            }
        )
        if self.mlflow_url is not None:
            env["MLFLOW_TRACKING_URI"] = self.mlflow_url
        if self.executor == "CeleryExecutor":
            if not self.celery_broker_url:
                raise StackError("CeleryExecutor needs celery_broker_url (e.g. redis://127.0.0.1:6379/0)")
            env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                    "AIRFLOW__CELERY__BROKER_URL": self.celery_broker_url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": self.celery_result_backend,
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.celery_concurrency),
                    # a worker writes STARTED to the result backend before running a task; with the
                    # database down that write fails and Celery drops the task unrun, leaving it
                    # queued until [scheduler] task_queued_timeout (600 s). The scheduler follows
                    # tasks through the execution API, it does not need STARTED.
                    "AIRFLOW__CELERY__TASK_TRACK_STARTED": "False",
                    # the stack's own queue: workers of another stack on the same broker never see it
                    "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.celery_queue,
                }
            )
        elif self.executor != "LocalExecutor":
            raise StackError(f"unsupported executor {self.executor!r}: LocalExecutor or CeleryExecutor")
        env.update(self.extra_env)
        return env

    def component_env(self, component: str) -> dict[str, str]:
        """:meth:`env` plus what only ``component`` gets (MLflow's S3 credentials, a worker's name)."""
        env = self.env()
        if component == MLFLOW:
            env.update(self.mlflow_env)
        elif component.startswith(WORKER_PREFIX):
            env[WORKER_HOSTNAME_ENV] = component.removeprefix(WORKER_PREFIX)
            env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = f"{__name__}.worker_hostname"
        return env

    # ------------------------------------------------------------------ lifecycle
    def init(self) -> float:
        """Write secrets, passwords file and ``stack.json``; run ``airflow db migrate``.

        Returns the migration time in seconds (output in ``home/logs/db-migrate.log``).
        """
        for d in (self.home, self.logs_dir, self.pids_dir):
            d.mkdir(parents=True, exist_ok=True)
        env = self.env()
        # SimpleAuthManager.init() only generates passwords for users missing from this file.
        _write_private(self.passwords_file, json.dumps({self.username: self.password}) + "\n")
        (self.home / "stack.json").write_text(
            json.dumps({"api_url": self.api_url, "mlflow_url": self.mlflow_url, "username": self.username}) + "\n"
        )
        started = time.monotonic()
        self._run_cli([*_executable("airflow"), "db", "migrate"], env, "db-migrate")
        elapsed = time.monotonic() - started
        log.info("airflow db migrate (%s) took %.1fs", urlsplit(self.sql_alchemy_conn).scheme, elapsed)
        return elapsed

    def _run_cli(self, cmd: Sequence[str], env: dict[str, str], log_name: str, timeout: float = 900) -> None:
        """Run a one-shot CLI command, appending its output to ``logs/<log_name>.log``."""
        log_path = self.logs_dir / f"{log_name}.log"
        with log_path.open("ab") as out:
            out.write(f"\n$ {' '.join(cmd)}\n".encode())
            out.flush()
            rc = subprocess.run(
                list(cmd),
                env=env,
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            ).returncode
        if rc != 0:
            raise StackError(f"{' '.join(cmd)} exited with {rc}\n{tail(log_path)}")

    def command(self, component: str) -> list[str]:
        """CLI command line of ``component``."""
        if component == "api-server":
            return [*_executable("airflow"), "api-server", "--port", str(self.api_port), "--host", self.host]
        if component in AIRFLOW_COMPONENTS:
            return [*_executable("airflow"), component]
        if component in self.workers():
            name = component.removeprefix(WORKER_PREFIX)
            # --skip-serve-logs: task logs are files under base_log_folder, which the API server
            # reads directly on this machine (two workers would fight over the log server port)
            return [*_executable("airflow"), "celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"]
        if component == MLFLOW:
            if self.mlflow_port is None:
                raise StackError("mlflow_port is None: MLflow is not managed by this stack")
            return [
                *_executable("mlflow"),
                "server",
                "--backend-store-uri",
                self.mlflow_backend,
                "--artifacts-destination",
                self.mlflow_artifacts_uri or (self.home / "mlartifacts").as_uri(),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.mlflow_port),
                "--workers",
                str(self.mlflow_workers),
            ]
        raise StackError(f"unknown component {component!r}")

    def airflow_cli(self, args: Sequence[str]) -> list[str]:
        """Command line of Airflow's own CLI (``airflow <args>``); run with :meth:`env`, it talks to
        this stack's database and sees its dags, plugins, secrets and settings (``airloop airflow``)."""
        return [*_executable("airflow"), *args]

    def start(self, components: Iterable[str] | None = None) -> None:
        """Start components (default: the four Airflow ones, plus MLflow if managed).

        Each runs in a new session with output in ``logs/<name>.log`` and its pid in
        ``pids/<name>.pid``.  Components already running are left alone.
        """
        names = tuple(components) if components is not None else self.components()
        for d in (self.logs_dir, self.pids_dir):
            d.mkdir(parents=True, exist_ok=True)
        for name in names:
            if _running_leader(self.pids_dir / f"{name}.pid") is not None:
                log.warning("%s already running (pid file %s); not starting it again", name, self.pids_dir)
                continue
            port = {"api-server": self.api_port, MLFLOW: self.mlflow_port}.get(name)
            if port is not None and _port_open(port):
                # otherwise wait_healthy could happily probe someone else's server
                raise StackError(f"cannot start {name}: port {port} is already in use")
            cmd = self.command(name)
            with (self.logs_dir / f"{name}.log").open("ab") as out:
                out.write(f"\n$ {' '.join(cmd)}\n".encode())
                out.flush()
                proc = subprocess.Popen(
                    cmd,
                    env=self.component_env(name),
                    cwd=self.home,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            _write_pid_file(self.pids_dir / f"{name}.pid", proc.pid)
            self._procs[name] = proc
            log.info("started %s (pid %d)", name, proc.pid)

    def restart(self, name: str, timeout: float = 10.0) -> None:
        """Start ``name`` afresh, as a container restart does: first stop what is left of its
        process group (the leader may be dead while its children still hold a port or a task)."""
        _terminate([self.pids_dir / f"{name}.pid"], timeout)
        old = self._procs.pop(name, None)
        if old is not None:
            old.poll()  # reap our own child
        self.start([name])

    def pids(self) -> dict[str, int]:
        """Component -> leader pid, from the pid files (running or not)."""
        return _read_pids(self.home)

    def status(self) -> dict[str, bool]:
        """Component -> running, for this stack's components and any other pid file."""
        result = dict.fromkeys(self.components(), False)
        result.update(status_home(self.home))
        return result

    def memory(self) -> dict[str, dict[str, float]]:
        """Component -> ``processes``, ``rss_mib`` and ``pss_mib`` summed over its process tree.

        RSS double-counts pages shared after fork (LocalExecutor workers); PSS does not.
        """
        usage: dict[str, dict[str, float]] = {}
        for name in self.pids():
            leader = _running_leader(self.pids_dir / f"{name}.pid")
            if leader is None:
                continue
            rss = pss = 0
            procs = [leader, *leader.children(recursive=True)]
            for proc in procs:
                try:
                    info = proc.memory_full_info()
                except psutil.Error:
                    continue
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
            usage[name] = {"processes": len(procs), "rss_mib": round(rss / 2**20, 1), "pss_mib": round(pss / 2**20, 1)}
        return usage

    def stop(self, timeout: float = 30.0, components: Iterable[str] | None = None) -> None:
        """Stop every component recorded under ``home`` (see :func:`stop_home`), or only ``components``."""
        if components is None:
            stop_home(self.home, timeout)
            names = tuple(self._procs)
        else:
            names = tuple(components)
            _terminate([self.pids_dir / f"{name}.pid" for name in names], timeout)
        for name in names:  # reap our own children (no zombies/ResourceWarnings)
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # still ours, so its pid cannot have been reused
                log.warning("%s (pid %d) outlived its stop; killing its process group", name, proc.pid)
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def wait_healthy(self, timeout: float = 180.0, components: Iterable[str] | None = None) -> float:
        """Wait until the running components are healthy; return the seconds waited.

        Airflow: ``/api/v2/monitor/health`` must report each started job component
        (scheduler, dag-processor, triggerer) healthy with a heartbeat newer than its
        pid file.  MLflow: ``/health`` answers 200.  Raises :class:`StackError` with the
        relevant log tails if a component dies or the timeout expires.
        """
        names = tuple(components) if components is not None else tuple(self.pids())
        started = time.monotonic()
        problems: dict[str, str] = {}
        beats: dict[str, str] = {}  # component -> first heartbeat seen while waiting
        while True:
            for name in names:
                if _running_leader(self.pids_dir / f"{name}.pid") is None:
                    raise StackError(f"{name} is not running\n{tail(self.logs_dir / f'{name}.log')}")
            problems = self._health_problems(names, beats)
            if not problems:
                elapsed = time.monotonic() - started
                log.info("stack healthy after %.1fs: %s", elapsed, ", ".join(names))
                return elapsed
            if time.monotonic() - started > timeout:
                details = "\n".join(
                    f"--- {name}: {why}\n{tail(self.logs_dir / f'{name}.log')}" for name, why in problems.items()
                )
                raise StackError(f"stack not healthy after {timeout:.0f}s\n{details}")
            time.sleep(1.0)

    def _health_problems(self, names: Sequence[str], beats: dict[str, str]) -> dict[str, str]:
        """Component -> reason it is not healthy yet (empty when all are); ``beats`` keeps the
        first heartbeat seen of each component across calls."""
        problems: dict[str, str] = {}
        airflow_names = [n for n in names if n in AIRFLOW_COMPONENTS]
        if airflow_names:
            try:
                resp = requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=5)
                resp.raise_for_status()
                health: dict[str, Any] = resp.json()
            except (requests.RequestException, ValueError) as exc:
                problems = {n: f"API server not answering: {exc}" for n in airflow_names}
            else:
                if health.get("metadatabase", {}).get("status") != "healthy":
                    problems["api-server"] = f"metadatabase unhealthy: {health.get('metadatabase')}"
                for name in airflow_names:
                    why = _heartbeat_problem(health, name, self.pids_dir / f"{name}.pid", beats)
                    if why:
                        problems[name] = why
        if MLFLOW in names:
            problems.update(self._mlflow_problem())
        for name in names:
            if name.startswith(WORKER_PREFIX) and not _worker_ready(self.logs_dir / f"{name}.log"):
                problems[name] = "Celery worker not ready yet"
        return problems

    def _mlflow_problem(self) -> dict[str, str]:
        if self.mlflow_url is None:
            return {MLFLOW: "mlflow_port is None"}
        try:
            resp = requests.get(f"{self.mlflow_url}/health", timeout=5)
            return {} if resp.status_code == 200 else {MLFLOW: f"/health returned {resp.status_code}"}
        except requests.RequestException as exc:
            return {MLFLOW: f"not answering: {exc}"}


# ---------------------------------------------------------------------- helpers


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the stack's Celery workers: the worker's own name, so task
    instances say which worker ran them even when every worker is on one machine."""
    return os.environ.get(WORKER_HOSTNAME_ENV) or socket.getfqdn()


def _worker_ready(log_path: Path) -> bool:
    """True once the Celery worker started last (after the last ``$ command`` header) is ready."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return False
    return " ready." in text.rsplit("\n$ ", 1)[-1]


def _write_private(path: Path, text: str) -> None:
    """Atomically write ``text`` to ``path`` with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _executable(name: str) -> list[str]:
    """The ``name`` console script next to the running interpreter, else ``python -m name``."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.exists() else [sys.executable, "-m", name]


def tail(path: Path, lines: int = 60) -> str:
    """Last ``lines`` lines of a text file ('' if missing)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 256 * lines))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _heartbeat_problem(
    health: dict[str, Any], name: str, pid_file: Path, beats: dict[str, str] | None = None
) -> str | None:
    """Why ``name`` is not healthy in a ``/monitor/health`` document (None if it is).

    Its heartbeat must be this incarnation's: newer than its pid file, or (``beats`` holds the
    first one seen) different from the first one seen, i.e. it beat while we watched. The second
    test needs no wall clock: after a backwards clock step every heartbeat is "older" than the
    pid file's mtime, and the stack never looked healthy."""
    if name not in _HEARTBEATS:
        return None
    key, hb_field = _HEARTBEATS[name]
    info = health.get(key) or {}
    if info.get("status") != "healthy":
        return f"status {info.get('status')!r}"
    heartbeat = info.get(hb_field)
    if not heartbeat:
        return "no heartbeat yet"
    try:
        since = pid_file.stat().st_mtime - _PID_CLOCK_SLACK
    except OSError:
        return None  # not started by a pid-tracked supervisor: trust the status
    if datetime.fromisoformat(heartbeat).timestamp() >= since:
        return None
    if beats is not None and beats.setdefault(name, heartbeat) != heartbeat:
        return None  # a live process is beating (one per component here: no HA schedulers)
    return f"heartbeat {heartbeat} is from a previous run"


def _read_pids(home: Path) -> dict[str, int]:
    pids: dict[str, int] = {}
    for path in sorted((Path(home) / "pids").glob("*.pid")):
        try:
            pids[path.stem] = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            log.warning("ignoring unreadable pid file %s", path)
    return pids


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in kernel clock ticks since boot (None without ``/proc``).

    Unlike ``psutil.Process.create_time()`` (boot time + ticks, on the wall clock) it never
    moves: CI saw a wall-clock step make a live component look "started after its pid file",
    so it was taken for a stranger and never stopped.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, after the "(comm)" field
    except (OSError, ValueError, IndexError):
        return None


def _write_pid_file(pid_file: Path, pid: int) -> None:
    """``pid [start ticks]``: enough to tell the process from a later one given the same pid."""
    ticks = _start_ticks(pid)
    pid_file.write_text(f"{pid}\n" if ticks is None else f"{pid} {ticks}\n")


def _leader(pid_file: Path) -> tuple[int | None, psutil.Process | None, bool]:
    """(pid, live leader process or None, pid recycled by another process)."""
    try:
        fields = pid_file.read_text().split()
        pid = int(fields[0])
        ticks = int(fields[1]) if len(fields) > 1 else None
        mtime = pid_file.stat().st_mtime
    except (OSError, ValueError, IndexError):
        return None, None, False
    try:
        proc = psutil.Process(pid)
        now_ticks = _start_ticks(pid)
        if ticks is not None and now_ticks is not None:
            if now_ticks != ticks:
                return pid, None, True
        elif proc.create_time() > mtime + _PID_CLOCK_SLACK:
            return pid, None, True
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(pid)
            return pid, None, False
        return pid, proc, False
    except psutil.NoSuchProcess:
        return pid, None, False


def _running_leader(pid_file: Path) -> psutil.Process | None:
    return _leader(pid_file)[1]


def _reap(pid: int) -> None:
    """Reap ``pid`` if it is our own (zombie) child."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _group_members(pgid: int) -> list[psutil.Process]:
    """Live processes whose process group is ``pgid``."""
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid:
                members.append(psutil.Process(pid))
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def _terminate(pid_files: Sequence[Path], timeout: float) -> None:
    """SIGTERM the process groups (and descendants) of ``pid_files``; SIGKILL leftovers."""
    groups: list[int] = []
    targets: dict[int, psutil.Process] = {}
    for pid_file in pid_files:
        pid, leader, recycled = _leader(pid_file)
        if pid is None or recycled or pid == os.getpgrp():
            continue  # our group is long gone (or it is our own group): never signal a stranger
        procs = _group_members(pid)
        if leader is not None:
            try:
                procs += [leader, *leader.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        if not procs:
            continue
        groups.append(pid)
        mine = {p.pid: p for p in procs}
        targets.update(mine)
        log.info("stopping %s (pgid %d, %d processes)", pid_file.stem, pid, len(mine))
    for pgid in groups:
        _killpg(pgid, signal.SIGTERM)
    _, alive = psutil.wait_procs(list(targets.values()), timeout=timeout)
    for proc in alive:
        log.warning("SIGKILL %d (%s) after %.0fs", proc.pid, _name(proc), timeout)
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    for pgid in groups:
        _killpg(pgid, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)
    for pid_file in pid_files:
        pid_file.unlink(missing_ok=True)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _name(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline()[:3])
    except psutil.Error:
        return "?"


def status_home(home: Path) -> dict[str, bool]:
    """Component -> running, for every pid file under ``home/pids``."""
    pids_dir = Path(home) / "pids"
    return {p.stem: _running_leader(p) is not None for p in sorted(pids_dir.glob("*.pid"))}


def stop_home(home: Path, timeout: float = 30.0) -> None:
    """Stop every component with a pid file under ``home``; idempotent, usable from any process.

    Scheduler, triggerer and dag-processor go first (running tasks still need the
    execution API while they shut down), then the API server and MLflow.
    """
    stop_supervisor(home, timeout)  # first, or it would restart what we stop
    pids_dir = Path(home) / "pids"
    files = sorted(pids_dir.glob("*.pid")) if pids_dir.is_dir() else []
    first = [f for f in files if f.stem in _STOP_FIRST]
    rest = [f for f in files if f.stem not in _STOP_FIRST]
    for batch in (first, rest):
        if batch:
            _terminate(batch, timeout)


def supervisor_pid_file(home: Path) -> Path:
    """Where a running ``airloop up --watch`` (:mod:`devstack.supervisor`) records itself;
    outside ``pids/``: it is not a component."""
    return Path(home) / "supervisor.pid"


def stop_supervisor(home: Path, timeout: float = 30.0) -> None:
    """SIGTERM the supervisor watching ``home`` (only that process: its components are stopped
    by the caller) and wait for it to exit. Never signals this process itself."""
    pid_file = supervisor_pid_file(home)
    pid, proc, _ = _leader(pid_file)
    if proc is None or pid == os.getpid():
        return
    log.info("stopping the supervisor (pid %d) first", pid)
    try:
        proc.terminate()
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        log.warning("SIGKILL supervisor %d after %.0fs", pid, timeout)
        proc.kill()
    except psutil.NoSuchProcess:
        pass
    _reap(proc.pid)
    pid_file.unlink(missing_ok=True)


def up(stack: Stack, timeout: float = 240.0) -> Stack:
    """Init, start and wait for ``stack``; print its URLs and admin credentials."""
    stack.init()
    try:
        stack.start()
        stack.wait_healthy(timeout)
    except StackError:
        stack.stop()
        raise
    print(f"Airflow UI/API : {stack.api_url}  (user {stack.username!r}, password {stack.password!r})")
    if stack.mlflow_url:
        print(f"MLflow         : {stack.mlflow_url}")
    print(f"Home           : {stack.home}  (logs in {stack.logs_dir})")
    return stack


def down(home: Path, timeout: float = 30.0) -> None:
    """Stop the stack rooted at ``home`` (only pid files are needed)."""
    stop_home(Path(home).expanduser().resolve(), timeout)


# ---------------------------------------------------------------------- throwaway PostgreSQL DBs

_PG_DEFAULTS = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def create_postgres_database(prefix: str = "airloop", **connect: Any) -> str:
    """Create a uniquely named database; return its ``postgresql+psycopg2://`` URL.

    ``connect`` overrides host/port/user (default 127.0.0.1:5432, user postgres, trust auth).
    """
    import psycopg2

    params = {**_PG_DEFAULTS, **connect}
    name = re.sub(r"[^a-z0-9_]", "_", f"{prefix}_{secrets.token_hex(4)}".lower())[:63]
    conn = psycopg2.connect(dbname="postgres", **params)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    password = f":{params['password']}" if params.get("password") else ""
    log.info("created PostgreSQL database %s", name)
    return f"postgresql+psycopg2://{params['user']}{password}@{params['host']}:{params['port']}/{name}"


def local_postgres_database(name: str = "airloop", **connect: Any) -> str | None:
    """The URL of database ``name`` on the local PostgreSQL (created when missing), or None when
    no server answers within two seconds. Used by ``airloop up|demo --db auto``."""
    import psycopg2

    params = {**_PG_DEFAULTS, **connect}
    try:
        conn = psycopg2.connect(dbname="postgres", connect_timeout=2, **params)
    except psycopg2.OperationalError as exc:
        log.info("no PostgreSQL at %s:%s (%s)", params["host"], params["port"], str(exc).strip())
        return None
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
                log.info("created PostgreSQL database %s", name)
    finally:
        conn.close()
    password = f":{params['password']}" if params.get("password") else ""
    return f"postgresql+psycopg2://{params['user']}{password}@{params['host']}:{params['port']}/{name}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_block(size: int = 3) -> int:
    """A port P with P..P+size-1 free right now: the API server's, and the two log-server ports
    the stack derives from it (a free API port alone left those to chance)."""
    for _ in range(50):
        base = free_port()
        if base + size > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise StackError("no block of free ports found")


@contextmanager
def throwaway_stack(
    root: Path,
    lake_uri: str,
    *,
    db_prefix: str = "airloop_tmp",
    timeout: float = 600.0,
    env: dict[str, str] | None = None,
    postgres: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[Stack]:
    """A whole healthy stack for a test or benchmark: a fresh PostgreSQL database, free ports,
    state under ``root``, the project's specs and dags, ``env`` on top (Airflow settings for a
    test); stopped and dropped on exit (the
    database is kept when ``AIRLOOP_KEEP_SYSTEM_DB=1``, to look at it afterwards).

    ``postgres`` names another server (host/port/user) than the machine's; ``options`` are more
    :class:`Stack` fields (executor, Celery workers, MLflow backend and artifact store)."""
    db_url = create_postgres_database(db_prefix, **(postgres or {}))
    api_port = free_port_block()
    mlflow_port = free_port()
    while api_port <= mlflow_port < api_port + 3:
        mlflow_port = free_port()
    stack = Stack(
        home=root / "stack",
        db_url=db_url,
        api_port=api_port,
        mlflow_port=mlflow_port,
        extra_env={
            "AIRLOOP_HOME": str(root / "airloop"),
            "AIRLOOP_LAKE_URI": lake_uri,
            "AIRLOOP_SPECS_DIR": str(PROJECT_ROOT / "include" / "specs"),
            **(env or {}),
        },
        **options,
    )
    try:
        stack.init()
        stack.start()
        stack.wait_healthy(timeout=timeout)
        yield stack
    finally:
        stack.stop()
        if os.environ.get("AIRLOOP_KEEP_SYSTEM_DB") != "1":
            drop_postgres_database(db_url)


def drop_postgres_database(url: str) -> None:
    """Terminate connections to the database of ``url`` and drop it (no error if missing)."""
    import psycopg2

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ValueError(f"refusing to drop database {name!r}")
    conn = psycopg2.connect(
        dbname="postgres",
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
    )
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for attempt in range(5):
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                try:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                    break
                except psycopg2.errors.ObjectInUse:
                    if attempt == 4:
                        raise
                    time.sleep(1)
    finally:
        conn.close()
    log.info("dropped PostgreSQL database %s", name)
