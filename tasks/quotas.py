"""Keeping every worker together under the Video Intelligence quota.

Each worker alone cannot know what the others send, so the count lives in Redis, shared
by all of them: a sliding window of request times (never twice the limit around a minute
boundary) and a sorted set of submission slots (e.g. job ids) scored by when they expire
(docs/gcp-backend.md, "Quota and rate limiting"). One Lua script checks and takes a place
in a single atomic step. Nothing here sleeps: each call answers how long to wait (0 = go
ahead, and the place is taken), and the task is re-queued with that countdown. Times come
from Redis's own clock so workers whose clocks disagree still share one window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks.keys import GCP_QUOTA_PREFIX, quota_keys

# KEYS: 1 request window (zset), 2 slots in flight (zset), 3 request sequence (string)
# ARGV: 1 window s, 2 max requests, 3 max in flight, 4 slot ttl s, 5 slot ('' = request
#       only), 6 wait when all slots are taken (s)
# Returns the seconds to wait as a string (Lua numbers would be truncated to integers).
_ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local window = tonumber(ARGV[1])
local max_requests = tonumber(ARGV[2])
local max_in_flight = tonumber(ARGV[3])
local slot_ttl = tonumber(ARGV[4])
local slot = ARGV[5]
local slots_full_wait = tonumber(ARGV[6])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if slot ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local held = redis.call('ZSCORE', KEYS[2], slot)
  if not held and redis.call('ZCARD', KEYS[2]) >= max_in_flight then
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    local until_expiry = tonumber(first[2]) - now
    return tostring(math.max(0.001, math.min(slots_full_wait, until_expiry)))
  end
end
if redis.call('ZCARD', KEYS[1]) >= max_requests then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(math.max(0.001, tonumber(oldest[2]) + window - now))
end
local sequence = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], now, sequence)
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
redis.call('EXPIRE', KEYS[3], math.ceil(window) + 1)
if slot ~= '' then
  redis.call('ZADD', KEYS[2], now + slot_ttl, slot)
  redis.call('EXPIRE', KEYS[2], math.ceil(slot_ttl) + 1)
end
return '0'
"""

# KEYS: 1 slots in flight; ARGV: 1 slot, 2 slot ttl s. Returns 1 when the slot was held.
_REFRESH = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local updated = redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
if updated == 1 then
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
end
return redis.call('ZSCORE', KEYS[1], ARGV[1]) and 1 or 0
"""


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """The shared budget.

    ``requests_per_window`` within ``window`` seconds: the project's request quota (60 a
    minute by default); set it a little under the real quota if other programs share the
    project. ``max_in_flight``: videos being annotated at once; more than the quota allows
    just makes the API queue or refuse them. ``slot_ttl``: how long a slot outlives its
    last poll; longer keeps slots of slow-polled jobs safe, shorter frees the slots of dead
    jobs sooner (it must exceed the longest wait between two polls). ``slots_full_wait``:
    the countdown when every slot is taken, since nobody can know when one frees up;
    shorter starts queued videos sooner at the cost of more checks.
    """

    requests_per_window: int = 60
    window: float = 60.0
    max_in_flight: int = 3
    slot_ttl: float = 600.0
    slots_full_wait: float = 15.0

    @classmethod
    def from_settings(cls, settings: Any) -> QuotaLimits:
        """The limits from ``VTRACK_GCP_REQUESTS_PER_MINUTE`` and ``VTRACK_GCP_MAX_IN_FLIGHT``."""
        return cls(
            requests_per_window=int(settings.gcp_requests_per_minute),
            window=60.0,
            max_in_flight=int(settings.gcp_max_in_flight),
        )

    def __post_init__(self) -> None:
        if self.requests_per_window < 1 or self.max_in_flight < 1:
            raise ValueError("requests_per_window and max_in_flight must be at least 1")
        if self.window <= 0 or self.slot_ttl <= 0 or self.slots_full_wait <= 0:
            raise ValueError("window, slot_ttl and slots_full_wait must be positive")


class SubmissionLimiter:
    """The quota of one project, shared through ``redis`` (a ``redis.Redis`` client).

    ``key_prefix`` names the keys; workers that share a quota must share the prefix.
    """

    def __init__(
        self, redis: Any, limits: QuotaLimits | None = None, key_prefix: str = GCP_QUOTA_PREFIX
    ) -> None:
        self._redis = redis
        self.limits = limits or QuotaLimits()
        self._requests_key, self._slots_key, self._sequence_key = quota_keys(key_prefix)
        self._acquire = redis.register_script(_ACQUIRE)
        self._refresh = redis.register_script(_REFRESH)

    def acquire_submission(self, slot: str) -> float:
        """Seconds to wait before submitting the video of ``slot``; 0 = submit now.

        On 0 a request is counted and ``slot`` holds a place in flight until released.
        Asking again for a slot already held (a retried submission) does not take a
        second place.
        """
        if not slot:
            raise ValueError("a submission needs a slot name (the job id)")
        return self._run_acquire(slot)

    def acquire_request(self) -> float:
        """Seconds to wait before any other API call (a poll); 0 = go ahead, counted."""
        return self._run_acquire("")

    def refresh(self, slot: str) -> bool:
        """Keep ``slot`` in flight for another ``slot_ttl``; False if it was not held."""
        held = self._refresh(keys=[self._slots_key], args=[slot, self.limits.slot_ttl])
        return bool(int(held))

    def release(self, slot: str) -> None:
        """Free ``slot``'s place (the operation ended, or the submission failed for good)."""
        self._redis.zrem(self._slots_key, slot)

    def in_flight(self) -> int:
        """How many slots are held now (expired ones are not counted)."""
        now = _redis_now(self._redis)
        return int(self._redis.zcount(self._slots_key, f"({now}", "+inf"))

    def _run_acquire(self, slot: str) -> float:
        limits = self.limits
        wait = self._acquire(
            keys=[self._requests_key, self._slots_key, self._sequence_key],
            args=[
                limits.window,
                limits.requests_per_window,
                limits.max_in_flight,
                limits.slot_ttl,
                slot,
                limits.slots_full_wait,
            ],
        )
        return float(wait)


def _redis_now(redis: Any) -> float:
    seconds, micros = redis.time()
    return seconds + micros / 1_000_000
