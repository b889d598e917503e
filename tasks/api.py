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

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

from config.celery import results_ttl
from config.settings import Settings
from tasks import lost, runtime
from tasks.celery_app import app
from tasks.jobstore import JobRecord
from tasks.pipeline import job_canvas
from workers.errors import InputError, ServiceUnavailableError, VtrackError
from workers.job import JobSpec
from workers.service.scanning import VideoVersion
from workers.uris import LOCAL_SCHEME, parse_uri


class JobFailed(VtrackError):
    """The job ended in failure; the message is the job's error."""


class JobNotFound(VtrackError):
    """No job with that id is known (never submitted, or its record expired)."""


class JobLost(JobFailed):
    """The job's record was lost with Redis (restarted without persistence, or flushed):
    the job cannot finish. The message says what to do."""


def _results_reached(consequence: str = "") -> contextlib.AbstractContextManager[None]:
    settings = runtime.current().settings
    return lost.reaching(
        "result backend", "VTRACK_RESULT_BACKEND", settings.result_backend, consequence
    )


@dataclass(frozen=True)
class Job:
    """A handle on a submitted job: its id, its status, and a way to wait for its manifest."""

    id: str

    def status(self) -> JobRecord:
        """The job's record; :class:`JobLost` or :class:`JobNotFound` when it has none."""
        rt = runtime.current()
        with _results_reached():
            record = rt.jobs.get(self.id)
            if record is not None:
                return record
            if rt.redis_client is None:
                raise JobNotFound(f"no job {self.id}: unknown id")
            ttl = results_ttl(rt.settings)
            reason = lost.why_missing(rt.redis_client, self.id, ttl)
        message = lost.missing_message(self.id, reason, ttl)
        raise JobLost(message) if reason == lost.LOST else JobNotFound(message)

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
        meta = app.backend.get_task_meta(self.id)
        if meta.get("status") == "SUCCESS":
            return meta["result"]
        return None


def default_min_confidence(settings: Settings, backend: str) -> float:
    """``VTRACK_MIN_CONFIDENCE`` when set; otherwise the backend's own scale's default.

    The local backend's confidence is a mean detection score, lower than the cloud API's
    for the same object, so it has its own default (``VTRACK_LOCAL_MIN_CONFIDENCE``).
    """
    if backend == "local" and "min_confidence" not in settings.model_fields_set:
        return settings.local_min_confidence
    return settings.min_confidence


def make_spec(
    video_uri: str,
    *,
    annotations_uri: str | None = None,
    backend: str | None = None,
    min_confidence: float | None = None,
    min_frames: int | None = None,
    animation_format: str | None = None,
    job_id: str | None = None,
) -> JobSpec:
    """The job spec for a video with these options, defaults taken from the settings."""
    settings = runtime.current().settings
    # An unsupported scheme is refused here, before anything is queued.
    video_uri = normalized_uri(video_uri)
    if annotations_uri:
        annotations_uri = normalized_uri(annotations_uri)
    chosen_backend = backend or ("file" if annotations_uri else settings.backend)
    if chosen_backend == "file" and not annotations_uri:
        raise InputError("the file backend needs an annotation file (--annotations)")
    confidence = (
        default_min_confidence(settings, chosen_backend)
        if min_confidence is None
        else min_confidence
    )
    if not 0.0 <= confidence <= 1.0:
        raise InputError(f"min confidence must be between 0 and 1, not {confidence}")
    frames = settings.min_frames if min_frames is None else min_frames
    if frames < 1:
        raise InputError(f"min frames must be at least 1, not {frames}")
    return JobSpec(
        job_id=job_id or lost.new_job_id(),
        video_uri=video_uri,
        backend=chosen_backend,
        output_root=settings.output_root,
        annotation_root=settings.annotation_root,
        min_confidence=confidence,
        min_frames=frames,
        annotations_uri=annotations_uri,
        animation_format=animation_format or settings.animation_format,
        animation_frames=settings.animation_frames,
        animation_frame_ms=settings.animation_frame_ms,
        animation_max_width=settings.animation_max_width,
        summary_max_width=settings.summary_max_width,
        summary_max_height=settings.summary_max_height,
        max_video_bytes=settings.max_video_bytes or None,
        max_video_pixels=settings.max_video_pixels or None,
        max_video_seconds=settings.max_video_seconds or None,
        submitted_at=time.time(),
    )


def normalized_uri(uri: str) -> str:
    """``uri`` as stored in a job: local paths absolute, with no ``.`` or ``..`` left."""
    parsed = parse_uri(uri)
    if parsed.scheme == LOCAL_SCHEME:
        return os.path.normpath(parsed.path)
    return str(parsed)


def start_job(spec: JobSpec, version: VideoVersion | None = None) -> Job:
    """Record the job as queued and send its canvas to the broker (or run it, when eager).

    When a job for the same video is already in flight, that job is returned instead and
    nothing is started (``job.id != spec.job_id``). ``version`` is the video version the
    caller saw (scans pass it; it is recorded beside the manifest when the job completes).

    An unreachable result backend or broker raises :class:`ServiceUnavailableError` naming
    it; no job is left behind (a record already written is marked failed).
    """
    rt = runtime.current()
    claims = rt.claims()
    with _results_reached("nothing was started"):
        if claims is not None:
            in_flight = claims.claim(spec.video_uri, spec.job_id, version)
            if in_flight is not None:
                return Job(in_flight)
        try:
            if rt.redis_client is not None:
                lost.mark_epoch(rt.redis_client)
            rt.jobs.create(
                JobRecord(job_id=spec.job_id, video_uri=spec.video_uri, backend=spec.backend)
            )
        except BaseException:
            _release_claim(spec)
            raise
    try:
        with lost.reaching(
            "broker", "VTRACK_BROKER_URL", rt.settings.broker_url, "nothing was queued"
        ):
            job_canvas(spec).apply_async()
    except BaseException as exc:
        _not_started(spec, exc)
        raise
    return Job(spec.job_id)


def _release_claim(spec: JobSpec) -> None:
    """Give the video's claim back (the job will not run); never raises."""
    claims = runtime.current().claims()
    if claims is not None:
        with contextlib.suppress(Exception):
            claims.release(spec.video_uri, spec.job_id)


def _not_started(spec: JobSpec, exc: BaseException) -> None:
    """Undo what :func:`start_job` did for a job whose canvas could not be sent."""
    _release_claim(spec)
    if isinstance(exc, ServiceUnavailableError):
        with contextlib.suppress(Exception):
            runtime.current().jobs.update(
                spec.job_id, status="failed", stage="not queued", error=str(exc)
            )


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
