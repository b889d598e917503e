"""Job records on the real Redis and in memory: listing newest first, cancel that sticks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from entrypoints.web.security import check_listen_host, is_loopback, parse_credentials
from tasks.jobstore import JobRecord, JobStore, MemoryJobStore, RedisJobStore
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
    assert store.ids() == ["job-3", "job-2", "job-1", "job-0"]
    records = [store.get(job_id) for job_id in store.ids()]
    assert [r.source for r in records if r] == ["api", "web", "scan", "cli"]
    assert store.ids(status="failed") == ["job-1"]
    failed = store.get("job-1")
    assert failed is not None and failed.error == "no such file"


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


def test_the_job_list_total_counts_jobs_only_the_catalog_remembers(tmp_path: Path) -> None:
    # 60 completed jobs whose Redis records expired (only the catalog has them), and three
    # jobs Redis holds: two completed (also in the catalog), one still running.
    from config.settings import get_settings
    from tasks import runtime
    from tasks.api import list_jobs
    from tasks.catalog import current_catalog
    from tasks.progress import TaskProgressJobStore
    from tests.unit.test_catalog import manifest, obj
    from workers.storage import open_storage

    settings = get_settings().model_copy(
        update={"catalog_url": f"sqlite:///{tmp_path / 'catalog.sqlite3'}"}
    )
    jobs = MemoryJobStore()
    # Wrapped as a worker process wraps its store (tasks.progress): the listing goes through.
    wrapped = TaskProgressJobStore(jobs)
    runtime.configure(runtime.Runtime(settings, open_storage([str(tmp_path)]), wrapped))
    try:
        catalog = current_catalog()
        for number in range(62):
            done = manifest(f"job-{number:02d}", f"/v/{number}.mp4", [obj(1, "dog", 0.9, 0, 4)])
            catalog.record(done, completed_at=1000.0 + number)
        for number, status in ((60, "completed"), (61, "completed"), (62, "rendering")):
            jobs.create(JobRecord(job_id=f"job-{number:02d}", video_uri=f"/v/{number}.mp4"))
            jobs.update(f"job-{number:02d}", status=status)

        first, total = list_jobs(limit=10)
        assert total == 63
        assert [r.job_id for r in first[:3]] == ["job-62", "job-61", "job-60"]
        seen = [
            r.job_id for offset in range(0, 70, 10) for r in list_jobs(offset=offset, limit=10)[0]
        ]
        assert len(seen) == len(set(seen)) == 63
        assert list_jobs(status="completed", limit=5)[1] == 62
        assert list_jobs(status="rendering")[1] == 1
    finally:
        runtime.configure(None)


def test_wait_reads_the_manifest_the_record_points_to_and_names_a_later_job(
    tmp_path: Path,
) -> None:
    """Once the job ends, its manifest (the record's manifest_uri) is the answer; when the
    same video was processed again since, wait says which job's manifest it is now instead
    of waiting for ever."""
    import json

    from config.settings import get_settings
    from tasks import runtime
    from tasks.api import Job, JobOutputsReplaced
    from workers.storage import open_storage

    jobs = MemoryJobStore()
    runtime.configure(runtime.Runtime(get_settings(), open_storage([str(tmp_path)]), jobs))
    try:
        manifest_path = tmp_path / "clip.mp4.manifest.json"
        manifest_path.write_text(json.dumps({"job_id": "job-1", "objects": []}))
        jobs.create(JobRecord(job_id="job-1", video_uri=str(tmp_path / "clip.mp4")))
        jobs.update("job-1", status="completed", stage="done", manifest_uri=str(manifest_path))
        assert Job("job-1").wait(timeout=5) == {"job_id": "job-1", "objects": []}
        assert Job("job-1").manifest() == {"job_id": "job-1", "objects": []}

        manifest_path.write_text(json.dumps({"job_id": "job-2", "objects": []}))
        with pytest.raises(JobOutputsReplaced, match="written again since by job job-2"):
            Job("job-1").wait(timeout=5)
        assert Job("job-1").manifest() is None
    finally:
        runtime.configure(None)
