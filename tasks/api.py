"""The Python API: enqueue a video, follow its job, get its manifest.

>>> from tasks.api import submit
>>> job = submit("gs://my-videos/street.mp4", min_confidence=0.8)
>>> job.id
'3f0c...'
>>> job.status().stage
'rendering 3 of 7 objects'
>>> manifest = job.wait(timeout=600)
>>> manifest["summary_uri"]
'gs://my-output/my-videos/street.mp4.summary_pct80_fr10.jpeg'
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tasks import runtime
from tasks.jobstore import JobRecord
from tasks.specs import default_min_confidence, make_spec
from workers.errors import VtrackError
from workers.job import JobSpec
from workers.service.scanning import VideoVersion

__all__ = [
    "Job",
    "JobFailed",
    "JobNotFound",
    "default_min_confidence",
    "get_job",
    "make_spec",
    "start_job",
    "submit",
]


class JobFailed(VtrackError):
    """The job ended in failure; the message is the job's error."""


class JobNotFound(VtrackError):
    """No job with that id is known (never submitted, or its record expired)."""


@dataclass(frozen=True)
class Job:
    """A handle on a submitted job: its id, its status, and a way to wait for its manifest."""

    id: str

    def status(self) -> JobRecord:
        record = runtime.current().jobs.get(self.id)
        if record is None:
            raise JobNotFound(f"no job {self.id} (unknown id, or its record has expired)")
        return record

    def wait(self, timeout: float | None = None, interval: float = 0.5) -> dict[str, Any]:
        """Block until the job ends and return its manifest.

        Raises :class:`JobFailed` when the job failed, ``TimeoutError`` after ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.status()
            if record.status == "failed":
                raise JobFailed(f"job {self.id} failed: {record.error}")
            if record.finished:
                manifest = self._manifest()
                if manifest is not None:
                    return manifest
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {record.stage} after {timeout:g}s")
            time.sleep(interval)

    def _manifest(self) -> dict[str, Any] | None:
        """The job's result, read without subscribing to it (no pub/sub left open)."""
        from tasks.celery_app import app

        meta = app.backend.get_task_meta(self.id)
        if meta.get("status") == "SUCCESS":
            return meta["result"]
        return None


def start_job(spec: JobSpec, version: VideoVersion | None = None) -> Job:
    """Record the job as queued and send its canvas to the broker (or run it, when eager).

    When a job for the same video is already in flight, that job is returned instead and
    nothing is started (``job.id != spec.job_id``). ``version`` is the video version the
    caller saw (scans pass it; it is recorded beside the manifest when the job completes).
    """
    from tasks.pipeline import job_canvas

    rt = runtime.current()
    claims = rt.claims()
    if claims is not None:
        in_flight = claims.claim(spec.video_uri, spec.job_id, version)
        if in_flight is not None:
            return Job(in_flight)
    try:
        rt.jobs.create(
            JobRecord(job_id=spec.job_id, video_uri=spec.video_uri, backend=spec.backend)
        )
        job_canvas(spec).apply_async()
    except BaseException:
        if claims is not None:
            claims.release(spec.video_uri, spec.job_id)
        raise
    return Job(spec.job_id)


def submit(video_uri: str, **options: Any) -> Job:
    """Enqueue ``video_uri`` (a local path, ``file://`` or ``gs://`` URI) and return its job.

    Options: ``annotations_uri`` (use an existing annotation file), ``backend`` (local,
    gcp or file; default ``VTRACK_BACKEND``), ``min_confidence``, ``min_frames``,
    ``animation_format`` (gif or webp). Needs a reachable broker and running workers.
    While a job for the same video is in flight, that job is returned instead of a new one.
    """
    return start_job(make_spec(video_uri, **options))


def get_job(job_id: str) -> Job:
    return Job(job_id)
