"""One job per video at a time, and what a job leaves behind for later scans.

:func:`claim_video` is called before a job is started (by :func:`tasks.api.start_job`, so
by scans, ``vtrack submit``, ``submit()`` and the HTTP trigger alike): it returns the id
of the job already in flight for that video, if any. :func:`job_completed` and
:func:`job_failed` are called by the job's last task: they release the claim, and record
the video version the manifest was made from (completed) or that failed (failed).

Claims live in the result backend's Redis, next to the job records: a Redis restarted
without persistence loses both the queued messages and the claims, so the next scan
starts the lost jobs again (no manifest exists for them).
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from config.settings import Settings
from tasks import runtime
from tasks.celery_app import app
from workers.job import JobSpec
from workers.service import scanning
from workers.service.claims import Claim, InflightRegistry
from workers.service.scanning import SourceStamp, VideoVersion

log = logging.getLogger(__name__)

# A claim whose job record does not exist yet is young: the record is written just after
# the claim. Older than this with no record, the job was lost (its record expired or the
# results were wiped) and the claim is stale.
CLAIM_GRACE_SECONDS = 120.0

_lock = threading.Lock()
_registry: tuple[str, InflightRegistry] | None = None


def inflight_ttl(settings: Settings) -> int:
    """Longer than a job can take: waiting for annotations, then the tasks after it."""
    return settings.job_timeout + 4 * settings.task_time_limit


def registry() -> InflightRegistry:
    """This process's registry, on the result backend's Redis."""
    global _registry
    settings = runtime.current().settings
    with _lock:
        if _registry is None or _registry[0] != settings.result_backend:
            client = redis.Redis.from_url(settings.result_backend)
            _registry = (settings.result_backend, InflightRegistry(client, inflight_ttl(settings)))
        return _registry[1]


def enabled() -> bool:
    """Claims need Redis: ``vtrack run`` (eager, in one process) goes without."""
    return not app.conf.task_always_eager


def claim_video(spec: JobSpec, version: VideoVersion | None = None) -> str | None:
    """Claim ``spec``'s video for its job; the id of the job already in flight, if any.

    A claim left by a job that has ended (its record says completed or failed) or that
    was lost (no record long after the claim) is taken over.
    """
    if not enabled():
        return None
    reg = registry()
    holder = reg.claim(spec.video_uri, spec.job_id, version)
    if holder is None:
        return None
    if _is_stale(holder) and reg.take_over(spec.video_uri, holder, spec.job_id, version):
        log.warning("took over the stale claim of job %s on %s", holder.job_id, spec.video_uri)
        return None
    current = reg.holder(spec.video_uri)
    if current is None:  # released meanwhile: claim it now
        return claim_video(spec, version)
    return current.job_id


def release_claim(spec: JobSpec) -> None:
    """Give the claim back without running the job (the job could not be sent)."""
    if enabled():
        registry().release(spec.video_uri, spec.job_id)


def _is_stale(claim: Claim) -> bool:
    if not claim.job_id:
        return True
    record = runtime.current().jobs.get(claim.job_id)
    if record is None:
        return time.time() - claim.claimed_at > CLAIM_GRACE_SECONDS
    return record.finished


def _claimed_version(reg: InflightRegistry, video_uri: str, job_id: str) -> VideoVersion | None:
    """The version the job was started for, or, when nobody recorded it, the video's now."""
    holder = reg.holder(video_uri)
    if holder is not None and holder.job_id == job_id and holder.version is not None:
        return holder.version
    try:
        return VideoVersion.of(runtime.current().storage.stat(video_uri))
    except Exception as exc:  # the video may be gone; the job's outcome stands regardless
        log.warning("cannot stat %s to record its version: %s", video_uri, exc)
        return None


def job_completed(spec: JobSpec, manifest_uri: str) -> None:
    """Stamp the manifest with the video version it was made from, then release the claim.

    Never raises: the manifest is written and the job is done; at worst a later scan
    processes the video again. ``vtrack run`` (eager) is not the service: no stamp.
    """
    if not enabled():
        return
    try:
        rt = runtime.current()
        reg = registry()
        version = _claimed_version(reg, spec.video_uri, spec.job_id)
        if version is not None:
            stamp = SourceStamp(
                video_uri=spec.video_uri,
                version=version,
                job_id=spec.job_id,
                manifest_uri=manifest_uri,
                recorded_at=time.time(),
            )
            scanning.write_stamp(rt.storage, spec.output_root, stamp)
        reg.forget_failure(spec.video_uri)
        reg.release(spec.video_uri, spec.job_id)
    except Exception:
        log.exception("job %s: could not record its completion for scans", spec.job_id)


def job_failed(job_id: str, error: str) -> None:
    """Release the failed job's claim and note the failure, so scans wait before retrying."""
    if not enabled():
        return
    try:
        rt = runtime.current()
        record = rt.jobs.get(job_id)
        if record is None or not record.video_uri:
            return
        reg = registry()
        version = _claimed_version(reg, record.video_uri, job_id)
        if version is not None:
            reg.note_failure(
                record.video_uri, job_id, version, error, rt.settings.scan_retry_failed_after
            )
        reg.release(record.video_uri, job_id)
    except Exception:
        log.exception("job %s: could not release its in-flight claim", job_id)
