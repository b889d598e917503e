"""A running job whose remaining work was lost with Redis is failed, not left "running".

A Redis that fails over or restarts without its last second of writes can keep a job's
record (status "rendering") and lose the messages that would have moved it on. Nothing
would ever change that record again; users asking about it are told it stopped and to
submit again, and its claim is released so the next scan starts the video again.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tasks import runtime
from tasks.api import Job, JobFailed, list_jobs
from tasks.jobstore import JobRecord
from tasks.lost import stalled_after

pytestmark = pytest.mark.integration


def running_job(status: str, idle_seconds: float) -> str:
    """A job record left at ``status``, last changed ``idle_seconds`` ago, with a claim."""
    rt = runtime.current()
    job_id = f"stalled-{uuid.uuid4().hex[:8]}"
    video = f"/videos/{job_id}.mp4"
    rt.jobs.create(JobRecord(job_id=job_id, video_uri=video, backend="local", status=status))
    claims = rt.claims()
    assert claims is not None and claims.claim(video, job_id, None) is None
    assert rt.redis_client is not None
    rt.redis_client.hset(
        f"vtrack:job:{job_id}", "updated_at", json.dumps(time.time() - idle_seconds)
    )
    return job_id


def test_a_running_job_idle_past_any_task_is_failed_with_one_line_and_released(
    redis_server: None,
) -> None:
    rt = runtime.current()
    limit = stalled_after(rt.settings)
    job_id = running_job("rendering", limit + 60)

    record = Job(job_id).status()

    assert record.status == "failed" and record.finished
    assert record.error is not None and "\n" not in record.error
    assert "stopped" in record.error and "submit the video again" in record.error
    claims = rt.claims()
    assert claims is not None and claims.holder(record.video_uri) is None
    with pytest.raises(JobFailed, match="submit the video again"):
        Job(job_id).wait(timeout=5)


@pytest.mark.parametrize("status", ["rendering", "queued"])
def test_a_job_that_still_moves_or_waits_for_a_worker_is_left_alone(
    redis_server: None, status: str
) -> None:
    limit = stalled_after(runtime.current().settings)
    # Rendering, changed a moment ago; queued (waiting for a worker), idle for long.
    job_id = running_job(status, 5 if status == "rendering" else limit + 60)
    assert Job(job_id).status().status == status


def test_a_stalled_job_is_failed_by_the_job_list_without_anyone_asking_for_it(
    redis_server: None,
) -> None:
    rt = runtime.current()
    job_id = running_job("assembling", stalled_after(rt.settings) + 60)

    listed = {record.job_id: record for record in list_jobs(limit=500)[0]}

    assert listed[job_id].status == "failed" and "submit the video again" in (
        listed[job_id].error or ""
    )
    assert job_id not in {record.job_id for record in list_jobs(status="running")[0]}
    claims = rt.claims()
    assert claims is not None and claims.holder(listed[job_id].video_uri) is None


def test_a_scan_takes_the_claim_of_a_stalled_job_and_fails_it(redis_server: None) -> None:
    """The claim check of a scan (or an upload event) is the sweep that needs no reader:
    the video of a stalled job is claimed again at once, and the stalled job is failed."""
    rt = runtime.current()
    job_id = running_job("rendering", stalled_after(rt.settings) + 60)
    record = rt.jobs.get(job_id)
    assert record is not None and record.video_uri is not None
    claims = rt.claims()
    assert claims is not None

    assert claims.claim(record.video_uri, "the-next-job", None) is None

    holder = claims.holder(record.video_uri)
    assert holder is not None and holder.job_id == "the-next-job"
    stalled = rt.jobs.get(job_id)
    assert stalled is not None and stalled.status == "failed"
