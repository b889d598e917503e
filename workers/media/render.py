"""Rendering one tracked object: a looping animation of it and a captioned summary cell.

:func:`render_object` is the whole job of one ``render_object`` task: pick up to N
annotated frames spread over the object's whole track, pull them out of the video in one
forward pass (:func:`workers.media.video.extract_frames`), draw the box on each, and encode the
animation and the cell. Everything returns bytes; storing them is the caller's business.

The summary grid that gathers the cells lives in :mod:`workers.media.grid` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from workers.annotations.model import ObjectTrack, TrackedFrame
from workers.errors import InputError
from workers.media.animation import CONTENT_TYPES, encode_animation
from workers.media.grid import GridLayout, assemble_summary_grid, grid_layout
from workers.media.render_cells import (
    DRAWN_COLOURS,
    caption_text,
    draw_box,
    draw_caption,
    encode_jpeg,
)
from workers.media.video import ExtractedFrame, extract_frames

__all__ = [
    "GridLayout",
    "RenderOptions",
    "RenderedObject",
    "assemble_summary_grid",
    "grid_layout",
    "pick_cell_frame",
    "pick_frames",
    "render_each",
    "render_object",
    "render_objects",
]


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """How objects are rendered. The defaults are the product's defaults."""

    animation_format: str = "gif"  # "gif" or "webp"
    animation_frames: int = 12  # at most this many frames, spread over the whole track
    animation_frame_ms: int = 250
    animation_max_width: int = 480  # wider frames are scaled down (aspect kept)
    cell_width: int = 480  # width of the summary cell (at most the video's width)
    jpeg_quality: int = 85
    webp_quality: int = 80
    # 0..6: higher is smaller and slower; 2 is within ~3% of 4's size at half its time.
    webp_method: int = 2

    def __post_init__(self) -> None:
        if self.animation_format not in CONTENT_TYPES:
            raise ValueError(f"animation_format must be gif or webp, not {self.animation_format!r}")
        if self.animation_frames < 1 or self.animation_frame_ms < 1:
            raise ValueError("animation_frames and animation_frame_ms must be at least 1")
        if self.animation_max_width < 16 or self.cell_width < 16:
            raise ValueError("animation_max_width and cell_width must be at least 16")

    @classmethod
    def from_settings(cls, settings: Any) -> RenderOptions:
        """Options from a job's spec, or anything with those fields."""
        return cls(
            animation_format=settings.animation_format,
            animation_frames=settings.animation_frames,
            animation_frame_ms=settings.animation_frame_ms,
            animation_max_width=settings.animation_max_width,
        )


@dataclass(frozen=True, slots=True)
class RenderedObject:
    """What one object renders to. Times are those of the video frames shown, in seconds."""

    cell_jpeg: bytes
    animation: bytes
    animation_content_type: str  # "image/gif" or "image/webp"
    cell_time: float
    frame_times: tuple[float, ...]

    @property
    def animation_extension(self) -> str:
        return self.animation_content_type.removeprefix("image/")


def render_object(
    video_path: Path, obj: ObjectTrack, options: RenderOptions | None = None
) -> RenderedObject:
    """Render ``obj`` from the video at ``video_path``: its animation and its summary cell.

    Raises :class:`InputError` for an object without annotated frames and
    :class:`workers.errors.VideoError` when the video cannot give the frames (annotation
    times more than one frame interval past its end: callers validate times first).
    """
    return render_objects(video_path, [obj], options)[0]


def render_objects(
    video_path: Path, objects: Sequence[ObjectTrack], options: RenderOptions | None = None
) -> list[RenderedObject]:
    """Render several objects of one video, decoding the video once for all of them.

    Same results as :func:`render_object` on each; decoding (most of the work) is shared,
    so a task that renders a batch of objects costs little more than one that renders one.
    Raises the first object's error, if any.
    """
    outcomes = render_each(video_path, objects, options)
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
    return [outcome for outcome in outcomes if not isinstance(outcome, Exception)]


def render_each(
    video_path: Path,
    objects: Sequence[ObjectTrack],
    options: RenderOptions | None = None,
    frame_counts: Sequence[int] | None = None,
) -> list[RenderedObject | Exception]:
    """Render a batch of objects from one decode pass; each object's outcome on its own.

    An object that cannot be drawn (no frames, an encoding error) gets its exception in its
    place of the list while the others render. An error decoding the shared frames is
    raised, since it concerns the whole batch (the caller can retry objects one by one to
    find the culprit). ``frame_counts`` are the counts the captions show, when ``objects``
    carry only the frames to draw.
    """
    options = options or RenderOptions()
    picks = [pick_frames(obj.frames, options.animation_frames) for obj in objects]
    outcomes: list[RenderedObject | Exception | None] = [None] * len(objects)
    for position, (obj, picked) in enumerate(zip(objects, picks, strict=True)):
        if not picked:
            outcomes[position] = InputError(
                f"object {caption_text(obj)!r} has no annotated frames to render"
            )
    times = [tracked.time for picked in picks for tracked in picked]
    decode_width = max(options.animation_max_width, options.cell_width)
    extracted = iter(extract_frames(Path(video_path), times, max_width=decode_width))
    for position, (obj, picked) in enumerate(zip(objects, picks, strict=True)):
        if not picked:
            continue
        frames = [next(extracted) for _ in picked]
        count = None if frame_counts is None else frame_counts[position]
        try:
            outcomes[position] = _render(obj, picked, frames, options, count)
        except Exception as exc:  # one object's failure is that object's alone
            outcomes[position] = exc
    return [outcome for outcome in outcomes if outcome is not None]


def _render(
    obj: ObjectTrack,
    picked: Sequence[TrackedFrame],
    extracted: Sequence[ExtractedFrame],
    options: RenderOptions,
    frame_count: int | None = None,
) -> RenderedObject:
    cell_at = pick_cell_frame(picked)
    caption = caption_text(obj, frame_count)
    cell = _cell_image(extracted[cell_at].image, picked[cell_at], caption, options.cell_width)
    frames = [_scaled(e.image, options.animation_max_width) for e in extracted]
    for frame, tracked in zip(frames, picked, strict=True):
        draw_box(frame, tracked.box)
    animation = encode_animation(
        frames,
        options.animation_format,
        options.animation_frame_ms,
        exact_colours=DRAWN_COLOURS,
        webp_quality=options.webp_quality,
        webp_method=options.webp_method,
    )
    return RenderedObject(
        cell_jpeg=encode_jpeg(cell, options.jpeg_quality),
        animation=animation,
        animation_content_type=CONTENT_TYPES[options.animation_format],
        cell_time=extracted[cell_at].time,
        frame_times=tuple(e.time for e in extracted),
    )


def pick_frames(frames: Sequence[TrackedFrame], count: int) -> tuple[TrackedFrame, ...]:
    """Up to ``count`` frames spread evenly over the whole track, first and last included.

    With one frame wanted, the middle one. Frames are assumed in time order (as
    :class:`ObjectTrack` keeps them).
    """
    if count < 1 or not frames:
        return ()
    if len(frames) <= count:
        return tuple(frames)
    if count == 1:
        return (frames[(len(frames) - 1) // 2],)
    last = len(frames) - 1
    positions = sorted({round(i * last / (count - 1)) for i in range(count)})
    return tuple(frames[p] for p in positions)


def pick_cell_frame(frames: Sequence[TrackedFrame]) -> int:
    """Which of ``frames`` makes the summary cell: the one where the object looks largest.

    The largest box (clipped to the frame) is where the object is nearest or most fully in
    view, so a small cell shows it best; the middle frame would as often catch it entering
    or half hidden. Ties go to the frame nearest the middle of the track.
    """
    if not frames:
        raise ValueError("no frames to choose from")
    middle = (len(frames) - 1) / 2
    return max(
        range(len(frames)),
        key=lambda i: (round(frames[i].box.clipped().area, 6), -abs(i - middle)),
    )


def _cell_image(frame: Image.Image, tracked: TrackedFrame, caption: str, width: int) -> Image.Image:
    cell = _scaled(frame, width)
    cell = cell.copy() if cell is frame else cell  # the animation frame is drawn on later
    draw_box(cell, tracked.box)
    draw_caption(cell, caption, tracked.box)
    return cell


def _scaled(image: Image.Image, max_width: int) -> Image.Image:
    """``image`` scaled down to at most ``max_width`` wide (the same object if it fits)."""
    if image.width <= max_width:
        return image
    height = max(1, round(image.height * max_width / image.width))
    return image.resize((max_width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
