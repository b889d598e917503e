"""Job records on the real Redis and in memory: listing newest first, cancel that sticks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tasks.jobstore import JobRecord, JobStore, MemoryJobStore, RedisJobStore
from tasks.web.security import check_listen_host, is_loopback, parse_credentials
from tests.conftest import REDIS_HOST, REDIS_PORT, RESULTS_DB
from workers.errors import InputError


@pytest.fixture(params=["redis", "memory"])
def store(request: pytest.FixtureRequest) -> Iterator[JobStore]:
    if request.param == "memory":
        yield MemoryJobStore()
        return
    request.getfixturevalue("redis_server")
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=RESULTS_DB)
    client.flushdb()
    yield RedisJobStore(client, ttl_seconds=600)
    client.flushdb()


def test_jobs_are_listed_newest_first_with_their_source(store: JobStore) -> None:
    for number, source in enumerate(["cli", "scan", "web", "api"]):
        store.create(JobRecord(job_id=f"job-{number}", video_uri=f"/v/{number}.mp4", source=source))
    store.update("job-1", status="failed", stage="failed", error="no such file")
    records, total = store.list(limit=2)
    assert total == 4
    assert [r.job_id for r in records] == ["job-3", "job-2"]
    assert [r.source for r in records] == ["api", "web"]
    page, _ = store.list(offset=2, limit=2)
    assert [r.job_id for r in page] == ["job-1", "job-0"]
    failed, count = store.list(status="failed")
    assert count == 1 and failed[0].error == "no such file"


def test_a_cancelled_job_stays_cancelled_whatever_its_tasks_write(store: JobStore) -> None:
    store.create(JobRecord(job_id="job", video_uri="/v/a.mp4"))
    store.update("job", status="rendering", stage="rendering 0 of 5 objects", objects_total=5)
    store.update("job", status="cancelled", stage="cancelled")
    # A render task finishing as the cancel lands, then the last task's completion.
    store.object_done("job")
    store.update("job", status="completed", stage="done", percent=100.0, error=None)
    record = store.get("job")
    assert record is not None
    assert (record.status, record.stage, record.finished) == ("cancelled", "cancelled", True)
    assert record.objects_done == 1  # counters still move; the status does not


def test_web_credentials_and_listen_hosts() -> None:
    assert parse_credentials("") is None
    assert parse_credentials("me:pa:ss") == ("me", "pa:ss")
    for bad in ("me", ":secret", "me:"):
        with pytest.raises(InputError, match="user:password"):
            parse_credentials(bad)
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.2", "example.org", "::"))
    check_listen_host("127.0.0.1", None)
    check_listen_host("0.0.0.0", ("me", "secret"))
    with pytest.raises(InputError, match=r"refusing to listen on 0\.0\.0\.0"):
        check_listen_host("0.0.0.0", None)
