"""Decoding in a thread ahead of the tracking loop (:func:`workers.media.video.read_ahead`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.videos import read_frame_index, write_test_video
from workers.errors import VideoError
from workers.media.video import DecodedFrame, iter_frames, read_ahead


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames at 10 fps, 160x96, keyframes every 10 frames, B-frames."""
    return write_test_video(tmp_path_factory.mktemp("ahead") / "counting.mp4")


def _decoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vtrack-decode-ahead"]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_read_ahead_yields_the_frames_of_the_decoder_in_order(video: Path, depth: int) -> None:
    plain = list(iter_frames(video, start=0.5, every=0.2))
    ahead = list(read_ahead(iter_frames(video, start=0.5, every=0.2), depth))
    assert [f.time for f in ahead] == [f.time for f in plain]
    assert [read_frame_index(f.image) for f in ahead] == [read_frame_index(f.image) for f in plain]
    assert all(np.array_equal(a.image, p.image) for a, p in zip(ahead, plain, strict=True))
    assert not _decoder_threads()


def test_a_decoder_error_is_raised_in_the_caller_after_the_frames_before_it() -> None:
    def failing() -> Iterator[DecodedFrame]:
        for index in range(3):
            yield DecodedFrame(time=index / 10, index=index, image=np.zeros((2, 2, 3), np.uint8))
        raise VideoError("cut.mp4: truncated or corrupt")

    seen = []
    with pytest.raises(VideoError, match="truncated or corrupt"):
        for frame in read_ahead(failing(), 2):
            seen.append(frame.index)
    assert seen == [0, 1, 2]
    assert not _decoder_threads()


def test_a_caller_stopping_early_stops_the_decoding_thread(video: Path) -> None:
    frames = read_ahead(iter_frames(video), 2)
    first = next(frames)
    assert first.index == 0
    frames.close()  # a tracking loop interrupted part way (an error in the detector)
    assert not _decoder_threads()
