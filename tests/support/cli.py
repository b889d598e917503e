"""The real ``vtrack`` command line in a subprocess, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

from tests.conftest import REPO_ROOT


def vtrack(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``vtrack ARGS`` from the repository root; ``env`` replaces the environment."""
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", *args],
        cwd=REPO_ROOT,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
