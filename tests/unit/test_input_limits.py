"""Inputs a user can hand vtrack by mistake, refused at probe time with one clear line.

The videos are real files made here: an 8K-plus frame, a five-hour video of two frames,
an empty file, a file whose middle was overwritten. Each goes through ``vtrack run`` as a
user would run it, or through the local backend's start, which must refuse before it
sends hours of tracking to the workers.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from config.settings import Settings
from entrypoints.cli import main
from entrypoints.console import EXIT_BAD_INPUT, EXIT_COMPLETED_WITH_ERRORS, EXIT_FAILED
from tasks.local_backend import LocalSegmentsAnnotator
from tests.support.annotations import standard_annotation, write_annotation
from tests.support.videos import corrupt_middle, write_test_video
from workers.annotators.base import AnnotateRequest
from workers.errors import VideoError
from workers.media.video import VideoLimits, probe_video
from workers.storage import open_storage

# Just over 8K UHD (7680 x 4320), the default VTRACK_MAX_VIDEO_PIXELS.
OVER_8K = (7696, 4336)


def write_flat_video(path: Path, width: int, height: int, times: list[float]) -> Path:
    """A grey H.264 video of ``len(times)`` frames at those times (seconds)."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        stream.codec_context.time_base = Fraction(1, 1000)
        pixels = np.full((height, width, 3), 128, dtype=np.uint8)
        for moment in times:
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = round(moment * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["run", *args])
    return result.exit_code, result.stderr


def assert_one_line_error(code: int, stderr: str, *phrases: str) -> None:
    assert code in (EXIT_BAD_INPUT, EXIT_FAILED), stderr
    message = stderr.strip()
    assert message.startswith("error:") and len(message.splitlines()) == 1, message
    assert "Traceback" not in message
    for phrase in phrases:
        assert phrase in message, message


def test_defaults_are_8k_and_four_hours() -> None:
    defaults = Settings.model_construct()
    assert defaults.max_video_pixels == 7680 * 4320
    assert defaults.max_video_seconds == 4 * 3600


def test_a_frame_larger_than_8k_is_refused_by_default(tmp_path: Path) -> None:
    video = write_flat_video(tmp_path / "huge.mp4", *OVER_8K, times=[0.0, 0.1])
    annotations = write_annotation(
        tmp_path / "huge.json", standard_annotation(str(video), 2, 10, *OVER_8K)
    )
    code, stderr = run(str(video), "--annotations", str(annotations), "--out", str(tmp_path / "o"))
    assert_one_line_error(code, stderr, "huge.mp4", "7696x4336", "VTRACK_MAX_VIDEO_PIXELS")
    assert not list((tmp_path / "o").rglob("*.manifest.json"))


def test_a_five_hour_video_is_refused_by_default(tmp_path: Path) -> None:
    # Two frames five hours apart: a long video, as its timestamps say, in a few kilobytes.
    video = write_flat_video(tmp_path / "long.mp4", 160, 96, times=[0.0, 5 * 3600.0])
    assert probe_video(video).duration > 5 * 3600
    annotations = write_annotation(
        tmp_path / "long.json", standard_annotation(str(video), 2, 10, 160, 96)
    )
    code, stderr = run(str(video), "--annotations", str(annotations), "--out", str(tmp_path / "o"))
    assert_one_line_error(code, stderr, "long.mp4", "5:00:00", "VTRACK_MAX_VIDEO_SECONDS")


def test_the_local_backend_refuses_before_sending_any_tracking(tmp_path: Path) -> None:
    video = write_test_video(tmp_path / "clip.mp4", frames=30, fps=10)  # 3 s, 160x96
    storage = open_storage([tmp_path])
    request = AnnotateRequest(
        video_uri=str(video), output_uri=str(tmp_path / "clip.json"), job_id="limits"
    )
    too_long = LocalSegmentsAnnotator(Settings(max_video_seconds=2.5), storage)
    with pytest.raises(VideoError, match=r"0:03 long, over the limit of 0:02 \(VTRACK_MAX_VIDEO"):
        too_long.start(request)
    too_wide = LocalSegmentsAnnotator(Settings(max_video_pixels=160 * 95), storage)
    with pytest.raises(
        VideoError, match=r"160x96 frames \(15,360 pixels\) .*VTRACK_MAX_VIDEO_PIXELS"
    ):
        too_wide.start(request)


def test_zero_means_no_limit(tmp_path: Path) -> None:
    video = write_flat_video(tmp_path / "long.mp4", 160, 96, times=[0.0, 5 * 3600.0])
    VideoLimits(max_pixels=None, max_seconds=None).check(probe_video(video), str(video))
    settings = Settings(max_video_pixels=0, max_video_seconds=0)
    assert settings.max_video_pixels == 0 and settings.max_video_seconds == 0


def test_an_empty_file_is_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    annotations = write_annotation(
        tmp_path / "a.json", standard_annotation(str(empty), 10, 10, 160, 96)
    )
    code, stderr = run(str(empty), "--annotations", str(annotations), "--out", str(tmp_path / "o"))
    assert_one_line_error(code, stderr, "empty.mp4", "empty file")


def test_a_video_whose_middle_is_corrupt_reports_each_object_it_cannot_render(
    tmp_path: Path,
) -> None:
    video = write_test_video(tmp_path / "corrupt.mp4", frames=40, fps=10)
    corrupt_middle(video)
    annotations = write_annotation(
        tmp_path / "corrupt.json", standard_annotation(str(video), 40, 10, 160, 96)
    )
    out = tmp_path / "o"
    result = CliRunner().invoke(
        main, ["run", str(video), "--annotations", str(annotations), "--out", str(out)]
    )
    assert result.exit_code == EXIT_COMPLETED_WITH_ERRORS, result.stderr
    assert "Traceback" not in result.stderr
    manifest = json.loads(next(out.rglob("corrupt.mp4.manifest.json")).read_text())
    assert manifest["status"] == "completed_with_errors"
    failed = [obj for obj in manifest["objects"] if obj["status"] == "failed"]
    assert failed, manifest["objects"]
    for obj in failed:
        # The damaged packets are skipped; the frames they held are what is missing.
        assert re.fullmatch(rf"{re.escape(str(video))}: could not decode the frame at [\d.]+s",
                            obj["error"]), obj["error"]  # fmt: skip
