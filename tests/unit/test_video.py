"""Probing, decoding and frame extraction on small real videos written by the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.videos import (
    BOX_COLOUR,
    box_at,
    damage_spots,
    read_frame_index,
    read_scaled_frame_index,
    truncate_file,
    write_test_video,
)
from workers.errors import NotFoundError, VideoError
from workers.media.video import VideoInfo, extract_frames, frame_times, iter_frames, probe_video

SHARED_DOG = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "videos"
DOG = SHARED_DOG / "sam2_01_dog.mp4"


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames at 10 fps, 160x96, keyframes every 10 frames, B-frames."""
    return write_test_video(tmp_path_factory.mktemp("video") / "counting.mp4")


def test_probe_reports_size_rate_frames_and_duration(video: Path) -> None:
    info = probe_video(video)
    assert info == VideoInfo(duration=3.0, fps=10.0, width=160, height=96, frame_count=30)
    assert VideoInfo.model_validate(info.model_dump(mode="json")) == info


def test_frame_times_come_from_the_container(video: Path) -> None:
    assert frame_times(video) == pytest.approx([i / 10 for i in range(30)])


def test_probe_measures_variable_frame_rate_from_timestamps(tmp_path: Path) -> None:
    times = [0.0, 0.1, 0.15, 0.4, 0.5, 0.55, 0.9, 1.0, 1.3, 1.35]
    path = write_test_video(tmp_path / "vfr.mp4", frames=len(times), times=times)
    info = probe_video(path)
    assert info.frame_count == 10
    assert 1.35 < info.duration <= 1.5
    decoded = list(iter_frames(path))
    assert [frame.time for frame in decoded] == pytest.approx(times)
    assert [read_frame_index(frame.image) for frame in decoded] == list(range(10))


def test_probe_refuses_a_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are not moving pictures\n" * 50)
    with pytest.raises(VideoError, match=r"notes\.mp4: not a video"):
        probe_video(path)


def test_probe_refuses_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(VideoError, match=r"empty\.mp4: not a video"):
        probe_video(path)


def test_probe_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file"):
        probe_video(tmp_path / "gone.mp4")


def test_probe_detects_a_file_cut_in_half(tmp_path: Path) -> None:
    path = truncate_file(write_test_video(tmp_path / "cut.mp4", frames=60))
    with pytest.raises(VideoError, match=r"cut\.mp4: truncated: \d+ of 60 frames"):
        probe_video(path)


def test_probe_refuses_a_cut_file_that_lost_its_index(tmp_path: Path) -> None:
    path = truncate_file(write_test_video(tmp_path / "cut.mp4", frames=60, faststart=False))
    with pytest.raises(VideoError, match=r"cut\.mp4: not a video"):
        probe_video(path)


def test_probe_refuses_a_file_without_video(tmp_path: Path) -> None:
    import av

    path = tmp_path / "silence.m4a"
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with pytest.raises(VideoError, match=r"silence\.m4a: no video stream"):
        probe_video(path)


@pytest.mark.parametrize(
    ("requested", "expected_index"),
    [
        (0.0, 0),
        (0.04, 0),
        (0.05, 0),  # halfway between frames 0 and 1: the earlier one
        (0.06, 1),
        (0.99, 10),  # just before a keyframe
        (1.0, 10),
        (1.44, 14),
        (2.9, 29),  # the last frame
        (3.05, 29),  # past the end, within one frame interval
    ],
)
def test_extract_returns_the_nearest_frame(
    video: Path, requested: float, expected_index: int
) -> None:
    [frame] = extract_frames(video, [requested])
    assert read_frame_index(frame.image) == expected_index
    assert frame.time == pytest.approx(expected_index / 10)
    assert frame.requested == requested


def test_extract_keeps_input_order_and_repeats(video: Path) -> None:
    requested = [2.5, 0.3, 1.7, 0.3, 2.9, 0.0, 1.1]
    frames = extract_frames(video, requested)
    assert [frame.requested for frame in frames] == requested
    assert [read_frame_index(frame.image) for frame in frames] == [25, 3, 17, 3, 29, 0, 11]
    assert frames[1].image is not frames[3].image  # drawing on one must not mark the other


def test_extract_gives_the_same_pixels_as_decoding_every_frame(video: Path) -> None:
    every_frame = {frame.index: frame.image for frame in iter_frames(video)}
    requested = [0.2, 0.5, 0.6, 1.3, 1.8, 2.1, 2.7]  # B-frames and frames after keyframes
    for frame in extract_frames(video, requested):
        index = round(frame.time * 10)
        assert np.array_equal(np.asarray(frame.image), every_frame[index])


def test_extract_shows_the_rectangle_where_it_was(video: Path) -> None:
    [frame] = extract_frames(video, [1.7])
    left, top, right, bottom = box_at(17, 160, 96)
    centre = np.asarray(frame.image)[(top + bottom) // 2, (left + right) // 2]
    assert np.abs(centre.astype(int) - BOX_COLOUR).max() < 30


def test_extract_scales_down_keeping_aspect(video: Path) -> None:
    [frame] = extract_frames(video, [1.2], max_width=80)
    assert frame.image.size == (80, 48)
    assert read_scaled_frame_index(frame.image, original_width=160) == 12


def test_extract_refuses_times_beyond_the_end(video: Path) -> None:
    with pytest.raises(VideoError, match=r"no frame at 3\.500s"):
        extract_frames(video, [1.0, 3.5])


def test_extract_of_nothing_is_nothing(video: Path) -> None:
    assert extract_frames(video, []) == []


def test_iter_frames_between_start_and_end(video: Path) -> None:
    frames = list(iter_frames(video, start=1.25, end=1.6))
    assert [frame.index for frame in frames] == [13, 14, 15, 16]
    assert [read_frame_index(frame.image) for frame in frames] == [13, 14, 15, 16]
    assert [frame.time for frame in frames] == pytest.approx([1.3, 1.4, 1.5, 1.6])


def test_iter_frames_every_takes_the_first_frame_of_each_slot(video: Path) -> None:
    frames = list(iter_frames(video, start=0.5, every=0.5))
    assert [frame.index for frame in frames] == [5, 10, 15, 20, 25]
    frames = list(iter_frames(video, every=0.25))  # not a multiple of the 0.1 s interval
    assert [frame.index for frame in frames] == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28]


def test_iter_frames_with_a_rate_gives_the_pixels_of_a_full_decode(video: Path) -> None:
    # The frames no one asked for are left undecoded when nothing refers to them: the frames
    # yielded (B-frames among them) must not change.
    every_frame = {frame.index: frame.image for frame in iter_frames(video)}
    frames = list(iter_frames(video, start=0.45, every=0.25))
    assert [frame.index for frame in frames] == [5, 8, 10, 13, 15, 18, 20, 23, 25, 28]
    for frame in frames:
        assert np.array_equal(frame.image, every_frame[frame.index])
        assert read_frame_index(frame.image) == frame.index


@pytest.mark.skipif(not DOG.exists(), reason="needs ../shared/data/videos/sam2_01_dog.mp4")
def test_a_real_encode_sampled_mid_video_gives_the_pixels_of_a_full_decode() -> None:
    # x264 with B-frame pyramids (some B-frames are references): a tracking segment's pass.
    every_frame = {frame.index: frame.image for frame in iter_frames(DOG, start=3.0, max_width=320)}
    frames = list(iter_frames(DOG, start=3.2, end=7.0, every=0.1, max_width=320))
    assert len(frames) == 38
    for frame in frames:
        assert np.array_equal(frame.image, every_frame[frame.index]), frame.index


def test_overlapping_stretches_yield_the_same_frames(video: Path) -> None:
    """Segments of one video, tracked apart, process the frames a single pass would."""
    whole = [f.index for f in iter_frames(video, every=0.3)]
    first = [f.index for f in iter_frames(video, end=1.65, every=0.3)]
    second = [f.index for f in iter_frames(video, start=1.05, every=0.3)]
    assert sorted(set(first) | set(second)) == whole
    assert set(first) & set(second) == {i for i in whole if 11 <= i <= 16}


def test_iter_frames_scales_and_converts(video: Path) -> None:
    frame = next(iter_frames(video, start=2.0, max_width=40, fmt="gray"))
    assert frame.image.shape == (24, 40)
    frame = next(iter_frames(video, start=2.0, fmt="bgr24"))
    assert frame.image.shape == (96, 160, 3)
    left, top, right, bottom = box_at(20, 160, 96)
    blue, _green, red = frame.image[(top + bottom) // 2, (left + right) // 2]
    assert red > 180 and blue < 80


def test_iter_frames_past_the_end_yields_nothing(video: Path) -> None:
    assert list(iter_frames(video, start=10.0)) == []


@pytest.mark.shared_data
@pytest.mark.skipif(not DOG.exists(), reason="../shared/data/videos/sam2_01_dog.mp4 is absent")
def test_real_video_probe_and_extract() -> None:
    info = probe_video(DOG)
    assert (info.width, info.height, info.frame_count) == (1280, 720, 289)
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert info.duration == pytest.approx(289 / info.fps, abs=1e-3)
    # Either side of the second keyframe (8.34 s), and the last frame.
    requested = [0.0, 4.0, 8.3, 8.35, 9.6]
    frames = extract_frames(DOG, requested, max_width=480)
    assert [round(frame.time * info.fps) for frame in frames] == [0, 120, 249, 250, 288]
    assert all(frame.image.size == (480, 270) for frame in frames)
    decoded = {f.index: f.image for f in iter_frames(DOG, start=8.25, end=8.4, max_width=480)}
    for frame in frames[2:4]:
        assert np.array_equal(np.asarray(frame.image), decoded[round(frame.time * info.fps)])


def test_damaged_packets_cost_their_frames_not_the_video(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = damage_spots(write_test_video(tmp_path / "damaged.mp4", frames=200, fps=10))
    with caplog.at_level("WARNING", logger="workers.media.video"):
        frames = list(iter_frames(video))
    assert 180 <= len(frames) < 200
    assert [frame.index for frame in frames] == sorted({frame.index for frame in frames})
    warnings = [r.getMessage() for r in caplog.records if r.name == "workers.media.video"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{video}: skipped ") and "damaged packet" in warnings[0]


def test_a_video_that_is_mostly_damage_is_refused(tmp_path: Path) -> None:
    video = write_test_video(tmp_path / "ruined.mp4", frames=200, fps=10)
    damage_spots(video, at=[n / 100 for n in range(12, 98, 2)], size=2000)
    with pytest.raises(VideoError, match=r"ruined\.mp4: cannot decode: \d+ damaged packet"):
        list(iter_frames(video))
    # A pass that stops early (a tracking segment's end) is judged as it goes.
    with pytest.raises(VideoError, match=r"ruined\.mp4: cannot decode: \d+ damaged packet"):
        list(iter_frames(video, start=2.0, end=12.0))
