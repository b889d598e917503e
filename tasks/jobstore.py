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
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Protocol

import redis

TERMINAL_STATUSES = frozenset({"completed", "completed_with_errors", "failed"})
KEY_PREFIX = "vtrack:job:"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """Where a job is. ``status`` is one of queued, annotating, rendering, assembling,
    completed, completed_with_errors or failed; ``percent`` is the progress of the stage."""

    job_id: str
    video_uri: str = ""
    backend: str = ""
    status: str = "queued"
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

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outputs"] = list(self.outputs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["outputs"] = tuple(values.get("outputs") or ())
        return cls(**values)


class JobStore(Protocol):
    def create(self, record: JobRecord) -> None: ...

    def update(self, job_id: str, **changes: Any) -> None: ...

    def object_done(self, job_id: str) -> int: ...

    def get(self, job_id: str) -> JobRecord | None: ...


def rendering_percent(done: int, total: int) -> float:
    return round(100.0 * done / total, 1) if total else 100.0


class RedisJobStore:
    """Job records as Redis hashes, one JSON value per field, expiring with the results."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds

    def _key(self, job_id: str) -> str:
        return f"{KEY_PREFIX}{job_id}"

    def create(self, record: JobRecord) -> None:
        now = time.time()
        record = replace(record, created_at=record.created_at or now, updated_at=now)
        self._write(record.job_id, record.to_dict())

    def update(self, job_id: str, **changes: Any) -> None:
        self._write(job_id, {**changes, "updated_at": time.time()})

    def object_done(self, job_id: str) -> int:
        key = self._key(job_id)
        done = int(self._redis.hincrby(key, "objects_done", 1))
        total = json.loads(self._redis.hget(key, "objects_total") or "0")
        self.update(
            job_id,
            stage=f"rendering {done} of {total} objects",
            percent=rendering_percent(done, total),
        )
        return done

    def get(self, job_id: str) -> JobRecord | None:
        raw = self._redis.hgetall(self._key(job_id))
        if b"job_id" not in raw:
            # Nothing, or only the fields a task of a lost job wrote after Redis lost the
            # record (its progress): no record either way.
            return None
        data = {key.decode(): json.loads(value) for key, value in raw.items()}
        return JobRecord.from_dict(data)

    def _write(self, job_id: str, values: dict[str, Any]) -> None:
        key = self._key(job_id)
        encoded = {
            name: json.dumps(list(value) if isinstance(value, tuple) else value)
            for name, value in values.items()
        }
        with self._redis.pipeline() as pipe:
            pipe.hset(key, mapping=encoded)
            pipe.expire(key, self._ttl)
            pipe.execute()


class MemoryJobStore:
    """Job records in this process, for ``vtrack run``; ``listener`` sees every change."""

    def __init__(self, listener: Callable[[JobRecord], None] | None = None) -> None:
        self._records: dict[str, JobRecord] = {}
        self._lock = threading.Lock()
        self._listener = listener

    def create(self, record: JobRecord) -> None:
        now = time.time()
        self._set(replace(record, created_at=record.created_at or now, updated_at=now))

    def update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            current = self._records.get(job_id) or JobRecord(job_id=job_id)
            if "outputs" in changes:
                changes["outputs"] = tuple(changes["outputs"])
            record = replace(current, **changes, updated_at=time.time())
        self._set(record)

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

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._records.get(job_id)

    def _set(self, record: JobRecord) -> None:
        with self._lock:
            self._records[record.job_id] = record
        if self._listener is not None:
            self._listener(record)
