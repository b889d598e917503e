"""One storage for every URI: local paths and ``file://`` URIs, and ``gs://`` objects.

Typical use::

    storage = open_storage(["/srv/videos", "file:///srv/vtrack-output"])
    with storage.local_copy("gs://bucket/clip.mp4", max_bytes=2_000_000_000) as path:
        ...
    storage.write_bytes("/srv/vtrack-output/clip.mp4.json", data, "application/json")

Each call goes to the backend for its URI's scheme, built on first use, so a job that never
touches ``gs://`` never needs Google credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.errors import UnsupportedURIError
from workers.storage.base import ObjectStat, Storage
from workers.storage.cache import VideoCache
from workers.storage.local import LocalStorage
from workers.uris import GCS_SCHEME, LOCAL_SCHEME, parse_uri

if TYPE_CHECKING:
    from workers.storage.gcs import GCSStorage, gcs_client, reset_gcs_client

# The Cloud Storage client library takes most of a second to import: loaded on first use.
_GCS_NAMES = frozenset({"GCSStorage", "gcs_client", "reset_gcs_client"})


def __getattr__(name: str) -> Any:
    if name in _GCS_NAMES:
        from workers.storage import gcs

        return getattr(gcs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GCSStorage",
    "LocalStorage",
    "ObjectStat",
    "Storage",
    "StorageRouter",
    "VideoCache",
    "gcs_client",
    "open_storage",
    "reset_gcs_client",
]

StorageFactory = Callable[[], Storage]


class StorageRouter:
    """A :class:`Storage` that hands each call to the backend registered for the URI's scheme.

    ``backends`` maps a scheme (``"file"``, ``"gs"``) to a factory; each backend is built
    the first time a URI of its scheme is used.
    """

    def __init__(self, backends: Mapping[str, StorageFactory]) -> None:
        self._factories = dict(backends)
        self._built: dict[str, Storage] = {}
        self._lock = threading.Lock()

    def backend_for(self, uri: str) -> Storage:
        scheme = parse_uri(uri).scheme  # raises UnsupportedURIError for unknown schemes
        factory = self._factories.get(scheme)
        if factory is None:
            raise UnsupportedURIError(f"{uri}: no storage is configured for {scheme}:// URIs")
        with self._lock:
            if scheme not in self._built:
                self._built[scheme] = factory()
            return self._built[scheme]

    def read_bytes(self, uri: str) -> bytes:
        return self.backend_for(uri).read_bytes(uri)

    def write_bytes(self, uri: str, data: bytes, content_type: str) -> ObjectStat:
        return self.backend_for(uri).write_bytes(uri, data, content_type)

    def upload_file(self, path: Path, uri: str, content_type: str) -> ObjectStat:
        return self.backend_for(uri).upload_file(path, uri, content_type)

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        return self.backend_for(uri).read_range(uri, start, length)

    def local_copy(self, uri: str, max_bytes: int | None = None) -> AbstractContextManager[Path]:
        return self.backend_for(uri).local_copy(uri, max_bytes)

    def exists(self, uri: str) -> bool:
        return self.backend_for(uri).exists(uri)

    def stat(self, uri: str) -> ObjectStat:
        return self.backend_for(uri).stat(uri)

    def list(self, prefix_uri: str) -> Iterator[ObjectStat]:
        return self.backend_for(prefix_uri).list(prefix_uri)

    def delete(self, uri: str) -> None:
        self.backend_for(uri).delete(uri)


def open_storage(
    local_roots: Sequence[str | Path], video_cache: VideoCache | None = None
) -> StorageRouter:
    """A storage for local paths (held to ``local_roots``) and for ``gs://`` objects.

    ``video_cache`` keeps downloaded objects for later ``local_copy`` calls (one download
    per object version per machine); without it every call downloads again.

    ``local_roots`` entries are folders as plain paths or ``file://`` URIs; ``gs://``
    entries and blank ones are skipped (buckets are not limited here). Local URIs outside
    every root raise :class:`~workers.errors.UnsafePathError`.
    """
    roots = [
        parse_uri(str(entry)).path
        for entry in local_roots
        if str(entry).strip() and parse_uri(str(entry)).scheme == LOCAL_SCHEME
    ]
    return StorageRouter(
        {
            LOCAL_SCHEME: lambda: LocalStorage(roots),
            GCS_SCHEME: lambda: _gcs_storage(video_cache),
        }
    )


def _gcs_storage(video_cache: VideoCache | None) -> Storage:
    from workers.storage.gcs import GCSStorage

    return GCSStorage(cache=video_cache)
