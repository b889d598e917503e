"""The shared Video Intelligence quota, against the real Redis on 127.0.0.1 (DB 15).

Each test uses its own random key prefix and deletes its keys afterwards. Waits are kept
to about two seconds by giving the limiter short windows and TTLs: long enough that a
loaded machine pausing this process for over a second does not empty a window early.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import redis

from tasks.quotas import QuotaLimits, SubmissionLimiter
from tests.support.waiting import stays

REDIS_HOST = os.environ.get("VTRACK_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("VTRACK_TEST_REDIS_PORT", "6379"))
LIMITER_DB = 15


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=LIMITER_DB, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("CI"):
            pytest.fail(f"no Redis at {REDIS_HOST}:{REDIS_PORT}")
        pytest.skip(f"no Redis at {REDIS_HOST}:{REDIS_PORT}")
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    name = f"vtrack-test:{uuid.uuid4().hex}"
    yield name
    keys = list(redis_client.scan_iter(f"{name}:*"))
    if keys:
        redis_client.delete(*keys)


def limiter(client: redis.Redis, prefix: str, **limits: float) -> SubmissionLimiter:
    return SubmissionLimiter(client, QuotaLimits(**limits), key_prefix=prefix)  # type: ignore[arg-type]


def test_requests_beyond_the_window_limit_wait_until_the_oldest_leaves(
    redis_client: redis.Redis, prefix: str
) -> None:
    quota = limiter(redis_client, prefix, requests_per_window=3, window=60.0)
    assert [quota.acquire_request() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = quota.acquire_request()
    assert 59.0 < wait <= 60.0
    # A refused request is not counted: the wait does not grow.
    assert quota.acquire_request() <= wait


def test_window_slides_so_requests_are_allowed_again(
    redis_client: redis.Redis, prefix: str
) -> None:
    window = 2.0  # the three requests below must fall inside it, however loaded the machine
    quota = limiter(redis_client, prefix, requests_per_window=2, window=window)
    assert quota.acquire_request() == 0.0
    assert quota.acquire_request() == 0.0
    wait = quota.acquire_request()
    assert 0.0 < wait <= window
    time.sleep(wait + 0.05)
    assert quota.acquire_request() == 0.0


def test_videos_in_flight_are_capped_and_freed_on_release(
    redis_client: redis.Redis, prefix: str
) -> None:
    quota = limiter(redis_client, prefix, max_in_flight=2, slots_full_wait=7.0)
    assert quota.acquire_submission("job-a") == 0.0
    assert quota.acquire_submission("job-b") == 0.0
    assert quota.acquire_submission("job-c") == 7.0
    assert quota.in_flight() == 2
    # A retried submission of a job that holds a slot does not need a second one.
    assert quota.acquire_submission("job-a") == 0.0
    assert quota.in_flight() == 2
    quota.release("job-a")
    assert quota.acquire_submission("job-c") == 0.0
    assert quota.in_flight() == 2


def test_submissions_also_count_as_requests(redis_client: redis.Redis, prefix: str) -> None:
    quota = limiter(redis_client, prefix, requests_per_window=2, window=60.0, max_in_flight=5)
    assert quota.acquire_submission("job-a") == 0.0
    assert quota.acquire_request() == 0.0
    assert quota.acquire_submission("job-b") > 59.0
    assert quota.in_flight() == 1  # the refused submission took no slot


def test_slot_of_a_dead_job_frees_itself_and_polls_keep_a_live_one(
    redis_client: redis.Redis, prefix: str
) -> None:
    # Polls every 0.2 s keep a 2 s slot even when the machine pauses this process for 1.5 s.
    ttl, poll = 2.0, 0.2
    quota = limiter(redis_client, prefix, max_in_flight=2, slot_ttl=ttl, slots_full_wait=30.0)
    assert quota.acquire_submission("dead-job") == 0.0
    assert quota.acquire_submission("live-job") == 0.0
    # When all slots are taken the wait is at most until the first one expires.
    assert 0.0 < quota.acquire_submission("queued-job") <= ttl
    stays(lambda: quota.refresh("live-job"), ttl + poll, "the polled slot held", interval=poll)
    # One poll after the TTL the dead job's slot has expired; the polled one is still held.
    assert quota.in_flight() == 1
    assert quota.acquire_submission("queued-job") == 0.0
    assert not quota.refresh("dead-job")


def test_workers_racing_never_exceed_the_quota(redis_client: redis.Redis, prefix: str) -> None:
    """Eight threads, each with its own connection, as separate workers would."""
    granted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=LIMITER_DB)
        quota = limiter(client, prefix, requests_per_window=20, window=60.0)
        mine = sum(1 for _ in range(10) if quota.acquire_request() == 0.0)
        with lock:
            granted.append(mine)
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 20


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        QuotaLimits(requests_per_window=0)
    with pytest.raises(ValueError):
        QuotaLimits(slot_ttl=0)


def test_limits_come_from_the_per_minute_settings() -> None:
    settings = SimpleNamespace(gcp_requests_per_minute=30, gcp_max_in_flight=2)
    limits = QuotaLimits.from_settings(settings)
    assert (limits.requests_per_window, limits.window, limits.max_in_flight) == (30, 60.0, 2)
