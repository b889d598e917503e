"""Bad input through the service (real Redis, a real worker): clear statuses, no tracebacks.

An empty file, a video with a corrupt middle, paths that climb out of the input roots with
``..`` or a symlink, and names with spaces and non-ASCII characters, which must work end to
end. See docs/faults.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from PIL import Image

from tasks.api import JobFailed, make_spec, start_job, submit
from tests.conftest import REPO_ROOT, SESSION_DIR, WorkerProcess
from tests.support.annotations import standard_annotation, write_annotation
from tests.support.videos import corrupt_middle, write_test_video
from workers.errors import UnsafePathError

pytestmark = pytest.mark.integration

FRAMES, FPS, WIDTH, HEIGHT = 40, 10, 160, 96


def clip(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    video = write_test_video(folder / name, frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT)
    annotation = standard_annotation(str(video), FRAMES, FPS, WIDTH, HEIGHT)
    return video, write_annotation(Path(f"{video}.json"), annotation)


def vtrack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def assert_no_traceback(worker: WorkerProcess, job_id: str) -> None:
    for line in worker.log().splitlines():
        if job_id in line:
            assert "Traceback" not in line and "raised unexpected" not in line, line


def test_an_empty_file_fails_its_job_with_one_line(
    celery_worker: WorkerProcess, session_dirs: dict[str, Path]
) -> None:
    empty = session_dirs["input"] / f"empty-{uuid.uuid4().hex[:6]}.mp4"
    empty.touch()
    annotations = write_annotation(
        Path(f"{empty}.json"), standard_annotation(str(empty), FRAMES, FPS, WIDTH, HEIGHT)
    )
    job = submit(str(empty), annotations_uri=str(annotations))
    with pytest.raises(JobFailed, match=r"not a video \(empty file\)"):
        job.wait(timeout=120)
    waited = vtrack("wait", job.id, "--timeout", "30")
    assert waited.returncode == 1
    assert "empty file" in waited.stderr and len(waited.stderr.strip().splitlines()) == 1
    assert not list(session_dirs["output"].glob(f"{empty.name}.*"))


def test_a_corrupt_middle_fails_the_objects_it_spoils_and_says_why(
    celery_worker: WorkerProcess, session_dirs: dict[str, Path]
) -> None:
    video, annotations = clip(session_dirs["input"], f"corrupt-{uuid.uuid4().hex[:6]}.mp4")
    corrupt_middle(video)
    manifest = submit(str(video), annotations_uri=str(annotations)).wait(timeout=120)
    assert manifest["status"] == "completed_with_errors"
    failed = [obj for obj in manifest["objects"] if obj["status"] == "failed"]
    assert failed
    for obj in failed:
        # The damaged packets are skipped; the frames they held are what is missing.
        assert re.fullmatch(rf"{re.escape(str(video))}: could not decode the frame at [\d.]+s",
                            obj["error"]), obj["error"]  # fmt: skip


def test_paths_out_of_the_input_roots_are_refused(
    celery_worker: WorkerProcess, session_dirs: dict[str, Path]
) -> None:
    outside, outside_annotations = clip(SESSION_DIR / "elsewhere", "secret.mp4")
    dotdot = session_dirs["input"] / ".." / "elsewhere" / "secret.mp4"
    link = session_dirs["input"] / f"link-{uuid.uuid4().hex[:6]}.mp4"
    link.symlink_to(outside)
    inside, _ = clip(session_dirs["input"], f"inside-{uuid.uuid4().hex[:6]}.mp4")
    annotations_link = session_dirs["input"] / f"notes-{uuid.uuid4().hex[:6]}.json"
    annotations_link.symlink_to(outside_annotations)

    cases = {
        "dot-dot video": (str(dotdot), str(outside_annotations)),
        "symlinked video": (str(link), str(outside_annotations)),
        "symlinked annotations": (str(inside), str(annotations_link)),
    }
    for video, notes in cases.values():  # refused at once, naming the setting
        with pytest.raises(UnsafePathError, match="is outside VTRACK_INPUT_ROOTS"):
            submit(video, annotations_uri=notes)
    # The workers check again (a link may change after the submit): the job fails there.
    jobs = {
        name: start_job(make_spec(video, annotations_uri=notes))
        for name, (video, notes) in cases.items()
    }
    for name, job in jobs.items():
        with pytest.raises(JobFailed, match="is outside the allowed folders") as failure:
            job.wait(timeout=120)
        assert str(SESSION_DIR / "elsewhere") in str(failure.value), name
        assert_no_traceback(celery_worker, job.id)
    assert not list(session_dirs["output"].glob("secret.mp4*"))
    assert not list(session_dirs["output"].glob(f"{link.name}*"))


NAMES = ("my holiday clip.mp4", "café – crème brûlée.mp4", "東京の夜 🌃.mp4")


def test_names_with_spaces_and_non_ascii_characters_work_end_to_end(
    celery_worker: WorkerProcess, session_dirs: dict[str, Path]
) -> None:
    folder = session_dirs["input"] / f"dossier été {uuid.uuid4().hex[:6]}"
    clips = [clip(folder, name) for name in NAMES]
    jobs = [submit(str(video), annotations_uri=str(notes)) for video, notes in clips]
    for (video, _), job in zip(clips, jobs, strict=True):
        manifest = job.wait(timeout=120)
        assert manifest["status"] == "completed"
        assert manifest["video_uri"] == str(video)
        # The video's folder below the input root, spaces and accents kept, below the output root.
        expected = session_dirs["output"] / folder.name / f"{video.name}.manifest.json"
        assert Path(manifest["manifest_uri"]) == expected
        assert json.loads(Path(manifest["manifest_uri"]).read_text(encoding="utf-8")) == manifest
        for obj in manifest["objects"]:
            assert Path(obj["animation_uri"]).name.startswith(video.name)
            with Image.open(obj["animation_uri"]) as animation:
                assert animation.n_frames == 12
        assert Path(manifest["summary_uri"]).is_file()

    # The CLI prints such names as they are, whatever the terminal.
    status = vtrack("status", jobs[-1].id, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["video_uri"] == str(clips[-1][0])
