"""Frames as a player shows them: rotated phone videos, anamorphic and interlaced streams.

Every video here is written by the test with PyAV, stored the way cameras store it (turned
sideways with the turn recorded in the container, squeezed, or as woven fields), and must
come out of vtrack's reader as the upright frames :func:`frame_pixels` drew.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.support.videos import (
    BOX_COLOUR,
    box_at,
    read_frame_index,
    write_camera_copy,
    write_displayed_video,
    write_test_video,
)
from workers.media.video import extract_frames, frame_times, iter_frames, probe_video

WIDTH, HEIGHT, FRAMES = 160, 96, 6


def assert_upright(image: np.ndarray, index: int) -> None:
    """The frame drawn for ``index``: its index row on top, read left to right, box in place."""
    assert image.shape[:2] == (HEIGHT, WIDTH)
    assert read_frame_index(image) == index
    left, top, right, bottom = box_at(index, WIDTH, HEIGHT)
    centre = image[(top + bottom) // 2, (left + right) // 2].astype(int)
    assert np.abs(centre - BOX_COLOUR).max() < 40, f"no red box at its place in frame {index}"


@pytest.mark.parametrize("rotation", [0, 90, 180, 270, -90])
def test_a_rotated_video_is_probed_and_decoded_upright(tmp_path: Path, rotation: int) -> None:
    path = write_displayed_video(tmp_path / "phone.mp4", rotation=rotation, frames=FRAMES)
    with av.open(str(path)) as container:  # stored sideways for the odd quarter turns
        stored = container.streams.video[0].codec_context
        assert (stored.width, stored.height) == (
            (HEIGHT, WIDTH) if rotation % 180 else (WIDTH, HEIGHT)
        )

    info = probe_video(path)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.rotation == rotation % 360 and info.frame_count == FRAMES
    decoded = list(iter_frames(path))
    assert [frame.index for frame in decoded] == list(range(FRAMES))
    for frame in decoded:
        assert_upright(frame.image, frame.index)
    extracted = extract_frames(path, [0.0, 0.3, 0.5])
    for wanted, frame in zip([0, 3, 5], extracted, strict=True):
        assert frame.image.size == (WIDTH, HEIGHT)
        assert_upright(np.asarray(frame.image), wanted)


@pytest.mark.parametrize("rotation", [90, 270])
def test_max_width_applies_to_the_displayed_width(tmp_path: Path, rotation: int) -> None:
    path = write_displayed_video(tmp_path / "phone.mp4", rotation=rotation, frames=2)
    assert next(iter(iter_frames(path, max_width=80))).image.shape == (48, 80, 3)
    assert extract_frames(path, [0.0], max_width=80)[0].image.size == (80, 48)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_the_legacy_rotate_tag_is_honoured(tmp_path: Path, rotation: int) -> None:
    path = write_displayed_video(
        tmp_path / "old.mkv", rotation=rotation, rotate_tag=True, frames=FRAMES
    )
    with av.open(str(path)) as container:
        tags = {k.lower(): v for k, v in container.streams.video[0].metadata.items()}
    assert tags["rotate"] == str(-rotation % 360)  # clockwise, as older FFmpeg wrote it
    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (WIDTH, HEIGHT, rotation)
    for frame in iter_frames(path):
        assert_upright(frame.image, frame.index)


def test_an_anamorphic_video_is_shown_with_square_pixels(tmp_path: Path) -> None:
    """Stored 120 pixels across with 4:3 pixels: a player shows it 160 across."""
    path = write_displayed_video(tmp_path / "dv.mp4", sample_aspect=Fraction(4, 3), frames=FRAMES)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.width == 120
    info = probe_video(path)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.sample_aspect_ratio == pytest.approx(4 / 3)
    for frame in iter_frames(path):
        assert_upright(frame.image, frame.index)
    assert extract_frames(path, [0.2])[0].image.size == (WIDTH, HEIGHT)


def combing(image: np.ndarray) -> float:
    """How much the rows alternate ("comb teeth"): adjacent rows differ, rows two apart not."""
    rows = image.astype(float).mean(axis=2)
    return float(np.abs(rows[1:-1] - (rows[:-2] + rows[2:]) / 2).mean())


def write_moving_bar(path: Path, frames: int, fps: int) -> Path:
    """A white bar crossing a grey frame 12 pixels a frame: woven fields show it as teeth."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "12"}
        for index in range(frames):
            pixels = np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8)
            left = 8 + 12 * index % (WIDTH - 24)
            pixels[16:80, left : left + 16] = 240
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def test_an_interlaced_video_is_deinterlaced_keeping_every_frame(tmp_path: Path) -> None:
    progressive = write_test_video(tmp_path / "source.mp4", frames=24, fps=20, width=WIDTH)
    path = write_camera_copy(progressive, tmp_path / "camcorder.mp4", seconds=10, interlace=True)
    info = probe_video(path)
    assert info.interlaced and info.frame_count == 12
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    decoded = list(iter_frames(path))
    assert [frame.time for frame in decoded] == pytest.approx(list(frame_times(path)))
    # Each frame is its first (top) field's picture: frame 2i of the progressive source.
    assert [read_frame_index(frame.image) for frame in decoded] == list(range(0, 24, 2))
    extracted = extract_frames(path, [0.0, 0.3])
    assert [read_frame_index(np.asarray(e.image)) for e in extracted] == [0, 6]


def test_deinterlaced_frames_have_no_comb_teeth(tmp_path: Path) -> None:
    bar = write_moving_bar(tmp_path / "bar.mp4", frames=16, fps=20)
    path = write_camera_copy(bar, tmp_path / "camcorder.mp4", seconds=10, interlace=True)
    with av.open(str(path)) as container:
        woven = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    decoded = list(iter_frames(path))
    assert len(decoded) == len(woven) == 8
    for frame, raw in zip(decoded, woven, strict=True):
        assert combing(frame.image) < combing(raw) / 10, f"teeth left in frame {frame.index}"


def test_a_progressive_video_is_not_deinterlaced(tmp_path: Path) -> None:
    path = write_test_video(tmp_path / "progressive.mp4", frames=4)
    assert not probe_video(path).interlaced
