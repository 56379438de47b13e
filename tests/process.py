"""Running a command in a child process the way the tests do: output captured as text, a timeout."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def run(argv: Sequence[str | Path], *, timeout: float = 60, **options: Any) -> subprocess.CompletedProcess[str]:
    """``argv`` in a child process (``options``: ``cwd``, ``env``...); a non-zero exit does not raise."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **options)


def run_ok(argv: Sequence[str | Path], *, timeout: float = 60, **options: Any) -> subprocess.CompletedProcess[str]:
    """:func:`run`, asserting the command exited 0 (the message is the end of its stderr)."""
    proc = run(argv, timeout=timeout, **options)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc
