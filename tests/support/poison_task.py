"""A task that kills its own worker process on every delivery: a poison message, for tests.

Loaded only into workers started with ``--include tests.support.poison_task``. Each run
appends a line to ``runs_file`` before the process dies, so a test can count how many
times the message was really delivered to a process.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from tasks.celery_app import app

# Not under "vtrack.": it is no task of the product (tests/unit/test_celery_config.py).
KILL_OWN_PROCESS = "tests.kill_own_process"


@app.task(name=KILL_OWN_PROCESS, bind=True)
def kill_own_process(self: Any, runs_file: str) -> None:
    with Path(runs_file).open("a") as runs:
        runs.write(f"{os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)
