"""Which videos have a job in flight, and which failed lately: small Redis keys with TTLs.

``vtrack:inflight:<video uri>`` is set with ``SET NX`` when a job is started for a video and
deleted when the job ends (completed or failed), so a second scan, or a second submit of
the same video, finds the running job instead of starting another. Its TTL bounds how long
a lost job (a worker killed before it could release the key) blocks the video.

``vtrack:failed:<video uri>`` remembers for a while that a job for this version of the
video failed, so a scan does not start a doomed job again at every beat.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from workers.errors import StorageError
from workers.service.scanning import VideoVersion
from workers.uris import parse_uri

INFLIGHT_PREFIX = "vtrack:inflight:"
FAILED_PREFIX = "vtrack:failed:"
CLAIM_ATTEMPTS = 3

# Delete or replace the key only when it still holds what the caller saw: a job that lost
# its key to a newer one must not release the newer job's key.
_COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_COMPARE_AND_SET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return false
"""


def video_key(video_uri: str) -> str:
    """One spelling per video: ``clip.mp4``, ``./clip.mp4`` and ``file:///abs/clip.mp4`` agree."""
    return str(parse_uri(video_uri))


@dataclass(frozen=True, slots=True)
class Claim:
    """The job that holds a video, since when, and (when known) the version it processes."""

    job_id: str
    claimed_at: float
    version: VideoVersion | None = None
    raw: bytes = b""

    def encode(self) -> bytes:
        data: dict[str, Any] = {"job_id": self.job_id, "claimed_at": self.claimed_at}
        if self.version is not None:
            data["version"] = self.version.to_dict()
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Claim:
        data = json.loads(raw)
        version = data.get("version")
        return cls(
            job_id=str(data["job_id"]),
            claimed_at=float(data.get("claimed_at", 0.0)),
            version=None if version is None else VideoVersion.from_dict(version),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class FailureNote:
    job_id: str
    error: str
    version: VideoVersion


class InflightRegistry:
    """In-flight claims and failure notes in one Redis database.

    ``ttl_seconds`` must exceed the longest a job can run, or a scan may start a second job
    for a video whose first job is merely slow; a longer TTL only delays the retry of a job
    that was lost without releasing its key.
    """

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self.ttl_seconds = ttl_seconds
        self._delete_if = client.register_script(_COMPARE_AND_DELETE)
        self._set_if = client.register_script(_COMPARE_AND_SET)

    # --- Claims -------------------------------------------------------------------------

    def claim(
        self, video_uri: str, job_id: str, version: VideoVersion | None = None
    ) -> Claim | None:
        """Claim the video for ``job_id``: None when claimed, else the claim that holds it."""
        mine = Claim(job_id=job_id, claimed_at=time.time(), version=version)
        key = INFLIGHT_PREFIX + video_key(video_uri)
        # A holder may release between our SET and our GET: then try again.
        for _ in range(CLAIM_ATTEMPTS):
            if self._redis.set(key, mine.encode(), nx=True, ex=self.ttl_seconds):
                return None
            holder = self.holder(video_uri)
            if holder is not None:
                return holder
        raise StorageError(f"{video_uri}: could not claim it, its in-flight key keeps changing")

    def take_over(
        self, video_uri: str, stale: Claim, job_id: str, version: VideoVersion | None = None
    ) -> bool:
        """Replace ``stale`` (a claim whose job has ended) by one for ``job_id``, atomically."""
        mine = Claim(job_id=job_id, claimed_at=time.time(), version=version)
        key = INFLIGHT_PREFIX + video_key(video_uri)
        return bool(self._set_if(keys=[key], args=[stale.raw, mine.encode(), self.ttl_seconds]))

    def holder(self, video_uri: str) -> Claim | None:
        raw = self._redis.get(INFLIGHT_PREFIX + video_key(video_uri))
        if raw is None:
            return None
        try:
            return Claim.decode(raw)
        except (ValueError, KeyError, TypeError):
            return Claim(job_id="", claimed_at=0.0, raw=raw)  # unreadable: treated as stale

    def release(self, video_uri: str, job_id: str) -> bool:
        """Delete the claim if ``job_id`` still holds it; True when something was deleted."""
        holder = self.holder(video_uri)
        if holder is None or holder.job_id != job_id:
            return False
        key = INFLIGHT_PREFIX + video_key(video_uri)
        return bool(self._delete_if(keys=[key], args=[holder.raw]))

    # --- Failures -----------------------------------------------------------------------

    def note_failure(
        self, video_uri: str, job_id: str, version: VideoVersion, error: str, ttl_seconds: int
    ) -> None:
        if ttl_seconds <= 0:
            return
        value = json.dumps({"job_id": job_id, "error": error, "version": version.to_dict()})
        self._redis.set(FAILED_PREFIX + video_key(video_uri), value, ex=ttl_seconds)

    def failure(self, video_uri: str) -> FailureNote | None:
        raw = self._redis.get(FAILED_PREFIX + video_key(video_uri))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return FailureNote(
                job_id=str(data["job_id"]),
                error=str(data["error"]),
                version=VideoVersion.from_dict(data["version"]),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def forget_failure(self, video_uri: str) -> None:
        self._redis.delete(FAILED_PREFIX + video_key(video_uri))
