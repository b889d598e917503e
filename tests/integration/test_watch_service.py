"""``vtrack watch`` with real files, real inotify and real workers: no beat, no scan."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import (
    FPS,
    FRAMES,
    HEIGHT,
    WIDTH,
    Service,
    ServiceWorker,
    drop_video,
)
from tests.support.annotations import standard_annotation, write_annotation
from tests.support.cli_process import VtrackProcess
from tests.support.videos import write_test_video
from tests.support.waiting import stays, wait_for

pytestmark = pytest.mark.integration

STABLE_SECONDS = 2.0
JOB_TIMEOUT_S = 90.0


@pytest.fixture
def watched(service: Service, tmp_path: Path) -> Iterator[tuple[Path, VtrackProcess]]:
    folder = service.incoming / f"watched-{tmp_path.name}"
    folder.mkdir()
    existing = drop_video(folder, "already-there.mp4")
    os.utime(existing, (time.time() - 600, time.time() - 600))
    env = {**service.env, "VTRACK_WATCH_STABLE_SECONDS": str(STABLE_SECONDS)}
    watcher = VtrackProcess(["watch", str(folder)], env, tmp_path / "watch.log", "watching")
    try:
        yield folder, watcher
    finally:
        code = watcher.stop()
        assert code == 0, watcher.log()
        assert "Traceback" not in watcher.log()


def wait_for_manifest(service: Service, video: Path) -> dict:
    manifest = service.manifest_path(video)
    wait_for(manifest.is_file, JOB_TIMEOUT_S, f"the manifest of {video}", 0.3)
    return json.loads(manifest.read_text())


def test_a_copied_video_is_processed_with_no_beat(
    service: Service,
    start_worker: Callable[[], ServiceWorker],
    watched: tuple[Path, VtrackProcess],
    tmp_path: Path,
) -> None:
    folder, watcher = watched
    worker = start_worker()
    # There at start: handled as a scan would.
    watcher.wait_for("started job", 1)
    assert wait_for_manifest(service, folder / "already-there.mp4")["status"] == "completed"

    source = write_test_video(
        tmp_path / "camera.mp4", frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT
    )
    copied = folder / "camera.mp4"
    annotation = standard_annotation(str(copied), FRAMES, FPS, WIDTH, HEIGHT)
    write_annotation(Path(f"{copied}.json"), annotation)
    shutil.copyfile(source, copied)  # create, write, close
    watcher.wait_for("started job", 2)
    manifest = wait_for_manifest(service, copied)
    assert manifest["status"] == "completed", worker.log()[-3000:]
    assert f"started job {manifest['job_id']} for {copied}" in watcher.log()

    # The watcher's job left the stamp scans read: a scan of the folder starts nothing.
    assert service.scan() == []
    # Touching nothing, nothing more happens; the sidecar JSON was never a video.
    stays(
        lambda: watcher.log().count("started job") == 2 and ".json" not in watcher.log(),
        STABLE_SECONDS + 1,
        "two jobs started, the sidecar JSON never taken for a video",
    )


def test_a_file_still_being_written_is_not_submitted_half_written(
    service: Service,
    start_worker: Callable[[], ServiceWorker],
    watched: tuple[Path, VtrackProcess],
    tmp_path: Path,
) -> None:
    folder, watcher = watched
    worker = start_worker()
    watcher.wait_for("started job", 1)  # the video there at start

    frames = 60
    content = write_test_video(
        tmp_path / "slow.mp4", frames=frames, fps=FPS, width=WIDTH, height=HEIGHT
    ).read_bytes()
    target = folder / "slow.mp4"
    write_annotation(
        Path(f"{target}.json"), standard_annotation(str(target), frames, FPS, WIDTH, HEIGHT)
    )
    chunks = 8
    step = -(-len(content) // chunks)
    with target.open("wb") as out:  # a slow copy: a chunk every half stable period, open
        for start in range(0, len(content), step):
            out.write(content[start : start + step])
            out.flush()
            time.sleep(STABLE_SECONDS / 2)
        # Four seconds of writing: a watcher that submitted on sight or on a timer shorter
        # than the writer's pauses would have started a job on a truncated file.
        assert watcher.log().count("started job") == 1
    watcher.wait_for("started job", 2)
    manifest = wait_for_manifest(service, target)
    assert manifest["status"] == "completed", worker.log()[-3000:]
    assert manifest["video"]["frame_count"] == frames
    assert watcher.log().count(f"for {target}") == 1
