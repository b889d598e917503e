"""Cloud Storage objects (``gs://bucket/name``) through google-cloud-storage."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import google.auth
import google.auth.exceptions
import requests
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage import exceptions as storage_exceptions

from workers.errors import (
    ConfigurationError,
    InputError,
    NotFoundError,
    StorageError,
    UnsafePathError,
    UnsupportedURIError,
)
from workers.storage.base import ObjectStat, describe_size
from workers.storage.cache import VideoCache, temporary_copy
from workers.uris import GCS_SCHEME, parse_uri

EMULATOR_HOST_VARIABLE = "STORAGE_EMULATOR_HOST"
EMULATOR_PROJECT = "vtrack-test"

_client_lock = threading.Lock()
_cached_client: tuple[str | None, storage.Client] | None = None


def gcs_client() -> storage.Client:
    """The process's one Cloud Storage client, built on first use.

    With ``STORAGE_EMULATOR_HOST`` set (tests), the client talks to that emulator without
    credentials; otherwise it uses Application Default Credentials. A change of
    ``STORAGE_EMULATOR_HOST`` builds a new client; a forked child (a Celery prefork worker)
    builds its own rather than sharing the parent's connections.
    """
    global _cached_client
    emulator_host = os.environ.get(EMULATOR_HOST_VARIABLE) or None
    with _client_lock:
        if _cached_client is None or _cached_client[0] != emulator_host:
            _cached_client = (emulator_host, _build_client(emulator_host))
        return _cached_client[1]


def reset_gcs_client() -> None:
    """Forget the cached client; the next :func:`gcs_client` call builds a new one."""
    global _cached_client, _client_lock
    _cached_client = None
    _client_lock = threading.Lock()


os.register_at_fork(after_in_child=reset_gcs_client)


def _build_client(emulator_host: str | None) -> storage.Client:
    if emulator_host:
        project = os.environ.get("GOOGLE_CLOUD_PROJECT", EMULATOR_PROJECT)
        return storage.Client(project=project, credentials=AnonymousCredentials())
    try:
        credentials, project = google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise ConfigurationError(
            "gs:// URIs need Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a "
            "service-account key file or run `gcloud auth application-default login` "
            f"({_first_line(exc)})"
        ) from exc
    # project may be None: reading and writing objects does not need one.
    return storage.Client(project=project, credentials=credentials)


class GCSStorage:
    """Objects in Cloud Storage buckets, addressed as ``gs://bucket/name``.

    Object names with ``.`` or ``..`` components or a leading ``/`` are refused, so a crafted
    name can never address something other than what it appears to. Any bucket is allowed
    here; which buckets a job may use is decided before it gets this far.
    """

    def __init__(
        self,
        client_factory: Callable[[], storage.Client] = gcs_client,
        temp_dir: Path | str | None = None,
        cache: VideoCache | None = None,
    ) -> None:
        """``cache`` keeps local copies across calls (see :mod:`workers.storage.cache`)."""
        self._client_factory = client_factory
        self._temp_dir = temp_dir
        self._cache = cache

    # --- Reading ------------------------------------------------------------------------

    def read_bytes(self, uri: str) -> bytes:
        shown, bucket, name = self._locate(uri)
        with _cloud_errors(shown, "read"):
            return self._bucket(bucket).blob(name).download_as_bytes()

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        shown, bucket, name = self._locate(uri)
        if length <= 0:
            return b""
        with _cloud_errors(shown, "read"):
            blob = self._bucket(bucket).blob(name)
            return blob.download_as_bytes(start=start, end=start + length - 1)

    @contextmanager
    def local_copy(self, uri: str, max_bytes: int | None = None) -> Iterator[Path]:
        """A local file holding the object (keeping the name's extension).

        With a cache, the object's current generation is downloaded once and kept for the
        next calls; without one, it is downloaded to a temporary file deleted on exit.
        With ``max_bytes`` the object's size is checked from its metadata before any byte is
        downloaded, and the download stops if it grows past the limit meanwhile.
        """
        shown, bucket, name = self._locate(uri)
        suffix = PurePosixPath(name).suffix
        stat = None
        if max_bytes is not None or self._cache is not None:
            stat = self._stat_blob(shown, bucket, name)
            if max_bytes is not None and stat.size > max_bytes:
                raise InputError(
                    f"{shown} is {describe_size(stat.size)}, "
                    f"over the limit of {describe_size(max_bytes)}"
                )
        generation = int(stat.generation) if stat and stat.generation else None
        blob = self._bucket(bucket).blob(name, generation=generation)

        def fetch(path: Path) -> None:
            with path.open("wb") as out, _cloud_errors(shown, "read"):
                target = out if max_bytes is None else _CappedWriter(out, max_bytes, shown)
                blob.download_to_file(target)

        if self._cache is not None and stat is not None:
            with self._cache.local_copy(uri, stat.generation, stat.size, suffix, fetch) as path:
                yield path
            return
        with temporary_copy(suffix, fetch, self._temp_dir) as path:
            yield path

    def exists(self, uri: str) -> bool:
        """Whether the object exists (``False`` also when its bucket does not)."""
        shown, bucket, name = self._locate(uri)
        with _cloud_errors(shown, "look up"):
            return self._bucket(bucket).blob(name).exists()

    def stat(self, uri: str) -> ObjectStat:
        shown, bucket, name = self._locate(uri)
        return self._stat_blob(shown, bucket, name)

    def list(self, prefix_uri: str) -> Iterator[ObjectStat]:
        """The object ``prefix_uri`` names and every object under ``prefix_uri + "/"``.

        A prefix ending in ``/`` (or a bare ``gs://bucket``) lists everything under it.
        Objects come in name order, as Cloud Storage returns them. A missing bucket raises
        :class:`NotFoundError`; a prefix that matches nothing lists nothing.
        """
        shown, bucket, prefix = self._locate(prefix_uri, allow_empty_name=True)
        folder = prefix if prefix == "" or prefix.endswith("/") else prefix + "/"
        with _cloud_errors(shown, "list"):
            for blob in self._client_factory().list_blobs(bucket, prefix=prefix):
                if blob.name == prefix or blob.name.startswith(folder):
                    yield _object_stat(bucket, blob)

    # --- Writing ------------------------------------------------------------------------

    def write_bytes(self, uri: str, data: bytes, content_type: str) -> ObjectStat:
        shown, bucket, name = self._locate(uri)
        blob = self._bucket(bucket).blob(name)
        with _cloud_errors(shown, "write"):
            blob.upload_from_string(data, content_type=content_type)
        return _object_stat(bucket, blob)

    def upload_file(self, path: Path, uri: str, content_type: str) -> ObjectStat:
        shown, bucket, name = self._locate(uri)
        blob = self._bucket(bucket).blob(name)
        source = Path(path)
        try:
            upload = source.open("rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"{source}: no such file to upload to {shown}") from exc
        except OSError as exc:
            raise StorageError(f"{source}: cannot read it: {exc.strerror or exc}") from exc
        with upload, _cloud_errors(shown, "write"):
            blob.upload_from_file(
                upload, content_type=content_type, size=os.fstat(upload.fileno()).st_size
            )
        return _object_stat(bucket, blob)

    def delete(self, uri: str) -> None:
        shown, bucket, name = self._locate(uri)
        with _cloud_errors(shown, "delete"):
            self._bucket(bucket).blob(name).delete()

    # --- Helpers --------------------------------------------------------------------------

    def _bucket(self, bucket: str) -> storage.Bucket:
        return self._client_factory().bucket(bucket)

    def _stat_blob(self, shown: str, bucket: str, name: str) -> ObjectStat:
        with _cloud_errors(shown, "look up"):
            blob = self._bucket(bucket).get_blob(name)
        if blob is None:
            raise _not_found(shown)
        return _object_stat(bucket, blob)

    @staticmethod
    def _locate(uri: str, *, allow_empty_name: bool = False) -> tuple[str, str, str]:
        """``uri`` as shown in messages, its bucket and its object name, once checked safe."""
        parsed = parse_uri(uri)
        if parsed.scheme != GCS_SCHEME:
            raise UnsupportedURIError(f"{uri}: Cloud Storage handles gs:// URIs only")
        # parse_uri drops leading slashes from the name; look at the name as written.
        written_name = str(uri).strip().split("://", 1)[1].partition("/")[2]
        if written_name.startswith("/"):
            raise UnsafePathError(f"{uri}: object names must not start with '/'")
        if any(part in (".", "..") for part in written_name.split("/")):
            raise UnsafePathError(f"{uri}: object names must not contain '.' or '..' components")
        if not written_name and not allow_empty_name:
            raise InputError(f"{uri}: names a bucket, not an object")
        return f"gs://{parsed.bucket}/{written_name}", parsed.bucket, written_name


class _CappedWriter:
    """A file wrapper that refuses to grow past ``limit`` bytes."""

    def __init__(self, out: BinaryIO, limit: int, shown: str) -> None:
        self._out = out
        self._limit = limit
        self._shown = shown
        self._written = 0

    def write(self, chunk: bytes) -> int:
        self._written += len(chunk)
        if self._written > self._limit:
            raise InputError(
                f"{self._shown} grew past the limit of {describe_size(self._limit)} "
                "while it was downloaded"
            )
        return self._out.write(chunk)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # The client rewinds to 0 when it has to download again from the start.
        position = self._out.seek(offset, whence)
        self._written = position
        return position

    def tell(self) -> int:
        return self._out.tell()

    def flush(self) -> None:
        self._out.flush()


def _object_stat(bucket: str, blob: storage.Blob) -> ObjectStat:
    updated: datetime | None = blob.updated
    return ObjectStat(
        uri=f"gs://{bucket}/{blob.name}",
        size=int(blob.size or 0),
        generation=None if blob.generation is None else str(blob.generation),
        mtime=None if updated is None else updated.timestamp(),
        content_type=blob.content_type,
    )


def _not_found(shown: str) -> NotFoundError:
    bucket = shown.removeprefix("gs://").partition("/")[0]
    return NotFoundError(f"{shown} does not exist (no such object, or no bucket {bucket!r})")


@contextmanager
def _cloud_errors(shown: str, action: str) -> Iterator[None]:
    """Client library errors turned into one-line vtrack errors that name ``shown``."""
    try:
        yield
    except api_exceptions.NotFound as exc:
        raise _not_found(shown) from exc
    except api_exceptions.Forbidden as exc:
        raise StorageError(
            f"{shown}: permission denied to {action} it ({_first_line(exc.message)})"
        ) from exc
    except api_exceptions.GoogleAPICallError as exc:
        raise StorageError(
            f"{shown}: Cloud Storage refused to {action} it: {exc.code} {_first_line(exc.message)}"
        ) from exc
    except google.auth.exceptions.RefreshError as exc:
        raise ConfigurationError(
            f"{shown}: the Google credentials in use were refused ({_first_line(exc)}); "
            "check GOOGLE_APPLICATION_CREDENTIALS or run "
            "`gcloud auth application-default login`"
        ) from exc
    except storage_exceptions.DataCorruption as exc:
        raise StorageError(f"{shown}: the downloaded data failed its checksum") from exc
    except (requests.exceptions.RequestException, google.auth.exceptions.TransportError) as exc:
        raise StorageError(
            f"{shown}: cannot reach Cloud Storage to {action} it ({_first_line(exc)})"
        ) from exc


def _first_line(message: object) -> str:
    text = str(message).strip()
    return text.splitlines()[0] if text else "no details"
