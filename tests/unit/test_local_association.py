"""One real object, one track: label flips, fast small objects and appearance, at the level
of detections and tracks (no model needed; the real-video checks are in
tests/functional/test_tracking_quality.py)."""

from __future__ import annotations

import numpy as np
import pytest

from workers.annotations.model import Entity, NormalizedBox, ObjectTrack, Segment, TrackedFrame
from workers.local.appearance import cue_similarities, describe
from workers.local.association import ReachSimilarity
from workers.local.backend import object_track
from workers.local.coco import COCO_CLASS_NAMES
from workers.local.detector import Detections
from workers.local.labels import (
    CONFUSABLE_LABELS,
    compatible_labels,
    shared_label_share,
    weighted_vote,
)
from workers.local.merge import merge_fragments
from workers.local.tracking import YOLOV3_TINY_THRESHOLDS, make_tracker, track_detections

STEP = 0.1
BALL, FRISBEE, PERSON = (COCO_CLASS_NAMES.index(n) for n in ("sports ball", "frisbee", "person"))


def test_the_confusable_groups_the_issue_names_are_in_the_table() -> None:
    for group in ({"sports ball", "frisbee", "kite"}, {"car", "truck", "bus", "van"}):
        assert any(group <= table for table in CONFUSABLE_LABELS)
    assert compatible_labels("cat", "dog") and compatible_labels("couch", "bed")
    assert compatible_labels("chair", "couch") and not compatible_labels("person", "dog")
    assert not compatible_labels("sports ball", "car")
    runner = [("person", 4), ("traffic light", 2)]
    assert shared_label_share(runner, [("traffic light", 3), ("person", 3)]) == pytest.approx(5 / 6)
    assert shared_label_share([("car", 2)], [("truck", 5)]) == 1.0  # one group
    assert shared_label_share([("person", 5), ("traffic light", 1)], [("traffic light", 6)]) == (
        pytest.approx(1 / 6)
    )
    assert shared_label_share(runner, []) == 0.0
    assert weighted_vote([("frisbee", 0.3), ("sports ball", 0.2), ("sports ball", 0.2)]) == (
        "sports ball"
    )
    assert weighted_vote([("frisbee", 0.9), ("sports ball", 0.2), ("sports ball", 0.2)]) == (
        "frisbee"
    )


def test_reach_similarity_matches_near_boxes_of_one_size_but_prefers_overlap() -> None:
    metric = ReachSimilarity()
    track = np.array([[100.0, 100.0, 120.0, 120.0]])
    detections = np.array(
        [
            [105.0, 100.0, 125.0, 120.0],  # overlapping
            [130.0, 100.0, 150.0, 120.0],  # 1.5 sizes to the right, no overlap
            [200.0, 100.0, 220.0, 120.0],  # 5 sizes away
            [130.0, 100.0, 190.0, 160.0],  # near but 9 times the area
        ]
    )
    overlap, near, far, bigger = metric.compute(track, detections)[0]
    assert overlap == pytest.approx(0.6, abs=0.01)
    assert far == 0.0 and bigger == 0.0
    # Alone, the near box is reached for, weaker than an overlap would be.
    [[near_alone]] = metric.compute(track, detections[1:2])
    assert 0.2 < near_alone < overlap
    # Beside a box the track overlaps well, it is not: the track is following that one.
    assert near == 0.0


def test_reach_leaves_a_detection_that_another_track_overlaps_well() -> None:
    metric = ReachSimilarity()
    tracks = np.array([[100.0, 100.0, 120.0, 120.0], [130.0, 100.0, 150.0, 120.0]])
    detection = np.array([[131.0, 100.0, 151.0, 120.0]])  # the second track's, 1.5 sizes off
    reach_from_first, second = metric.compute(tracks, detection)[:, 0]
    assert second > 0.9
    assert reach_from_first == 0.0
    [[alone]] = metric.compute(tracks[:1], detection)
    assert alone > 0.2  # without the second track, the first would reach for it


def _ball_frames(
    count: int, *, miss: range = range(0), second_ball: bool = False
) -> list[tuple[float, Detections]]:
    """A 20 px ball moving 30 px a frame (1.5 times its size) on a 640x360 frame; the
    detector calls it "sports ball" or "frisbee" in turn, scoring "frisbee" lower."""
    frames = []
    for index in range(count):
        boxes, scores, classes = [], [], []
        if index not in miss:
            x = 20 + 30 * index
            boxes.append([x / 640, 100 / 360, (x + 20) / 640, 120 / 360])
            flip = index % 3 == 2
            scores.append(0.3 if flip else 0.6)
            classes.append(FRISBEE if flip else BALL)
        if second_ball:  # a second ball, below the first, moving the same way
            x = 20 + 30 * index
            boxes.append([x / 640, 200 / 360, (x + 20) / 640, 220 / 360])
            scores.append(0.6)
            classes.append(BALL)
        frames.append(
            (
                index * STEP,
                Detections(
                    boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4),
                    scores=np.array(scores, dtype=np.float32),
                    class_ids=np.array(classes, dtype=np.int64),
                ),
            )
        )
    return frames


def _tracks(frames: list[tuple[float, Detections]], reach: float = 3.0) -> list[ObjectTrack]:
    thresholds = YOLOV3_TINY_THRESHOLDS.__class__(
        activation=0.35, high_confidence=0.35, reach=reach
    )
    tracker = make_tracker("bytetrack", thresholds, frame_rate=1 / STEP)
    raw = track_detections(frames, tracker, (640, 360), COCO_CLASS_NAMES)
    return merge_fragments([object_track(track, COCO_CLASS_NAMES) for track in raw])


def test_a_fast_small_ball_whose_label_flips_is_one_track_with_the_voted_label() -> None:
    tracks = _tracks(_ball_frames(20, miss=range(9, 12)))
    assert len(tracks) == 1
    ball = tracks[0]
    assert ball.entity.description == "sports ball"
    assert ball.entity.entity_id == str(BALL)
    assert ball.frame_count == 17
    assert dict(ball.label_scores)["frisbee"] == pytest.approx(0.3 * 5, abs=1e-3)


def test_by_box_overlap_alone_the_same_ball_is_lost() -> None:
    assert sum(track.frame_count for track in _tracks(_ball_frames(20), reach=0.0)) < 10


def test_two_balls_side_by_side_stay_two() -> None:
    tracks = _tracks(_ball_frames(20, second_ball=True))
    assert len(tracks) == 2
    assert {round(track.frames[0].box.top, 2) for track in tracks} == {0.28, 0.56}


def _fragment(
    label: str, start: float, end: float, x: float, appearance: tuple[float, ...], score: float
) -> ObjectTrack:
    times = [round(start + STEP * i, 3) for i in range(round((end - start) / STEP) + 1)]
    frames = tuple(TrackedFrame(t, NormalizedBox(x, 0.4, x + 0.1, 0.6)) for t in times)
    return ObjectTrack(
        entity=Entity(entity_id="", description=label),
        confidence=score,
        segment=Segment(times[0], times[-1]),
        frames=frames,
        label_scores=((label, score * len(frames)),),
        appearance=appearance,
    )


RED = (0.7, 0.2, 0.1, 0.0)
ALSO_RED = (0.65, 0.25, 0.1, 0.0)
BLUE = (0.0, 0.1, 0.2, 0.7)


def test_car_truck_and_bus_fragments_join_and_vote_but_a_person_does_not() -> None:
    car = _fragment("car", 0.0, 2.0, 0.2, RED, 0.5)
    truck = _fragment("truck", 2.3, 3.0, 0.2, RED, 0.6)
    bus = _fragment("bus", 3.3, 6.0, 0.2, RED, 0.4)
    person = _fragment("person", 6.3, 7.0, 0.2, RED, 0.9)
    merged = merge_fragments([car, truck, bus, person])
    assert sorted(t.entity.description for t in merged) == ["bus", "person"]  # bus: 28 x 0.4


def test_appearance_keeps_alike_placed_but_different_looking_fragments_apart() -> None:
    first = _fragment("person", 0.0, 2.0, 0.3, RED, 0.5)
    looks_different = _fragment("person", 2.3, 4.0, 0.3, BLUE, 0.5)
    assert len(merge_fragments([first, looks_different])) == 2
    without_appearance = _fragment("person", 2.3, 4.0, 0.3, (), 0.5)
    assert len(merge_fragments([first, without_appearance])) == 1


def test_an_object_that_leaves_and_comes_back_looking_alike_is_one_track() -> None:
    leaves = _fragment("dog", 0.0, 2.0, 0.85, RED, 0.5)
    returns = _fragment("dog", 5.0, 7.0, 0.85, ALSO_RED, 0.5)
    assert len(merge_fragments([leaves, returns])) == 1
    other_dog = _fragment("dog", 5.0, 7.0, 0.85, BLUE, 0.5)
    assert len(merge_fragments([leaves, other_dog])) == 2
    much_later = _fragment("dog", 9.0, 10.0, 0.85, RED, 0.5)
    assert len(merge_fragments([leaves, much_later])) == 2


def test_a_track_mostly_of_dog_boxes_is_a_dog_even_if_the_person_boxes_score_higher() -> None:
    dog, person = COCO_CLASS_NAMES.index("dog"), PERSON
    frames = [
        (
            round(i * STEP, 3),
            Detections(
                boxes=np.array([[0.3 + 0.005 * i, 0.5, 0.5 + 0.005 * i, 0.8]], dtype=np.float32),
                scores=np.array([0.9 if i % 5 < 2 else 0.4], dtype=np.float32),
                class_ids=np.array([person if i % 5 < 2 else dog]),
            ),
        )
        for i in range(20)
    ]
    [track] = _tracks(frames)
    assert dict(track.label_frames) == {"person": 8, "dog": 12}
    assert dict(track.label_scores)["person"] > dict(track.label_scores)["dog"]
    assert track.entity.description == "dog"


def _walk(
    start: float, end: float, x: tuple[float, float], y: tuple[float, float], look: tuple
) -> ObjectTrack:
    times = [round(start + STEP * i, 3) for i in range(round((end - start) / STEP) + 1)]
    frames = []
    for t in times:
        share = (t - start) / max(end - start, 1e-9)
        left = x[0] + (x[1] - x[0]) * share
        top = y[0] + (y[1] - y[0]) * share
        box = NormalizedBox(left, top, left + 0.1, top + 0.4).clipped()
        frames.append(TrackedFrame(t, box))
    return ObjectTrack(
        entity=Entity(entity_id="0", description="person"),
        confidence=0.8,
        segment=Segment(times[0], times[-1]),
        frames=tuple(frames),
        appearance=look,
    )


GREY_PERSON = (1.0, 0.0, 0.0, 0.0)  # colour alone: every grey box is alike


def test_an_object_that_left_by_one_edge_is_not_the_one_that_comes_in_by_another() -> None:
    leaves_at_bottom = _walk(0.0, 2.0, (0.3, 0.35), (0.3, 0.65), GREY_PERSON)
    enters_from_right = _walk(4.0, 6.0, (0.95, 0.6), (0.3, 0.3), GREY_PERSON)
    assert len(merge_fragments([leaves_at_bottom, enters_from_right])) == 2
    comes_back_at_bottom = _walk(4.0, 6.0, (0.4, 0.4), (0.62, 0.3), GREY_PERSON)
    assert len(merge_fragments([leaves_at_bottom, comes_back_at_bottom])) == 1


def test_grey_objects_alike_in_colour_are_told_apart_by_grey_levels_and_layout() -> None:
    rng = np.random.default_rng(7)
    frame = np.full((200, 400, 3), 128, dtype=np.uint8)
    # A man in black (dark top to bottom) and a woman in a white shirt and grey trousers.
    frame[20:180, 40:100] = 25 + rng.integers(0, 20, (160, 60, 1), dtype=np.uint8)
    frame[20:100, 240:300] = 225 + rng.integers(0, 20, (80, 60, 1), dtype=np.uint8)
    frame[100:180, 240:300] = 90 + rng.integers(0, 20, (80, 60, 1), dtype=np.uint8)
    man = describe(frame, np.array([0.1, 0.1, 0.25, 0.9]))
    woman = describe(frame, np.array([0.6, 0.1, 0.75, 0.9]))
    cues = cue_similarities(man, woman)
    assert cues["colour"] > 0.99  # no saturation: colour cannot tell grey objects apart
    assert cues["grey"] < 0.2
    assert cue_similarities(man, man)["layout"] == pytest.approx(1.0)
    # Side by side in time and place, the grey levels veto the join colour alone allowed.
    first = _walk(0.0, 2.0, (0.3, 0.3), (0.3, 0.3), tuple(float(v) for v in man))
    second = _walk(2.2, 4.0, (0.3, 0.3), (0.3, 0.3), tuple(float(v) for v in woman))
    assert len(merge_fragments([first, second])) == 2
    same = _walk(2.2, 4.0, (0.3, 0.3), (0.3, 0.3), tuple(float(v) for v in man))
    assert len(merge_fragments([first, same])) == 1
