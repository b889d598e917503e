"""Detecting less often where the scene is still (:mod:`workers.local.still`), on drawn
frames whose objects a simple detector finds exactly (white rectangles on black: the
boxes of the bright regions), so what is skipped, interpolated or detected again shows."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from workers.local.detector import Detections
from workers.local.still import (
    CALM_DETECTIONS,
    STILL_IOU,
    StillSceneDetection,
    interpolated,
    still_pairs,
)

SIZE = (120, 200)  # height, width


@dataclass(frozen=True)
class Frame:
    time: float
    image: np.ndarray


def drawn(time: float, rectangles: list[tuple[int, int, int, int]]) -> Frame:
    image = np.zeros((*SIZE, 3), dtype=np.uint8)
    for left, top, right, bottom in rectangles:
        image[top:bottom, left:right] = 255
    return Frame(time, image)


def bright_regions(image: np.ndarray) -> Detections:
    """The box of every white region, normalized, class 0, score 0.9, left to right."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    contours, _ = cv2.findContours(grey, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    height, width = grey.shape
    boxes = sorted(
        (x / width, y / height, (x + w) / width, (y + h) / height)
        for x, y, w, h in (cv2.boundingRect(c) for c in contours)
    )
    return Detections(
        boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        scores=np.full(len(boxes), 0.9, dtype=np.float32),
        class_ids=np.zeros(len(boxes), dtype=np.int64),
    )


def run(
    frames: list[Frame], every: int
) -> tuple[list[tuple[Frame, Detections]], StillSceneDetection]:
    detection = StillSceneDetection(bright_regions, every)
    return list(detection(frames)), detection


STILL = [(20, 20, 60, 100), (120, 30, 160, 90)]


def test_a_still_scene_is_detected_one_frame_in_three_with_the_same_boxes() -> None:
    frames = [drawn(i / 10, STILL) for i in range(30)]
    result, detection = run(frames, 3)
    assert [frame.time for frame, _ in result] == [frame.time for frame in frames]
    for frame, found in result:
        exact = bright_regions(frame.image)
        assert np.allclose(found.boxes, exact.boxes) and np.array_equal(
            found.class_ids, exact.class_ids
        )
    # Every frame until CALM_DETECTIONS frames matched the one 3 before them, then one in 3.
    dense = 3 + CALM_DETECTIONS
    assert detection.counts.detected == dense + (30 - dense) // 3
    assert detection.counts.interpolated == 30 - detection.counts.detected
    assert detection.counts.backfilled == 0


def test_every_1_detects_every_frame() -> None:
    frames = [drawn(i / 10, STILL) for i in range(12)]
    _, detection = run(frames, 1)
    assert detection.counts.detected == 12 and detection.counts.interpolated == 0


def test_an_object_that_appears_in_a_skipped_frame_has_every_box_detected() -> None:
    frames = [drawn(i / 10, STILL) for i in range(10)]
    # A third object comes in at frame 10 and stays; frames 10 and 11 are skipped ones.
    frames += [drawn(i / 10, [*STILL, (80, 100, 100, 118)]) for i in range(10, 20)]
    result, detection = run(frames, 3)
    assert detection.counts.backfilled >= 1
    for frame, found in result:
        assert len(found) == len(bright_regions(frame.image))
        assert np.array_equal(found.boxes, bright_regions(frame.image).boxes)


def test_a_moving_object_is_detected_in_every_frame() -> None:
    frames = [drawn(i / 10, [STILL[0], (100 + 4 * i, 30, 140 + 4 * i, 90)]) for i in range(12)]
    result, detection = run(frames, 3)
    assert detection.counts.detected == 12 and detection.counts.interpolated == 0
    assert all(np.array_equal(found.boxes, bright_regions(f.image).boxes) for f, found in result)


def test_an_object_seen_only_within_the_skipped_frames_is_missed() -> None:
    # The limit of skipping: a flicker shorter than the skipped frames, undone by the key
    # frame, is not seen.
    flicker = 3 + CALM_DETECTIONS  # the first frame skipped
    frames = [drawn(i / 10, STILL) for i in range(flicker + 3 * 4)]
    frames[flicker] = drawn(flicker / 10, [*STILL, (80, 100, 100, 118)])
    result, detection = run(frames, 3)
    assert len(result[flicker][1]) == 2 and detection.counts.backfilled == 0


def test_frames_skipped_when_the_video_ends_are_detected() -> None:
    count = 3 + CALM_DETECTIONS + 1  # the video ends on the first skipped frame
    frames = [drawn(i / 10, STILL) for i in range(count)]
    result, detection = run(frames, 3)
    assert len(result) == count and detection.counts.backfilled == 1
    assert np.array_equal(result[-1][1].boxes, bright_regions(frames[-1].image).boxes)


def test_still_pairs_pair_each_box_with_the_same_object_and_refuse_any_change() -> None:
    before = Detections(
        boxes=np.array([[0.1, 0.1, 0.3, 0.5], [0.6, 0.2, 0.8, 0.6]], dtype=np.float32),
        scores=np.array([0.9, 0.5], dtype=np.float32),
        class_ids=np.array([0, 16]),
    )
    after = Detections(before.boxes[::-1] + 0.005, before.scores[::-1], before.class_ids[::-1])
    pairs = still_pairs(before, after)
    assert pairs is not None and pairs.tolist() == [1, 0]
    middle = interpolated(before, after, pairs, 0.5)
    assert np.allclose(middle.boxes, before.boxes + 0.0025)
    assert middle.class_ids.tolist() == [0, 16]
    # moved by a fifth of its width: not still
    moved = Detections(
        before.boxes + np.array([0.04, 0, 0.04, 0], np.float32), before.scores, before.class_ids
    )
    assert still_pairs(before, moved) is None
    # another label, one more or one fewer object: not still
    relabelled = Detections(before.boxes, before.scores, np.array([0, 17]))
    assert still_pairs(before, relabelled) is None
    assert still_pairs(before, before.select(np.array([True, False]))) is None
    assert still_pairs(Detections.empty(), Detections.empty()) is not None


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.1])
def test_the_still_threshold_is_a_share_of_the_box_size(shift: float) -> None:
    box = np.array([[0.2, 0.2, 0.4, 0.6]], dtype=np.float32)
    before = Detections(box, np.array([0.9], np.float32), np.array([0]))
    after = Detections(
        box + np.array([0.2 * shift, 0, 0.2 * shift, 0], np.float32),
        before.scores,
        before.class_ids,
    )
    iou = (1 - shift) / (1 + shift)
    assert (still_pairs(before, after) is not None) == (iou >= STILL_IOU)
