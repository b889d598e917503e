"""Files as real tools write them: MPEG-TS stream copies, MP4s cut with an edit list, and
files holding more than one video stream. Every frame a player shows is read, at the time
the player shows it, from the stream a player shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.videos import (
    read_frame_index,
    stream_copy,
    write_cover_image,
    write_test_video,
    write_two_stream_video,
)
from workers.media.video import extract_frames, frame_times, iter_frames, probe_video

FPS = 30


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("containers")


@pytest.fixture(scope="module")
def segment_mp4(folder: Path) -> Path:
    """6 s at 30 fps with a keyframe every 2 s and B-frames: an HLS-like segment's content."""
    return write_test_video(folder / "segment.mp4", frames=180, fps=FPS, gop=60)


@pytest.fixture(scope="module")
def segment_ts(folder: Path, segment_mp4: Path) -> Path:
    """``ffmpeg -i segment.mp4 -c copy segment.ts``."""
    return stream_copy(segment_mp4, folder / "segment.ts", format="mpegts")


def indices(frames: list) -> list[int]:
    return [read_frame_index(frame.image) for frame in frames]


def test_a_ts_stream_copy_is_read_from_its_first_frame(segment_ts: Path) -> None:
    info = probe_video(segment_ts)
    assert (info.frame_count, info.duration, info.fps) == (180, pytest.approx(6.0), 30.0)
    frames = list(iter_frames(segment_ts))
    assert frames[0].time == 0.0
    assert indices(frames) == list(range(180))
    assert [frame.time for frame in frames] == pytest.approx([i / FPS for i in range(180)])


def test_a_ts_is_sampled_and_sought_like_the_mp4_it_was_copied_from(
    segment_mp4: Path, segment_ts: Path
) -> None:
    for path in (segment_mp4, segment_ts):
        sampled = list(iter_frames(path, every=0.1))
        assert indices(sampled) == list(range(0, 180, 3)), path
        later = list(iter_frames(path, start=2.5, end=4.5, every=0.5))
        assert indices(later) == [75, 90, 105, 120, 135], path
        times = [0.0, 0.5, 2.0, 3.99, 5.9]
        assert indices(extract_frames(path, times)) == [0, 15, 60, 120, 177], path


def test_a_ts_with_a_single_keyframe_is_read_whole(folder: Path) -> None:
    """A 6 s TS with one keyframe, as a dashcam or a live encoder cuts one."""
    one_gop = write_test_video(folder / "one-gop.mp4", frames=180, fps=FPS, gop=250)
    path = stream_copy(one_gop, folder / "one-gop.ts", format="mpegts")
    info = probe_video(path)
    assert (info.frame_count, info.duration) == (180, pytest.approx(6.0))
    assert indices(list(iter_frames(path))) == list(range(180))
    assert indices(extract_frames(path, [0.0, 3.0, 5.9])) == [0, 90, 177]


def test_an_mp4_cut_by_stream_copy_is_on_the_timeline_a_player_shows(
    folder: Path, segment_mp4: Path
) -> None:
    """``ffmpeg -ss 1 -i segment.mp4 -c copy cut.mp4``: the frames from the keyframe at 0 s
    are kept for decoding and hidden by an edit list; a player starts at the old 1 s."""
    path = stream_copy(segment_mp4, folder / "cut.mp4", format="mp4", start=1.0)
    info = probe_video(path)
    assert info.frame_count == 150 and info.duration == pytest.approx(5.0)
    assert info.hidden_frames == 30
    assert frame_times(path) == pytest.approx([i / FPS for i in range(150)])
    frames = list(iter_frames(path))
    assert frames[0].time == 0.0 and indices(frames) == list(range(30, 180))
    sampled = list(iter_frames(path, start=1.0, every=1.0))
    assert [(round(frame.time, 3), read_frame_index(frame.image)) for frame in sampled] == [
        (1.0, 60),
        (2.0, 90),
        (3.0, 120),
        (4.0, 150),
    ]
    assert indices(extract_frames(path, [0.0, 0.5, 4.0])) == [30, 45, 150]


def test_a_cut_at_a_later_keyframe_stretch_hides_only_that_stretch(
    folder: Path, segment_mp4: Path
) -> None:
    path = stream_copy(segment_mp4, folder / "cut3.mp4", format="mp4", start=3.0)
    info = probe_video(path)
    assert (info.frame_count, info.hidden_frames) == (90, 30)
    assert indices(list(iter_frames(path, end=0.1))) == [90, 91, 92, 93]


@pytest.mark.parametrize("container", ["mp4", "matroska"])
def test_a_cover_image_first_is_not_the_video(
    folder: Path, segment_mp4: Path, container: str
) -> None:
    """A file whose first stream is its cover: a tagged MP4 (an attached picture), or a
    Matroska file where it is a one-frame track of its own (320x320, larger than the
    video), as FFmpeg 5.1 writes it."""
    cover = write_cover_image(folder / "cover.jpg")
    path = write_two_stream_video(
        folder / f"tagged.{container}", cover, segment_mp4, first_as_cover=True, format=container
    )
    info = probe_video(path)
    assert (info.stream_index, info.video_streams) == (1, 2)
    assert (info.width, info.height, info.frame_count) == (160, 96, 180)
    assert indices(list(iter_frames(path, every=1.0))) == [0, 30, 60, 90, 120, 150]
    assert indices(extract_frames(path, [2.0])) == [60]


def test_a_small_preview_first_is_not_the_video(folder: Path, segment_mp4: Path) -> None:
    """A camera file with a small, non-default preview stream before the main one."""
    preview = write_test_video(folder / "preview.mp4", frames=20, fps=10, width=80, height=48)
    path = write_two_stream_video(folder / "camera.mp4", preview, segment_mp4, default=1)
    info = probe_video(path)
    assert (info.stream_index, info.width, info.frame_count) == (1, 160, 180)
    assert indices(list(iter_frames(path, start=5.0, every=0.5))) == [150, 165]
    # Marked default, the main stream wins even when it comes first.
    swapped = write_two_stream_video(folder / "swapped.mp4", segment_mp4, preview, default=0)
    assert probe_video(swapped).stream_index == 0


def test_a_capture_that_starts_mid_stream_starts_at_its_first_keyframe(
    folder: Path, segment_ts: Path
) -> None:
    """A TS cut at an arbitrary byte, as a broadcast capture or a dashcam's file begins:
    its first frames refer to a keyframe it does not hold. They are not frames a player
    shows; the rest keep their times, from the first keyframe on."""
    data = segment_ts.read_bytes()
    cut = len(data) * 3 // 10 // 188 * 188  # whole TS packets
    path = folder / "capture.ts"
    path.write_bytes(data[cut:])
    frames = list(iter_frames(path))
    first = read_frame_index(frames[0].image)
    assert first % 60 == 0 and first > 0  # a keyframe of the original, every 2 s
    assert indices(frames) == list(range(first, 180))
    assert probe_video(path).frame_count == 180 - first
    times = frame_times(path)
    assert times[0] == frames[0].time > 0
    assert indices(list(iter_frames(path, every=0.5)))[0] == first  # the first slot too
    assert indices(extract_frames(path, [0.0, times[-1]])) == [first, 179]


@pytest.mark.parametrize("name", ["segment.mp4", "segment.ts", "cut.mp4"])
def test_a_seek_lands_on_the_keyframe_it_aims_at(
    folder: Path, segment_mp4: Path, segment_ts: Path, name: str
) -> None:
    """Not a GOP late (frames lost, as a TS did) nor a GOP early (a GOP decoded for nothing:
    an MP4 sought by a keyframe's decoding time)."""
    from workers.media.video import _open_video, _seek

    path = folder / name
    if not path.exists():
        stream_copy(segment_mp4, path, format="mp4", start=1.0)
    with _open_video(path) as (container, stream, index):
        assert len(index.keyframe_positions) >= 3
        for keyframe in index.keyframe_positions[1:]:
            _seek(container, stream, index, keyframe)
            packet = next(p for p in container.demux(stream) if p.pts is not None)
            assert packet.is_keyframe and index.position_of(packet.pts) == keyframe, name
