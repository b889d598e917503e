"""Video Intelligence OBJECT_TRACKING output shaped like the real API's, made from a seed.

Our own writer emits tidy files: boxes inside the frame, frames at the video's rate, a few
objects. The API's real outputs do not look like that. Public OBJECT_TRACKING results
carry coordinates past every edge of the frame (from about -0.6 to 1.3), boxes wholly
outside it, boxes whose right edge is left of their left edge, frames at irregular 8-10 Hz
times and hundreds of objects. :func:`api_output` makes such a document, deterministically
(the same seed gives the same bytes), in every form the API hands results out:

* ``snake``: what the API writes to ``output_uri``: proto field names, durations as
  ``{"seconds": ..., "nanos": ...}`` objects whose zero parts are left out (``{}`` for 0 s),
  float32 values printed shortest;
* ``camel``: what the REST API and the client library's ``to_json`` give: camelCase names
  and ``"1.5s"`` duration strings;
* :meth:`ApiOutput.operation`: a finished ``operations.get`` answer wrapping the camelCase
  response with its ``@type``, and progress in the metadata.

Each frame's box is made as one of four kinds, so what a reader must do with it is known
by construction, not recomputed: ``inside`` (kept as is), ``past_edge`` (crosses one or
more edges by up to ``max_overshoot``: kept, clipped), ``outside`` (wholly past an edge:
empty once clipped, dropped) and ``inverted`` (right < left or bottom < top: dropped).

Run it to write a file (``--form snake|camel|operation``)::

    python -m tests.support.api_output --objects 300 --seed 7 out.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import struct
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration

# Knowledge Graph ids the API reports for common objects.
ENTITIES: tuple[tuple[str, str], ...] = (
    ("/m/01g317", "person"),
    ("/m/0bt9lr", "dog"),
    ("/m/0k4j", "car"),
    ("/m/01bjv", "bus"),
    ("/m/0199g", "bicycle"),
    ("/m/04_sv", "motorcycle"),
    ("/m/07r04", "truck"),
    ("/m/01yrx", "cat"),
    ("/m/015p6", "bird"),
    ("/m/07j7r", "tree"),
    ("/m/0cgh4", "building"),
    ("/m/083wq", "wheel"),
)

BOX_KINDS = ("inside", "past_edge", "outside", "inverted")
RESPONSE_TYPE = "type.googleapis.com/google.cloud.videointelligence.v1.AnnotateVideoResponse"
PROGRESS_TYPE = "type.googleapis.com/google.cloud.videointelligence.v1.AnnotateVideoProgress"


@dataclass(frozen=True)
class ApiOutput:
    """One generated result and what a faithful reader must make of it."""

    snake: dict[str, Any]
    camel: dict[str, Any]
    kinds: Counter[str] = field(default_factory=Counter)  # frames made of each box kind
    objects: int = 0

    @property
    def frames(self) -> int:
        return sum(self.kinds.values())

    @property
    def boxes_clipped(self) -> int:
        """Boxes crossing an edge: kept, clipped into the frame."""
        return self.kinds["past_edge"]

    @property
    def boxes_dropped(self) -> int:
        """Frames whose box is empty once clipped (wholly outside, or inverted)."""
        return self.kinds["outside"] + self.kinds["inverted"]

    def operation(self, name: str = "projects/424242/locations/us-east1/operations/1") -> dict:
        """The finished long-running operation holding the camelCase response."""
        input_uri = self.camel["annotationResults"][0]["inputUri"]
        return {
            "name": name,
            "metadata": {
                "@type": PROGRESS_TYPE,
                "annotationProgress": [
                    {
                        "inputUri": input_uri,
                        "progressPercent": 100,
                        "startTime": "2025-03-11T14:02:09.118372Z",
                        "updateTime": "2025-03-11T14:03:51.440126Z",
                        "feature": "OBJECT_TRACKING",
                    }
                ],
            },
            "done": True,
            "response": {"@type": RESPONSE_TYPE, **self.camel},
        }

    def text(self, form: str = "snake") -> str:
        """The document as the API would serialize it: ``snake``, ``camel`` or ``operation``."""
        if form == "snake":
            return json.dumps(self.snake, indent=2) + "\n"  # the API's files are indented
        if form == "camel":
            return json.dumps(self.camel, indent=2) + "\n"
        if form == "operation":
            return json.dumps(self.operation(), indent=2) + "\n"
        raise ValueError(f"unknown form {form!r}: choose snake, camel or operation")


def api_output(
    seed: int = 0,
    *,
    objects: int = 300,
    duration: float = 30.0,
    input_uri: str = "/vtrack-demo/videos/street.mp4",
    kind_weights: tuple[float, float, float, float] = (0.88, 0.08, 0.02, 0.02),
    max_overshoot: float = 0.6,
    min_frames: int = 1,
) -> ApiOutput:
    """A generated OBJECT_TRACKING result (see the module docs).

    ``kind_weights`` are the chances of each of :data:`BOX_KINDS` per frame; ``(1, 0, 0,
    0)`` makes a clean file, all boxes inside the frame. Objects appear anywhere in the
    first 90% of ``duration`` and last from one frame to the rest of the video.
    """
    rng = random.Random(seed)
    kinds: Counter[str] = Counter()
    snake_objects = []
    camel_objects = []
    for _ in range(objects):
        entity_id, description = rng.choice(ENTITIES)
        confidence = _f32(rng.uniform(0.1, 0.99))
        start = rng.uniform(0.0, duration * 0.9)
        end = rng.uniform(start, duration)
        times = _irregular_times(rng, start, end, min_frames)
        width, height = rng.uniform(0.03, 0.5), rng.uniform(0.05, 0.7)
        cx, cy = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)
        dx, dy = rng.uniform(-0.02, 0.02), rng.uniform(-0.01, 0.01)
        frames = []
        for time in times:
            cx = min(max(cx + dx + rng.gauss(0, 0.004), 0.05), 0.95)
            cy = min(max(cy + dy + rng.gauss(0, 0.004), 0.05), 0.95)
            kind = rng.choices(BOX_KINDS, weights=kind_weights)[0]
            kinds[kind] += 1
            box = _box(rng, kind, cx, cy, width, height, max_overshoot)
            frames.append((time, box))
        entity = {"entity_id": entity_id, "description": description, "language_code": "en-US"}
        snake_objects.append(
            {
                "entity": entity,
                "confidence": confidence,
                "frames": [
                    {"normalized_bounding_box": _nonzero(box), "time_offset": _seconds_nanos(t)}
                    for t, box in frames
                ],
                "segment": {
                    "start_time_offset": _seconds_nanos(times[0]),
                    "end_time_offset": _seconds_nanos(times[-1]),
                },
                "version": "builtin/stable",
            }
        )
        camel_objects.append(
            {
                "entity": {
                    "entityId": entity_id,
                    "description": description,
                    "languageCode": "en-US",
                },
                "frames": [
                    {"normalizedBoundingBox": _nonzero(box), "timeOffset": _duration_text(t)}
                    for t, box in frames
                ],
                "segment": {
                    "startTimeOffset": _duration_text(times[0]),
                    "endTimeOffset": _duration_text(times[-1]),
                },
                "confidence": confidence,
                "version": "builtin/stable",
            }
        )
    video_end = math.floor(duration * 1e6) / 1e6
    snake = {
        "annotation_results": [
            {
                "input_uri": input_uri,
                "segment": {
                    "start_time_offset": {},
                    "end_time_offset": _seconds_nanos(video_end),
                },
                "object_annotations": snake_objects,
            }
        ]
    }
    camel = {
        "annotationResults": [
            {
                "inputUri": input_uri,
                "segment": {"startTimeOffset": "0s", "endTimeOffset": _duration_text(video_end)},
                "objectAnnotations": camel_objects,
            }
        ]
    }
    return ApiOutput(snake=snake, camel=camel, kinds=kinds, objects=objects)


def _irregular_times(rng: random.Random, start: float, end: float, min_frames: int) -> list[float]:
    """Frame times from ``start``, 8 to 10 per second at irregular steps, on whole microseconds."""
    times = [start]
    while times[-1] + 0.1 <= end or len(times) < min_frames:
        times.append(times[-1] + 1.0 / rng.uniform(8.0, 10.0))
    return [round(t, 6) for t in times]


def _box(
    rng: random.Random,
    kind: str,
    cx: float,
    cy: float,
    width: float,
    height: float,
    max_overshoot: float,
) -> dict[str, float]:
    left, right = _inside_span(cx, width)
    top, bottom = _inside_span(cy, height)
    if kind == "past_edge":
        # One to four edges pushed past the frame; the box still overlaps the frame.
        for edge in rng.sample(("left", "top", "right", "bottom"), rng.randint(1, 4)):
            over = rng.uniform(0.001, max_overshoot)
            if edge == "left":
                left = -over
            elif edge == "right":
                right = 1.0 + over
            elif edge == "top":
                top = -over
            else:
                bottom = 1.0 + over
    elif kind == "outside":
        span = rng.uniform(0.01, max_overshoot)
        gap = rng.uniform(0.0005, max_overshoot)
        edge = rng.choice(("left", "top", "right", "bottom"))
        if edge == "left":
            left, right = -gap - span, -gap
        elif edge == "right":
            left, right = 1.0 + gap, 1.0 + gap + span
        elif edge == "top":
            top, bottom = -gap - span, -gap
        else:
            top, bottom = 1.0 + gap, 1.0 + gap + span
    elif kind == "inverted":
        if rng.random() < 0.5:
            left, right = right, left
        else:
            top, bottom = bottom, top
    values = {"left": left, "top": top, "right": right, "bottom": bottom}
    return {name: _f32(value) for name, value in values.items()}


def _inside_span(centre: float, size: float) -> tuple[float, float]:
    """An edge pair around ``centre``, strictly inside (0, 1) and at least 0.01 apart."""
    low = max(centre - size / 2, 0.001)
    high = min(centre + size / 2, 0.999)
    return low, max(high, low + 0.01)


def _f32(value: float) -> float:
    """``value`` stored as float32 and printed shortest, as the API's JSON shows it."""
    stored = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(6, 10):
        shown = float(f"{stored:.{digits}g}")
        if struct.unpack("f", struct.pack("f", shown))[0] == stored:
            return shown
    return stored


def _nonzero(box: dict[str, float]) -> dict[str, float]:
    """proto3 leaves zero-valued fields out."""
    return {name: value for name, value in box.items() if value != 0.0}


def _seconds_nanos(seconds: float) -> dict[str, int]:
    total = round(seconds * 1_000_000_000)
    whole, nanos = divmod(total, 1_000_000_000)
    return {name: value for name, value in (("seconds", whole), ("nanos", nanos)) if value}


def _duration_text(seconds: float) -> str:
    """proto3 JSON's ``"1.5s"``, as the protobuf library itself writes it (not our writer)."""
    whole, nanos = divmod(round(seconds * 1_000_000_000), 1_000_000_000)
    return Duration(seconds=whole, nanos=nanos).ToJsonString()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--form", choices=("snake", "camel", "operation"), default="snake")
    parser.add_argument("--clean", action="store_true", help="every box inside the frame")
    args = parser.parse_args(argv)
    weights = (1.0, 0.0, 0.0, 0.0) if args.clean else (0.88, 0.08, 0.02, 0.02)
    output = api_output(
        args.seed, objects=args.objects, duration=args.duration, kind_weights=weights
    )
    args.output.write_text(output.text(args.form), encoding="utf-8")
    print(
        f"{args.output}: {output.objects} objects, {output.frames} frames, "
        f"{output.boxes_clipped} boxes past an edge, {output.boxes_dropped} empty boxes",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
