"""Job progress as Celery task state, so Flower shows where each task of a job is.

Tasks write their job's stage and percent to the job record (``vtrack status`` reads it).
Each worker process wraps its job store once, at start (``tasks.celery_app``'s
``build_process_clients``), so that each such write made inside a task also
becomes that task's custom ``PROGRESS`` state: stored in the result backend
(``update_state``, what ``AsyncResult(id).info`` and Flower's ``/api/task/result`` show)
and sent as a ``task-progress`` event (what Flower's task list and task page show,
with ``job_id``, ``stage`` and ``percent`` fields). One stage, two places, one writer.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_task

from tasks.jobstore import JobRecord, JobStore
from workers.job import JobStatus

log = logging.getLogger(__name__)

PROGRESS_STATE = "PROGRESS"
PROGRESS_EVENT = "task-progress"


class TaskProgressJobStore:
    """A :class:`JobStore` that also reports stage changes as the running task's state."""

    def __init__(self, inner: JobStore) -> None:
        self.inner = inner

    def create(self, record: JobRecord) -> None:
        self.inner.create(record)

    def get(self, job_id: str) -> JobRecord | None:
        return self.inner.get(job_id)

    def update(self, job_id: str, **changes: Any) -> None:
        self.inner.update(job_id, **changes)
        if "stage" in changes and changes.get("status") not in JobStatus.TERMINAL:
            record = self.inner.get(job_id)
            if record is not None:
                report_progress(record)

    def tracking_progress(self, job_id: str, number: int, total: int, fraction: float) -> float:
        return self.inner.tracking_progress(job_id, number, total, fraction)

    def ids(self, *, status: str | None = None) -> list[str]:
        return self.inner.ids(status=status)

    def object_done(self, job_id: str) -> int:
        done = self.inner.object_done(job_id)
        record = self.inner.get(job_id)
        if record is not None:
            report_progress(record)
        return done


def report_progress(record: JobRecord) -> None:
    """Make ``record``'s stage the current task's PROGRESS state (no-op outside a worker)."""
    task = current_task
    if not task or not task.request.id or record.finished:
        return
    meta = {"job_id": record.job_id, "stage": record.stage, "percent": record.percent}
    try:
        task.update_state(state=PROGRESS_STATE, meta=meta)
        if task.app.conf.worker_send_task_events:
            task.send_event(PROGRESS_EVENT, **meta)
    except Exception as exc:  # progress is for watching; the job goes on without it
        log.warning("could not report progress of task %s: %s", task.request.id, exc)
