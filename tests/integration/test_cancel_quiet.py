"""A cancelled job, as the operator sees it (issue 17): no ERROR and no traceback in the
worker's log, and every task of the job ends in a final state in the result backend (what
Flower and ``celery result`` read), none left STARTED or PROGRESS. Real Redis, a real
worker tracking a real video with the local backend."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import states

from tasks.api import Job, submit
from tests.conftest import WorkerProcess
from tests.support.cli import vtrack
from tests.support.task_events import FINAL as FINAL_EVENTS
from tests.support.task_events import EventRecorder
from tests.support.videos import write_test_video
from tests.support.waiting import stays, wait_for

pytestmark = pytest.mark.integration

FINAL = states.READY_STATES  # SUCCESS, FAILURE, REVOKED


@pytest.fixture(scope="module")
def slow_worker(
    redis_server: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A worker (2 processes) that tracks 12 s segments, so that a job's two segments are
    both running, each for several seconds, when the cancel comes."""
    log = tmp_path_factory.mktemp("cancel") / "worker.log"
    extra = {"VTRACK_SEGMENT_SECONDS": "12", "VTRACK_SEGMENT_OVERLAP": "1"}
    worker = WorkerProcess("annotate,render", 2, "cancel-worker", log, extra_env=extra)
    try:
        yield worker.wait_ready()
    finally:
        worker.stop()


@pytest.mark.parametrize("length_s", [22, 60])
def test_a_cancelled_job_logs_no_traceback_and_its_tasks_end_revoked(
    slow_worker: WorkerProcess, session_dirs: dict[str, Path], length_s: int, tmp_path: Path
) -> None:
    """22 s: two segments, both running, stop themselves at their next progress report.
    60 s: segments still queued are revoked by the job's stamp when a worker receives them
    (the chord joins its revoked members: Celery's ERROR before)."""
    from tasks.celery_app import app

    celery_worker = slow_worker
    video = write_test_video(
        session_dirs["input"] / f"long-{uuid.uuid4().hex[:6]}.mp4",
        frames=length_s * 10,
        fps=10,
        width=160,
        height=96,
    )
    log_start = len(celery_worker.log())
    events = EventRecorder(tmp_path / "events.jsonl").wait_ready()
    try:
        job = _cancel_a_tracking_job(video, app, celery_worker, log_start, events)
    finally:
        events.stop()
    # What Flower shows, from the same events: every task that started has ended.
    shown = events.last_states()
    started = {e["uuid"] for e in events.events() if e["type"] == "task-started"}
    # The job's first task (its id is its own, not the job's) is among them.
    log = celery_worker.log()[log_start:]
    annotate = set(re.findall(r"Task vtrack\.annotate\[([0-9a-f-]{36})\] received", log))
    assert started and annotate and annotate <= started and job.id not in started
    assert {t: shown[t] for t in started if shown[t] not in FINAL_EVENTS} == {}, shown


def _cancel_a_tracking_job(
    video: Path, app: Any, celery_worker: WorkerProcess, log_start: int, events: EventRecorder
) -> Job:
    job = submit(str(video), backend="local")

    def two_segments_running() -> bool:
        log = celery_worker.log()[log_start:]
        segments = set(re.findall(r"Task vtrack\.track_segment\[([0-9a-f-]{36})\] received", log))
        shown = events.last_states()
        return sum(shown.get(task) in ("STARTED", "PROGRESS") for task in segments) >= 2

    wait_for(two_segments_running, 90, "both worker processes tracking a segment")

    cancelled = vtrack("cancel", job.id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stderr.strip().splitlines() == [f"job {job.id} cancelled ({video})"]

    task_ids: set[str] = set()

    def every_task_ended() -> bool:
        log = celery_worker.log()[log_start:]
        task_ids.update(re.findall(r"Task vtrack\.\w+\[([0-9a-f-]{36})\] received", log))
        states_now = {task_id: app.AsyncResult(task_id).state for task_id in task_ids}
        return bool(task_ids) and all(state in FINAL for state in states_now.values())

    try:
        wait_for(every_task_ended, 90, "every task of the job in a final state", interval=1.0)
    except TimeoutError:
        left = {t: app.AsyncResult(t).state for t in task_ids}
        raise AssertionError(f"tasks not ended: {left}") from None

    def log_is_quiet() -> bool:
        log = celery_worker.log()[log_start:]
        return "Traceback" not in log and " ERROR" not in log and "ERROR/" not in log

    # Anything the worker would still log about the cancel comes within these seconds.
    stays(log_is_quiet, 2.0, "no traceback or ERROR line in the worker log")
    log = celery_worker.log()[log_start:]
    assert "Traceback" not in log, log[-4000:]
    assert not [line for line in log.splitlines() if " ERROR" in line or "ERROR/" in line], log
    revoked = [t for t in task_ids if app.AsyncResult(t).state == states.REVOKED]
    assert revoked, {t: app.AsyncResult(t).state for t in task_ids}
    assert Job(job.id).status().status == "cancelled"
    return job
