"""The annotation model every part of vtrack speaks.

These frozen dataclasses mirror the Video Intelligence API's ``ObjectTrackingAnnotation``
and its whole-video result. Everything inside the system (backends, tasks, renderers,
the manifest) exchanges these types, or the plain dicts made by ``to_dict`` when a value
has to cross a Celery message. The API's JSON dialects (camelCase, ``"1.5s"`` durations,
omitted zero values, operation envelopes) are handled only at the edge, in
:mod:`workers.annotations.vi_json`.

Times are seconds from the start of the video, as floats. Boxes are normalized to the
frame: 0 is the left/top edge, 1 the right/bottom edge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class NormalizedBox:
    """A bounding box in frame-relative coordinates (0..1 on both axes)."""

    left: float = 0.0
    top: float = 0.0
    right: float = 0.0
    bottom: float = 0.0

    @property
    def width(self) -> float:
        return max(0.0, self.right - self.left)

    @property
    def height(self) -> float:
        return max(0.0, self.bottom - self.top)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def is_empty(self) -> bool:
        """No area: right not past left, or bottom not below top (an inverted box too)."""
        return self.right <= self.left or self.bottom <= self.top

    def clipped(self) -> NormalizedBox:
        """The box clipped to the frame: the part of it that can be seen.

        Detectors and the Video Intelligence API report boxes past the frame's edges (by
        up to half a frame in real outputs); the visible part is what vtrack renders. A
        box wholly outside the frame is empty once clipped (see :attr:`is_empty`).
        """
        return NormalizedBox(
            left=min(max(self.left, 0.0), 1.0),
            top=min(max(self.top, 0.0), 1.0),
            right=min(max(self.right, 0.0), 1.0),
            bottom=min(max(self.bottom, 0.0), 1.0),
        )

    def intersection(self, other: NormalizedBox) -> float:
        width = min(self.right, other.right) - max(self.left, other.left)
        height = min(self.bottom, other.bottom) - max(self.top, other.top)
        return max(0.0, width) * max(0.0, height)

    def iou(self, other: NormalizedBox) -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The box in pixel coordinates of a ``width`` x ``height`` frame."""
        box = self.clipped()
        return (
            round(box.left * width),
            round(box.top * height),
            round(box.right * width),
            round(box.bottom * height),
        )

    def to_dict(self) -> dict[str, float]:
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NormalizedBox:
        return cls(
            left=float(data.get("left", 0.0)),
            top=float(data.get("top", 0.0)),
            right=float(data.get("right", 0.0)),
            bottom=float(data.get("bottom", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class TrackedFrame:
    """Where an object was at one moment of the video."""

    time: float
    box: NormalizedBox

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "box": self.box.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackedFrame:
        return cls(time=float(data["time"]), box=NormalizedBox.from_dict(data["box"]))


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the video, from ``start`` to ``end`` seconds (both inclusive)."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    def to_dict(self) -> dict[str, float]:
        return {"start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        return cls(start=float(data["start"]), end=float(data["end"]))


@dataclass(frozen=True, slots=True)
class Entity:
    """What an object is: a Knowledge Graph id (or a detector's class id) and a name."""

    entity_id: str = ""
    description: str = ""
    language_code: str = "en-US"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entity:
        return cls(
            entity_id=str(data.get("entity_id", "")),
            description=str(data.get("description", "")),
            language_code=str(data.get("language_code", "en-US")),
        )


@dataclass(frozen=True, slots=True)
class ObjectTrack:
    """One tracked object: what it is, how sure the tracker is, and where it was over time.

    ``frames`` are kept in time order. ``track_id`` is the tracker's own id when the
    backend reports one (the API does so for streaming results only).

    Two optional fields serve the local backend's stitching and merging (empty otherwise,
    and only written by ``to_dict`` when set, so older readers and documents are unchanged):
    ``label_scores``, the summed detection score of each label the detector gave the
    object, ``label_frames``, the number of boxes the detector gave each label (the
    description is the label of the most boxes, ties going to the largest score sum), and
    ``appearance``, the object's appearance cues (see ``workers/local/appearance.py``).
    """

    entity: Entity
    confidence: float
    segment: Segment
    frames: tuple[TrackedFrame, ...] = field(default_factory=tuple)
    track_id: int | None = None
    label_scores: tuple[tuple[str, float], ...] = ()
    appearance: tuple[float, ...] = ()
    label_frames: tuple[tuple[str, int], ...] = ()

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    @property
    def first_time(self) -> float:
        return self.frames[0].time if self.frames else self.segment.start

    @property
    def last_time(self) -> float:
        return self.frames[-1].time if self.frames else self.segment.end

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "entity": self.entity.to_dict(),
            "confidence": self.confidence,
            "segment": self.segment.to_dict(),
            "frames": [frame.to_dict() for frame in self.frames],
            "track_id": self.track_id,
        }
        if self.label_scores:
            data["label_scores"] = [[label, score] for label, score in self.label_scores]
        if self.appearance:
            data["appearance"] = list(self.appearance)
        if self.label_frames:
            data["label_frames"] = [[label, count] for label, count in self.label_frames]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectTrack:
        track_id = data.get("track_id")
        return cls(
            entity=Entity.from_dict(data["entity"]),
            confidence=float(data["confidence"]),
            segment=Segment.from_dict(data["segment"]),
            frames=tuple(TrackedFrame.from_dict(frame) for frame in data.get("frames", ())),
            track_id=None if track_id is None else int(track_id),
            label_scores=tuple(
                (str(label), float(score)) for label, score in data.get("label_scores", ())
            ),
            appearance=tuple(float(value) for value in data.get("appearance", ())),
            label_frames=tuple(
                (str(label), int(count)) for label, count in data.get("label_frames", ())
            ),
        )


@dataclass(frozen=True, slots=True)
class VideoAnnotation:
    """Every object tracked in one video, as one backend reported them."""

    input_uri: str
    objects: tuple[ObjectTrack, ...] = field(default_factory=tuple)
    segment: Segment | None = None
    # What reading the backend's boxes into the frame took: boxes clipped to the frame's
    # edges (and kept), and frames dropped because their box was empty once clipped
    # (wholly outside the frame, or inverted). A dropped frame is not counted as clipped.
    boxes_clipped: int = 0
    boxes_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_uri": self.input_uri,
            "objects": [obj.to_dict() for obj in self.objects],
            "segment": None if self.segment is None else self.segment.to_dict(),
            "boxes_clipped": self.boxes_clipped,
            "boxes_dropped": self.boxes_dropped,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoAnnotation:
        segment = data.get("segment")
        return cls(
            input_uri=str(data.get("input_uri", "")),
            objects=tuple(ObjectTrack.from_dict(obj) for obj in data.get("objects", ())),
            segment=None if segment is None else Segment.from_dict(segment),
            boxes_clipped=int(data.get("boxes_clipped", 0)),
            boxes_dropped=int(data.get("boxes_dropped", 0)),
        )


def fit_to_frame(frames: Iterable[TrackedFrame]) -> tuple[list[TrackedFrame], int, int]:
    """``frames`` with their boxes clipped into the frame, and what that took.

    Returns the frames kept (a box empty once clipped drops its frame, not the object),
    how many of them had their box changed by clipping, and how many frames were dropped.
    """
    kept: list[TrackedFrame] = []
    clipped = dropped = 0
    for frame in frames:
        box = frame.box
        if 0.0 <= box.left < box.right <= 1.0 and 0.0 <= box.top < box.bottom <= 1.0:
            kept.append(frame)  # inside the frame already: most boxes
            continue
        box = box.clipped()
        if box.is_empty:
            dropped += 1
            continue
        if box != frame.box:
            clipped += 1
            frame = TrackedFrame(time=frame.time, box=box)
        kept.append(frame)
    return kept, clipped, dropped
