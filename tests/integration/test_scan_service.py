"""Scans, in-flight dedup and the reconciler on real Redis with real workers, via the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Service, ServiceWorker, drop_video

pytestmark = pytest.mark.integration


def wait_ok(service: Service, job_id: str, worker: ServiceWorker) -> dict:
    waited = service.vtrack("wait", job_id, "--timeout", "90")
    assert waited.returncode == 0, waited.stderr + worker.log()[-3000:]
    return json.loads(Path(waited.stdout.split()[-1]).read_text())


def test_a_video_is_processed_once_until_it_changes(
    service: Service, start_worker: Callable[[], ServiceWorker]
) -> None:
    video = drop_video(service.incoming / "once")
    [job_id] = service.scan()

    # No worker yet: the job is in flight, so neither a scan nor a manual submit starts another.
    again = service.vtrack("scan", str(service.incoming))
    assert again.returncode == 0 and again.stdout.split() == []
    assert "1 in_flight" in again.stderr
    by_hand = service.vtrack("submit", str(video), "--annotations", f"{video}.json")
    assert by_hand.returncode == 0, by_hand.stderr
    assert by_hand.stdout.split()[-1] == job_id
    # One line, however long the path (scripts read it; rich must not wrap it at 80 columns).
    assert f"a job for {video} is already in flight: {job_id}" in by_hand.stderr.splitlines()

    worker = start_worker()
    manifest = wait_ok(service, job_id, worker)
    assert manifest["job_id"] == job_id and manifest["status"] == "completed"
    assert manifest["backend"] == "file"
    # Beside the manifest, in the video's own folder below the output root.
    stamp = json.loads((service.output / "once" / f"{video.name}.source.json").read_text())
    assert stamp["job_id"] == job_id and stamp["size"] == video.stat().st_size
    assert stamp["mtime"] == pytest.approx(video.stat().st_mtime)

    assert service.scan() == [], "a processed video is not scanned in again"

    # Once the job has ended, submitting by hand starts a new job (the key was released).
    resubmitted = service.vtrack("submit", str(video), "--annotations", f"{video}.json")
    assert resubmitted.stdout.split()[-1] != job_id
    wait_ok(service, resubmitted.stdout.split()[-1], worker)

    # A replaced video (new content, new size and mtime) is processed again.
    drop_video(video.parent, video.name, frames=50)
    [new_job] = service.scan()
    assert new_job != job_id
    assert wait_ok(service, new_job, worker)["video"]["frame_count"] == 50


def test_a_job_lost_with_redis_is_started_again_by_the_next_scan(
    service: Service, start_worker: Callable[[], ServiceWorker]
) -> None:
    video = drop_video(service.incoming / "lost")
    [lost_job] = service.scan()
    service.flush()  # Redis restarted without persistence: queue, job record and claim gone
    status = service.vtrack("status", lost_job)
    assert status.returncode == 1 and f"job {lost_job} was lost" in status.stderr

    [new_job] = service.scan()
    assert new_job != lost_job
    worker = start_worker()
    manifest = wait_ok(service, new_job, worker)
    assert manifest["job_id"] == new_job
    assert service.manifest_path(video).is_file()
    assert service.scan() == []


def test_a_failed_video_waits_until_it_changes(
    service: Service, start_worker: Callable[[], ServiceWorker]
) -> None:
    worker = start_worker()
    short = drop_video(service.incoming / "failing", frames=10)  # annotations run past its end
    [failed_job] = service.scan()
    waited = service.vtrack("wait", failed_job, "--timeout", "90")
    assert waited.returncode == 1 and "past the video's end" in waited.stderr

    rescan = service.vtrack("scan", str(service.incoming))
    assert rescan.stdout.split() == [] and "1 recently_failed" in rescan.stderr

    drop_video(short.parent, short.name)  # fixed: a full-length video
    [retry] = service.scan()
    assert wait_ok(service, retry, worker)["status"] == "completed"


def test_a_scan_starts_the_oldest_videos_first_up_to_its_limit(service: Service) -> None:
    folder = service.incoming / "backlog"
    videos = [drop_video(folder) for _ in range(3)]
    for age, video in zip((100, 300, 200), videos, strict=True):
        mtime = video.stat().st_mtime - age
        os.utime(video, (mtime, mtime))
    oldest_first = [videos[1], videos[2], videos[0]]

    first = service.vtrack("scan", str(folder), "--max-jobs", "2")
    assert first.returncode == 0, first.stderr
    assert "1 over_limit" in first.stderr
    started = [json.loads(service.vtrack("status", j, "--json").stdout)["video_uri"] for j in
               first.stdout.split()]  # fmt: skip
    assert started == [str(v) for v in oldest_first[:2]]

    [last] = service.scan("--max-jobs", "2")
    assert json.loads(service.vtrack("status", last, "--json").stdout)["video_uri"] == str(
        oldest_first[2]
    )
    service.flush()  # no worker ran: leave nothing queued for the next test
