"""What a job is asked to do, and what it reports when it is done (the manifest).

A :class:`JobSpec` is made once when a video is submitted and travels, as JSON, with
every task of the job, so each task knows the thresholds and output places without
reading settings that may have changed since. The :class:`Manifest` is the job's answer:
written last, next to the summary, and returned to whoever waits on the job.

These are the messages between tasks: frozen pydantic models (docs/messages.md), written
with ``model_dump(mode="json")`` and read with ``model_validate``, which checks each
field's type and ignores keys it does not know (a newer sender's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum, nonmember
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer, PlainValidator

from workers import naming
from workers.annotations.model import ObjectTrack, TrackedFrame
from workers.messages import Message


class JobStatus(StrEnum):
    """Where a job is: its record's ``status`` (``vtrack status``, the web app) and, once
    it has ended well, its manifest's (completed or completed_with_errors only). Each value
    is the JSON string users see."""

    QUEUED = "queued"
    ANNOTATING = "annotating"
    RENDERING = "rendering"
    ASSEMBLING = "assembling"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"

    # Ended: nothing changes the job's status again.
    TERMINAL = nonmember(frozenset({COMPLETED, COMPLETED_WITH_ERRORS, FAILED, CANCELLED}))
    # A worker's task is at it: a job whose record stops changing here was lost.
    WORKING = nonmember(frozenset({ANNOTATING, RENDERING, ASSEMBLING}))
    # Not ended yet, waiting for a worker or not (the ``running`` filter of job lists).
    UNFINISHED = nonmember(frozenset({QUEUED, ANNOTATING, RENDERING, ASSEMBLING}))


def _track(value: Any) -> ObjectTrack:
    return value if isinstance(value, ObjectTrack) else ObjectTrack.from_dict(value)


# The annotation model stays a slotted dataclass with its own codec (docs/messages.md).
Track = Annotated[
    ObjectTrack, PlainValidator(_track), PlainSerializer(lambda track: track.to_dict())
]


class JobSpec(Message):
    """Everything a job needs to know, fixed at submission."""

    job_id: str
    video_uri: str
    backend: str
    output_root: str
    annotation_root: str
    min_confidence: float = 0.7
    min_frames: int = 10
    annotations_uri: str | None = None
    animation_format: str = "gif"
    animation_frames: int = 12
    animation_frame_ms: int = 250
    animation_max_width: int = 480
    summary_max_width: int = 1920
    summary_max_height: int = 1080
    max_video_bytes: int | None = None
    max_video_pixels: int | None = None
    max_video_seconds: float | None = None
    render_batch_size: int = 8
    submitted_at: float = 0.0
    backend_options: dict[str, Any] = Field(default_factory=dict)
    # The video's place below the output and annotation roots (workers.naming.video_stem),
    # fixed at submission so that every worker names the outputs alike whatever its own
    # settings. Empty in specs made before it existed: the flat file name, as then.
    output_stem: str = ""

    @property
    def stem(self) -> str:
        """What every output of this job is named after (``STEM.manifest.json``...)."""
        return self.output_stem or naming.flat_stem(self.video_uri)


class KeptObject(Message):
    """An object chosen for rendering, with its place (1-based) in the job's output.

    Once the plan is made, ``track`` holds only the frames to draw (see
    :meth:`with_frames`) and ``annotated_frames`` remembers how many frames the tracker
    reported, which the caption, the file names and the manifest show.
    """

    index: int
    track: Track
    annotated_frames: int | None = None

    @property
    def frame_count(self) -> int:
        """Frames the object was annotated in (not only the ones drawn)."""
        return self.track.frame_count if self.annotated_frames is None else self.annotated_frames

    def with_frames(self, frames: Sequence[TrackedFrame]) -> KeptObject:
        """This object carrying only ``frames`` (the ones to draw) and its full frame count."""
        return KeptObject(
            index=self.index,
            track=replace(self.track, frames=tuple(frames)),
            annotated_frames=self.frame_count,
        )


def render_batches(kept: Sequence[KeptObject], batch_size: int) -> list[tuple[KeptObject, ...]]:
    """The kept objects cut into batches of at most ``batch_size``, grouped by time.

    Objects are ordered by first appearance, so each batch covers one stretch of the video
    and decoding it once serves every object of the batch. Larger batches decode less in
    total (fewer overlapping stretches) but spread a job over fewer workers.
    """
    size = max(1, batch_size)
    ordered = sorted(kept, key=lambda obj: (obj.track.first_time, obj.index))
    return [tuple(ordered[start : start + size]) for start in range(0, len(ordered), size)]


class ObjectResult(Message):
    """What rendering one object produced, or why it could not."""

    index: int
    entity: str
    confidence: float
    frame_count: int
    first_time: float
    last_time: float
    status: Literal["ok", "failed"]
    cell_uri: str | None = None
    animation_uri: str | None = None
    error: str | None = None
    render_seconds: float = 0.0
    generations: dict[str, str | None] = Field(default_factory=dict)


class RenderPlan(Message):
    """What ``poll`` decided once annotations were ready: the video and the objects to render."""

    annotation_uri: str
    video: dict[str, Any]  # VideoInfo.to_dict()
    objects_total: int
    kept: tuple[KeptObject, ...] = ()
    annotated_at: float
    annotation_generation: str | None = None  # the annotation object's generation (gs://)
    boxes_clipped: int = 0  # see VideoAnnotation: boxes clipped into the frame
    boxes_dropped: int = 0  # frames dropped because their box was empty once clipped


class Manifest(Message):
    """The job's answer, written as ``VIDEO.manifest.json`` and returned to the caller."""

    job_id: str
    video_uri: str
    backend: str
    status: JobStatus
    # min_frames is a whole number in the JSON, min_confidence a fraction.
    thresholds: dict[str, int | float]
    video: dict[str, Any]
    objects_total: int
    objects: tuple[ObjectResult, ...] = ()
    summary_uri: str | None
    annotation_uri: str | None
    manifest_uri: str
    timings: dict[str, float]
    errors: tuple[str, ...] = ()
    # Object generations (gs://) of the summary and the annotation JSON; null for local files.
    generations: dict[str, str | None] = Field(default_factory=dict)
    # Boxes of the backend's output clipped into the frame (and kept), and frames dropped
    # because their box was empty once clipped (wholly outside the frame, or inverted).
    boxes_clipped: int = 0
    boxes_dropped: int = 0
