"""The tasks: each takes its JSON arguments, calls one ``workers`` function, returns JSON.

Arguments are the job's spec and small JSON messages: URIs, ids and annotations, never
frames or arrays. Arguments typed as a message model (``spec: JobSpec``) are validated
into it by Celery on arrival (``pydantic=True``), and a model returned is dumped to JSON.
Progress goes to the job record (:mod:`tasks.jobstore`), which ``vtrack status`` and the
Python API read.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from functools import partial
from typing import Any

from celery import current_task, states
from celery.canvas import Signature
from celery.exceptions import ChordError, Ignore, Reject, Retry, TaskRevokedError
from celery.utils.log import get_task_logger

from config.celery import longest_countdown
from config.settings import get_settings
from tasks import catalog, local_backend, runtime
from tasks.celery_app import app
from tasks.deliveries import DeliveryCountedTask
from tasks.jobstore import finished_fields
from tasks.pipeline import CHORD_BACKENDS, render_canvas, stamped, tracking_canvas
from tasks.runtime import QUOTA_LIMITED_BACKENDS
from workers import steps
from workers.annotations.model import Segment, VideoAnnotation
from workers.annotators.base import Operation
from workers.errors import BackendError, InputError, TransientBackendError, VtrackError
from workers.job import JobSpec, JobStatus, KeptObject, Manifest, ObjectResult, RenderPlan
from workers.local.backend import LocalTrackingOptions
from workers.local.backend import track_segment as track_video_segment
from workers.media.video import VideoInfo
from workers.service.backoff import poll_delay, retry_delay

log = get_task_logger(__name__)

# Our own errors (bad input, a refused file, a backend's refusal) are expected: Celery logs
# them as one line with no traceback (``throws``), and job_failed records them. Anything
# else escaping a task is a bug and keeps its traceback in the worker's log.
EXPECTED_ERRORS = (VtrackError,)

# Transient backend errors are retried by Celery itself: a jittered backoff doubling from
# TRANSIENT_BACKOFF_SECONDS up to TRANSIENT_BACKOFF_MAX_SECONDS (kept below the broker's
# visibility timeout, see config.celery.longest_countdown), at most TRANSIENT_RETRIES in a
# row (a wait re-sends the task as a new message, whose retries start again at 0).
TRANSIENT_RETRIES = 8
TRANSIENT_BACKOFF_SECONDS = 2
TRANSIENT_BACKOFF_MAX_SECONDS = 60
TRANSIENT_RETRY: dict[str, Any] = {
    "autoretry_for": (TransientBackendError,),
    "retry_backoff": TRANSIENT_BACKOFF_SECONDS,
    "retry_backoff_max": max(
        1, int(min(TRANSIENT_BACKOFF_MAX_SECONDS, longest_countdown(get_settings())))
    ),
    "retry_jitter": True,
    "max_retries": TRANSIENT_RETRIES,
}


def _wait(task: Any, job_id: str, countdown: float, **changes: Any) -> Any:
    """End this run and send ``task`` again in ``countdown`` seconds, as a new message.

    For waits that are not failures: a poll of an operation still running, a wait for quota
    room. Celery's ``replace`` keeps the task's id and its place in the job's canvas; the
    new message starts at 0 retries, so ``max_retries`` bounds failures alone, and carries
    the job's stamp again (``replace`` does not). The countdown is capped below the broker's
    visibility timeout, or Redis would hand the held message to a second worker and the
    step would run twice.
    """
    capped = min(countdown, longest_countdown(runtime.current().settings))
    request = task.request
    again = task.signature(request.args, {**request.kwargs, **changes}, countdown=capped)
    return task.replace(stamped(again, job_id))


def stop_if_cancelled(job_id: str) -> None:
    """End this task quietly when its job was cancelled: nothing more is published.

    The cancel revokes the job's messages by their stamp but lets running tasks run: each
    task checks here when it starts, and the tracking and render loops on each progress
    report, so a running task stops within about a second of the cancel.

    ``Ignore`` stops the chain, and a chord whose header task ends so never runs its body
    (never sent, it shows nowhere). Celery stores no state for an ignored task, so the task
    is first recorded REVOKED in the result backend, and announced so to monitors (Flower),
    rather than left STARTED.
    """
    if not job_id:
        return
    record = runtime.current().jobs.get(job_id)
    if record is not None and record.status == JobStatus.CANCELLED:
        log.info("job %s was cancelled: nothing more to do", job_id)
        _announce_revoked(f"job {job_id} cancelled")
        raise Ignore()


def _announce_revoked(reason: str) -> None:
    """Store the running task as REVOKED in the result backend and send the ``task-revoked``
    event monitors (Flower) read, as a worker would for a revoked message; never raises."""
    request = current_task.request if current_task is not None else None
    if request is None or not request.id:
        return
    try:
        error = TaskRevokedError(reason)
        app.backend.store_result(request.id, error, states.REVOKED, request=request)
        if app.conf.worker_send_task_events:
            with app.events.default_dispatcher() as dispatcher:
                dispatcher.send(
                    "task-revoked", uuid=request.id, terminated=False, signum=None, expired=False
                )
    except Exception as exc:  # the result backend is down: the task still stops
        log.warning("could not record task %s as revoked: %s", request.id, exc)


class StoppedChord(logging.Filter):
    """Celery's Redis backend logs an ERROR with a traceback when a chord's join meets a
    member that failed or was revoked. Neither is a fault of the join: a member's failure is
    recorded on its job, and logged, where it happened (``JobTask``), and a revoked member
    is a cancel at work. So the join's report is one INFO line, naming the chord and the
    member's error. A failure of the join itself (not a ChordError) keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, ChordError):
            return True
        group = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg, record.args = "chord %s stopped: %s", (group, exc)
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


logging.getLogger("celery.backends.redis").addFilter(StoppedChord())


class JobTask(DeliveryCountedTask):  # type: ignore[misc]
    """A task of a job: its failure is recorded on the job where it happens.

    Recorded as the exception leaves the task, not in ``on_failure``: Celery calls
    ``on_failure`` after storing the failure, and storing the failure of a chord's last
    part runs the chord's error callback (``job_failed``) first, in this process, with
    Celery's ChordError wrapper instead of the task's own error. Retries, waits and
    replacements (``Retry``, ``Ignore``) are not failures.
    """

    throws = EXPECTED_ERRORS

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except (Retry, Ignore, Reject):
            raise
        except Exception as exc:
            if self.request.id and self.request.delivery_info is not None:  # in a worker
                self._record(exc, args, kwargs)
            raise

    def _record(self, exc: Exception, args: Any, kwargs: Any) -> None:
        spec = kwargs.get("spec") or next(
            (arg for arg in args if isinstance(arg, dict) and "job_id" in arg), {}
        )
        job_id = kwargs.get("job_id") or spec.get("job_id")
        try:
            if job_id:
                record_failure(job_id, exc)
        except Exception as error:  # Redis away: the job's error callback records it later
            log.warning("job %s: failure not recorded yet: %s", job_id, error)


# A task of a job: its failure recorded (JobTask), its model arguments validated (pydantic).
job_task = partial(app.task, base=JobTask, bind=True, pydantic=True)


@job_task(name="vtrack.annotate", acks_late=False, **TRANSIENT_RETRY)
def annotate(self: Any, spec: JobSpec) -> dict[str, Any]:
    """Start the backend's annotation of the video; returns the operation to poll (as JSON)
    or, for the ``local`` backend, sends the tracking chord.

    Not acknowledged late: starting a cloud operation twice would be billed twice.
    Backends with a shared quota wait here, re-sent, until the quota has room.
    """
    stop_if_cancelled(spec.job_id)
    rt = runtime.current()
    limiter = rt.limiter(spec.backend)
    if limiter is not None:
        wait = limiter.acquire_submission(spec.job_id)
        if wait > 0:
            rt.jobs.update(spec.job_id, stage=f"waiting for {spec.backend} quota")
            return _wait(self, spec.job_id, wait + random.uniform(0, 1))
    rt.jobs.update(
        spec.job_id, status=JobStatus.ANNOTATING, stage="starting annotation", percent=0.0
    )
    try:
        operation = steps.start_annotation(spec, rt.annotator(spec.backend), rt.storage)
    except TransientBackendError:
        raise  # retried by Celery (TRANSIENT_RETRY); the quota slot stays held meanwhile
    except Exception:
        if limiter is not None:
            limiter.release(spec.job_id)
        raise
    rt.jobs.update(spec.job_id, stage=f"annotating with the {spec.backend} backend")
    if spec.backend in CHORD_BACKENDS:  # our own work: a chord of tasks, nothing to poll
        return _send(self, tracking_canvas(spec, operation.model_dump(mode="json")), spec.job_id)
    return operation.model_dump(mode="json")


@job_task(name="vtrack.poll", **TRANSIENT_RETRY)
def poll(self: Any, operation: Operation, spec: JobSpec, checks: int = 0) -> Any:
    """Check the operation; re-send with a countdown until done, then fan out the renders.

    ``checks`` counts the answers that said "still running": the wait before the next check
    grows with it alone, so transient errors in between do not lengthen later waits.
    """
    stop_if_cancelled(spec.job_id)
    rt = runtime.current()
    if spec.submitted_at and time.time() - spec.submitted_at > rt.settings.job_timeout:
        raise BackendError(
            f"annotation did not finish within {rt.settings.job_timeout}s (VTRACK_JOB_TIMEOUT)"
        )
    limiter = rt.limiter(operation.backend)
    if limiter is not None:
        limiter.refresh(spec.job_id)
        wait = limiter.acquire_request()
        if wait > 0:
            return _wait(self, spec.job_id, wait + random.uniform(0, 1))
    status = rt.annotator(operation.backend).check(
        operation
    )  # TransientBackendError: retried by Celery
    if not status.done:
        percent = status.progress_percent or 0.0
        stage = status.detail or f"annotating ({percent:.0f}%)"
        rt.jobs.update(spec.job_id, stage=stage, percent=percent)
        delay = poll_delay(checks, rt.settings.poll_initial_delay, rt.settings.poll_max_delay)
        return _wait(self, spec.job_id, delay, checks=checks + 1)
    if limiter is not None:
        limiter.release(spec.job_id)
    if status.annotation is None:
        raise BackendError(f"the {operation.backend} backend finished without annotations")
    # The Google API writes the annotation JSON itself when given a gs:// output URI.
    publish = not operation.data.get("api_output_uri")
    return _fan_out_renders(self, spec, status.annotation, publish_annotation=publish)


def _fan_out_renders(
    task: Any,
    spec: JobSpec,
    annotation: VideoAnnotation,
    publish_annotation: bool = True,
    info: VideoInfo | None = None,
) -> dict[str, Any]:
    """Plan the render (objects and frames to draw) and send its chord."""
    rt = runtime.current()
    plan = steps.plan_render(
        spec, annotation, rt.storage, publish_annotation=publish_annotation, info=info
    )
    total = len(plan.kept)
    stop_if_cancelled(spec.job_id)
    rt.jobs.update(
        spec.job_id,
        status=JobStatus.RENDERING,
        stage=f"rendering 0 of {total} objects",
        percent=0.0,
        objects_total=total,
        objects_done=0,
    )
    return _send(task, render_canvas(spec, plan), spec.job_id)


def _send(task: Any, canvas: Signature, job_id: str) -> dict[str, Any]:
    """Send ``canvas``, the job's next chord, from ``task``, which then ends; what it sent.

    The chord's body gets an id made from ``task``'s: ``task`` run again (its process killed
    after the send, before the ack) sends the body under the same id, and a delivery of it
    after its run ended is not run again (:mod:`tasks.deliveries`).
    """
    body = getattr(canvas, "body", canvas)
    body_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{task.request.id}/{body.task}"))
    canvas.apply_async(task_id=body_id)
    return {"job_id": job_id, "sent": body.task, "task_id": body_id}


@job_task(name="vtrack.stitch")
def stitch(
    self: Any, results: list[dict[str, Any]], spec: JobSpec, operation: Operation
) -> dict[str, Any]:
    """Join the segments' tracks across their boundaries, then fan out the renders."""
    runtime.current().jobs.update(spec.job_id, stage="stitching segments", percent=100.0)
    annotation = local_backend.stitch_operation(operation, results)
    info = VideoInfo.model_validate(operation.data["video"])
    return _fan_out_renders(self, spec, annotation, info=info)


@job_task(name=local_backend.TRACK_SEGMENT)
def track_segment(
    self: Any,
    video_uri: str,
    segment: dict[str, Any],
    options: LocalTrackingOptions,
    job_id: str = "",
    number: int = 1,
    total: int = 1,
) -> dict[str, Any]:
    """Detect and track the objects of one time segment (the local backend's unit of work)."""
    stop_if_cancelled(job_id)
    rt = runtime.current()
    progress = (
        local_backend.SegmentProgress(
            rt.jobs, job_id, number, total, after_report=lambda: stop_if_cancelled(job_id)
        )
        if job_id
        else None
    )
    with rt.storage.local_copy(video_uri, max_bytes=rt.settings.max_video_bytes or None) as path:
        annotation = track_video_segment(
            path,
            Segment.from_dict(segment),
            options,
            input_uri=video_uri,
            progress=progress,
        )
    return annotation.to_dict()


@job_task(name="vtrack.render_batch")
def render_batch(self: Any, spec: JobSpec, batch: list[dict[str, Any]]) -> list[Any]:
    """Render a batch of objects from one decode pass; failures come back as failed results.

    Celery validates a model argument, not a list of them: the batch is validated here.
    """
    stop_if_cancelled(spec.job_id)
    rt = runtime.current()
    results = steps.render_kept_objects(
        spec,
        [KeptObject.model_validate(kept) for kept in batch],
        rt.storage,
        on_done=lambda _: _object_done(rt, spec.job_id),
    )
    return [result.model_dump(mode="json") for result in results]


def _object_done(rt: runtime.Runtime, job_id: str) -> None:
    """Count a rendered object on the job's record; stop the batch if the job was cancelled."""
    rt.jobs.object_done(job_id)
    stop_if_cancelled(job_id)


@job_task(name="vtrack.assemble_summary")
def assemble_summary(
    self: Any, results: list[list[dict[str, Any]]], spec: JobSpec, plan: RenderPlan
) -> Manifest:
    """Build the summary grid and write the manifest; the manifest (as JSON) is the task's
    result. A job cancelled meanwhile writes neither (its record is checked right before
    each), nor its catalog row."""
    stop_if_cancelled(spec.job_id)
    rt = runtime.current()
    rt.jobs.update(spec.job_id, status=JobStatus.ASSEMBLING, stage="assembling the summary")
    manifest = steps.assemble_manifest(
        spec,
        plan,
        [ObjectResult.model_validate(result) for batch in results for result in batch],
        rt.storage,
        before_write=lambda: stop_if_cancelled(spec.job_id),
    )
    _mark_done(rt, spec, manifest.manifest_uri)
    record_completed(manifest)  # never fails the job; retried when the database is down
    rt.jobs.update(spec.job_id, **finished_fields(manifest))
    return manifest


# A catalog write that failed at a job's completion is retried by its own task, with a
# jittered backoff from RETRY_BASE_SECONDS up to RETRY_CAP_SECONDS: MAX_RETRIES make up to
# about an hour of retries; after that, `vtrack catalog rebuild` records it.
RECORD_IN_CATALOG = "vtrack.record_in_catalog"
RETRY_BASE_SECONDS = 5
RETRY_CAP_SECONDS = 300
MAX_RETRIES = 15


def record_completed(manifest: Manifest) -> bool:
    """Record a completed job; on failure, schedule retries and return False. Never raises."""
    try:
        catalog.current_catalog().record(manifest)
        return True
    except Exception as exc:
        log.warning(
            "job %s: catalog not written (%s); retrying in the background",
            manifest.job_id,
            catalog.first_line(exc),
        )
    try:
        record_in_catalog.apply_async(
            args=(manifest.manifest_uri, manifest.job_id),
            countdown=retry_delay(0, RETRY_BASE_SECONDS, RETRY_CAP_SECONDS),
        )
    except Exception as exc:
        log.warning(
            "job %s: catalog retry not scheduled: %s", manifest.job_id, catalog.first_line(exc)
        )
    return False


class CatalogNotWritten(VtrackError):
    """The catalog database could not be written: retried, then one line in the log."""


@app.task(
    name=RECORD_IN_CATALOG,
    autoretry_for=(CatalogNotWritten,),
    retry_backoff=RETRY_BASE_SECONDS,
    retry_backoff_max=RETRY_CAP_SECONDS,
    retry_jitter=True,
    max_retries=MAX_RETRIES,
    throws=(CatalogNotWritten,),
)
def record_in_catalog(manifest_uri: str, job_id: str) -> dict[str, Any]:
    """Record the manifest at ``manifest_uri`` in the catalog, retried with backoff."""
    rt = runtime.current()
    try:
        manifest = Manifest.model_validate(json.loads(rt.storage.read_bytes(manifest_uri)))
        if manifest.job_id != job_id:  # the video was processed again since: nothing to do
            return {"job_id": job_id, "recorded": False}
        catalog.current_catalog().record(manifest)
    except Exception as exc:
        raise CatalogNotWritten(
            f"job {job_id}: catalog not written ({catalog.first_line(exc)}); "
            "if it still fails, `vtrack catalog rebuild` records it"
        ) from exc
    return {"job_id": job_id, "recorded": True}


@app.task(name="vtrack.job_failed")
def job_failed(request: Any, exc: BaseException, traceback: Any, job_id: str) -> None:
    """Error callback of the job's canvas: the backstop for a failure no task recorded.

    A task's own failure is recorded as it leaves the task (``JobTask``); a hard time limit
    or a killed process is failed by the worker's main process, where the task never ends.

    A chord that meets a member revoked by a cancel ends here too (the job stays cancelled).
    """
    record_failure(job_id, exc)


def record_failure(job_id: str, exc: BaseException) -> None:
    """Record the job failed where users look, once; release its quota slot and claim.

    One line in the worker's log: a warning for expected errors (bad input, a backend's
    refusal), an error for anything else (whose traceback Celery logged with the task).
    A job already failed or cancelled (a cancel stops its tasks) is left as it is.
    """
    rt = runtime.current()
    record = rt.jobs.get(job_id)
    if record is not None and record.status in (JobStatus.CANCELLED, JobStatus.FAILED):
        return
    error = steps.describe_error(exc)
    if isinstance(exc, TransientBackendError):
        error = f"{error} (still failing after {TRANSIENT_RETRIES} retries)"
    level = logging.WARNING if isinstance(exc, EXPECTED_ERRORS) else logging.ERROR
    log.log(level, "job %s failed: %s", job_id, error)
    for limiter in filter(None, (rt.limiter(name) for name in QUOTA_LIMITED_BACKENDS)):
        limiter.release(job_id)
    _release_failed(rt, job_id, error)
    rt.jobs.update(
        job_id,
        status=JobStatus.FAILED,
        stage="failed",
        error=error,
        error_kind="input" if isinstance(exc, InputError) else "internal",
    )


def _mark_done(rt: runtime.Runtime, spec: JobSpec, manifest_uri: str) -> None:
    """Stamp the manifest with the video version for scans and events; release the claim.

    Never raises: the manifest is written and the job is done; at worst a later scan
    processes the video again.
    """
    claims = rt.claims()
    if claims is None:
        return
    try:
        claims.mark_done(spec.video_uri, spec.job_id, spec.output_root, manifest_uri)
    except Exception:
        log.exception("job %s: could not record its completion for scans", spec.job_id)


def _release_failed(rt: runtime.Runtime, job_id: str, error: str) -> None:
    """Release the failed job's claim and note the failure, so scans wait before retrying."""
    claims = rt.claims()
    record = rt.jobs.get(job_id)
    if claims is None or record is None or not record.video_uri:
        return
    try:
        claims.release(record.video_uri, job_id, error=error)
    except Exception:
        log.exception("job %s: could not release its in-flight claim", job_id)
