"""Which tracked objects a job renders, and whether annotations fit the video."""

from __future__ import annotations

import math

from workers.annotations.model import VideoAnnotation
from workers.errors import InputError
from workers.job import KeptObject


def frame_minimum(min_frames: int, video_frames: int) -> int:
    """The frame minimum a video of ``video_frames`` frames is held to.

    ``min_frames`` drops fleeting objects in a video of many frames, but a short clip may
    have fewer frames than that in all: nothing it shows could pass. A clip with fewer than
    twice ``min_frames`` frames is held to half its frames (rounded up) instead, so an
    object seen in half the clip passes. Unknown (0) frames leave ``min_frames`` as it is.
    """
    if video_frames <= 0:
        return min_frames
    return max(1, min(min_frames, math.ceil(video_frames / 2)))


def select_objects(
    annotation: VideoAnnotation, min_confidence: float, min_frames: int
) -> tuple[KeptObject, ...]:
    """The objects worth rendering, numbered from 1 in order of first appearance.

    ``min_confidence`` trades false objects (lower) against missed ones (higher);
    ``min_frames`` drops fleeting objects and tracker fragments when raised.
    Ties in appearance time put the more confident object first, so numbering is stable.
    """
    kept = [
        obj
        for obj in annotation.objects
        if obj.confidence >= min_confidence and obj.frame_count >= min_frames
    ]
    kept.sort(key=lambda obj: (obj.first_time, -obj.confidence, obj.entity.description))
    return tuple(KeptObject(index=number, track=obj) for number, obj in enumerate(kept, start=1))


def check_annotation_fits(
    annotation: VideoAnnotation, duration: float, fps: float, source: str
) -> None:
    """Refuse annotations that point past the video's end by more than one frame interval.

    Such annotations belong to another (or a longer) video: rendering them would show the
    wrong frames, so the job stops with an error naming the object and the time.
    """
    tolerance = 1.0 / fps if fps > 0 else 0.1
    limit = duration + tolerance
    for position, obj in enumerate(annotation.objects):
        if obj.frames and obj.last_time > limit:
            raise InputError(
                f"{source}: object {position} ({obj.entity.description or 'unnamed'}) is annotated "
                f"at {obj.last_time:.3f}s, past the video's end at {duration:.3f}s"
            )
