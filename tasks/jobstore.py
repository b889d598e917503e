"""Job records: the status a user sees with ``vtrack status`` and ``Job.status()``.

A job is several tasks (annotate, poll, one render per object, assemble); no single Celery
task state tells where the whole job is. Each task writes the job's stage and progress
here instead: a Redis hash per job in the service, a dict in ``vtrack run``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from tasks import keys
from workers.job import JobStatus
from workers.messages import Message

if TYPE_CHECKING:  # vtrack run keeps its records in memory: it never loads the Redis client
    import redis

    from workers.job import Manifest

# Fields a task may no longer change once the job is cancelled.
CANCEL_FROZEN_FIELDS = ("status", "stage", "percent", "error")
# Most records one list call reads to filter by status.
LIST_SCAN_LIMIT = 5000

# HSET the field/value pairs of ARGV[2..] unless the job is cancelled (then its status,
# stage, percent and error stay), and renew the key's expiry (ARGV[1] seconds): atomic, so
# a task finishing as the job is cancelled cannot turn it back into "rendering".
_WRITE_SCRIPT = """
local cancelled = redis.call('HGET', KEYS[1], 'status') == '"cancelled"'
for i = 2, #ARGV, 2 do
  local name = ARGV[i]
  local frozen = name == 'status' or name == 'stage' or name == 'percent' or name == 'error'
  if not (cancelled and frozen) then
    redis.call('HSET', KEYS[1], name, ARGV[i + 1])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return cancelled and 1 or 0
"""


class JobRecord(Message):
    """Where a job is: its :class:`~workers.job.JobStatus`, and ``percent``, the progress of
    the stage. ``source`` says how it was started: cli, api, scan, event or web."""

    job_id: str
    video_uri: str = ""
    backend: str = ""
    status: JobStatus = JobStatus.QUEUED
    stage: str = "queued"
    percent: float = 0.0
    error: str | None = None
    # "input" when the job failed on what it was given (a missing file, not a video, bad
    # annotations), "internal" for anything else: the one the user can fix, and ours.
    error_kind: str | None = None
    objects_total: int = 0
    objects_done: int = 0
    manifest_uri: str | None = None
    summary_uri: str | None = None
    outputs: tuple[str, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0
    source: str = ""

    @property
    def finished(self) -> bool:
        return self.status in JobStatus.TERMINAL


class JobStore(Protocol):
    def create(self, record: JobRecord) -> None: ...

    def update(self, job_id: str, **changes: Any) -> None: ...

    def object_done(self, job_id: str) -> int: ...

    def tracking_progress(self, job_id: str, number: int, total: int, fraction: float) -> float:
        """Note how far segment ``number`` of ``total`` is; the whole tracking's fraction."""
        ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def ids(self, *, status: str | None = None) -> list[str]:
        """The ids of the jobs held (``status`` filters), newest first."""
        ...


def finished_fields(manifest: Manifest) -> dict[str, Any]:
    """The record's fields once ``manifest`` is written: its status and every output."""
    outputs = [
        uri
        for uri in (
            *(obj.animation_uri for obj in manifest.objects),
            *(obj.cell_uri for obj in manifest.objects),
            manifest.summary_uri,
            manifest.manifest_uri,
        )
        if uri is not None
    ]
    return {
        "status": manifest.status,
        "stage": "done",
        "percent": 100.0,
        "manifest_uri": manifest.manifest_uri,
        "summary_uri": manifest.summary_uri,
        "outputs": outputs,
        "error": "; ".join(manifest.errors) or None,
    }


def rendering_percent(done: int, total: int) -> float:
    return round(100.0 * done / total, 1) if total else 100.0


class RedisJobStore:
    """Job records as Redis hashes, one JSON value per field, expiring with the results."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._write_fields = client.register_script(_WRITE_SCRIPT)

    def create(self, record: JobRecord) -> None:
        now = time.time()
        record = record.model_copy(
            update={"created_at": record.created_at or now, "updated_at": now}
        )
        self._write(record.job_id, record.model_dump(mode="json"))
        with self._redis.pipeline() as pipe:
            pipe.zadd(keys.JOB_INDEX, {record.job_id: record.created_at})
            # Ids whose records have expired leave the index with them.
            pipe.zremrangebyscore(keys.JOB_INDEX, "-inf", now - self._ttl)
            pipe.execute()

    def update(self, job_id: str, **changes: Any) -> None:
        self._write(job_id, {**changes, "updated_at": time.time()})

    def ids(self, *, status: str | None = None) -> list[str]:
        ids = [
            raw.decode() for raw in self._redis.zrevrange(keys.JOB_INDEX, 0, LIST_SCAN_LIMIT - 1)
        ]
        if not status:
            return ids
        with self._redis.pipeline() as pipe:
            for job_id in ids:
                pipe.hget(keys.job(job_id), "status")
            statuses = pipe.execute()
        return [
            job_id
            for job_id, raw in zip(ids, statuses, strict=True)
            if raw is not None and json.loads(raw) == status
        ]

    def object_done(self, job_id: str) -> int:
        key = keys.job(job_id)
        done = int(self._redis.hincrby(key, "objects_done", 1))
        total = json.loads(self._redis.hget(key, "objects_total") or "0")
        self.update(
            job_id,
            stage=f"rendering {done} of {total} objects",
            percent=rendering_percent(done, total),
        )
        return done

    def tracking_progress(self, job_id: str, number: int, total: int, fraction: float) -> float:
        key = keys.job_segments(job_id)
        with self._redis.pipeline() as pipe:
            pipe.hset(key, str(number), fraction)
            pipe.expire(key, self._ttl)
            pipe.hvals(key)
            *_, values = pipe.execute()
        return min(1.0, sum(float(value) for value in values) / max(total, 1))

    def get(self, job_id: str) -> JobRecord | None:
        raw = self._redis.hgetall(keys.job(job_id))
        if b"job_id" not in raw:
            # Nothing, or only the fields a task of a lost job wrote after Redis lost the
            # record (its progress): no record either way.
            return None
        data = {key.decode(): json.loads(value) for key, value in raw.items()}
        return JobRecord.model_validate(data)

    def _write(self, job_id: str, values: dict[str, Any]) -> None:
        args: list[Any] = [self._ttl]
        for name, value in values.items():  # a tuple (outputs) is dumped as a JSON array
            args.extend((name, json.dumps(value)))
        self._write_fields(keys=[keys.job(job_id)], args=args)


class MemoryJobStore:
    """Job records in this process, for ``vtrack run``; ``listener`` sees every change."""

    def __init__(self, listener: Callable[[JobRecord], None] | None = None) -> None:
        self._records: dict[str, JobRecord] = {}
        self._segments: dict[str, dict[int, float]] = {}
        self._lock = threading.Lock()
        self._listener = listener

    def create(self, record: JobRecord) -> None:
        now = time.time()
        self._set(
            record.model_copy(update={"created_at": record.created_at or now, "updated_at": now})
        )

    def update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            current = self._records.get(job_id) or JobRecord(job_id=job_id)
            if "outputs" in changes:
                changes["outputs"] = tuple(changes["outputs"])
            if current.status == JobStatus.CANCELLED:
                changes = {k: v for k, v in changes.items() if k not in CANCEL_FROZEN_FIELDS}
            record = current.model_copy(update={**changes, "updated_at": time.time()})
        self._set(record)

    def ids(self, *, status: str | None = None) -> list[str]:
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: r.created_at, reverse=True)
        return [record.job_id for record in records if not status or record.status == status]

    def object_done(self, job_id: str) -> int:
        with self._lock:
            current = self._records.get(job_id) or JobRecord(job_id=job_id)
        done = current.objects_done + 1
        self.update(
            job_id,
            objects_done=done,
            stage=f"rendering {done} of {current.objects_total} objects",
            percent=rendering_percent(done, current.objects_total),
        )
        return done

    def tracking_progress(self, job_id: str, number: int, total: int, fraction: float) -> float:
        with self._lock:
            segments = self._segments.setdefault(job_id, {})
            segments[number] = fraction
            return min(1.0, sum(segments.values()) / max(total, 1))

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._records.get(job_id)

    def _set(self, record: JobRecord) -> None:
        with self._lock:
            self._records[record.job_id] = record
        if self._listener is not None:
            self._listener(record)
