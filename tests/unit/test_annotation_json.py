"""Reading and writing the Video Intelligence API's object-tracking JSON."""

from __future__ import annotations

import datetime
import functools
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from google.cloud import videointelligence_v1 as vi
from google.longrunning import operations_pb2
from google.protobuf import json_format

from tests.support.api_output import api_output
from workers.annotations.model import (
    Entity,
    NormalizedBox,
    ObjectTrack,
    Segment,
    TrackedFrame,
    VideoAnnotation,
)
from workers.annotations.vi_json import (
    dump_annotation_json,
    parse_annotation_json,
    read_annotation_file,
)
from workers.errors import AnnotationFormatError, NotFoundError

SOURCE = "gs://results/dog.json"
DOG = Entity(entity_id="/m/0bt9lr", description="dog", language_code="en-US")
PERSON = Entity(entity_id="/m/01g317", description="person", language_code="en-US")


def _frame(time: float, left: float, top: float, right: float, bottom: float) -> TrackedFrame:
    return TrackedFrame(time=time, box=NormalizedBox(left, top, right, bottom))


def _parse(document: Any, input_uri: str | None = None) -> VideoAnnotation:
    text = document if isinstance(document, str | bytes) else json.dumps(document)
    return parse_annotation_json(text, SOURCE, input_uri)


# --- Round trip -----------------------------------------------------------------------------------


def _ntsc_track(entity: Entity, frames: int, track_id: int | None) -> ObjectTrack:
    """A track over ``frames`` consecutive 29.97 fps frames, as the API reports it.

    Coordinates and confidences are float32 in the API's messages and printed shortest
    (0.87402344, never 0.8740234375), so values with up to 7 significant digits.
    """
    times = [index * 1001 / 30000 for index in range(frames)]
    return ObjectTrack(
        entity=entity,
        confidence=0.87402344,
        segment=Segment(times[0], times[-1]),
        frames=tuple(
            _frame(t, *(round(v, 6) for v in (0.1 + i / 1e3, 0.2, 0.4 + i / 1e3, 0.95 - i / 2e3)))
            for i, t in enumerate(times)
        ),
        track_id=track_id,
    )


def test_round_trip_keeps_everything_to_the_nanosecond() -> None:
    annotation = VideoAnnotation(
        input_uri="gs://videos/sam2_01_dog.mp4",
        objects=(
            _ntsc_track(DOG, 289, track_id=None),
            _ntsc_track(PERSON, 150, track_id=0),
            _ntsc_track(
                Entity("/m/0k4j", "Straßenbahn 🚋 路面電車", "de-DE"), 3, track_id=2**63 - 1
            ),
        ),
        segment=Segment(0.0, 9.6426),
    )

    text = dump_annotation_json(annotation)
    parsed = parse_annotation_json(text, SOURCE)

    assert parsed.input_uri == annotation.input_uri
    assert parsed.segment == annotation.segment
    assert len(parsed.objects) == 3
    for before, after in zip(annotation.objects, parsed.objects, strict=True):
        assert after.entity == before.entity
        assert after.confidence == before.confidence
        assert after.track_id is None  # the batch API's form: a segment, never a trackId
        assert after.segment.start == pytest.approx(before.segment.start, abs=0.5e-9)
        assert after.segment.end == pytest.approx(before.segment.end, abs=0.5e-9)
        assert [f.box for f in after.frames] == [f.box for f in before.frames]
        for frame_before, frame_after in zip(before.frames, after.frames, strict=True):
            assert frame_after.time == pytest.approx(frame_before.time, abs=0.5e-9)
    # Once rounded to the nanosecond, the text is stable.
    assert dump_annotation_json(parsed) == text


def test_round_trip_is_exact_for_nanosecond_times() -> None:
    annotation = VideoAnnotation(
        input_uri="/videos/dog.mp4",
        objects=(
            ObjectTrack(
                entity=DOG,
                confidence=0.9,
                segment=Segment(0.1, 2.5),
                frames=(_frame(0.1, 0.0, 0.1, 0.5, 0.7), _frame(2.5, 0.2, 0.1, 0.7, 1.0)),
            ),
            ObjectTrack(
                entity=Entity("", "", ""),
                confidence=0.0,
                segment=Segment(1.000000001, 3.000000001),
                frames=(
                    _frame(1.000000001, 0.0, 0.0, 0.001, 0.001),
                    _frame(3.000000001, 0.3, 0.3, 0.6, 0.6),
                ),
            ),
            ObjectTrack(entity=PERSON, confidence=1.0, segment=Segment(4.0, 5.0)),
        ),
    )
    assert parse_annotation_json(dump_annotation_json(annotation), SOURCE) == annotation


def test_written_document_shape() -> None:
    annotation = VideoAnnotation(
        input_uri="/videos/dog.mp4",
        objects=(
            ObjectTrack(DOG, 0.9, Segment(0.0, 1.5), (_frame(1.5, 0.0, 0.1, 0.5, 0.7),)),
            ObjectTrack(PERSON, 0.75, Segment(0.5, 0.5), (_frame(0.5, 0.1, 0.1, 0.2, 0.2),), 7),
        ),
        segment=Segment(0.0, 9.6),
    )
    text = dump_annotation_json(annotation)

    assert text.startswith('{\n  "annotationResults": [\n    {\n      "inputUri"')
    assert text.endswith("}\n")
    assert json.loads(text) == {
        "annotationResults": [
            {
                "inputUri": "/videos/dog.mp4",
                "segment": {"startTimeOffset": "0s", "endTimeOffset": "9.600s"},
                "objectAnnotations": [
                    {
                        "entity": {
                            "entityId": "/m/0bt9lr",
                            "description": "dog",
                            "languageCode": "en-US",
                        },
                        "confidence": 0.9,
                        "segment": {"startTimeOffset": "0s", "endTimeOffset": "1.500s"},
                        "frames": [
                            {
                                "normalizedBoundingBox": {
                                    "left": 0.0,
                                    "top": 0.1,
                                    "right": 0.5,
                                    "bottom": 0.7,
                                },
                                "timeOffset": "1.500s",
                            }
                        ],
                    },
                    {
                        "entity": {
                            "entityId": "/m/01g317",
                            "description": "person",
                            "languageCode": "en-US",
                        },
                        "confidence": 0.75,
                        "segment": {"startTimeOffset": "0.500s", "endTimeOffset": "0.500s"},
                        "frames": [
                            {
                                "normalizedBoundingBox": {
                                    "left": 0.1,
                                    "top": 0.1,
                                    "right": 0.2,
                                    "bottom": 0.2,
                                },
                                "timeOffset": "0.500s",
                            }
                        ],
                    },
                ],
            }
        ]
    }


def test_unicode_is_written_as_utf8_text() -> None:
    annotation = VideoAnnotation(
        input_uri="/videos/café.mp4",
        objects=(ObjectTrack(Entity("/m/x", "chien 🐕", "fr-FR"), 0.5, Segment(0, 0)),),
    )
    text = dump_annotation_json(annotation)
    assert "chien 🐕" in text and "café" in text
    assert parse_annotation_json(text.encode("utf-8"), SOURCE) == annotation


def test_a_tracked_object_is_written_as_the_batch_api_writes_it() -> None:
    """segment and trackId are one oneof: the batch API fills segment (first and last
    time), never trackId (streaming only). A segment that misses frames is their span."""
    annotation = VideoAnnotation(
        input_uri="/videos/dog.mp4",
        objects=(
            ObjectTrack(
                DOG,
                0.9,
                Segment(0.0, 9.0),  # wider than its frames (the API's, with frames dropped)
                (_frame(1.0, 0.1, 0.1, 0.2, 0.2), _frame(2.0, 0.1, 0.1, 0.2, 0.2)),
                track_id=5,
            ),
            ObjectTrack(
                PERSON,
                0.8,
                Segment(0.0, 0.0),  # an empty default: the frames' span is written
                (_frame(3.25, 0.1, 0.1, 0.2, 0.2), _frame(4.5, 0.1, 0.1, 0.2, 0.2)),
                track_id=6,
            ),
        ),
    )
    written = json.loads(dump_annotation_json(annotation))["annotationResults"][0]
    dog, person = written["objectAnnotations"]
    assert "trackId" not in dog and "trackId" not in person
    assert dog["segment"] == {"startTimeOffset": "0s", "endTimeOffset": "9s"}
    assert person["segment"] == {"startTimeOffset": "3.250s", "endTimeOffset": "4.500s"}
    parsed = parse_annotation_json(dump_annotation_json(annotation), SOURCE)
    assert [obj.segment for obj in parsed.objects] == [Segment(0.0, 9.0), Segment(3.25, 4.5)]
    assert [obj.track_id for obj in parsed.objects] == [None, None]


def test_writer_refuses_times_json_cannot_hold() -> None:
    annotation = VideoAnnotation(
        input_uri="/v.mp4",
        objects=(ObjectTrack(DOG, 0.5, Segment(0.0, float("nan"))),),
    )
    with pytest.raises(ValueError, match="nan"):
        dump_annotation_json(annotation)


# --- Duration formatting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "written"),
    [
        (0.0, "0s"),
        (2.0, "2s"),
        (1.5, "1.500s"),
        (12.25, "12.250s"),
        (0.1 + 0.2, "0.300s"),  # 0.30000000000000004: no float noise
        (3.000000001, "3.000000001s"),
        (1 / 3, "0.333333333s"),
        (2 / 3, "0.666666667s"),
        (1001 / 30000, "0.033366667s"),
        (0.0333667, "0.033366700s"),
        (0.0015, "0.001500s"),
        (1e-9, "0.000000001s"),
        (4e-10, "0s"),  # below half a nanosecond
        (9.9999999996, "10s"),  # rounds up into the next second
        (86400.5, "86400.500s"),
    ],
)
def test_durations_are_written_like_proto3_json(seconds: float, written: str) -> None:
    annotation = VideoAnnotation(
        input_uri="/v.mp4",
        objects=(ObjectTrack(DOG, 0.5, Segment(0.0, seconds), (_frame(seconds, 0, 0, 1, 1),)),),
    )
    obj = json.loads(dump_annotation_json(annotation))["annotationResults"][0]["objectAnnotations"][
        0
    ]
    assert obj["frames"][0]["timeOffset"] == written
    assert obj["segment"]["endTimeOffset"] == written


# --- Duration reading -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        ("0s", 0.0),
        ("1.5s", 1.5),
        ("3.000000001s", 3.000000001),
        ("0.033366700s", 0.0333667),
        ("12s", 12.0),
        ("0.0333666666666s", 0.033366667),  # more digits than proto3 holds: nearest nanosecond
        ({"seconds": 3, "nanos": 500000000}, 3.5),
        ({"seconds": "3", "nanos": 500000000}, 3.5),  # int64 written as a string
        ({"seconds": "12"}, 12.0),
        ({"nanos": 33366700}, 0.0333667),
        ({}, 0.0),
        (None, 0.0),
        (2.25, 2.25),
        (7, 7.0),
    ],
)
def test_every_duration_form_is_read(duration: object, seconds: float) -> None:
    frame = {"timeOffset": duration, "normalizedBoundingBox": {"right": 0.5, "bottom": 0.5}}
    document = {"annotationResults": [{"objectAnnotations": [{"frames": [frame]}]}]}
    assert _parse(document).objects[0].frames[0].time == seconds


# --- The forms the API's results come in ----------------------------------------------------------

# What the REST API (and the client library's to_json) gives: camelCase, "1.5s" durations,
# zero values omitted, float32 confidences and coordinates.
CAMEL_RESPONSE = """
{
  "annotationResults": [
    {
      "inputUri": "/vtrack-demo/videos/sam2_01_dog.mp4",
      "segment": {
        "startTimeOffset": "0s",
        "endTimeOffset": "9.642966s"
      },
      "objectAnnotations": [
        {
          "entity": {
            "entityId": "/m/0bt9lr",
            "description": "dog",
            "languageCode": "en-US"
          },
          "frames": [
            {
              "normalizedBoundingBox": {
                "left": 0.4140625,
                "top": 0.5527344,
                "right": 0.6289062,
                "bottom": 0.9394531
              },
              "timeOffset": "0s"
            },
            {
              "normalizedBoundingBox": {
                "left": 0.421875,
                "top": 0.5488281,
                "right": 0.6347656,
                "bottom": 0.9453125
              },
              "timeOffset": "0.100100s"
            }
          ],
          "segment": {
            "startTimeOffset": "0s",
            "endTimeOffset": "0.100100s"
          },
          "confidence": 0.91796875,
          "version": "builtin/stable"
        },
        {
          "entity": {
            "entityId": "/m/01g317",
            "description": "person",
            "languageCode": "en-US"
          },
          "frames": [
            {
              "normalizedBoundingBox": {
                "top": 0.0390625,
                "right": 0.2753906,
                "bottom": 0.9980469
              },
              "timeOffset": "1.501500s"
            }
          ],
          "segment": {
            "startTimeOffset": "1.501500s",
            "endTimeOffset": "1.501500s"
          },
          "confidence": 0.7421875,
          "version": "builtin/stable"
        }
      ]
    }
  ]
}
"""

CAMEL_EXPECTED = VideoAnnotation(
    input_uri="/vtrack-demo/videos/sam2_01_dog.mp4",
    segment=Segment(0.0, 9.642966),
    objects=(
        ObjectTrack(
            entity=DOG,
            confidence=0.91796875,
            segment=Segment(0.0, 0.1001),
            frames=(
                _frame(0.0, 0.4140625, 0.5527344, 0.6289062, 0.9394531),
                _frame(0.1001, 0.421875, 0.5488281, 0.6347656, 0.9453125),
            ),
        ),
        ObjectTrack(
            entity=PERSON,
            confidence=0.7421875,
            segment=Segment(1.5015, 1.5015),
            frames=(_frame(1.5015, 0.0, 0.0390625, 0.2753906, 0.9980469),),
        ),
    ),
)

# What the API writes to output_uri: snake_case, durations as {seconds, nanos} objects,
# an empty object for a zero duration.
SNAKE_OUTPUT_URI_FILE = """
{
  "annotation_results": [ {
    "input_uri": "/vtrack-demo/videos/sam2_01_dog.mp4",
    "segment": {
      "start_time_offset": {
      },
      "end_time_offset": {
        "seconds": 9,
        "nanos": 642966000
      }
    },
    "object_annotations": [ {
      "entity": {
        "entity_id": "/m/0bt9lr",
        "description": "dog",
        "language_code": "en-US"
      },
      "confidence": 0.91796875,
      "frames": [ {
        "normalized_bounding_box": {
          "left": 0.4140625,
          "top": 0.5527344,
          "right": 0.6289062,
          "bottom": 0.9394531
        },
        "time_offset": {
        }
      }, {
        "normalized_bounding_box": {
          "left": 0.421875,
          "top": 0.5488281,
          "right": 0.6347656,
          "bottom": 0.9453125
        },
        "time_offset": {
          "nanos": 100100000
        }
      } ],
      "segment": {
        "start_time_offset": {
        },
        "end_time_offset": {
          "nanos": 100100000
        }
      },
      "version": "builtin/stable"
    }, {
      "entity": {
        "entity_id": "/m/01g317",
        "description": "person",
        "language_code": "en-US"
      },
      "confidence": 0.7421875,
      "frames": [ {
        "normalized_bounding_box": {
          "top": 0.0390625,
          "right": 0.2753906,
          "bottom": 0.9980469
        },
        "time_offset": {
          "seconds": "1",
          "nanos": 501500000
        }
      } ],
      "segment": {
        "start_time_offset": {
          "seconds": 1,
          "nanos": 501500000
        },
        "end_time_offset": {
          "seconds": 1,
          "nanos": 501500000
        }
      },
      "version": "builtin/stable"
    } ]
  } ]
}
"""

# What operations.get returns once the operation is done (gcloud ml video detect-objects
# prints the same): the response wrapped with its @type, progress in the metadata.
OPERATION_ENVELOPE = """
{
  "name": "projects/123456789012/locations/us-east1/operations/6542138915843702841",
  "metadata": {
    "@type": "type.googleapis.com/google.cloud.videointelligence.v1.AnnotateVideoProgress",
    "annotationProgress": [
      {
        "inputUri": "/vtrack-demo/videos/sam2_01_dog.mp4",
        "progressPercent": 100,
        "startTime": "2024-05-02T09:14:03.512237Z",
        "updateTime": "2024-05-02T09:14:41.907106Z",
        "feature": "OBJECT_TRACKING"
      }
    ]
  },
  "done": true,
  "response": {
    "@type": "type.googleapis.com/google.cloud.videointelligence.v1.AnnotateVideoResponse",
    "annotationResults": [
      {
        "inputUri": "/vtrack-demo/videos/sam2_01_dog.mp4",
        "segment": {"startTimeOffset": "0s", "endTimeOffset": "9.642966s"},
        "objectAnnotations": [
          {
            "entity": {"entityId": "/m/0bt9lr", "description": "dog", "languageCode": "en-US"},
            "frames": [
              {
                "normalizedBoundingBox": {
                  "left": 0.4140625, "top": 0.5527344, "right": 0.6289062, "bottom": 0.9394531
                },
                "timeOffset": "0s"
              },
              {
                "normalizedBoundingBox": {
                  "left": 0.421875, "top": 0.5488281, "right": 0.6347656, "bottom": 0.9453125
                },
                "timeOffset": "0.100100s"
              }
            ],
            "segment": {"startTimeOffset": "0s", "endTimeOffset": "0.100100s"},
            "confidence": 0.91796875
          },
          {
            "entity": {"entityId": "/m/01g317", "description": "person", "languageCode": "en-US"},
            "frames": [
              {
                "normalizedBoundingBox": {
                  "top": 0.0390625, "right": 0.2753906, "bottom": 0.9980469
                },
                "timeOffset": "1.501500s"
              }
            ],
            "segment": {"startTimeOffset": "1.501500s", "endTimeOffset": "1.501500s"},
            "confidence": 0.7421875
          }
        ]
      }
    ]
  }
}
"""

# A request with two video segments gets one result per segment; a client that kept only
# annotation_results (a list) saves that.
BARE_LIST_TWO_SEGMENTS = """
[
  {
    "inputUri": "/vtrack-demo/videos/sam2_01_dog.mp4",
    "segment": {"startTimeOffset": "0s", "endTimeOffset": "1s"},
    "objectAnnotations": [
      {
        "entity": {"entityId": "/m/0bt9lr", "description": "dog", "languageCode": "en-US"},
        "frames": [
          {
            "normalizedBoundingBox": {
              "left": 0.421875, "top": 0.5488281, "right": 0.6347656, "bottom": 0.9453125
            },
            "timeOffset": "0.100100s"
          },
          {
            "normalizedBoundingBox": {
              "left": 0.4140625, "top": 0.5527344, "right": 0.6289062, "bottom": 0.9394531
            },
            "timeOffset": "0s"
          }
        ],
        "segment": {"startTimeOffset": "0s", "endTimeOffset": "0.100100s"},
        "confidence": 0.91796875
      }
    ]
  },
  {
    "inputUri": "/vtrack-demo/videos/sam2_01_dog.mp4",
    "segment": {"startTimeOffset": "1.5s", "endTimeOffset": "9.642966s"},
    "objectAnnotations": [
      {
        "entity": {"entityId": "/m/01g317", "description": "person", "languageCode": "en-US"},
        "frames": [
          {
            "normalizedBoundingBox": {"top": 0.0390625, "right": 0.2753906, "bottom": 0.9980469},
            "timeOffset": "1.501500s"
          }
        ],
        "segment": {"startTimeOffset": "1.501500s", "endTimeOffset": "1.501500s"},
        "confidence": 0.7421875
      }
    ]
  }
]
"""


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(CAMEL_RESPONSE, id="camelCase-response"),
        pytest.param(SNAKE_OUTPUT_URI_FILE, id="snake_case-output-uri-file"),
        pytest.param(OPERATION_ENVELOPE, id="operation-envelope"),
        pytest.param(BARE_LIST_TWO_SEGMENTS, id="bare-list-of-two-segments"),
    ],
)
def test_every_form_gives_the_same_annotation(document: str) -> None:
    """The bare list's frames are out of order and its two segments span 0-1 s and 1.5-9.6 s."""
    assert parse_annotation_json(document, SOURCE) == CAMEL_EXPECTED


def test_results_for_several_segments_merge_in_document_order() -> None:
    """Later segments may come first; the annotation spans them all, objects keep their order."""
    document = {
        "annotationResults": [
            {
                "inputUri": "/b/v.mp4",
                "segment": {"startTimeOffset": "6s", "endTimeOffset": "9.5s"},
                "objectAnnotations": [{"entity": {"description": "car"}, "confidence": 0.5}],
            },
            {"inputUri": "/b/v.mp4", "segment": {"startTimeOffset": "2s", "endTimeOffset": "4s"}},
            {
                "segment": {"startTimeOffset": "4s", "endTimeOffset": "5s"},
                "objectAnnotations": [{"entity": {"description": "bus"}, "confidence": 0.5}],
            },
        ]
    }
    parsed = _parse(document)
    assert parsed.input_uri == "/b/v.mp4"
    assert parsed.segment == Segment(2.0, 9.5)
    assert [obj.entity.description for obj in parsed.objects] == ["car", "bus"]


def test_a_single_result_object_is_read() -> None:
    result = json.loads(CAMEL_RESPONSE)["annotationResults"][0]
    assert _parse(result) == CAMEL_EXPECTED


def test_the_callers_input_uri_replaces_the_apis_spelling() -> None:
    parsed = _parse(CAMEL_RESPONSE, input_uri="gs://vtrack-demo/videos/sam2_01_dog.mp4")
    assert parsed.input_uri == "gs://vtrack-demo/videos/sam2_01_dog.mp4"
    assert parsed.objects == CAMEL_EXPECTED.objects


OMITTED_ZEROS = """
{
  "annotationResults": [
    {
      "inputUri": "/b/v.mp4",
      "segment": {"endTimeOffset": "4s"},
      "objectAnnotations": [
        {
          "entity": {"entityId": "/m/0k4j", "description": "car"},
          "frames": [
            {"normalizedBoundingBox": {"right": 0.5, "bottom": 0.25}, "timeOffset": "2s"},
            {"normalizedBoundingBox": {"left": 0.5, "top": 0.5, "right": 1, "bottom": 1}},
            {"normalizedBoundingBox": {}, "timeOffset": {}},
            {"timeOffset": "3s", "normalizedBoundingBox": null}
          ]
        },
        {
          "segment": {"endTimeOffset": "0.5s"},
          "confidence": 0.5
        },
        {}
      ]
    }
  ]
}
"""


def test_omitted_zero_values_read_as_zero() -> None:
    parsed = _parse(OMITTED_ZEROS)
    assert parsed.segment == Segment(0.0, 4.0)
    car, no_frames, empty = parsed.objects
    assert car.entity == Entity(entity_id="/m/0k4j", description="car", language_code="")
    assert car.confidence == 0.0
    # A box left out (or empty) has no area: its frame is dropped, and counted.
    assert [(f.time, f.box) for f in car.frames] == [
        (0.0, NormalizedBox(0.5, 0.5, 1.0, 1.0)),
        (2.0, NormalizedBox(0.0, 0.0, 0.5, 0.25)),
    ]
    assert (parsed.boxes_dropped, parsed.boxes_clipped) == (2, 0)
    # No segment: from the first to the last frame the API listed, dropped ones included.
    assert car.segment == Segment(0.0, 3.0)
    assert (no_frames.segment, no_frames.frames) == (Segment(0.0, 0.5), ())
    assert empty == ObjectTrack(Entity("", "", ""), 0.0, Segment(0.0, 0.0), (), None)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(
            '{"annotationResults": [{"inputUri": "/b/empty.mp4",'
            ' "segment": {"endTimeOffset": "5s"}}]}',
            id="result-without-objects",
        ),
        pytest.param(
            '{"annotationResults": [{"inputUri": "/b/empty.mp4", "objectAnnotations": [],'
            ' "shotAnnotations": [{"endTimeOffset": "5s"}]}]}',
            id="empty-objects-and-another-feature",
        ),
    ],
)
def test_a_video_with_nothing_in_it_is_a_valid_empty_annotation(document: str) -> None:
    parsed = _parse(document)
    assert parsed.input_uri == "/b/empty.mp4"
    assert parsed.objects == ()


def test_an_object_with_both_a_segment_and_a_track_id_keeps_both() -> None:
    """The API's message holds one or the other (a oneof); a file with both loses neither."""
    segment = {"startTimeOffset": "1s", "endTimeOffset": "4s"}
    for obj in ({"trackId": "5", "segment": segment}, {"segment": segment, "track_id": 5}):
        (track,) = _parse({"annotationResults": [{"objectAnnotations": [obj]}]}).objects
        assert (track.track_id, track.segment) == (5, Segment(1.0, 4.0))


def test_streaming_style_track_ids_are_read_from_strings_and_numbers() -> None:
    document = {
        "annotationResults": [
            {
                "objectAnnotations": [
                    {"trackId": "9223372036854775807", "confidence": 0.5},
                    {"track_id": 12, "confidence": 0.5},
                    {"trackId": "0", "confidence": 0.5},
                    {"confidence": 0.5},
                ]
            }
        ]
    }
    assert [obj.track_id for obj in _parse(document).objects] == [2**63 - 1, 12, 0, None]


def _one_object(*boxes: dict[str, Any], snake: bool = False) -> dict[str, Any]:
    """A response with one object, one frame per box, 0.1 s apart."""
    box_key, time_key = (
        ("normalized_bounding_box", "time_offset")
        if snake
        else (
            "normalizedBoundingBox",
            "timeOffset",
        )
    )
    frames = [{box_key: box, time_key: f"{i / 10:.1f}s"} for i, box in enumerate(boxes)]
    return {"annotationResults": [{"objectAnnotations": [{"confidence": 0.9, "frames": frames}]}]}


INSIDE = {"left": 0.1, "top": 0.2, "right": 0.5, "bottom": 0.6}


@pytest.mark.parametrize(
    ("box", "clipped"),
    [
        # The coordinate vtrack used to refuse a whole real output for.
        pytest.param({**INSIDE, "left": -0.011411694}, (0.0, 0.2, 0.5, 0.6), id="real-overshoot"),
        pytest.param(
            {"left": -0.004, "top": 0.2, "right": 1.0099, "bottom": 1.003},
            (0.0, 0.2, 1.0, 1.0),
            id="a-pixel-past-three-edges",
        ),
        pytest.param(
            {"left": -0.6, "top": -0.59, "right": 1.6, "bottom": 1.3},
            (0.0, 0.0, 1.0, 1.0),
            id="past-every-edge-by-0.6",
        ),
        pytest.param({**INSIDE, "right": 1.2}, (0.1, 0.2, 1.0, 0.6), id="right-1.2"),
        pytest.param({**INSIDE, "bottom": 540}, (0.1, 0.2, 0.5, 1.0), id="pixel-bottom"),
        pytest.param({"right": 1.02, "bottom": 0.3}, (0.0, 0.0, 1.0, 0.3), id="zeros-left-out"),
    ],
)
def test_boxes_past_the_frame_are_clipped_into_it_and_kept(
    box: dict[str, float], clipped: tuple[float, float, float, float]
) -> None:
    parsed = _parse(_one_object(INSIDE, box, INSIDE))
    (track,) = parsed.objects
    assert [frame.box for frame in track.frames] == [
        NormalizedBox(0.1, 0.2, 0.5, 0.6),
        NormalizedBox(*clipped),
        NormalizedBox(0.1, 0.2, 0.5, 0.6),
    ]
    assert (parsed.boxes_clipped, parsed.boxes_dropped) == (1, 0)


@pytest.mark.parametrize(
    "box",
    [
        pytest.param({"left": 1.02, "top": 0.1, "right": 1.4, "bottom": 0.5}, id="right-of-frame"),
        pytest.param({"left": 0.1, "top": -0.5, "right": 0.4, "bottom": -0.01}, id="above-frame"),
        pytest.param({"left": -0.6, "top": 1.1, "right": 1.6, "bottom": 1.3}, id="below-frame"),
        pytest.param({"left": 0.8, "top": 0.1, "right": 0.2, "bottom": 0.5}, id="left-right-swap"),
        pytest.param({"left": 0.1, "top": 0.9, "right": 0.4, "bottom": 0.3}, id="top-bottom-swap"),
        pytest.param({"left": 0.5, "top": 0.5, "right": 0.495, "bottom": 0.6}, id="just-inverted"),
        pytest.param({"left": 0.5, "top": 0.1, "right": 0.5, "bottom": 0.6}, id="no-width"),
        pytest.param({"left": 1.0, "top": 0.1, "right": 1.3, "bottom": 0.6}, id="on-the-edge"),
        pytest.param({}, id="all-zero"),
    ],
)
def test_a_box_empty_once_clipped_drops_its_frame_not_the_object(box: dict[str, float]) -> None:
    for snake in (False, True):
        parsed = _parse(_one_object(INSIDE, box, {**INSIDE, "right": 1.3}, snake=snake))
        (track,) = parsed.objects
        assert [(frame.time, frame.box) for frame in track.frames] == [
            (0.0, NormalizedBox(0.1, 0.2, 0.5, 0.6)),
            (0.2, NormalizedBox(0.1, 0.2, 1.0, 0.6)),
        ]
        assert track.segment == Segment(0.0, 0.2)
        assert (parsed.boxes_clipped, parsed.boxes_dropped) == (1, 1)


def test_an_object_whose_every_box_is_outside_is_kept_without_frames() -> None:
    outside = {"left": 1.1, "top": 0.1, "right": 1.5, "bottom": 0.5}
    parsed = _parse(_one_object(outside, outside))
    (track,) = parsed.objects
    assert track.frames == () and track.segment == Segment(0.0, 0.1)
    assert (parsed.boxes_clipped, parsed.boxes_dropped) == (0, 2)


def test_bytes_in_utf8_with_bom_and_utf16_are_read() -> None:
    text = CAMEL_RESPONSE.replace('"dog"', '"chien 🐕"')
    for data in (text.encode("utf-8-sig"), text.encode("utf-16"), "\ufeff" + text):
        assert _parse(data).objects[0].entity.description == "chien 🐕"


# --- The API's own client library -----------------------------------------------------------------


def _library_response() -> vi.AnnotateVideoResponse:
    """A response built with the API's message classes (binary-exact float32 values)."""
    return vi.AnnotateVideoResponse(
        annotation_results=[
            vi.VideoAnnotationResults(
                input_uri="/bucket/dog.mp4",
                segment=vi.VideoSegment(
                    start_time_offset=datetime.timedelta(0),
                    end_time_offset=datetime.timedelta(seconds=9, microseconds=642966),
                ),
                object_annotations=[
                    vi.ObjectTrackingAnnotation(
                        entity=vi.Entity(entity_id="/m/0bt9lr", description="dog"),
                        confidence=0.875,
                        segment=vi.VideoSegment(
                            start_time_offset=datetime.timedelta(0),
                            end_time_offset=datetime.timedelta(microseconds=100100),
                        ),
                        frames=[
                            vi.ObjectTrackingFrame(
                                normalized_bounding_box=vi.NormalizedBoundingBox(
                                    left=0.0, top=0.25, right=0.5, bottom=0.75
                                ),
                                time_offset=datetime.timedelta(microseconds=100100),
                            )
                        ],
                        version="builtin/stable",
                    ),
                    vi.ObjectTrackingAnnotation(
                        entity=vi.Entity(entity_id="/m/01g317", description="person"),
                        confidence=0.5,
                        track_id=12345678901,
                    ),
                ],
            )
        ]
    )


LIBRARY_EXPECTED = VideoAnnotation(
    input_uri="/bucket/dog.mp4",
    segment=Segment(0.0, 9.642966),
    objects=(
        ObjectTrack(
            Entity("/m/0bt9lr", "dog", ""),
            0.875,
            Segment(0.0, 0.1001),
            (_frame(0.1001, 0.0, 0.25, 0.5, 0.75),),
        ),
        ObjectTrack(Entity("/m/01g317", "person", ""), 0.5, Segment(0.0, 0.0), (), 12345678901),
    ),
)


def test_reads_what_the_client_library_writes_in_camel_case() -> None:
    text = vi.AnnotateVideoResponse.to_json(_library_response())
    assert parse_annotation_json(text, SOURCE) == LIBRARY_EXPECTED


def test_reads_what_the_client_library_writes_in_snake_case() -> None:
    text = vi.AnnotateVideoResponse.to_json(_library_response(), preserving_proto_field_name=True)
    assert parse_annotation_json(text, SOURCE) == LIBRARY_EXPECTED


def test_reads_a_finished_operation_serialized_by_protobuf() -> None:
    operation = operations_pb2.Operation(
        name="projects/1/locations/us-east1/operations/7", done=True
    )
    operation.response.Pack(vi.AnnotateVideoResponse.pb(_library_response()))
    progress = vi.AnnotateVideoProgress(
        annotation_progress=[
            vi.VideoAnnotationProgress(input_uri="/bucket/dog.mp4", progress_percent=100)
        ]
    )
    operation.metadata.Pack(vi.AnnotateVideoProgress.pb(progress))
    text = json_format.MessageToJson(operation)
    assert parse_annotation_json(text, SOURCE) == LIBRARY_EXPECTED


def test_the_client_library_reads_what_we_write() -> None:
    annotation = VideoAnnotation(
        input_uri="gs://bucket/dog.mp4",
        segment=Segment(0.0, 9.642966),
        objects=(
            ObjectTrack(DOG, 0.875, Segment(0.0, 1.5015), (_frame(1.5015, 0.0, 0.25, 0.5, 0.75),)),
            ObjectTrack(
                Entity("/m/x", "Hund 🐕", "de-DE"),
                0.5,
                Segment(0, 0),
                (_frame(2.0, 0.1, 0.1, 0.2, 0.2), _frame(2.5, 0.1, 0.1, 0.3, 0.3)),
                2**40,
            ),
        ),
    )
    response = vi.AnnotateVideoResponse.from_json(dump_annotation_json(annotation))

    (result,) = response.annotation_results
    assert result.input_uri == "gs://bucket/dog.mp4"
    assert result.segment.end_time_offset == datetime.timedelta(seconds=9, microseconds=642966)
    dog, hund = result.object_annotations
    assert dog.entity.description == "dog"
    assert dog.confidence == 0.875
    assert dog.segment.end_time_offset == datetime.timedelta(seconds=1, microseconds=501500)
    assert dog.frames[0].normalized_bounding_box.bottom == 0.75
    assert dog.frames[0].time_offset == datetime.timedelta(seconds=1, microseconds=501500)
    assert hund.entity.description == "Hund 🐕"
    # The batch API's oneof: a segment from the first to the last frame, no track_id.
    for obj in (dog, hund):
        message = vi.ObjectTrackingAnnotation.pb(obj)
        assert message.WhichOneof("track_info") == "segment"
        times = [frame.time_offset for frame in obj.frames]
        assert obj.segment.start_time_offset <= min(times)
        assert obj.segment.end_time_offset == max(times)
    assert hund.segment.start_time_offset == datetime.timedelta(seconds=2)
    assert hund.track_id == 0


# --- Errors ---------------------------------------------------------------------------------------


def _document(**object_fields: Any) -> dict[str, Any]:
    """A valid camelCase response with one object; ``object_fields`` replace its fields."""
    obj: dict[str, Any] = {
        "entity": {"entityId": "/m/0bt9lr", "description": "dog", "languageCode": "en-US"},
        "confidence": 0.9,
        "segment": {"startTimeOffset": "0s", "endTimeOffset": "1s"},
        "frames": [
            {
                "normalizedBoundingBox": {"left": 0.1, "top": 0.1, "right": 0.5, "bottom": 0.5},
                "timeOffset": "0s",
            },
            {
                "normalizedBoundingBox": {"left": 0.1, "top": 0.1, "right": 0.5, "bottom": 0.5},
                "timeOffset": "1s",
            },
        ],
    }
    obj.update(object_fields)
    return {"annotationResults": [{"inputUri": "/b/v.mp4", "objectAnnotations": [obj]}]}


def _box(**coordinates: Any) -> list[dict[str, Any]]:
    box = {"left": 0.1, "top": 0.1, "right": 0.5, "bottom": 0.5, **coordinates}
    return [{"normalizedBoundingBox": box, "timeOffset": "0s"}]


RESPONSE_TYPE_PREFIX = "type.googleapis.com/google.cloud.videointelligence.v1"
OBJ = "annotationResults[0].objectAnnotations[0]"
BOX = f"{OBJ}.frames[0].normalizedBoundingBox"

MALFORMED = [
    # (id, document, field, words the message must contain)
    ("truncated", '{"annotationResults": [\n  {"inputUri": "/b/v.mp4",\n', "", "not JSON"),
    ("not-json-at-all", "this is not json", "", "not JSON: Expecting value at line 1 column 1"),
    ("trailing-comma", '{\n  "annotationResults": [],\n}', "", "at line 3 column 1"),
    ("not-utf8", b'{"annotationResults": "\xe9t\xe9"}', "", "not UTF-8"),
    ("top-level-string", '"annotationResults"', "", "expected a JSON object or list"),
    ("top-level-null", "null", "", "found null"),
    ("empty-object", "{}", "", "not an annotation document"),
    ("unknown-object", '{"labels": []}', "", "found keys: labels"),
    ("empty-list", "[]", "", "no annotation results"),
    ("empty-results", {"annotationResults": []}, "annotationResults", "no annotation results"),
    ("results-not-a-list", {"annotationResults": {}}, "annotationResults", "expected a list"),
    ("result-is-a-list", {"annotationResults": [[]]}, "annotationResults[0]", "expected an object"),
    (
        "objects-not-a-list",
        {"annotationResults": [{"objectAnnotations": {"entity": {}}}]},
        "annotationResults[0].objectAnnotations",
        "expected a list, found an object",
    ),
    (
        "object-is-a-list",
        {"annotationResults": [{"objectAnnotations": [[]]}]},
        OBJ,
        "expected an object, found a list",
    ),
    ("frames-not-a-list", _document(frames={}), f"{OBJ}.frames", "expected a list"),
    ("frames-empty-string", _document(frames=""), f"{OBJ}.frames", "expected a list"),
    ("frame-is-a-number", _document(frames=[3]), f"{OBJ}.frames[0]", "expected an object"),
    (
        "box-is-a-list",
        _document(frames=[{"normalizedBoundingBox": [0.1, 0.1, 0.5, 0.5]}]),
        BOX,
        "expected an object, found a list",
    ),
    (
        "coordinate-is-a-string",
        _document(frames=_box(left="0.1")),
        f"{BOX}.left",
        'expected a number, found the string "0.1"',
    ),
    (
        "coordinate-is-true",
        _document(frames=_box(top=True)),
        f"{BOX}.top",
        "expected a number, found true",
    ),
    (
        "coordinate-nan",
        json.dumps(_document(frames=_box(left=float("nan")))),
        f"{BOX}.left",
        "expected a finite number, found nan",
    ),
    (
        "coordinate-infinite",
        json.dumps(_document(frames=_box(bottom=float("inf")))),
        f"{BOX}.bottom",
        "expected a finite number, found inf",
    ),
    (
        "coordinate-overflows-to-infinity",
        json.dumps(_document(frames=_box(right=1.0))).replace('"right": 1.0', '"right": 1e999'),
        f"{BOX}.right",
        "expected a finite number, found inf",
    ),
    ("coordinate-is-null-text", _document(frames=_box(top="null")), f"{BOX}.top", "a number"),
    (
        "negative-time",
        _document(frames=[{"timeOffset": "-1.5s"}]),
        f"{OBJ}.frames[0].timeOffset",
        "negative time -1.500s",
    ),
    (
        "negative-seconds",
        _document(frames=[{"timeOffset": {"seconds": "-2"}}]),
        f"{OBJ}.frames[0].timeOffset",
        "negative time -2s",
    ),
    (
        "negative-number",
        _document(frames=[{"timeOffset": -0.25}]),
        f"{OBJ}.frames[0].timeOffset",
        "negative time -0.250s",
    ),
    (
        "duration-without-unit",
        _document(frames=[{"timeOffset": "1.5"}]),
        f"{OBJ}.frames[0].timeOffset",
        'expected a duration like "1.5s"',
    ),
    (
        "duration-in-ms",
        _document(frames=[{"timeOffset": "1500ms"}]),
        f"{OBJ}.frames[0].timeOffset",
        'found the string "1500ms"',
    ),
    (
        "duration-is-a-list",
        _document(frames=[{"timeOffset": [1, 5]}]),
        f"{OBJ}.frames[0].timeOffset",
        "found a list",
    ),
    (
        "nanos-too-big",
        _document(frames=[{"timeOffset": {"nanos": 1000000000}}]),
        f"{OBJ}.frames[0].timeOffset.nanos",
        "nanos must be below 1000000000",
    ),
    (
        "fractional-seconds",
        _document(frames=[{"timeOffset": {"seconds": 1.5}}]),
        f"{OBJ}.frames[0].timeOffset.seconds",
        "expected a whole number, found the number 1.5",
    ),
    (
        "segment-backwards",
        _document(segment={"startTimeOffset": "3s", "endTimeOffset": "1.25s"}),
        f"{OBJ}.segment",
        "ends (1.250s) before it starts (3s)",
    ),
    ("segment-is-a-string", _document(segment="0s-1s"), f"{OBJ}.segment", "expected an object"),
    (
        "confidence-above-1",
        _document(confidence=1.5),
        f"{OBJ}.confidence",
        "confidence 1.5 is outside [0, 1]",
    ),
    ("confidence-negative", _document(confidence=-0.1), f"{OBJ}.confidence", "outside [0, 1]"),
    (
        "confidence-is-a-string",
        _document(confidence="high"),
        f"{OBJ}.confidence",
        "expected a number",
    ),
    (
        "confidence-nan",
        json.dumps(_document(confidence=float("nan"))),
        f"{OBJ}.confidence",
        "expected a finite number",
    ),
    (
        "description-is-a-number",
        _document(entity={"description": 7}),
        f"{OBJ}.entity.description",
        "expected a string, found the number 7",
    ),
    ("entity-is-a-string", _document(entity="dog"), f"{OBJ}.entity", "expected an object"),
    (
        "track-id-not-a-number",
        _document(trackId="dog-1"),
        f"{OBJ}.trackId",
        "expected a whole number",
    ),
    (
        "input-uri-is-a-list",
        {"annotationResults": [{"inputUri": ["/b/v.mp4"]}]},
        "annotationResults[0].inputUri",
        "expected a string",
    ),
    (
        "result-error",
        {
            "annotationResults": [
                {
                    "inputUri": "/b/v.mp4",
                    "error": {"code": 7, "message": "The caller does not have permission"},
                }
            ]
        },
        "annotationResults[0].error",
        "the API reported: PERMISSION_DENIED (code 7): The caller does not have permission",
    ),
    (
        "results-for-two-videos",
        {"annotationResults": [{"inputUri": "/b/one.mp4"}, {"inputUri": "/b/two.mp4"}]},
        "annotationResults[1].inputUri",
        "results for different videos in one document: '/b/two.mp4' after '/b/one.mp4'",
    ),
    (
        "operation-failed",
        {
            "name": "projects/1/locations/us-east1/operations/42",
            "done": True,
            "error": {"code": 3, "message": "Invalid video: unsupported codec."},
        },
        "error",
        "the operation failed: INVALID_ARGUMENT (code 3): Invalid video: unsupported codec.",
    ),
    (
        "operation-running",
        {
            "name": "projects/1/locations/us-east1/operations/42",
            "metadata": {"annotationProgress": [{"progressPercent": 40}]},
        },
        "response",
        "the operation projects/1/locations/us-east1/operations/42 has not finished",
    ),
    (
        "operation-done-without-response",
        {"name": "operations/42", "done": True},
        "response",
        "the operation operations/42 is done but holds no response",
    ),
    (
        "operation-of-another-kind",
        {
            "done": True,
            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
        },
        "response.@type",
        "expected an AnnotateVideoResponse",
    ),
    (
        "operation-with-empty-response",
        {
            "done": True,
            "response": {"@type": f"{RESPONSE_TYPE_PREFIX}.AnnotateVideoResponse"},
        },
        "response",
        "no annotation results",
    ),
    (
        "path-inside-an-operation",
        {"done": True, "response": _document(confidence=2)},
        f"response.{OBJ}.confidence",
        "outside [0, 1]",
    ),
    (
        "path-inside-a-bare-list",
        _document(frames=_box(left=[3]))["annotationResults"],
        "[0].objectAnnotations[0].frames[0].normalizedBoundingBox.left",
        "expected a number, found a list",
    ),
    (
        "path-in-snake-case",
        {
            "annotation_results": [
                {
                    "object_annotations": [
                        {"frames": [{"normalized_bounding_box": {"left": "1"}, "time_offset": {}}]}
                    ]
                }
            ]
        },
        "annotation_results[0].object_annotations[0].frames[0].normalized_bounding_box.left",
        'expected a number, found the string "1"',
    ),
    (
        "twelfth-frame-of-fourth-object",
        {
            "annotationResults": [
                {
                    "objectAnnotations": [
                        *[_document()["annotationResults"][0]["objectAnnotations"][0]] * 3,
                        {"frames": [*_box() * 12, *_box(left=float("-inf"))]},
                    ]
                }
            ]
        },
        "annotationResults[0].objectAnnotations[3].frames[12].normalizedBoundingBox.left",
        "expected a finite number, found -inf",
    ),
]


@pytest.mark.parametrize(
    ("document", "field", "problem"),
    [
        pytest.param(document, field, problem, id=name)
        for name, document, field, problem in MALFORMED
    ],
)
def test_malformed_documents_name_the_file_and_the_field(
    document: Any, field: str, problem: str
) -> None:
    with pytest.raises(AnnotationFormatError) as raised:
        _parse(document)
    error = raised.value
    assert error.source == SOURCE
    assert error.field == field
    assert problem in error.problem
    where = f"{SOURCE}: {field}: " if field else f"{SOURCE}: "
    assert str(error).startswith(where)
    assert "\n" not in str(error)


def test_valid_documents_are_not_flagged_by_the_error_cases_base() -> None:
    """The base the error cases are built from is itself valid, so each case tests one fault."""
    parsed = _parse(_document())
    assert parsed.objects[0].frame_count == 2
    assert _parse(_document(frames=_box())).objects[0].frames[0].box == NormalizedBox(
        0.1, 0.1, 0.5, 0.5
    )


# --- Files ----------------------------------------------------------------------------------------


def test_read_annotation_file(tmp_path: Path) -> None:
    path = tmp_path / "dog.json"
    path.write_text(SNAKE_OUTPUT_URI_FILE, encoding="utf-8")
    assert read_annotation_file(path) == CAMEL_EXPECTED
    assert read_annotation_file(str(path), input_uri="gs://x/dog.mp4").input_uri == "gs://x/dog.mp4"


def test_read_annotation_file_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"missing\.json"):
        read_annotation_file(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"annotationResults": [', encoding="utf-8")
    with pytest.raises(AnnotationFormatError) as raised:
        read_annotation_file(broken)
    assert str(raised.value).startswith(f"{broken}: not JSON")


# --- Output shaped like the real API's (tests/support/api_output.py) ------------------------------

SMALL_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vi_object_tracking_small.json"


def test_the_checked_in_fixture_is_what_the_generator_makes() -> None:
    """The generator is deterministic: the fixture is its seed 32, four objects."""
    made = api_output(32, objects=4, duration=2.5)
    assert SMALL_FIXTURE.read_text(encoding="utf-8") == made.text("snake")
    assert made.kinds["past_edge"] and made.kinds["outside"] and made.kinds["inverted"]


def test_the_small_fixture_is_read_with_its_boxes_clipped_and_counted() -> None:
    parsed = read_annotation_file(SMALL_FIXTURE)
    document = json.loads(SMALL_FIXTURE.read_text(encoding="utf-8"))
    written = document["annotation_results"][0]["object_annotations"]
    assert [obj.entity.description for obj in parsed.objects] == [
        obj["entity"]["description"] for obj in written
    ]
    # 39 frames: 6 past an edge (clipped), 1 wholly outside and 1 inverted (dropped).
    assert (parsed.boxes_clipped, parsed.boxes_dropped) == (6, 2)
    assert sum(obj.frame_count for obj in parsed.objects) == 39 - 2
    assert parsed.input_uri == "/vtrack-demo/videos/street.mp4"


API_OUTPUT = api_output(5, objects=200, duration=10.0)


@functools.cache
def _api_output_read(form: str) -> VideoAnnotation:
    return parse_annotation_json(API_OUTPUT.text(form), SOURCE)


@pytest.mark.parametrize("form", ["snake", "camel", "operation"])
def test_real_shaped_output_is_read_whole_with_every_box_in_the_frame(form: str) -> None:
    parsed = _api_output_read(form)

    assert len(parsed.objects) == 200
    assert parsed.boxes_clipped == API_OUTPUT.boxes_clipped > 200
    assert parsed.boxes_dropped == API_OUTPUT.boxes_dropped > 50
    frames = [frame for obj in parsed.objects for frame in obj.frames]
    assert len(frames) == API_OUTPUT.frames - API_OUTPUT.boxes_dropped
    for frame in frames:
        box = frame.box
        assert 0.0 <= box.left < box.right <= 1.0 and 0.0 <= box.top < box.bottom <= 1.0
    for obj in parsed.objects:
        times = [frame.time for frame in obj.frames]
        assert times == sorted(times)
        # 8 to 10 Hz at irregular steps; a dropped frame leaves a longer one.
        assert all(later - earlier >= 0.099 for earlier, later in itertools.pairwise(times))


def test_every_form_of_real_shaped_output_gives_the_same_annotation() -> None:
    snake = _api_output_read("snake")
    assert _api_output_read("camel") == snake
    assert _api_output_read("operation") == snake


def test_clipped_annotations_are_written_inside_the_frame_and_read_back_unchanged() -> None:
    parsed = parse_annotation_json(api_output(9, objects=20).text("snake"), SOURCE)
    again = parse_annotation_json(dump_annotation_json(parsed), SOURCE)
    assert again.objects == parsed.objects
    assert (again.boxes_clipped, again.boxes_dropped) == (0, 0)
