"""Tracking, the offline fragment merge, segment planning and stitching (no model needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from workers.annotations.model import Entity, NormalizedBox, ObjectTrack, Segment, TrackedFrame
from workers.errors import ConfigurationError
from workers.local.backend import object_track
from workers.local.coco import COCO_CLASS_NAMES
from workers.local.detector import Detections
from workers.local.merge import merge_fragments
from workers.local.segments import plan_segments, stitch_tracks
from workers.local.tracking import (
    TRACKERS,
    YOLOV3_TINY_THRESHOLDS,
    RawTrack,
    make_tracker,
    track_detections,
)
from workers.media.video import VideoInfo

STEP = 0.1  # seconds between processed frames
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def moving_box(time: float, start_x: float, speed: float = 0.05, y: float = 0.3) -> NormalizedBox:
    left = start_x + speed * time
    return NormalizedBox(left, y, left + 0.15, y + 0.3)


def track(
    description: str,
    times: list[float],
    start_x: float,
    *,
    track_id: int = 1,
    confidence: float = 0.5,
    speed: float = 0.05,
) -> ObjectTrack:
    frames = tuple(TrackedFrame(t, moving_box(t, start_x, speed)) for t in times)
    return ObjectTrack(
        entity=Entity(description=description),
        confidence=confidence,
        segment=Segment(times[0], times[-1]),
        frames=frames,
        track_id=track_id,
    )


def moments(start: float, end: float) -> list[float]:
    return [round(start + STEP * i, 3) for i in range(round((end - start) / STEP) + 1)]


# --- tracking ---------------------------------------------------------------------------


def _two_walkers(count: int, miss: set[int] = frozenset()) -> list[tuple[float, Detections]]:
    frames = []
    for index in range(count):
        time = index * STEP
        boxes = [moving_box(time, 0.05), moving_box(time, 0.6, speed=-0.02)]
        keep = [0, 1] if index not in miss else [1]
        frames.append(
            (
                time,
                Detections(
                    boxes=np.array([[b.left, b.top, b.right, b.bottom] for b in boxes])[keep],
                    scores=np.array([0.5, 0.6])[keep],
                    class_ids=np.array([0, 16])[keep],
                ),
            )
        )
    return frames


@pytest.mark.parametrize("name", sorted(TRACKERS))
def test_every_tracker_follows_two_objects_with_one_id_each(name: str) -> None:
    tracker = make_tracker(name, YOLOV3_TINY_THRESHOLDS, frame_rate=1 / STEP)
    tracks = track_detections(_two_walkers(20), tracker, frame_size=(640, 360))
    assert len(tracks) == 2
    assert sorted(t.voted_class() for t in tracks) == [0, 16]
    for found in tracks:
        assert found.times == sorted(found.times)
        assert len(found.times) >= 17  # trackers that confirm later may miss the first frames


def test_bytetrack_keeps_the_first_frame_and_low_scores_start_tracks() -> None:
    # Scores of 0.5 and 0.6 never start a track with the library's default threshold (0.7).
    tracker = make_tracker("bytetrack", YOLOV3_TINY_THRESHOLDS, frame_rate=1 / STEP)
    tracks = track_detections(_two_walkers(10, miss={4}), tracker, frame_size=(640, 360))
    assert len(tracks) == 2
    person = next(t for t in tracks if t.voted_class() == 0)
    assert person.times[0] == 0.0 and len(person.times) == 9  # frame 4 had no detection
    assert person.mean_score == pytest.approx(0.5)


def test_an_unknown_tracker_name_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"VTRACK_TRACKER.*bytetrack"):
        make_tracker("deepsort", YOLOV3_TINY_THRESHOLDS, frame_rate=10)


def recorded_frames(name: str) -> tuple[list[tuple[float, Detections]], tuple[int, int]]:
    """A real clip's detections, recorded from the default detector (see the file's source)."""
    document = json.loads((FIXTURES / name).read_text())
    frames = []
    for frame in document["frames"]:
        found = frame["detections"]
        frames.append(
            (
                frame["time"],
                Detections(
                    boxes=np.array([d["box"] for d in found], dtype=np.float32).reshape(-1, 4),
                    scores=np.array([d["score"] for d in found], dtype=np.float32),
                    class_ids=np.array([COCO_CLASS_NAMES.index(d["label"]) for d in found]),
                ),
            )
        )
    width, height = document["frame_size"]
    return frames, (width, height)


def test_a_child_lost_mid_jump_does_not_continue_as_the_bed_below() -> None:
    # sam2_bedroom.mp4: the library starts a track on the bed at 2.2 s, loses it, and at
    # 4.0 s re-acquires it with a child who lands there. Before, that track (bed, then
    # child) was voted "person" and merged with the child's first track: the child's cell
    # showed the bed.
    frames, size = recorded_frames("sam2_bedroom_detections.json")
    tracker = make_tracker("bytetrack", YOLOV3_TINY_THRESHOLDS, frame_rate=1 / STEP)
    tracks = track_detections(frames, tracker, size, class_names=COCO_CLASS_NAMES)
    bed, person = COCO_CLASS_NAMES.index("bed"), COCO_CLASS_NAMES.index("person")
    for found in tracks:
        assert not {bed, person} <= set(found.class_ids), found.track_id
    beds = [t for t in tracks if t.voted_class() == bed]
    assert beds and min(t.times[0] for t in beds) == pytest.approx(2.2)
    assert any(t.voted_class() == person and t.times[0] >= 3.9 for t in tracks)


def test_two_children_side_by_side_keep_their_own_tracks() -> None:
    # sam2_bedroom.mp4 at 4.0 s: the girl's track overlaps her new box (0.72) and reaches
    # the boy crouching beside her (0.45); a lost bed track below scores her 0.46. The
    # matching took the two middling pairs, and the girl's track went on as the boy.
    frames, size = recorded_frames("sam2_bedroom_detections.json")
    tracker = make_tracker("bytetrack", YOLOV3_TINY_THRESHOLDS, frame_rate=1 / STEP)
    tracks = track_detections(frames, tracker, size, class_names=COCO_CLASS_NAMES)

    def box_at(track: RawTrack, time: float) -> list[float]:
        return [round(float(v), 2) for v in track.boxes[track.times.index(time)]]

    [girl] = [t for t in tracks if 3.9 in t.times and box_at(t, 3.9)[0] == pytest.approx(0.11)]
    assert box_at(girl, 4.0) == pytest.approx([0.09, 0.21, 0.34, 0.98], abs=0.01)
    boy_at_4 = [t for t in tracks if 4.0 in t.times and box_at(t, 4.0)[0] < 0.05]
    assert boy_at_4 and all(boy.track_id != girl.track_id for boy in boy_at_4)


def test_an_object_relabelled_in_its_own_place_after_a_gap_stays_one_track() -> None:
    # Cars seen from above: "cell phone" for a second, unseen for a frame, then "car" in
    # the same place. The detector's label changed, not the object.
    car, phone = COCO_CLASS_NAMES.index("car"), COCO_CLASS_NAMES.index("cell phone")
    frames = []
    for index in range(21):
        if index == 10:
            frames.append((index * STEP, Detections.empty()))
            continue
        left = 0.30 + 0.004 * index
        frames.append(
            (
                index * STEP,
                Detections(
                    boxes=np.array([[left, 0.70, left + 0.25, 1.0]], dtype=np.float32),
                    scores=np.array([0.5], dtype=np.float32),
                    class_ids=np.array([phone if index < 10 else car]),
                ),
            )
        )
    tracker = make_tracker("bytetrack", YOLOV3_TINY_THRESHOLDS, frame_rate=1 / STEP)
    tracks = track_detections(frames, tracker, (640, 360), class_names=COCO_CLASS_NAMES)
    assert len(tracks) == 1 and len(tracks[0].times) == 20


# --- merging fragments ------------------------------------------------------------------


def test_fragments_of_one_object_with_a_short_gap_become_one_track() -> None:
    first = track("dog", moments(0.0, 2.0), 0.1, track_id=1, confidence=0.4)
    second = track("dog", moments(2.8, 5.0), 0.1, track_id=7, confidence=0.7)
    merged = merge_fragments([second, first])
    assert len(merged) == 1
    joined = merged[0]
    assert joined.segment == Segment(0.0, 5.0) and joined.track_id == 1
    assert joined.frame_count == first.frame_count + second.frame_count
    expected = (0.4 * first.frame_count + 0.7 * second.frame_count) / joined.frame_count
    assert joined.confidence == pytest.approx(expected)


def test_fragments_are_not_joined_across_classes_places_or_long_gaps() -> None:
    person = track("person", moments(0.0, 2.0), 0.1)
    other_class = track("dog", moments(2.2, 4.0), 0.1)
    elsewhere = track("person", moments(2.2, 4.0), 0.7)
    much_later = track("person", moments(6.0, 8.0), 0.1)
    assert len(merge_fragments([person, other_class, elsewhere, much_later])) == 4


def test_fragments_voted_differently_join_only_when_their_boxes_share_labels() -> None:
    person = replace(
        track("person", moments(0.0, 0.5), 0.1),
        label_frames=(("person", 4), ("traffic light", 2)),
    )
    even = replace(
        track("traffic light", moments(0.6, 1.1), 0.1, track_id=2),
        label_frames=(("person", 3), ("traffic light", 3)),
    )
    [joined] = merge_fragments([person, even])
    assert joined.entity.description == "person"  # 7 boxes of 12
    light = replace(even, label_frames=(("traffic light", 6),))
    one_flip = replace(person, label_frames=(("person", 5), ("traffic light", 1)))
    assert len(merge_fragments([one_flip, light])) == 2
    assert len(merge_fragments([replace(person, label_frames=()), even])) == 2  # votes only


def test_a_runner_turning_back_and_forth_with_labels_flipping_evenly_is_one_track() -> None:
    # The generated fast runner (tests/functional/test_tracking_quality.py) as the int8
    # detector sees it: the tracker loses it where it turns back, and the fragments that
    # start at a turn are 3 "person" boxes and 3 "traffic light" ones, voted "traffic
    # light" by their scores. Joined by votes alone, the runner was two tracks, each
    # chaining every other pass.
    frames, size = recorded_frames("runner_int8_detections.json")
    tracker = make_tracker("bytetrack", YOLOV3_TINY_THRESHOLDS, frame_rate=1 / STEP)
    raw = track_detections(frames, tracker, size, class_names=COCO_CLASS_NAMES)
    # One sprite: its fragments look alike (colour, grey and layout 0.97 to 1.0 in the real
    # run, where it turns while unseen); here one colour histogram stands for that.
    fragments = [
        replace(object_track(found, COCO_CLASS_NAMES), appearance=(0.7, 0.2, 0.1, 0.0))
        for found in raw
    ]
    assert {fragment.entity.description for fragment in fragments} == {"person", "traffic light"}
    [runner] = merge_fragments(fragments)
    assert runner.entity.description == "person"
    assert runner.frame_count == sum(fragment.frame_count for fragment in fragments)


def test_two_objects_side_by_side_stay_two() -> None:
    left = track("person", moments(0.0, 4.0), 0.1, speed=0.0)
    right = track("person", moments(0.0, 4.0), 0.5, speed=0.0)
    assert len(merge_fragments([left, right])) == 2


def test_a_short_duplicate_inside_a_track_is_absorbed() -> None:
    main = track("dog", moments(0.0, 3.0), 0.2)
    duplicate = track("dog", moments(1.0, 1.2), 0.2, track_id=5)
    merged = merge_fragments([main, duplicate])
    assert len(merged) == 1 and merged[0].frame_count == main.frame_count


# --- segments ----------------------------------------------------------------------------


def info(duration: float) -> VideoInfo:
    return VideoInfo(duration=duration, fps=30.0, width=640, height=360, frame_count=0)


def test_a_short_video_is_one_segment() -> None:
    assert plan_segments(info(9.6), 30.0, 2.0) == [Segment(0.0, 9.6)]
    assert plan_segments(info(45.0), 30.0, 2.0) == [Segment(0.0, 45.0)]


def test_a_long_video_is_cut_into_equal_overlapping_segments() -> None:
    segments = plan_segments(info(100.0), 30.0, 2.0)
    # Four segments of 26.5 s each, overlap included: side by side, they finish together.
    assert [s.start for s in segments] == pytest.approx([0.0, 24.5, 49.0, 73.5])
    assert [s.end for s in segments] == pytest.approx([26.5, 51.0, 75.5, 100.0])
    assert [s.duration for s in segments] == pytest.approx([26.5] * 4)


def test_a_track_crossing_a_boundary_comes_out_as_one_object() -> None:
    # Segment A is 0..6 s, B is 5..10 s: both saw the dog walking through the overlap.
    a, b = Segment(0.0, 6.0), Segment(5.0, 10.0)
    dog_in_a = track("dog", moments(2.0, 6.0), 0.1, track_id=3)
    dog_in_b = track("dog", moments(5.0, 9.0), 0.1, track_id=1)
    person_in_a = track("person", moments(0.0, 6.0), 0.6, track_id=1, speed=0.0)
    person_in_b = track("person", moments(5.0, 10.0), 0.6, track_id=2, speed=0.0)
    stitched = stitch_tracks([(b, [dog_in_b, person_in_b]), (a, [person_in_a, dog_in_a])], 1.0)
    assert len(stitched) == 2
    dog = next(t for t in stitched if t.entity.description == "dog")
    times = [frame.time for frame in dog.frames]
    assert times == moments(2.0, 9.0)  # every moment once: no doubled overlap
    assert dog.segment == Segment(2.0, 9.0)
    assert sorted(t.track_id for t in stitched) == [1, 2]


def test_tracks_that_only_touch_one_side_of_the_boundary_are_not_stitched() -> None:
    a, b = Segment(0.0, 6.0), Segment(5.0, 10.0)
    leaves = track("person", moments(1.0, 5.2), 0.1)
    arrives_elsewhere = track("person", moments(5.6, 9.0), 0.7)
    stitched = stitch_tracks([(a, [leaves]), (b, [arrives_elsewhere])], 1.0)
    assert len(stitched) == 2


def _leaves_and_a_dog_nearby(count: int) -> list[tuple[float, Detections]]:
    """A person walking left out of the frame (gone after frame 5); from frame 6 a dog,
    scored low, 1.4 person-sizes below-right of where the person was last seen."""
    dog = COCO_CLASS_NAMES.index("dog")
    frames = []
    for index in range(count):
        if index <= 5:
            left = 0.12 - 0.02 * index
            boxes, scores, classes = [[max(left, 0.0), 0.1, left + 0.08, 0.5]], [0.8], [0]
        else:
            boxes, scores, classes = [[0.17, 0.62, 0.37, 0.88]], [0.3], [dog]
        frames.append(
            (
                round(index * STEP, 3),
                Detections(
                    boxes=np.array(boxes, dtype=np.float32),
                    scores=np.array(scores, dtype=np.float32),
                    class_ids=np.array(classes),
                ),
            )
        )
    return frames


def test_a_track_does_not_hop_to_another_object_beyond_its_gate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracker = make_tracker("bytetrack", YOLOV3_TINY_THRESHOLDS, frame_rate=1 / STEP)
    tracks = track_detections(_leaves_and_a_dog_nearby(12), tracker, (416, 234), COCO_CLASS_NAMES)
    assert all(len(set(t.class_ids)) == 1 for t in tracks), [t.class_ids for t in tracks]
    # Without the gate the person's track takes the dog in the very next frame.
    monkeypatch.setattr("workers.local.tracking._GATE_SIZES", 100.0)
    tracker = make_tracker("bytetrack", YOLOV3_TINY_THRESHOLDS, frame_rate=1 / STEP)
    hopped = track_detections(_leaves_and_a_dog_nearby(12), tracker, (416, 234), COCO_CLASS_NAMES)
    assert any(len(set(t.class_ids)) == 2 for t in hopped)
