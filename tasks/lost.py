"""Telling a lost job from an unknown id, and naming an unreachable Redis.

A job record can be missing because the id was never a job, because the record expired
(records are kept ``config.celery.results_ttl``), or because Redis lost it (restarted
without persistence, or flushed). Job ids are time-ordered UUIDs (version 7), and the
job store's *epoch* (``SET NX``, no expiry, at the first submission into an empty Redis)
says since when that Redis has kept its records: a record missing for an id submitted
before the epoch, or with no epoch at all, was lost with Redis; one missing for an id
older than the records' lifetime expired; anything else is unknown (docs/operations.md,
"Lost jobs").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import redis
from kombu.exceptions import OperationalError

from tasks import keys
from tasks.job_ids import submitted_at
from tasks.redis_clients import describe
from workers.errors import ServiceUnavailableError
from workers.job import JobStatus

if TYPE_CHECKING:
    from config.settings import Settings
    from tasks.claims import Claims
    from tasks.jobstore import JobRecord, JobStore

# Clocks of the machines that submit jobs may differ by this much.
CLOCK_SLACK_SECONDS = 5.0

UNKNOWN = "unknown"
EXPIRED = "expired"
LOST = "lost"

REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError)


def mark_epoch(client: redis.Redis) -> None:
    """Note when this Redis started keeping job records, unless it already knows."""
    client.set(keys.JOBSTORE_EPOCH, repr(time.time()), nx=True)


def why_missing(client: redis.Redis, job_id: str, ttl_seconds: int) -> str:
    """Why ``job_id`` has no record: :data:`LOST`, :data:`EXPIRED` or :data:`UNKNOWN`."""
    submitted = submitted_at(job_id)
    if submitted is None or submitted > time.time() + CLOCK_SLACK_SECONDS:
        return UNKNOWN
    raw = client.get(keys.JOBSTORE_EPOCH)
    if raw is None or float(raw) > submitted + CLOCK_SLACK_SECONDS:
        return LOST
    if time.time() - submitted > ttl_seconds:
        return EXPIRED
    return UNKNOWN


def missing_message(job_id: str, reason: str, ttl_seconds: int) -> str:
    """One line for a user who asked about a job with no record: what happened, what to do."""
    if reason == LOST:
        return (
            f"job {job_id} was lost: Redis was restarted without persistence or flushed "
            "after it was submitted, and its record and queued tasks went with it; submit "
            "the video again (a video in a scanned folder or bucket is started again by "
            "the next scan)"
        )
    if reason == EXPIRED:
        return f"no job {job_id}: its record expired (records are kept {ttl_seconds}s)"
    return f"no job {job_id}: unknown id"


def stalled_after(settings: Settings) -> float:
    """Seconds without a change to its record after which a running job cannot finish.

    Every task of a job writes its record as it goes (stage, tracking and render
    progress, polls), and a message a worker took comes back to another one after the
    visibility timeout: a record unchanged for longer than that plus a whole task's run
    has no message left to move it (lost with a Redis that came back without its last
    writes). Shorter would fail jobs whose task is merely slow.
    """
    from config.celery import visibility_timeout

    return float(visibility_timeout(settings) + settings.task_time_limit)


def fail_if_stalled(
    jobs: JobStore, record: JobRecord, settings: Settings, claims: Claims | None
) -> JobRecord:
    """``record``, or, for a running job that stopped changing (:func:`stalled_after`),
    the record marked failed with one line saying to submit again, its claim released
    (without a failure, so the next scan starts the video again at once)."""
    limit = stalled_after(settings)
    # A queued job waits for a worker, however long that takes.
    if record.status not in JobStatus.WORKING or time.time() - record.updated_at <= limit:
        return record
    error = (
        f"job {record.job_id} stopped: no progress for over {limit:.0f}s, longer than any "
        "of its tasks can take, so its remaining work was lost (Redis restarted or failed "
        "over without its last writes); submit the video again (a video in a scanned "
        "folder or bucket is started again by the next scan)"
    )
    jobs.update(
        record.job_id, status=JobStatus.FAILED, stage="failed", error=error, error_kind="internal"
    )
    if claims is not None and record.video_uri:
        claims.release(record.video_uri, record.job_id)
    return jobs.get(record.job_id) or record


@contextmanager
def reaching(what: str, setting: str, url: str, consequence: str = "") -> Iterator[None]:
    """Turn a connection failure to ``url`` into one line saying the service cannot reach
    Redis, naming the URL (no password) and its setting, followed by ``consequence`` (what
    did or did not happen)."""
    try:
        yield
    except REDIS_DOWN as exc:
        # Imported here: kombu's URL helpers load its logging setup, which ``vtrack status``
        # would otherwise pay at every start for an error it rarely shows.
        from kombu.utils.url import maybe_sanitize_url

        raise ServiceUnavailableError(
            f"the service cannot reach Redis right now: the {what} at "
            f"{maybe_sanitize_url(url)} ({setting}): {describe(exc)}"
            + (f"; {consequence}" if consequence else "")
        ) from exc
