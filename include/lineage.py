"""Lineage facts recorded with every model: which code, spec and data produced it."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def code_commit() -> str:
    """The git commit of the running code (``AIRLOOP_CODE_COMMIT`` in images without .git)."""
    if commit := os.environ.get("AIRLOOP_CODE_COMMIT"):
        return commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return f"{commit}-dirty" if dirty.stdout.strip() else commit
