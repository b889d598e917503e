"""Annotations that match the test videos of :mod:`tests.support.videos`."""

from __future__ import annotations

from pathlib import Path

from tests.support.videos import box_at
from workers.annotations.model import (
    Entity,
    NormalizedBox,
    ObjectTrack,
    Segment,
    TrackedFrame,
    VideoAnnotation,
)
from workers.annotations.vi_json import dump_annotation_json


def track(
    description: str,
    confidence: float,
    frames: range,
    fps: float,
    width: int,
    height: int,
    entity_id: str = "/m/test",
    static: tuple[float, float, float, float] | None = None,
) -> ObjectTrack:
    """An object over ``frames``: the test video's moving red box, or a ``static`` box."""
    tracked = []
    for index in frames:
        if static is None:
            left, top, right, bottom = box_at(index, width, height)
            box = NormalizedBox(left / width, top / height, right / width, bottom / height)
        else:
            box = NormalizedBox(*static)
        tracked.append(TrackedFrame(time=index / fps, box=box))
    return ObjectTrack(
        entity=Entity(entity_id, description, "en-US"),
        confidence=confidence,
        segment=Segment(tracked[0].time, tracked[-1].time),
        frames=tuple(tracked),
    )


def standard_annotation(
    video_uri: str, frames: int, fps: float, width: int, height: int
) -> VideoAnnotation:
    """Two objects that pass the default thresholds and two that do not.

    1. "red box" (0.92, every frame) follows the video's moving rectangle;
    2. "left panel" (0.81, the second half) is a static box;
    3. "ghost" (0.30) is below the confidence threshold;
    4. "blink" (0.95, 3 frames) is below the frame-count threshold.
    """
    half = frames // 2
    return VideoAnnotation(
        input_uri=video_uri,
        objects=(
            track("red box", 0.92, range(frames), fps, width, height),
            track(
                "left panel",
                0.81,
                range(half, frames),
                fps,
                width,
                height,
                static=(0.05, 0.4, 0.35, 0.9),
            ),
            track("ghost", 0.30, range(frames), fps, width, height, static=(0.5, 0.5, 0.7, 0.7)),
            track("blink", 0.95, range(3), fps, width, height, static=(0.6, 0.2, 0.8, 0.4)),
        ),
    )


def write_annotation(path: Path, annotation: VideoAnnotation) -> Path:
    path.write_text(dump_annotation_json(annotation), encoding="utf-8")
    return path
