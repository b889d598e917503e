"""A long-running ``vtrack`` command (``listen``, ``watch``) as a user runs it, for tests.

It runs in its own process group with its output in a log file, is ready once its log
shows a given line, and is stopped with SIGTERM (SIGKILL only if it hangs), by its pid.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.support.processes import stop_group
from tests.support.waiting import wait_for


class VtrackProcess:
    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, ready: str) -> None:
        self.name = args[0]
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", *args],
            cwd=REPO_ROOT,
            # A hung process dumps every thread's stack on SIGABRT (see stop()).
            env={**env, "PYTHONFAULTHANDLER": "1"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_for(ready)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> None:
        """Until ``text`` appears ``count`` times in the log; fails with the log otherwise."""

        def seen() -> bool:
            if self.log().count(text) >= count:
                return True
            assert self.process.poll() is None, f"vtrack {self.name} exited:\n{self.log()}"
            return False

        wait_for(seen, timeout, lambda: f"{count} x {text!r}:\n{self.log()}")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as an orchestrator stops it; the exit code."""
        code = stop_group(self.process, timeout=timeout, dump_stacks=True)
        self._log.close()
        return code
