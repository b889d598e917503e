"""A deterministic, realistic annotation set for the render benchmark.

We have no cloud annotations for the benchmark clip, so this makes 12 objects the way the
Video Intelligence API reports them: one annotated frame per video frame over each
object's span, boxes that drift and breathe smoothly, spans of every kind (whole clip,
first or second half, a couple of seconds, under a second, one straddling the clip's
second keyframe at 8.34 s). Nothing is random: the same video gives the same set.

Run it to write the set as JSON::

    python -m bench.make_bench_annotations ../shared/data/videos/sam2_01_dog.mp4 out.json
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from workers.annotations.model import (
    Entity,
    NormalizedBox,
    ObjectTrack,
    Segment,
    TrackedFrame,
    VideoAnnotation,
)
from workers.media.video import frame_times


@dataclass(frozen=True)
class _Spec:
    description: str
    confidence: float
    start: float  # fraction of the clip where the object appears
    end: float  # fraction of the clip where it leaves
    centre: tuple[float, float]  # where its box starts (normalized)
    drift: tuple[float, float]  # how far the box centre moves over the span
    size: tuple[float, float]  # box width, height (normalized)


# Spans cover the clip unevenly, like real footage: long-lived scene objects and brief ones.
BENCH_OBJECTS: tuple[_Spec, ...] = (
    _Spec("person", 0.94, 0.00, 1.00, (0.18, 0.45), (0.10, 0.02), (0.16, 0.55)),
    _Spec("dog", 0.92, 0.00, 1.00, (0.40, 0.62), (0.25, -0.04), (0.22, 0.30)),
    _Spec("leash", 0.71, 0.00, 1.00, (0.55, 0.72), (0.10, 0.00), (0.20, 0.06)),
    _Spec("potted plant", 0.83, 0.00, 0.50, (0.10, 0.25), (0.02, 0.00), (0.20, 0.30)),
    _Spec("building", 0.88, 0.10, 1.00, (0.60, 0.20), (0.00, 0.00), (0.50, 0.40)),
    _Spec("ball", 0.76, 0.20, 0.42, (0.26, 0.62), (0.20, 0.05), (0.04, 0.06)),
    _Spec("shoe", 0.74, 0.35, 0.50, (0.13, 0.85), (0.03, 0.00), (0.06, 0.05)),
    _Spec("tree", 0.81, 0.50, 1.00, (0.90, 0.20), (-0.03, 0.00), (0.18, 0.40)),
    _Spec("door", 0.78, 0.70, 0.90, (0.72, 0.18), (0.00, 0.00), (0.10, 0.25)),
    _Spec("bicycle", 0.72, 0.83, 1.00, (0.80, 0.60), (-0.15, 0.00), (0.14, 0.18)),
    _Spec("bench", 0.79, 0.03, 0.10, (0.35, 0.40), (0.00, 0.00), (0.12, 0.08)),
    _Spec("window", 0.86, 0.40, 0.80, (0.73, 0.10), (0.01, 0.00), (0.12, 0.14)),
)


def bench_annotation(video: Path) -> VideoAnnotation:
    """The 12-object annotation set for ``video`` (one annotated frame per video frame)."""
    times = list(frame_times(video))
    objects = tuple(_track(spec, times) for spec in BENCH_OBJECTS)
    return VideoAnnotation(
        input_uri=str(video), objects=objects, segment=Segment(times[0], times[-1])
    )


def _track(spec: _Spec, times: list[float]) -> ObjectTrack:
    first = round(spec.start * (len(times) - 1))
    last = round(spec.end * (len(times) - 1))
    span = times[first : last + 1]
    frames = tuple(
        TrackedFrame(time, _box_at(spec, i / max(1, len(span) - 1))) for i, time in enumerate(span)
    )
    return ObjectTrack(
        entity=Entity(entity_id=f"/bench/{spec.description}", description=spec.description),
        confidence=spec.confidence,
        segment=Segment(span[0], span[-1]),
        frames=frames,
    )


def _box_at(spec: _Spec, progress: float) -> NormalizedBox:
    """The box ``progress`` (0..1) of the way through the span: smooth drift and a slow sway."""
    sway = 0.01 * math.sin(progress * 2 * math.pi * 3)
    breathe = 1.0 + 0.08 * math.sin(progress * 2 * math.pi)
    x = spec.centre[0] + spec.drift[0] * progress + sway
    y = spec.centre[1] + spec.drift[1] * progress
    half_w = spec.size[0] * breathe / 2
    half_h = spec.size[1] * breathe / 2
    return NormalizedBox(x - half_w, y - half_h, x + half_w, y + half_h).clipped()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.make_bench_annotations VIDEO OUT.json", file=sys.stderr)
        return 2
    annotation = bench_annotation(Path(argv[0]))
    Path(argv[1]).write_text(json.dumps(annotation.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
