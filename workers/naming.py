"""Names of everything a job writes, following the seed's naming.

Every output of a video is named ``VIDEO.<what>`` (``VIDEO.json``, ``VIDEO.manifest.json``,
``VIDEO.summary_pct70_fr10.jpeg``, ``VIDEO.001_dog_pct92_fr40.gif``...), where ``VIDEO`` is
the video's *stem*: its place below the output root (:func:`video_stem`), which ends with
the video's file name and extension. Two different videos never share a stem, so never an
output; the same video processed again gets the same stem and replaces its own outputs.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from workers.uris import GCS_SCHEME, join_uri, parse_uri

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MANIFEST_SUFFIX = ".manifest.json"


def video_stem(video_uri: str, input_roots: Sequence[str] = ()) -> str:
    """The relative name every output of this video starts with.

    - ``gs://BUCKET/path/clip.mp4``: ``BUCKET/path/clip.mp4`` (the seed's layout).
    - A local video inside the first of ``input_roots`` (``VTRACK_INPUT_ROOTS``): its path
      relative to that root (``a/clip.mp4``; a video directly in the root keeps the flat
      name ``clip.mp4`` of earlier versions).
    - Any other local video (another input root, a watched or scanned folder elsewhere,
      ``vtrack run`` of a file outside the first root): ``FOLDER-KEY/clip.mp4``, where
      ``FOLDER`` is the name of the video's folder and ``KEY`` the first 8 hex digits of the
      SHA-256 of that folder's absolute path (short, stable, different for each folder).
    """
    parsed = parse_uri(video_uri)
    if parsed.scheme == GCS_SCHEME:
        return f"{parsed.bucket}/{parsed.path}"
    path = PurePosixPath(os.path.normpath(parsed.path))
    for root in input_roots[:1]:
        root_path = PurePosixPath(os.path.normpath(os.path.abspath(os.path.expanduser(root))))
        if path != root_path and path.is_relative_to(root_path):
            return str(path.relative_to(root_path))
    return f"{folder_key(str(path.parent))}/{path.name}"


def flat_stem(video_uri: str) -> str:
    """The stem of versions before the layout above: a local video's file name alone (two
    same-named videos collided). Only for jobs submitted by those versions."""
    parsed = parse_uri(video_uri)
    return f"{parsed.bucket}/{parsed.path}" if parsed.scheme == GCS_SCHEME else parsed.name


def folder_key(folder: str) -> str:
    """``NAME-KEY`` for a local folder: its name and a short hash of its absolute path."""
    digest = hashlib.sha256(folder.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    name = _UNSAFE.sub("_", PurePosixPath(folder).name).strip("._-")[:40] or "root"
    return f"{name}-{digest}"


def safe_entity(description: str) -> str:
    """An entity description made safe for a file name: ``"traffic light"`` -> ``traffic_light``."""
    cleaned = _UNSAFE.sub("_", description.strip()).strip("._-")
    return cleaned[:60] or "object"


def percent(confidence: float) -> int:
    """A confidence as the whole percent used in names and captions (0.7 -> 70)."""
    return round(confidence * 100)


# Below, ``stem`` is a video's :func:`video_stem` (a job's ``JobSpec.stem``).


def annotation_uri(annotation_root: str, stem: str) -> str:
    return join_uri(annotation_root, f"{stem}.json")


def manifest_uri(output_root: str, stem: str) -> str:
    return join_uri(output_root, f"{stem}{MANIFEST_SUFFIX}")


def summary_uri(output_root: str, stem: str, min_confidence: float, min_frames: int) -> str:
    name = f"{stem}.summary_pct{percent(min_confidence)}_fr{min_frames}.jpeg"
    return join_uri(output_root, name)


def object_name(index: int, entity: str, confidence: float, frame_count: int) -> str:
    """``{index:03}_{entity}_pct{confidence}_fr{frames}``: the part shared by an object's files."""
    return f"{index:03}_{safe_entity(entity)}_pct{percent(confidence)}_fr{frame_count}"


def animation_uri(
    output_root: str,
    stem: str,
    index: int,
    entity: str,
    confidence: float,
    frame_count: int,
    animation_format: str,
) -> str:
    name = object_name(index, entity, confidence, frame_count)
    return join_uri(output_root, f"{stem}.{name}.{animation_format}")


def cell_uri(
    output_root: str, stem: str, index: int, entity: str, confidence: float, frame_count: int
) -> str:
    name = object_name(index, entity, confidence, frame_count)
    return join_uri(output_root, f"{stem}.{name}.jpeg")


def output_folder(output_root: str, stem: str) -> str:
    """The folder (or ``gs://`` prefix) that holds every output of this video."""
    return join_uri(output_root, stem).rsplit("/", 1)[0]


def rendered_output_pattern(stem: str) -> re.Pattern[str]:
    """File names of what a job renders for this video before its manifest: the objects'
    cells and animations and the summary grid (not the annotations, not the manifest)."""
    name = re.escape(stem.rsplit("/", 1)[-1])
    return re.compile(
        rf"{name}\.(\d{{3}}_.+_pct\d+_fr\d+\.(gif|webp|jpeg)|summary_pct\d+_fr\d+\.jpeg)"
    )
