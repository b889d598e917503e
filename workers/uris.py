"""Parsing and joining the URIs vtrack accepts: local paths, ``file://`` and ``gs://``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from workers.errors import UnsafePathError, UnsupportedURIError

GCS_SCHEME = "gs"
LOCAL_SCHEME = "file"


@dataclass(frozen=True, slots=True)
class ParsedURI:
    """A URI split into its scheme, its bucket (gs only) and its path or object name."""

    scheme: str
    bucket: str
    path: str

    @property
    def is_local(self) -> bool:
        return self.scheme == LOCAL_SCHEME

    @property
    def name(self) -> str:
        """The last component: a video's file name with its extension."""
        return PurePosixPath(self.path).name

    def local_path(self) -> Path:
        if not self.is_local:
            raise UnsupportedURIError(f"{self} is not a local path")
        return Path(self.path)

    def __str__(self) -> str:
        if self.scheme == GCS_SCHEME:
            return f"gs://{self.bucket}/{self.path}"
        return self.path


def parse_uri(uri: str) -> ParsedURI:
    """Split ``uri``: a plain path or ``file://`` URI is local, ``gs://bucket/name`` is GCS.

    Local paths are made absolute (not resolved: symlink checks belong to the storage that
    knows its root). Any other scheme raises :class:`UnsupportedURIError`.
    """
    text = str(uri).strip()
    if not text:
        raise UnsupportedURIError("empty URI")
    if "://" not in text:
        return ParsedURI(LOCAL_SCHEME, "", str(Path(text).expanduser().absolute()))
    if text[:5].lower() == "gs://":
        # Object names may hold "?" or "#": split literally, not as a URL.
        bucket, _, name = text[5:].partition("/")
        if not bucket:
            raise UnsupportedURIError(f"{text}: a gs:// URI needs a bucket name")
        return ParsedURI(GCS_SCHEME, bucket, name.lstrip("/"))
    parts = urlparse(text)
    scheme = parts.scheme.lower()
    if scheme == LOCAL_SCHEME:
        if parts.netloc not in ("", "localhost"):
            raise UnsupportedURIError(f"{text}: file:// URIs must name a local path")
        return ParsedURI(LOCAL_SCHEME, "", str(Path(unquote(parts.path)).absolute()))
    raise UnsupportedURIError(
        f"{text}: unsupported URI scheme {scheme!r} (use a local path, file:// or gs://)"
    )


def join_uri(root: str, relative: str) -> str:
    """``relative`` placed under ``root``, refusing names that would climb out of it.

    ``relative`` uses ``/`` separators; absolute names and ``..`` components raise
    :class:`UnsafePathError`, so a crafted video or entity name can never write elsewhere.
    """
    rel = PurePosixPath(relative)
    if rel.is_absolute() or any(part in ("..", "") for part in rel.parts) or not rel.parts:
        raise UnsafePathError(f"{relative!r} is not a safe relative name under {root}")
    base = parse_uri(root)
    if base.scheme == GCS_SCHEME:
        prefix = base.path.strip("/")
        name = f"{prefix}/{rel}" if prefix else str(rel)
        return f"gs://{base.bucket}/{name}"
    return str(Path(base.path) / rel)
