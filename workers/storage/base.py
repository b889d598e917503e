"""What a storage is: the few operations vtrack needs on local files and Cloud Storage objects.

Every URI a storage accepts is one :func:`workers.uris.parse_uri` understands. Errors are
:class:`~workers.errors.VtrackError` subclasses whose one-line message names the URI:
:class:`~workers.errors.NotFoundError` for a missing file or object,
:class:`~workers.errors.UnsafePathError` for a path or name that would escape where it may go,
:class:`~workers.errors.StorageError` for anything else the storage refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectStat:
    """What is known about one stored file or object without reading it.

    ``generation`` is the Cloud Storage generation (changes on every overwrite; ``None`` for
    local files). ``mtime`` is POSIX seconds: a local file's modification time or an object's
    ``updated`` time. ``content_type`` is the stored type for objects, a guess from the
    extension for local files (``None`` when the extension says nothing).
    """

    uri: str
    size: int
    generation: str | None
    mtime: float | None
    content_type: str | None


@runtime_checkable
class Storage(Protocol):
    """The operations every storage backend offers; each takes a full URI."""

    def read_bytes(self, uri: str) -> bytes:
        """The whole content: for small files (JSON, manifests); videos use :meth:`local_copy`."""
        ...

    def write_bytes(self, uri: str, data: bytes, content_type: str) -> ObjectStat:
        """Replace ``uri`` with ``data`` at once: readers see old or new content, never a part."""
        ...

    def upload_file(self, path: Path, uri: str, content_type: str) -> ObjectStat:
        """Copy the local file ``path`` to ``uri``, as atomically as :meth:`write_bytes`."""
        ...

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from offset ``start``: serving large files in pieces."""
        ...

    def local_copy(self, uri: str, max_bytes: int | None = None) -> AbstractContextManager[Path]:
        """A context manager yielding a local path holding the content of ``uri``.

        Local files are yielded as they are; objects are downloaded to a temporary file that
        is deleted on exit. Over ``max_bytes`` raises :class:`~workers.errors.InputError`
        before anything is copied.
        """
        ...

    def exists(self, uri: str) -> bool: ...

    def stat(self, uri: str) -> ObjectStat: ...

    def list(self, prefix_uri: str) -> Iterator[ObjectStat]:
        """Every file or object at or below ``prefix_uri``, recursively.

        ``prefix_uri`` is treated as a folder: ``.../out`` lists ``.../out`` itself (when it
        is a file or object) and everything under ``.../out/``, never ``.../outside``.
        """
        ...

    def delete(self, uri: str) -> None:
        """Remove ``uri``; :class:`~workers.errors.NotFoundError` when it does not exist."""
        ...


def describe_size(size: int) -> str:
    """``size`` bytes as a person reads it: ``"12.3 MB (12345678 bytes)"``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit} ({size} bytes)"
    return f"{size} bytes"
