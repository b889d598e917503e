"""Celery's task events as Flower receives them, recorded by a process of their own.

:class:`EventRecorder` runs a Celery event receiver in a subprocess (so that this test
process holds no broker connection that later forked processes would inherit) and writes
each event's type and task id as a JSON line; :meth:`EventRecorder.last_states` gives each
task's state as a monitor would show it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.support.processes import stop_group
from tests.support.waiting import wait_for

_RECEIVER = """
import json, sys
from tasks.celery_app import app
out = open(sys.argv[1], "a", buffering=1)
def record(event):
    # The first event (a worker's heartbeat, every 2 s) proves the receiver's queue is bound.
    out.write(json.dumps({"type": event["type"], "uuid": event.get("uuid", "")}) + "\\n")
with app.connection() as connection:
    app.events.Receiver(connection, handlers={"*": record}).capture(limit=None, timeout=None)
"""

# Event type -> the state a monitor shows after it (celery.events.state's names).
STATES = {
    "task-received": "RECEIVED",
    "task-started": "STARTED",
    "task-progress": "PROGRESS",
    "task-retried": "RETRY",
    "task-succeeded": "SUCCESS",
    "task-failed": "FAILURE",
    "task-revoked": "REVOKED",
    "task-rejected": "REJECTED",
}
FINAL = {"SUCCESS", "FAILURE", "REVOKED", "REJECTED"}


class EventRecorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.process = subprocess.Popen(
            [sys.executable, "-c", _RECEIVER, str(path)],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> EventRecorder:
        """Once the first event arrives (a running worker sends a heartbeat every 2 s)."""

        def started() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError("the event receiver exited")
            return self.path.is_file() and bool(self.path.read_text().strip())

        wait_for(started, timeout, "the event receiver starting")
        return self

    def events(self) -> list[dict[str, str]]:
        lines = self.path.read_text().splitlines() if self.path.is_file() else []
        return [json.loads(line) for line in lines if line.strip()]

    def last_states(self) -> dict[str, str]:
        """Each task's state after its events in order; a final state is never undone."""
        states: dict[str, str] = {}
        for event in self.events():
            state = STATES.get(event["type"])
            if state and states.get(event["uuid"]) not in FINAL:
                states[event["uuid"]] = state
        return states

    def stop(self) -> None:
        stop_group(self.process)
