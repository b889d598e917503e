"""The pipeline on real Redis with a real worker (prefork, 2 processes), as a user drives it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from PIL import Image

from config.settings import usable_cores
from tasks.api import JobFailed, get_job, make_spec, start_job, submit
from tests.conftest import REPO_ROOT, WorkerProcess
from tests.support.annotations import standard_annotation, write_annotation
from tests.support.videos import write_test_video
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

FRAMES, FPS, WIDTH, HEIGHT = 40, 10, 160, 96


@pytest.fixture
def clip(session_dirs: dict[str, Path]) -> tuple[Path, Path]:
    """A fresh video and its annotations under the workers' input root."""
    name = f"clip-{uuid.uuid4().hex[:8]}"
    video = write_test_video(
        session_dirs["input"] / f"{name}.mp4", frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT
    )
    annotation = standard_annotation(str(video), FRAMES, FPS, WIDTH, HEIGHT)
    return video, write_annotation(session_dirs["input"] / f"{name}.json", annotation)


def vtrack(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_submit_then_wait_gives_the_manifest(
    celery_worker: WorkerProcess, clip: tuple[Path, Path], session_dirs: dict[str, Path]
) -> None:
    video, annotations = clip
    submitted = vtrack("submit", str(video), "--annotations", str(annotations))
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().splitlines()[-1]

    waited = vtrack("wait", job_id, "--timeout", "120")
    assert waited.returncode == 0, waited.stderr + celery_worker.log()[-3000:]
    manifest_path = Path(waited.stdout.strip().splitlines()[-1])
    assert manifest_path == session_dirs["output"] / f"{video.name}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["job_id"] == job_id
    assert manifest["status"] == "completed"
    assert [o["entity"] for o in manifest["objects"]] == ["red box", "left panel"]
    for obj in manifest["objects"]:
        with Image.open(obj["animation_uri"]) as gif:
            assert gif.n_frames == 12
    assert Path(manifest["summary_uri"]).is_file()
    assert Path(manifest["annotation_uri"]).parent == session_dirs["annotations"]

    status = vtrack("status", job_id, "--json")
    assert status.returncode == 0, status.stderr
    record = json.loads(status.stdout)
    assert record["status"] == "completed"
    assert (record["objects_done"], record["objects_total"]) == (2, 2)
    assert record["manifest_uri"] == str(manifest_path)
    assert str(manifest_path) in record["outputs"]
    # Piped, the job list is one tab-separated line per job, its id and path whole.
    listed = vtrack("jobs", "--limit", "100")
    assert listed.returncode == 0, listed.stderr
    header, *lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert header == ["job", "status", "stage", "source", "video", "started"]
    [row] = [line for line in lines if line[0] == job_id]
    assert (row[1], row[3], row[4]) == ("completed", "cli", str(video))

    # The job became a chord (poll replaced by the renders): no deprecation notice in the log.
    assert "DeprecationWarning" not in celery_worker.log(), celery_worker.log()[-3000:]


def test_a_worker_with_a_process_per_core_decodes_on_one_thread_each(
    celery_worker: WorkerProcess,
) -> None:
    # The test worker runs two prefork processes: on two cores or fewer, each core already
    # decodes for a process of its own.
    expected = "1 thread" if usable_cores() <= 2 else "FFmpeg's threads"
    assert (
        f"decoding on {expected} per process (celery.concurrency.prefork pool, concurrency 2"
        in celery_worker.log()
    )


def test_python_api_returns_the_manifest_to_the_caller(
    celery_worker: WorkerProcess, clip: tuple[Path, Path]
) -> None:
    video, annotations = clip
    job = submit(str(video), annotations_uri=str(annotations), animation_format="webp")
    manifest = job.wait(timeout=120)
    assert manifest == json.loads(Path(manifest["manifest_uri"]).read_text())
    assert all(o["animation_uri"].endswith(".webp") for o in manifest["objects"])
    assert job.status().status == "completed"


def test_one_object_failing_does_not_fail_the_job(
    celery_worker: WorkerProcess, clip: tuple[Path, Path], session_dirs: dict[str, Path]
) -> None:
    video, annotations = clip
    blocker = session_dirs["output"] / f"{video.name}.001_red_box_pct92_fr40.gif"
    blocker.mkdir()
    try:
        job = submit(str(video), annotations_uri=str(annotations))
        manifest = job.wait(timeout=120)
    finally:
        shutil.rmtree(blocker)
    assert manifest["status"] == "completed_with_errors"
    by_entity = {o["entity"]: o for o in manifest["objects"]}
    assert by_entity["red box"]["status"] == "failed" and by_entity["red box"]["error"]
    assert by_entity["left panel"]["status"] == "ok"
    record = job.status()
    assert record.status == "completed_with_errors" and "red box" in (record.error or "")
    waited = vtrack("wait", job.id, "--timeout", "30")
    assert waited.returncode == 3


def test_zero_kept_objects_completes(celery_worker: WorkerProcess, clip: tuple[Path, Path]) -> None:
    video, annotations = clip
    job = submit(str(video), annotations_uri=str(annotations), min_confidence=0.99)
    manifest = job.wait(timeout=120)
    assert manifest["status"] == "completed"
    assert manifest["objects"] == [] and manifest["summary_uri"] is None
    assert manifest["objects_total"] == 4


def test_bad_input_fails_the_job_with_a_clear_status(
    celery_worker: WorkerProcess, session_dirs: dict[str, Path]
) -> None:
    short = write_test_video(
        session_dirs["input"] / f"short-{uuid.uuid4().hex[:8]}.mp4",
        frames=10,
        fps=FPS,
        width=WIDTH,
        height=HEIGHT,
    )
    too_long = standard_annotation(str(short), FRAMES, FPS, WIDTH, HEIGHT)
    annotations = write_annotation(short.with_suffix(".json"), too_long)
    job = submit(str(short), annotations_uri=str(annotations))
    with pytest.raises(JobFailed, match="past the video's end"):
        job.wait(timeout=120)
    assert job.status().status == "failed"
    assert not list(session_dirs["output"].glob(f"{short.name}.*"))

    waited = vtrack("wait", job.id, "--timeout", "30")
    assert waited.returncode == 1
    assert "past the video's end" in waited.stderr and "Traceback" not in waited.stderr


def test_a_video_gone_before_the_worker_reads_it_fails_the_job(
    celery_worker: WorkerProcess, session_dirs: dict[str, Path]
) -> None:
    """``submit`` refuses a missing file at once (test_submit_refusals.py); a job started
    without that check, as if the file went between submit and work, fails in the worker."""
    missing = session_dirs["input"] / "never-there.mp4"
    job = start_job(make_spec(str(missing), annotations_uri=str(missing.with_suffix(".json"))))
    with pytest.raises(JobFailed, match="never-there"):
        job.wait(timeout=60)


def test_unknown_job_id_is_a_clear_error(redis_server: None) -> None:
    result = vtrack("status", "no-such-job")
    assert result.returncode == 2
    assert "no job no-such-job" in result.stderr
    with pytest.raises(Exception, match="no job"):
        get_job("no-such-job").status()


def test_asking_about_jobs_creates_no_catalog(redis_server: None, tmp_path: Path) -> None:
    """Asking does not write: no catalog file appears in an output folder that had none."""
    output = tmp_path / "output"
    output.mkdir()
    env = {**os.environ, "VTRACK_OUTPUT_ROOT": str(output), "VTRACK_CATALOG_URL": ""}

    def ask(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "entrypoints.cli", *args]
        return subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    unknown = ask("status", "no-such-job")
    assert unknown.returncode == 2 and "no job no-such-job" in unknown.stderr
    listed = ask("jobs", "--status", "completed")
    assert listed.returncode == 0, listed.stderr
    assert list(output.iterdir()) == []


def test_a_failed_tracking_segment_fails_the_job_with_its_own_reason(
    celery_worker: WorkerProcess, clip: tuple[Path, Path]
) -> None:
    """A segment of the tracking chord fails: the job fails with that segment's error,
    not Celery's chord wrapper, and no later step runs. Once both segments have failed, the
    chord's join says so in one INFO line: no ERROR, no traceback in the worker's log."""
    from tasks import runtime
    from tasks.jobstore import JobRecord
    from tasks.pipeline import job_failed_signature, tracking_canvas
    from tasks.specs import make_spec
    from workers.local.backend import LocalTrackingOptions

    video, _ = clip
    spec = make_spec(str(video), backend="local").model_copy(update={"min_frames": 1})
    missing_model = "/nonexistent/detector.onnx"
    operation = {
        "backend": "local",
        "name": spec.job_id,
        "request": {"video_uri": spec.video_uri, "output_uri": "", "job_id": spec.job_id},
        "data": {
            "segments": [{"start": 0.0, "end": 2.5}, {"start": 1.5, "end": 4.0}],
            "overlap": 1.0,
            "options": LocalTrackingOptions(detector_model=missing_model).model_dump(mode="json"),
            "video": {},
        },
    }
    runtime.current().jobs.create(
        JobRecord(job_id=spec.job_id, video_uri=spec.video_uri, backend="local")
    )
    canvas = tracking_canvas(spec, operation)
    canvas.link_error(job_failed_signature(spec.job_id))
    log_start = len(celery_worker.log())
    canvas.apply_async()

    job = get_job(spec.job_id)
    with pytest.raises(JobFailed, match=r"detector\.onnx") as failed:
        job.wait(timeout=120)
    assert "ChordError" not in str(failed.value) and "Dependency" not in str(failed.value)
    assert job.status().stage == "failed"

    def join_line() -> str | None:
        lines = celery_worker.log()[log_start:].splitlines()
        return next((line for line in lines if "chord" in line and "stopped:" in line), None)

    line = wait_for(join_line, 120, "the chord's join to meet the failed segments")
    assert "INFO" in line and "detector.onnx" in line, line
    new_lines = celery_worker.log()[log_start:].splitlines()
    assert not [text for text in new_lines if "Traceback" in text or "ERROR" in text], "\n".join(
        new_lines
    )


def _not_a_video(folder: Path) -> Path:
    path = folder / f"notes-{uuid.uuid4().hex[:8]}.mp4"
    path.write_text("meeting notes, not a video\n" * 50)
    return path


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing video, local backend", "no such file"),
        ("not a video, local backend", "not a video"),
        ("not a video, file backend", "not a video"),
    ],
)
def test_bad_input_is_one_warning_line_in_the_worker_log_and_no_traceback(
    celery_worker: WorkerProcess, session_dirs: dict[str, Path], case: str, reason: str
) -> None:
    folder = session_dirs["input"]
    if case.startswith("missing"):
        video = folder / f"gone-{uuid.uuid4().hex[:8]}.mp4"
    else:
        video = _not_a_video(folder)
    options: dict[str, str] = {"backend": "local"}
    if case.endswith("file backend"):
        annotation = standard_annotation(str(video), FRAMES, FPS, WIDTH, HEIGHT)
        options = {"annotations_uri": str(write_annotation(video.with_suffix(".json"), annotation))}
    log_start = len(celery_worker.log())

    # Not submit(): it refuses a missing file at once; here the worker meets it.
    job = start_job(make_spec(str(video), **options))
    with pytest.raises(JobFailed, match=reason):
        job.wait(timeout=120)

    new_lines = celery_worker.log()[log_start:].splitlines()
    assert not [line for line in new_lines if "Traceback" in line or "unexpected" in line], (
        "\n".join(new_lines)
    )
    warnings = [line for line in new_lines if "WARNING" in line and job.id in line]
    assert len(warnings) == 1, "\n".join(new_lines)
    assert reason in warnings[0] and video.name in warnings[0]
