"""The VI server's operations, one small Redis key each beside the job's record.

What an ``AnnotateVideo`` request asked that the job does not keep (the input URI as the API
reports it, ``output_uri``, the start time) is stored under ``tasks.keys.vi_operation`` with
the job's lifetime, so any VI server process answers for any operation.
"""

from __future__ import annotations

from typing import Any

import redis

from tasks.keys import vi_operation
from workers.messages import Message


class OperationEntry(Message):
    """What the request asked, beside the job's own record."""

    job_id: str
    name: str
    input_uri: str  # as the API reports it
    output_uri: str = ""
    started_at: float = 0.0
    output_written: bool = False
    cancelled: bool = False
    progress: int = 0  # the highest progress reported: an operation's progress never goes back


class OperationBook:
    """The operations this service started, one small Redis key each, expiring with the jobs."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds

    def add(self, entry: OperationEntry) -> None:
        self._redis.set(vi_operation(entry.job_id), entry.model_dump_json(), ex=self._ttl)

    def get(self, job_id: str) -> OperationEntry | None:
        raw = self._redis.get(vi_operation(job_id))
        return None if raw is None else OperationEntry.model_validate_json(raw)

    def update(self, entry: OperationEntry, **changes: Any) -> OperationEntry:
        updated = entry.model_copy(update=changes)
        self._redis.set(vi_operation(entry.job_id), updated.model_dump_json(), keepttl=True)
        return updated

    def delete(self, job_id: str) -> bool:
        return bool(self._redis.delete(vi_operation(job_id)))

    def all(self) -> list[OperationEntry]:
        """Every operation still known, oldest first."""
        keys = list(self._redis.scan_iter(match=vi_operation("*"), count=500))
        raws = self._redis.mget(keys) if keys else []
        entries = [OperationEntry.model_validate_json(raw) for raw in raws if raw is not None]
        return sorted(entries, key=lambda entry: (entry.started_at, entry.job_id))
