"""Write tracks in the formats other tools read: MOTChallenge, CVAT for video 1.1, COCO video.

Every exporter takes the same inputs: the objects to write (numbered as the job numbered
them) and :class:`ExportVideo`, what is known of the video. A box's frame is the video's
frame number at the annotation time (0 is the first frame): the frame whose timestamp is
nearest when the frame times are known (variable frame rates work), else
``round(time * fps)``. When two annotation times fall on one frame, the first is kept,
so each frame appears at most once per track. docs/evaluation-and-export.md lists each
format's fields.
"""

from __future__ import annotations

import bisect
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from workers.annotations.model import NormalizedBox, ObjectTrack

ExportFormat = Literal["mot", "cvat", "coco"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("mot", "cvat", "coco")
DEFAULT_CVAT_MAX_GAP = 1.0  # seconds unseen before CVAT is told the object is outside


@dataclass(frozen=True, slots=True)
class ExportVideo:
    """The video the tracks belong to: its name, size, rate, frames and (when read from the
    file) every frame's timestamp."""

    name: str
    width: int
    height: int
    fps: float
    frame_count: int
    frame_times: tuple[float, ...] | None = None

    def frame_at(self, time: float) -> int:
        """The video frame number (from 0) shown at ``time`` seconds."""
        if self.frame_times:
            times = self.frame_times
            position = bisect.bisect_left(times, time)
            if position >= len(times):
                return len(times) - 1
            if position > 0 and time - times[position - 1] <= times[position] - time:
                return position - 1
            return position
        number = round(time * self.fps) if self.fps > 0 else 0
        return min(max(number, 0), max(self.frame_count - 1, 0))


@dataclass(frozen=True, slots=True)
class ExportObject:
    """One object to write and its number (1-based, as in the job's manifest)."""

    number: int
    track: ObjectTrack


def framed_boxes(track: ObjectTrack, video: ExportVideo) -> list[tuple[int, NormalizedBox]]:
    """``(frame, box)`` for each reported box, each frame once, in frame order."""
    seen: dict[int, NormalizedBox] = {}
    for frame in sorted(track.frames, key=lambda item: item.time):
        seen.setdefault(video.frame_at(frame.time), frame.box.clipped())
    return sorted(seen.items())


def _pixels(box: NormalizedBox, video: ExportVideo) -> tuple[float, float, float, float]:
    """Left, top, right, bottom in pixels (clipped to the frame), to 2 decimals."""
    return (
        round(box.left * video.width, 2),
        round(box.top * video.height, 2),
        round(box.right * video.width, 2),
        round(box.bottom * video.height, 2),
    )


def to_mot(objects: Sequence[ExportObject], video: ExportVideo) -> str:
    """MOTChallenge text: ``frame,id,left,top,width,height,conf,-1,-1,-1`` lines."""
    lines: list[tuple[int, int, str]] = []
    for obj in objects:
        for frame, box in framed_boxes(obj.track, video):
            left, top, right, bottom = _pixels(box, video)
            lines.append(
                (
                    frame,
                    obj.number,
                    f"{frame + 1},{obj.number},{left:.2f},{top:.2f},{right - left:.2f},"
                    f"{bottom - top:.2f},{obj.track.confidence:.4f},-1,-1,-1",
                )
            )
    lines.sort()
    return "".join(line + "\n" for _, _, line in lines)


def _sub(parent: ET.Element, tag: str, text: str | int | float | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = str(text)
    return element


def _labels(objects: Sequence[ExportObject]) -> list[str]:
    return sorted({obj.track.entity.description or "object" for obj in objects})


def to_cvat(
    objects: Sequence[ExportObject],
    video: ExportVideo,
    *,
    max_gap: float = DEFAULT_CVAT_MAX_GAP,
    dumped: datetime | None = None,
) -> str:
    """CVAT for video 1.1 XML (see the module doc)."""
    root = ET.Element("annotations")
    _sub(root, "version", "1.1")
    meta = _sub(root, "meta")
    task = _sub(meta, "task")
    _sub(task, "id", 0)
    _sub(task, "name", video.name)
    _sub(task, "size", video.frame_count)
    _sub(task, "mode", "interpolation")
    _sub(task, "overlap", 0)
    _sub(task, "bugtracker")
    _sub(task, "flipped", "False")
    labels = _sub(task, "labels")
    for name in _labels(objects):
        label = _sub(labels, "label")
        _sub(label, "name", name)
        _sub(label, "type", "rectangle")
        _sub(label, "attributes")
    segments = _sub(task, "segments")
    segment = _sub(segments, "segment")
    _sub(segment, "id", 0)
    _sub(segment, "start", 0)
    _sub(segment, "stop", max(video.frame_count - 1, 0))
    original = _sub(task, "original_size")
    _sub(original, "width", video.width)
    _sub(original, "height", video.height)
    _sub(meta, "dumped", (dumped or datetime.now(UTC)).isoformat())
    gap_frames = max(1, round(max_gap * video.fps)) if video.fps > 0 else 1
    for position, obj in enumerate(objects):
        label = obj.track.entity.description or "object"
        track = ET.SubElement(root, "track", id=str(position), label=label, source="auto")
        boxes = framed_boxes(obj.track, video)
        for index, (frame, box) in enumerate(boxes):
            _cvat_box(track, frame, box, video, outside=False)
            following = boxes[index + 1][0] if index + 1 < len(boxes) else None
            ends = following is None or following - frame > gap_frames
            if ends and frame + 1 < video.frame_count and frame + 1 != following:
                _cvat_box(track, frame + 1, box, video, outside=True)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _cvat_box(
    track: ET.Element, frame: int, box: NormalizedBox, video: ExportVideo, *, outside: bool
) -> None:
    left, top, right, bottom = _pixels(box, video)
    ET.SubElement(
        track,
        "box",
        frame=str(frame),
        keyframe="1",
        outside="1" if outside else "0",
        occluded="0",
        xtl=f"{left:.2f}",
        ytl=f"{top:.2f}",
        xbr=f"{right:.2f}",
        ybr=f"{bottom:.2f}",
        z_order="0",
    )


def to_coco(objects: Sequence[ExportObject], video: ExportVideo) -> str:
    """COCO video JSON (see the module doc)."""
    categories = {name: number for number, name in enumerate(_labels(objects), start=1)}
    stem = PurePosixPath(video.name).stem or "video"
    images: dict[int, dict[str, Any]] = {}
    annotations: list[dict[str, Any]] = []
    for obj in objects:
        for frame, box in framed_boxes(obj.track, video):
            image = images.setdefault(
                frame,
                {
                    "id": frame + 1,
                    "video_id": 1,
                    "frame_id": frame,
                    "file_name": f"{stem}/{frame:06d}.jpg",
                    "width": video.width,
                    "height": video.height,
                },
            )
            left, top, right, bottom = _pixels(box, video)
            width, height = round(right - left, 2), round(bottom - top, 2)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image["id"],
                    "video_id": 1,
                    "track_id": obj.number,
                    "category_id": categories[obj.track.entity.description or "object"],
                    "bbox": [left, top, width, height],
                    "segmentation": [],  # boxes only: no outline (COCO readers want the key)
                    "area": round(width * height, 2),
                    "iscrowd": 0,
                    "score": round(obj.track.confidence, 4),
                }
            )
    document = {
        "info": {"description": f"vtrack tracks of {video.name}"},
        "videos": [
            {
                "id": 1,
                "name": video.name,
                "width": video.width,
                "height": video.height,
                "fps": video.fps,
                "frame_count": video.frame_count,
            }
        ],
        "images": [images[frame] for frame in sorted(images)],
        "annotations": [
            {**item, "id": number}
            for number, item in enumerate(
                sorted(annotations, key=lambda item: (item["image_id"], item["track_id"])),
                start=1,
            )
        ],
        "categories": [
            {"id": number, "name": name, "supercategory": "object"}
            for name, number in categories.items()
        ],
    }
    return json.dumps(document, indent=1) + "\n"


def export_text(fmt: ExportFormat, objects: Sequence[ExportObject], video: ExportVideo) -> str:
    """The export of ``objects`` in ``fmt``."""
    if fmt in EXPORT_FORMATS:
        return {"mot": to_mot, "cvat": to_cvat, "coco": to_coco}[fmt](objects, video)
    raise ValueError(f"unknown export format {fmt!r} (choose one of {', '.join(EXPORT_FORMATS)})")


# --- What to export: a manifest or an annotation file ----------------------------------


@dataclass(frozen=True, slots=True)
class ExportSource:
    """The objects a SOURCE names, numbered as its job numbered them, and its video."""

    objects: tuple[ExportObject, ...]
    video: ExportVideo
    total: int  # objects in the annotation, kept or not


def _is_manifest(document: Any) -> bool:
    return isinstance(document, dict) and "annotation_uri" in document and "video" in document


def load_export_source(
    uri: str,
    storage: Any,
    *,
    every_object: bool = False,
    video_uri: str | None = None,
    min_confidence: float | None = None,
    min_frames: int | None = None,
    default_thresholds: tuple[float, int] = (0.7, 10),
    local_min_confidence: float = 0.3,
) -> ExportSource:
    """Read SOURCE (a job manifest or an annotation JSON, local or ``gs://``).

    A manifest names its annotation file, its video's size and rate, and the thresholds
    its job rendered with: those choose the kept objects, numbered as in the manifest. An
    annotation file is exported with ``min_confidence`` / ``min_frames``, defaulting to
    ``default_thresholds`` (``local_min_confidence`` for the local backend's annotations,
    whose entity ids are detector class numbers); its video (``video_uri``, else the
    annotation's ``inputUri``) is probed for its size, rate and frame times.
    ``every_object`` exports every object, numbered in order of first appearance.
    """
    from workers.annotations.selection import frame_minimum, select_objects
    from workers.annotations.vi_json import parse_annotation_json
    from workers.errors import InputError
    from workers.job import Manifest

    raw = storage.read_bytes(uri)
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if _is_manifest(document):
        manifest = Manifest.model_validate(document)
        if not manifest.annotation_uri:
            raise InputError(f"{uri}: the manifest names no annotation file")
        annotation = parse_annotation_json(
            storage.read_bytes(manifest.annotation_uri), manifest.annotation_uri
        )
        info = manifest.video
        local_video = _local_file(video_uri or manifest.video_uri)
        video = (
            _probe(local_video, video_uri or manifest.video_uri)
            if local_video
            else ExportVideo(
                name=PurePosixPath(manifest.video_uri).name,
                width=int(info["width"]),
                height=int(info["height"]),
                fps=float(info["fps"]),
                frame_count=int(info["frame_count"]),
            )
        )
        confidence = float(manifest.thresholds.get("min_confidence", 0.0))
        frames = int(manifest.thresholds.get("min_frames", 1))
    else:
        annotation = parse_annotation_json(raw, uri)
        source_video = video_uri or annotation.input_uri
        if not source_video:
            raise InputError(f"{uri}: names no video; give the video (--video)")
        with storage.local_copy(source_video) as path:
            video = _probe(path, source_video)
        local = bool(annotation.objects) and all(
            obj.entity.entity_id.isdigit() for obj in annotation.objects
        )
        confidence = local_min_confidence if local else default_thresholds[0]
        frames = default_thresholds[1]
    if min_confidence is not None:
        confidence = min_confidence
    if min_frames is not None:
        frames = min_frames
    if every_object:
        ordered = sorted(annotation.objects, key=lambda obj: (obj.first_time, -obj.confidence))
        objects = tuple(ExportObject(n, obj) for n, obj in enumerate(ordered, start=1))
    else:
        # As the job held them: a short clip's objects to fewer frames.
        kept = select_objects(annotation, confidence, frame_minimum(frames, video.frame_count))
        objects = tuple(ExportObject(item.index, item.track) for item in kept)
    return ExportSource(objects=objects, video=video, total=len(annotation.objects))


def _local_file(uri: str) -> str | None:
    from workers.uris import LOCAL_SCHEME, parse_uri

    try:
        parsed = parse_uri(uri)
    except Exception:
        return None
    return parsed.path if parsed.scheme == LOCAL_SCHEME and Path(parsed.path).is_file() else None


def _probe(path: Any, name: str) -> ExportVideo:
    from workers.media.video import frame_times, probe_video

    info = probe_video(Path(path))
    return ExportVideo(
        name=PurePosixPath(name).name,
        width=info.width,
        height=info.height,
        fps=info.fps,
        frame_count=info.frame_count,
        frame_times=frame_times(Path(path)),
    )
