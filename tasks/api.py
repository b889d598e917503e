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
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.celery import results_ttl
from tasks import lost, runtime, specs
from tasks.jobstore import JobRecord
from tasks.specs import default_min_confidence, make_spec
from workers.errors import ConfigurationError, ServiceUnavailableError, VtrackError
from workers.job import JobSpec, JobStatus
from workers.service.scanning import VideoVersion

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "Job",
    "JobFailed",
    "JobNotFound",
    "JobOutputsReplaced",
    "default_min_confidence",
    "get_job",
    "make_spec",
    "start_job",
    "submit",
]

log = logging.getLogger(__name__)

# ``list_jobs(status=RUNNING)``: the jobs not ended yet (JobStatus.UNFINISHED).
RUNNING = "running"


class JobFailed(VtrackError):
    """The job ended in failure; the message is the job's error."""


class JobNotFound(VtrackError):
    """No job with that id is known (never submitted, or its record expired)."""


class JobFinished(VtrackError):
    """The job has already ended: there is nothing to cancel."""


class JobOutputsReplaced(VtrackError):
    """The job completed, but the same video was processed again since and its outputs,
    manifest included, are now the later job's: the message names that job."""


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
        """The job's record: where the web app, ``vtrack status`` and this API all look.

        A completed job whose record has expired (or was lost with Redis) is still known
        to the catalog, which answers instead.
        """
        rt = runtime.current()
        with _results_reached():
            record = rt.jobs.get(self.id)
            if record is not None:  # a running job whose work was lost is failed here
                return lost.fail_if_stalled(rt.jobs, record, rt.settings, rt.claims())
            if not _catalog_absent(rt.settings):
                from tasks.catalog import catalog_record

                record = catalog_record(self.id)
                if record is not None:
                    return record
            if rt.redis_client is None:
                raise JobNotFound(f"no job {self.id}: unknown id")
            ttl = results_ttl(rt.settings)
            reason = lost.why_missing(rt.redis_client, self.id, ttl)
        message = lost.missing_message(self.id, reason, ttl)
        raise JobLost(message) if reason == lost.LOST else JobNotFound(message)

    def manifest(self) -> dict[str, Any] | None:
        """The job's manifest once it has completed (None before, or when it failed).

        The record is the job's truth while it runs, the manifest once it ends. None too when
        the manifest cannot be read, or is no longer this job's (the video was processed
        again since and its manifest rewritten)."""
        manifest = self._read_manifest(self.status())
        return manifest if manifest is not None and manifest.get("job_id") == self.id else None

    def cancel(self) -> JobRecord:
        """Cancel the job: mark it ``cancelled``, revoke its tasks, publish nothing more.

        The tasks are revoked by the job's stamp (every message of the job carries it), so
        no worker starts one of them again; a running task is not killed but stops itself
        at its next check of the record (within about a second while tracking or
        rendering), so it is never killed halfway through writing a file.

        Raises :class:`JobNotFound` for an unknown job, :class:`JobFinished` for one that
        has already ended.
        """
        rt = runtime.current()
        record = self.status()
        if record.finished:
            raise JobFinished(f"job {self.id} has already ended ({record.status})")
        # First the record: every task of the job checks it before doing anything.
        rt.jobs.update(self.id, status=JobStatus.CANCELLED, stage="cancelled", error=None)
        _revoke_tasks(self.id)
        claims = rt.claims()
        if claims is not None:
            claims.release(record.video_uri, self.id)
        for limiter in filter(None, (rt.limiter(name) for name in runtime.QUOTA_LIMITED_BACKENDS)):
            limiter.release(self.id)
        log.info("job %s cancelled", self.id)
        return self.status()

    def wait(self, timeout: float | None = None, interval: float = 0.5) -> dict[str, Any]:
        """Block until the job ends and return its manifest.

        Raises :class:`JobFailed` when the job failed, :class:`JobOutputsReplaced` when its
        manifest has since been rewritten by a later job for the same video, and
        ``TimeoutError`` after ``timeout`` (a manifest that cannot be read yet is waited for).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.status()
            if record.status == JobStatus.FAILED:
                raise JobFailed(f"job {self.id} failed: {record.error}")
            if record.status == JobStatus.CANCELLED:
                raise JobFailed(f"job {self.id} was cancelled")
            if record.finished:
                manifest = self._read_manifest(record)
                if manifest is not None and manifest.get("job_id") == self.id:
                    return manifest
                if manifest is not None:
                    raise JobOutputsReplaced(
                        f"job {self.id} completed, but its outputs were written again since by "
                        f"job {manifest.get('job_id')} (the same video processed again): "
                        f"{record.manifest_uri} is that job's manifest now"
                    )
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {record.stage} after {timeout:g}s")
            time.sleep(interval)

    @staticmethod
    def _read_manifest(record: JobRecord) -> dict[str, Any] | None:
        """The manifest at the completed record's ``manifest_uri``, whichever job's it is
        (None before, for a failed or cancelled job, or when it cannot be read)."""
        failed = record.status in (JobStatus.FAILED, JobStatus.CANCELLED)
        if not record.finished or failed or not record.manifest_uri:
            return None
        try:
            manifest = json.loads(runtime.current().storage.read_bytes(record.manifest_uri))
        except (VtrackError, ValueError):
            return None
        return manifest if isinstance(manifest, dict) else None


def start_job(spec: JobSpec, version: VideoVersion | None = None, source: str = "api") -> Job:
    """Record the job as queued and send its canvas to the broker.

    When a job for the same video is already in flight, that job is returned instead and
    nothing is started (``job.id != spec.job_id``). ``version`` is the video version the
    caller saw (scans pass it; it is recorded beside the manifest when the job completes).
    ``source`` says how the job was started (cli, api, scan, event or web), for job lists.

    An unreachable result backend or broker raises :class:`ServiceUnavailableError` naming
    it; no job is left behind (a record already written is marked failed).
    """
    from tasks.pipeline import job_canvas

    rt = runtime.current()
    with _results_reached("nothing was started"):
        claims = rt.claims()
        if claims is not None:
            in_flight = claims.claim(spec.video_uri, spec.job_id, version)
            if in_flight is not None:
                return Job(in_flight)
        try:
            if rt.redis_client is not None:
                lost.mark_epoch(rt.redis_client)
            rt.jobs.create(
                JobRecord(
                    job_id=spec.job_id,
                    video_uri=spec.video_uri,
                    backend=spec.backend,
                    source=source,
                )
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
                spec.job_id, status=JobStatus.FAILED, stage="not queued", error=str(exc)
            )


def submit(video_uri: str, *, source: str = "api", **options: Any) -> Job:
    """Enqueue ``video_uri`` (a local path, ``file://`` or ``gs://`` URI) and return its job.

    Options: ``annotations_uri`` (use an existing annotation file), ``backend`` (local,
    gcp or file; default ``VTRACK_BACKEND``), ``min_confidence``, ``min_frames``,
    ``animation_format`` (gif or webp). Needs a reachable broker and running workers.
    While a job for the same video is in flight, that job is returned instead of a new one.

    A local input that can never work (missing, a folder, outside ``VTRACK_INPUT_ROOTS``) or
    an unsupported URI scheme raises :class:`~workers.errors.InputError` at once, and no job
    is made.
    """
    spec = make_spec(video_uri, **options)
    refuse_unusable_inputs(spec)
    return start_job(spec, source=source)


def refuse_unusable_inputs(spec: JobSpec) -> None:
    """Raise :class:`~workers.errors.InputError` for local inputs that can never work
    (see :func:`tasks.specs.refuse_unusable_inputs`)."""
    rt = runtime.current()
    specs.refuse_unusable_inputs(spec, rt.settings, rt.storage)


def get_job(job_id: str) -> Job:
    return Job(job_id)


def list_jobs(
    *, status: str | None = None, offset: int = 0, limit: int = 50
) -> tuple[list[JobRecord], int]:
    """Job records newest first, and how many match: the jobs Redis still holds, then
    completed jobs only the catalog remembers (their records expired or were lost).

    ``status`` is a job status, or ``running`` for every job not ended yet (queued,
    annotating, rendering or assembling)."""
    rt = runtime.current()
    if status == RUNNING:
        running = {job_id for s in JobStatus.UNFINISHED for job_id in rt.jobs.ids(status=s)}
        held = [job_id for job_id in rt.jobs.ids() if job_id in running]
    else:
        held = rt.jobs.ids(status=status)
    records = [
        lost.fail_if_stalled(rt.jobs, record, rt.settings, rt.claims())
        for record in (rt.jobs.get(job_id) for job_id in held[: offset + limit])
        if record
    ]
    total = len(held)
    wanted = status in (None, JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS)
    if not wanted or _catalog_absent(rt.settings):
        return records[offset : offset + limit], total
    from tasks.catalog import current_catalog, indexed_record

    older: list[Any] = []
    try:
        catalog = current_catalog()
        total += catalog.count_jobs(status=status, excluding=held)
        if len(records) < offset + limit:  # the page reaches past what Redis holds
            known = set(held)
            older = [
                job
                for job in catalog.jobs(status=status, limit=offset + limit + len(known))
                if job.job_id not in known
            ]
    except Exception as exc:
        log.warning("catalog not readable: %s", exc)
    extra = [indexed_record(job) for job in older]
    records = sorted([*records, *extra], key=lambda r: r.created_at, reverse=True)
    return records[offset : offset + limit], total


def _catalog_absent(settings: Settings) -> bool:
    """Whether the catalog is a SQLite file not created yet: then it is neither opened nor
    created just to be read (and the database layer is not loaded)."""
    from workers.catalog.location import catalog_absent, catalog_url

    return catalog_absent(catalog_url(settings.catalog_url, settings.output_root))


def cancel_job(job_id: str) -> JobRecord:
    """Cancel the job ``job_id`` (see :meth:`Job.cancel`); returns its record."""
    return Job(job_id).cancel()


def _revoke_tasks(job_id: str) -> None:
    """Revoke every message stamped with ``job_id`` on every worker (no reply awaited).

    Not ``terminate``: a running task stops itself at its next check of the record. A
    worker that is down now never hears of it, but the tasks it would run later check the
    record when they start."""
    from tasks.celery_app import app
    from tasks.pipeline import JOB_STAMP

    try:
        app.control.revoke_by_stamped_headers({JOB_STAMP: [job_id]})
    except Exception as exc:  # the broker is away: the tasks check the record themselves
        log.warning("could not revoke the tasks of job %s: %s", job_id, exc)


# --- The rest of the job service the front ends use: entrypoints/ imports tasks.api (and
# tasks.scan, which builds on it) and the records, never the modules behind them
# (tests/unit/test_import_rules.py). Imported on first use, as before: `vtrack status`
# loads neither the catalog nor the in-process runner.
_ELSEWHERE = {
    "OperationBook": "tasks.vi_operations",  # the VI server's operations
    "OperationEntry": "tasks.vi_operations",
    "run_video": "tasks.inprocess",  # vtrack run: a whole job in this process
    "current_catalog": "tasks.catalog",
    "rebuild_catalog": "tasks.catalog",
    "new_job_id": "tasks.job_ids",
    "REDIS_DOWN": "tasks.lost",  # the errors of an unreachable Redis or broker
    "reaching": "tasks.lost",
    "describe_redis_error": "tasks.redis_clients:describe",
}

if TYPE_CHECKING:
    from tasks.catalog import current_catalog, rebuild_catalog
    from tasks.inprocess import run_video
    from tasks.job_ids import new_job_id
    from tasks.lost import REDIS_DOWN, reaching
    from tasks.redis_clients import describe as describe_redis_error
    from tasks.vi_operations import OperationBook, OperationEntry
    from workers.storage import Storage

__all__ += [
    "REDIS_DOWN",
    "OperationBook",
    "OperationEntry",
    "configure_service",
    "current_catalog",
    "describe_redis_error",
    "job_record",
    "new_job_id",
    "operation_book",
    "reaching",
    "rebuild_catalog",
    "run_video",
    "service_settings",
    "service_storage",
]


def __getattr__(name: str) -> Any:
    if name not in _ELSEWHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    module, _, attribute = _ELSEWHERE[name].partition(":")
    return getattr(import_module(module), attribute or name)


def service_settings() -> Settings:
    """The settings this process's job service runs with."""
    return runtime.current().settings


def service_storage() -> Storage:
    """The job service's storage: the input roots, the output root and buckets."""
    return runtime.current().storage


def configure_service(settings: Settings | None) -> None:
    """Run this process's job service with ``settings`` (None: from the environment, again)."""
    runtime.configure(None if settings is None else runtime.build_runtime(settings))


def job_record(job_id: str) -> JobRecord | None:
    """The job's record as it stands, None when there is none (never made, expired, lost)."""
    return runtime.current().jobs.get(job_id)


def operation_book(settings: Settings) -> OperationBook:
    """The VI server's operations, kept in the job service's Redis for as long as the jobs."""
    from tasks.vi_operations import OperationBook

    client = runtime.current().redis_client
    if client is None:
        raise ConfigurationError("the VI server needs Redis (VTRACK_RESULT_BACKEND)")
    return OperationBook(client, results_ttl(settings))
