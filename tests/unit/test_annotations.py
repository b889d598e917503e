"""The annotation model: box geometry, track accessors and the dict form sent in task messages."""

from __future__ import annotations

import dataclasses
import json

import pytest

from workers.annotations.model import (
    Entity,
    NormalizedBox,
    ObjectTrack,
    Segment,
    TrackedFrame,
    VideoAnnotation,
)


def _track(times: list[float], track_id: int | None = None) -> ObjectTrack:
    return ObjectTrack(
        entity=Entity(entity_id="/m/0bt9lr", description="dog", language_code="en-US"),
        confidence=0.87,
        segment=Segment(start=times[0] if times else 2.0, end=times[-1] if times else 3.0),
        frames=tuple(
            TrackedFrame(time=t, box=NormalizedBox(0.1 + i / 100, 0.2, 0.5 + i / 100, 0.9))
            for i, t in enumerate(times)
        ),
        track_id=track_id,
    )


# --- NormalizedBox -------------------------------------------------------------------------


def test_box_size_and_area() -> None:
    box = NormalizedBox(left=0.25, top=0.5, right=0.75, bottom=1.0)
    assert (box.width, box.height, box.area) == (0.5, 0.5, 0.25)


def test_an_inverted_box_has_no_area() -> None:
    box = NormalizedBox(left=0.6, top=0.6, right=0.4, bottom=0.5)
    assert (box.width, box.height, box.area) == (0.0, 0.0, 0.0)


def test_clipped_pulls_coordinates_into_the_frame() -> None:
    box = NormalizedBox(left=-0.02, top=0.3, right=1.01, bottom=1.5)
    assert box.clipped() == NormalizedBox(left=0.0, top=0.3, right=1.0, bottom=1.0)
    inside = NormalizedBox(0.1, 0.2, 0.3, 0.4)
    assert inside.clipped() == inside


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        pytest.param((0.1, 0.1, 0.5, 0.5), (0.1, 0.1, 0.5, 0.5), 1.0, id="identical"),
        pytest.param((0.0, 0.0, 0.2, 0.2), (0.5, 0.5, 0.9, 0.9), 0.0, id="disjoint"),
        pytest.param((0.0, 0.0, 0.2, 0.2), (0.2, 0.0, 0.4, 0.2), 0.0, id="touching"),
        # Two 0.4 x 0.4 boxes sharing a 0.2 x 0.4 strip: 0.08 / (0.16 + 0.16 - 0.08).
        pytest.param((0.0, 0.0, 0.4, 0.4), (0.2, 0.0, 0.6, 0.4), 1 / 3, id="half-shifted"),
        # A box inside one four times its area.
        pytest.param((0.0, 0.0, 0.4, 0.4), (0.1, 0.1, 0.3, 0.3), 0.25, id="nested"),
        pytest.param((0.3, 0.3, 0.3, 0.3), (0.3, 0.3, 0.3, 0.3), 0.0, id="both-empty"),
    ],
)
def test_iou(first: tuple[float, ...], second: tuple[float, ...], expected: float) -> None:
    a, b = NormalizedBox(*first), NormalizedBox(*second)
    assert a.iou(b) == pytest.approx(expected)
    assert b.iou(a) == pytest.approx(expected)


def test_to_pixels_rounds_and_clips() -> None:
    box = NormalizedBox(left=0.1, top=0.25, right=0.5004, bottom=1.2)
    assert box.to_pixels(1280, 720) == (128, 180, 641, 720)
    assert NormalizedBox(-0.1, -0.1, 0.0, 0.0).to_pixels(640, 480) == (0, 0, 0, 0)


def test_box_dict_round_trip_and_defaults() -> None:
    box = NormalizedBox(0.1, 0.2, 0.3, 0.4)
    assert NormalizedBox.from_dict(box.to_dict()) == box
    assert NormalizedBox.from_dict({"right": 0.5}) == NormalizedBox(0.0, 0.0, 0.5, 0.0)


# --- Segment, Entity --------------------------------------------------------------------------


def test_segment_duration_is_never_negative() -> None:
    assert Segment(1.5, 4.0).duration == 2.5
    assert Segment(4.0, 1.5).duration == 0.0


def test_entity_dict_round_trip_and_defaults() -> None:
    entity = Entity(entity_id="/m/01g317", description="Person", language_code="de-DE")
    assert Entity.from_dict(entity.to_dict()) == entity
    assert Entity.from_dict({}) == Entity(entity_id="", description="", language_code="en-US")


# --- ObjectTrack ----------------------------------------------------------------------------------


def test_track_counts_and_ends_come_from_its_frames() -> None:
    track = _track([0.5, 0.6, 1.25])
    assert track.frame_count == 3
    assert track.first_time == 0.5
    assert track.last_time == 1.25


def test_a_track_without_frames_falls_back_to_its_segment() -> None:
    track = _track([])
    assert track.frame_count == 0
    assert (track.first_time, track.last_time) == (2.0, 3.0)


def test_models_are_immutable() -> None:
    track = _track([0.5])
    with pytest.raises(dataclasses.FrozenInstanceError):
        track.confidence = 0.1  # type: ignore[misc]


# --- VideoAnnotation dicts (what crosses a Celery message) ------------------------------------


@pytest.mark.parametrize(
    "annotation",
    [
        pytest.param(VideoAnnotation(input_uri="gs://bucket/empty.mp4"), id="empty"),
        pytest.param(
            VideoAnnotation(
                input_uri="/videos/dog.mp4",
                objects=(_track([0.0, 0.0333667, 0.0667334]), _track([1.5], track_id=7)),
                segment=Segment(0.0, 9.6),
            ),
            id="objects-and-segment",
        ),
        pytest.param(
            VideoAnnotation(
                input_uri="/videos/café.mp4",
                objects=(_track([], track_id=2**62),),
            ),
            id="no-frames-big-track-id",
        ),
    ],
)
def test_annotation_dict_round_trip_through_json(annotation: VideoAnnotation) -> None:
    as_message = json.loads(json.dumps(annotation.to_dict()))
    assert VideoAnnotation.from_dict(as_message) == annotation


def test_annotation_dict_shape() -> None:
    annotation = VideoAnnotation(
        input_uri="/videos/dog.mp4", objects=(_track([0.5], track_id=3),), segment=None
    )
    data = annotation.to_dict()
    assert data["input_uri"] == "/videos/dog.mp4"
    assert data["segment"] is None
    obj = data["objects"][0]
    assert obj["track_id"] == 3
    assert obj["frames"] == [
        {"time": 0.5, "box": {"left": 0.1, "top": 0.2, "right": 0.5, "bottom": 0.9}}
    ]
    assert obj["entity"] == {
        "entity_id": "/m/0bt9lr",
        "description": "dog",
        "language_code": "en-US",
    }


def test_the_frame_minimum_scales_to_a_short_clip() -> None:
    from workers.annotations.selection import frame_minimum

    assert frame_minimum(10, 300) == 10  # a long video: as asked
    assert frame_minimum(10, 20) == 10  # twice the minimum: still as asked
    assert frame_minimum(10, 19) == 10 and frame_minimum(10, 18) == 9  # half, rounded up
    assert frame_minimum(10, 8) == 4 and frame_minimum(10, 1) == 1
    assert frame_minimum(3, 0) == 3  # frames unknown: as asked


def test_the_local_backends_label_counts_survive_a_message_and_older_documents_lack_them() -> None:
    track = dataclasses.replace(
        _track([0.5, 0.6]),
        label_scores=(("dog", 0.8), ("person", 0.9)),
        label_frames=(("dog", 2), ("person", 1)),
    )
    data = json.loads(json.dumps(track.to_dict()))
    assert data["label_frames"] == [["dog", 2], ["person", 1]]
    assert ObjectTrack.from_dict(data) == track
    del data["label_frames"]
    assert ObjectTrack.from_dict(data).label_frames == ()
    assert "label_frames" not in _track([0.5]).to_dict()
