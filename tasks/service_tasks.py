"""The service's own entry tasks: beat's scans and the HTTP trigger.

``vtrack.scan_source``: celery beat sends it for each ``VTRACK_SCAN_SOURCES`` entry on
``VTRACK_SCAN_SCHEDULE`` (:mod:`config.beat`); the scan itself is :mod:`tasks.scan`.

``vtrack.submit_video``, the HTTP trigger: one task that starts a whole job, sent by
Flower's ``POST /api/task/async-apply/vtrack.submit_video``; its result names the job
(docs/operations.md, "The HTTP trigger"). A caller that passes its own ``job_id`` (a
UUID) knows the job's id up front, unless a job for the video is already in flight (then
``reused`` is true and ``job_id`` is that job's).
"""

from __future__ import annotations

import logging
from typing import Any

from tasks.api import make_spec, start_job
from tasks.celery_app import app
from tasks.scan import scan_source
from workers.errors import VtrackError

log = logging.getLogger(__name__)


@app.task(name="vtrack.scan_source", throws=(VtrackError,))
def scan_source_task(source: str, max_jobs: int | None = None) -> dict[str, Any]:
    """Beat's entry: scan one source; the result lists the jobs started and why others were not.

    A source that cannot be listed (a refused bucket, a missing folder) is an expected
    error: one line in the worker's log, no traceback.
    """
    report = scan_source(source, max_jobs)
    log.info("%s", report.describe())
    return report.model_dump(mode="json")


@app.task(name="vtrack.submit_video")
def submit_video(
    video_uri: str,
    annotations_uri: str | None = None,
    backend: str | None = None,
    min_confidence: float | None = None,
    min_frames: int | None = None,
    animation_format: str | None = None,
    job_id: str | None = None,
) -> dict[str, Any]:
    """Start a job for ``video_uri`` (options as ``vtrack submit``); returns its job id.

    Bad input (an unsupported URI, a bad threshold) fails this task with a one-line
    message, before any job exists.
    """
    spec = make_spec(
        video_uri,
        annotations_uri=annotations_uri,
        backend=backend,
        min_confidence=min_confidence,
        min_frames=min_frames,
        animation_format=animation_format,
        job_id=job_id,
    )
    job = start_job(spec)
    return {"job_id": job.id, "video_uri": spec.video_uri, "reused": job.id != spec.job_id}
