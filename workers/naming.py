"""Names of everything a job writes, following the seed's naming.

``VIDEO`` is the video's file name with its extension. Local videos keep just that name
under the output root; a ``gs://`` video keeps its bucket and path (as the seed did:
``gs://ANNOTATION_BUCKET/VIDEO_BUCKET/path/to/video.ext.json``), so two buckets holding
``clip.mp4`` never overwrite each other's results.
"""

from __future__ import annotations

import re

from workers.uris import GCS_SCHEME, join_uri, parse_uri

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def video_stem(video_uri: str) -> str:
    """The relative name every output of this video starts with."""
    parsed = parse_uri(video_uri)
    if parsed.scheme == GCS_SCHEME:
        return f"{parsed.bucket}/{parsed.path}"
    return parsed.name


def safe_entity(description: str) -> str:
    """An entity description made safe for a file name: ``"traffic light"`` -> ``traffic_light``."""
    cleaned = _UNSAFE.sub("_", description.strip()).strip("._-")
    return cleaned[:60] or "object"


def percent(confidence: float) -> int:
    """A confidence as the whole percent used in names and captions (0.7 -> 70)."""
    return round(confidence * 100)


def annotation_uri(annotation_root: str, video_uri: str) -> str:
    return join_uri(annotation_root, f"{video_stem(video_uri)}.json")


def manifest_uri(output_root: str, video_uri: str) -> str:
    return join_uri(output_root, f"{video_stem(video_uri)}.manifest.json")


def summary_uri(output_root: str, video_uri: str, min_confidence: float, min_frames: int) -> str:
    name = f"{video_stem(video_uri)}.summary_pct{percent(min_confidence)}_fr{min_frames}.jpeg"
    return join_uri(output_root, name)


def object_name(index: int, entity: str, confidence: float, frame_count: int) -> str:
    """``{index:03}_{entity}_pct{confidence}_fr{frames}``: the part shared by an object's files."""
    return f"{index:03}_{safe_entity(entity)}_pct{percent(confidence)}_fr{frame_count}"


def animation_uri(
    output_root: str,
    video_uri: str,
    index: int,
    entity: str,
    confidence: float,
    frame_count: int,
    animation_format: str,
) -> str:
    name = object_name(index, entity, confidence, frame_count)
    return join_uri(output_root, f"{video_stem(video_uri)}.{name}.{animation_format}")


def cell_uri(
    output_root: str, video_uri: str, index: int, entity: str, confidence: float, frame_count: int
) -> str:
    name = object_name(index, entity, confidence, frame_count)
    return join_uri(output_root, f"{video_stem(video_uri)}.{name}.jpeg")


def output_folder(output_root: str, video_uri: str) -> str:
    """The folder (or ``gs://`` prefix) that holds every output of this video."""
    return join_uri(output_root, video_stem(video_uri)).rsplit("/", 1)[0]


def rendered_output_pattern(video_uri: str) -> re.Pattern[str]:
    """File names of what a job renders for this video before its manifest: the objects'
    cells and animations and the summary grid (not the annotations, not the manifest)."""
    name = re.escape(video_stem(video_uri).rsplit("/", 1)[-1])
    return re.compile(
        rf"{name}\.(\d{{3}}_.+_pct\d+_fr\d+\.(gif|webp|jpeg)|summary_pct\d+_fr\d+\.jpeg)"
    )
