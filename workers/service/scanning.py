"""What a scan of a folder or bucket decides, as plain functions: no Celery, no Redis.

A scan lists a source, keeps the video files, and for each one asks: has this version of
the video been processed already? A finished job leaves a *source stamp*,
``VIDEO.source.json`` beside ``VIDEO.manifest.json`` in the output root, recording which
version of the video the manifest was made from: its Cloud Storage generation, or its size
and modification time for a local file. A video is done when its manifest exists and its
stamp names the version the listing shows now; a replaced video (new generation, new size
or mtime) is processed again, and so is one whose manifest was deleted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

from workers import naming
from workers.errors import NotFoundError
from workers.messages import Message
from workers.storage import ObjectStat, Storage
from workers.uris import GCS_SCHEME, join_uri, parse_uri

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
    # MPEG-TS: broadcast captures, HLS segments, dashcams; AVCHD camcorders (.mts, .m2ts).
    | {".ts", ".m2t", ".m2ts", ".mts"}
)
# Content types that say nothing about the object: fall back to its extension.
GENERIC_CONTENT_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})
STAMP_SUFFIX = ".source.json"
SIDECAR_ANNOTATION_SUFFIX = ".json"
# Local mtimes go through JSON and float arithmetic; anything closer than this is the same.
MTIME_TOLERANCE_SECONDS = 1e-3


class VideoVersion(Message):
    """Which content of a video: its generation in a bucket, its size and mtime on disk."""

    size: int
    generation: str | None = None
    mtime: float | None = None

    @classmethod
    def of(cls, stat: ObjectStat) -> VideoVersion:
        return cls(size=stat.size, generation=stat.generation, mtime=stat.mtime)

    def same_as(self, other: VideoVersion) -> bool:
        """Generations decide when either side has one; otherwise size and mtime must match."""
        if self.generation is not None or other.generation is not None:
            return self.generation == other.generation
        if self.mtime is None or other.mtime is None:
            return False
        return self.size == other.size and abs(self.mtime - other.mtime) < MTIME_TOLERANCE_SECONDS


class SourceStamp(Message):
    """Written beside the manifest when a job completes: the video version it was made from.

    The file is flat, the version's keys beside the job's, in this order.
    """

    video_uri: str
    size: int
    generation: str | None = None
    mtime: float | None = None
    job_id: str
    manifest_uri: str
    recorded_at: float = 0.0

    @property
    def version(self) -> VideoVersion:
        return VideoVersion.model_validate(self.model_dump())


def stamp_uri(output_root: str, video_uri: str, input_roots: Sequence[str] = ()) -> str:
    """``VIDEO.source.json``: beside the video's manifest (see :func:`naming.video_stem`)."""
    stem = naming.video_stem(video_uri, input_roots)
    return join_uri(output_root, f"{stem}{STAMP_SUFFIX}")


def sidecar_annotation_uri(video_uri: str) -> str:
    """``VIDEO.json`` in the video's own folder or prefix."""
    return f"{video_uri}{SIDECAR_ANNOTATION_SUFFIX}"


def write_stamp(storage: Storage, output_root: str, stamp: SourceStamp) -> str:
    """Write ``stamp`` beside its manifest (the job named it; ``output_root`` for the rest)."""
    if stamp.manifest_uri.endswith(naming.MANIFEST_SUFFIX):
        uri = stamp.manifest_uri.removesuffix(naming.MANIFEST_SUFFIX) + STAMP_SUFFIX
    else:
        uri = stamp_uri(output_root, stamp.video_uri)
    storage.write_bytes(uri, json.dumps(stamp.model_dump(), indent=2).encode(), "application/json")
    return uri


def read_stamp(
    storage: Storage, output_root: str, video_uri: str, input_roots: Sequence[str] = ()
) -> SourceStamp | None:
    """The video's stamp, or None when there is none or it cannot be understood."""
    try:
        return SourceStamp.model_validate_json(
            storage.read_bytes(stamp_uri(output_root, video_uri, input_roots))
        )
    except NotFoundError:
        return None
    except ValueError:  # pydantic's ValidationError too
        return None  # a damaged stamp means "not known to be done": process again


def is_processed(
    storage: Storage, output_root: str, video: ObjectStat, input_roots: Sequence[str] = ()
) -> bool:
    """Whether the output root holds a manifest made from this version of ``video``.

    ``input_roots``: ``VTRACK_INPUT_ROOTS``, which place a local video's outputs.
    """
    stamp = read_stamp(storage, output_root, video.uri, input_roots)
    if stamp is None or not stamp.version.same_as(VideoVersion.of(video)):
        return False
    stem = naming.video_stem(video.uri, input_roots)
    return storage.exists(naming.manifest_uri(output_root, stem))


def is_video(stat: ObjectStat) -> bool:
    """A video by its extension; in a bucket, a ``video/*`` content type also counts and a
    non-video type (``text/plain``, ``image/jpeg``) rules the object out.

    Hidden files (``.name``) are left out: copy tools write partial files that way.
    """
    parsed = parse_uri(stat.uri)
    name = PurePosixPath(parsed.path).name
    if not name or name.startswith("."):
        return False
    by_extension = PurePosixPath(name).suffix.lower() in VIDEO_EXTENSIONS
    if parsed.scheme != GCS_SCHEME:
        return by_extension
    content_type = (stat.content_type or "").split(";")[0].strip().lower()
    if content_type.startswith("video/"):
        return True
    if content_type and content_type not in GENERIC_CONTENT_TYPES:
        return False
    return by_extension


def oldest_first(videos: Iterable[ObjectStat]) -> list[ObjectStat]:
    """Videos by modification time, oldest first (unknown times first, then by URI)."""
    return sorted(videos, key=lambda stat: (stat.mtime or 0.0, stat.uri))


def still_being_written(video: ObjectStat, min_age: float, now: float | None = None) -> bool:
    """A local file modified within ``min_age`` seconds may still be being copied.

    Bucket objects appear whole once written, so they are never held back.
    """
    if min_age <= 0 or video.mtime is None or parse_uri(video.uri).scheme == GCS_SCHEME:
        return False
    return (time.time() if now is None else now) - video.mtime < min_age


def list_videos(storage: Storage, source: str) -> list[ObjectStat]:
    """The video files at or under ``source``, oldest first."""
    return oldest_first(stat for stat in storage.list(source) if is_video(stat))
