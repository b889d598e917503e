"""Records when each task of a benchmark's worker runs, for the orchestration overhead.

Loaded into a benchmark's worker with ``celery -A tasks worker --include bench.task_timing``;
with ``VTRACK_BENCH_TIMING_FILE`` set, every task appends one JSON line (name, id, start,
end: wall-clock seconds) when it ends, whatever its state (replaced tasks included).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from celery.signals import task_postrun, task_prerun

_started: dict[str, float] = {}


@task_prerun.connect
def _task_started(task_id: str = "", **_: Any) -> None:
    _started[task_id] = time.time()


@task_postrun.connect
def _task_ended(task_id: str = "", task: Any = None, state: str = "", **_: Any) -> None:
    path = os.environ.get("VTRACK_BENCH_TIMING_FILE")
    start = _started.pop(task_id, None)
    if not path or start is None:
        return
    line = json.dumps(
        {"name": getattr(task, "name", "?"), "id": task_id, "start": start, "end": time.time()}
    )
    with open(path, "a") as out:
        out.write(line + "\n")
