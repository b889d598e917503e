"""One owner for "is this video already done, or in flight?": claim, release, mark done, is done.

Every way a job starts asks the same :class:`Claims`; docs/operations.md ("One job per
video at a time") says who calls what, the keys (``vtrack:inflight:<video>``,
``vtrack:failed:<video>``, :mod:`tasks.keys`), their TTLs and when a stale claim is taken
over. Nothing here knows Celery: what a job's state is comes from the ``job_ended``
callable the caller gives.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence

import redis
from pydantic import Field

from tasks import keys
from workers.errors import StorageError
from workers.messages import Message
from workers.service import scanning
from workers.service.scanning import SourceStamp, VideoVersion
from workers.storage import ObjectStat, Storage
from workers.uris import parse_uri

log = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 3
# A claim whose job record does not exist yet is young: the record is written just after
# the claim. Older than this with no record, the job was lost (its record expired or the
# results were wiped) and the claim is stale.
CLAIM_GRACE_SECONDS = 120.0

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

# job id -> True when its job has ended (completed or failed), False while it runs, None
# when no record of it exists.
JobEnded = Callable[[str], bool | None]


def video_key(video_uri: str) -> str:
    """One spelling per video: ``clip.mp4``, ``./clip.mp4`` and ``file:///abs/clip.mp4`` agree."""
    return str(parse_uri(video_uri))


class Claim(Message):
    """The job that holds a video, since when, and (when known) the version it processes.

    ``raw``: the key's bytes as read, which a compare-and-set compares; never written.
    """

    job_id: str
    claimed_at: float = 0.0
    version: VideoVersion | None = None
    raw: bytes = Field(b"", exclude=True)

    def encode(self) -> bytes:
        data = self.model_dump(exclude={"version"} if self.version is None else None)
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Claim:
        return cls.model_validate({**json.loads(raw), "raw": raw})


class FailureNote(Message):
    """``vtrack:failed:<video uri>``: which job failed, why, and for which version."""

    job_id: str
    error: str
    version: VideoVersion


class Claims:
    """Claims on videos in one Redis database, and the stamps jobs leave in ``storage``.

    ``ttl_seconds`` must exceed the longest a job can run, or a second job may start for a
    video whose first job is merely slow; a longer TTL only delays the retry of a job that
    was lost without releasing its key. ``retry_failed_after``: how long a failed version
    is left alone (0: not at all).
    """

    def __init__(
        self,
        client: redis.Redis,
        storage: Storage,
        *,
        ttl_seconds: int,
        job_ended: JobEnded,
        retry_failed_after: int = 0,
        grace_seconds: float = CLAIM_GRACE_SECONDS,
    ) -> None:
        self._redis = client
        self._storage = storage
        self._job_ended = job_ended
        self.ttl_seconds = ttl_seconds
        self.retry_failed_after = retry_failed_after
        self.grace_seconds = grace_seconds
        self._delete_if = client.register_script(_COMPARE_AND_DELETE)
        self._set_if = client.register_script(_COMPARE_AND_SET)

    # --- The interface ------------------------------------------------------------------

    def is_done(self, video: ObjectStat, output_root: str, input_roots: Sequence[str] = ()) -> bool:
        """Whether ``output_root`` holds a manifest made from this version of ``video``."""
        return scanning.is_processed(self._storage, output_root, video, input_roots)

    def failed_recently(self, video: ObjectStat) -> bool:
        """Whether a job for this very version of ``video`` failed lately."""
        note = self.failure(video.uri)
        return note is not None and note.version.same_as(VideoVersion.of(video))

    def claim(self, video_uri: str, job_id: str, version: VideoVersion | None = None) -> str | None:
        """Claim the video for ``job_id``: None when claimed, else the id of the job in flight.

        ``version`` is the video version the caller saw (recorded in the stamp when the job
        completes). A claim left by a job that has ended, or lost, is taken over.
        """
        for _ in range(CLAIM_ATTEMPTS):
            holder = self._set_new(video_uri, job_id, version)
            if holder is None:
                return None
            if not self._is_stale(holder):
                return holder.job_id
            if self._take_over(video_uri, holder, job_id, version):
                log.warning("took over the stale claim of job %s on %s", holder.job_id, video_uri)
                return None
        raise StorageError(f"{video_uri}: could not claim it, its in-flight key keeps changing")

    def release(self, video_uri: str, job_id: str, error: str | None = None) -> None:
        """Give back ``job_id``'s claim (if it still holds it); ``error``: the job failed,
        and the failure of the claimed version is remembered."""
        if error is not None and self.retry_failed_after > 0:
            version = self._claimed_version(video_uri, job_id)
            if version is not None:
                note = FailureNote(job_id=job_id, error=error, version=version)
                key = keys.failed(video_key(video_uri))
                self._redis.set(key, note.model_dump_json(), ex=self.retry_failed_after)
        holder = self.holder(video_uri)
        if holder is None or holder.job_id != job_id:
            return
        self._delete_if(keys=[keys.inflight(video_key(video_uri))], args=[holder.raw])

    def mark_done(self, video_uri: str, job_id: str, output_root: str, manifest_uri: str) -> None:
        """Stamp the manifest with the version it was made from, then release the claim."""
        version = self._claimed_version(video_uri, job_id)
        if version is not None:
            stamp = SourceStamp(
                video_uri=video_uri,
                **version.model_dump(),
                job_id=job_id,
                manifest_uri=manifest_uri,
                recorded_at=time.time(),
            )
            scanning.write_stamp(self._storage, output_root, stamp)
        self._redis.delete(keys.failed(video_key(video_uri)))
        self.release(video_uri, job_id)

    # --- Reading the keys ---------------------------------------------------------------

    def holder(self, video_uri: str) -> Claim | None:
        """The claim on the video now, if any."""
        raw = self._redis.get(keys.inflight(video_key(video_uri)))
        if raw is None:
            return None
        try:
            return Claim.decode(raw)
        except (ValueError, KeyError, TypeError):
            return Claim(job_id="", claimed_at=0.0, raw=raw)  # unreadable: treated as stale

    def failure(self, video_uri: str) -> FailureNote | None:
        raw = self._redis.get(keys.failed(video_key(video_uri)))
        if raw is None:
            return None
        try:
            return FailureNote.model_validate_json(raw)
        except ValueError:  # pydantic's ValidationError too
            return None

    # --- Inside -------------------------------------------------------------------------

    def _set_new(self, video_uri: str, job_id: str, version: VideoVersion | None) -> Claim | None:
        """SET NX a claim for ``job_id``: None when set, else the claim that holds the key."""
        mine = Claim(job_id=job_id, claimed_at=time.time(), version=version)
        key = keys.inflight(video_key(video_uri))
        for _ in range(CLAIM_ATTEMPTS):  # a holder may release between our SET and our GET
            if self._redis.set(key, mine.encode(), nx=True, ex=self.ttl_seconds):
                return None
            holder = self.holder(video_uri)
            if holder is not None:
                return holder
        raise StorageError(f"{video_uri}: could not claim it, its in-flight key keeps changing")

    def _take_over(
        self, video_uri: str, stale: Claim, job_id: str, version: VideoVersion | None
    ) -> bool:
        """Replace ``stale`` by a claim for ``job_id``, atomically."""
        mine = Claim(job_id=job_id, claimed_at=time.time(), version=version)
        key = keys.inflight(video_key(video_uri))
        return bool(self._set_if(keys=[key], args=[stale.raw, mine.encode(), self.ttl_seconds]))

    def _is_stale(self, claim: Claim) -> bool:
        if not claim.job_id:
            return True
        ended = self._job_ended(claim.job_id)
        if ended is None:
            return time.time() - claim.claimed_at > self.grace_seconds
        return ended

    def _claimed_version(self, video_uri: str, job_id: str) -> VideoVersion | None:
        """The version the job was started for, or, when nobody recorded it, the video's now."""
        holder = self.holder(video_uri)
        if holder is not None and holder.job_id == job_id and holder.version is not None:
            return holder.version
        try:
            return VideoVersion.of(self._storage.stat(video_uri))
        except Exception as exc:  # the video may be gone; the job's outcome stands regardless
            log.warning("cannot stat %s to record its version: %s", video_uri, exc)
            return None
