"""A PostgreSQL server of a test's own (``initdb`` + ``pg_ctl`` on a temporary folder and port).

For tests that restart or stop the database: doing that to the machine's server would take
down every other stack of the session. Uses the machine's PostgreSQL binaries; the server runs
as the ``postgres`` user when the tests run as root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.stack import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise RuntimeError(f"PostgreSQL's {name} not found (Debian package postgresql)")
    return found[-1]


@dataclass
class PrivatePostgres:
    data_dir: Path
    port: int

    @property
    def connect(self) -> dict[str, object]:
        """Keyword arguments for ``psycopg2.connect`` / ``create_postgres_database``."""
        return {"host": "127.0.0.1", "port": self.port, "user": "postgres"}

    def _ctl(self, *args: str, timeout: float = 120) -> None:
        cmd = [_bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60", *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, timeout=timeout, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._ctl("-l", str(self.data_dir / "server.log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "stop")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running server on a free port, trust auth, user ``postgres``; removed on exit."""
    data_dir = Path(tempfile.mkdtemp(prefix="airloop-pg-"))
    data_dir.chmod(0o700)
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
    initdb = [_bin("initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]
    if os.geteuid() == 0:
        initdb = ["runuser", "-u", "postgres", "--", *initdb]
    subprocess.run(initdb, check=True, timeout=120, capture_output=True)
    server = PrivatePostgres(data_dir=data_dir, port=free_port())
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(data_dir, ignore_errors=True)
