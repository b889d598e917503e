"""Videos downloaded from a bucket, kept on local disk so each machine fetches a video once.

A job reads its video several times (probe, segments, render batches); without a cache a
``gs://`` video crosses the network once per task. The cache is a folder shared by every
worker process of a machine, keyed by the object's URI and generation (an overwritten
object is a new entry, never stale bytes), bounded in size with the least recently used
entries removed first.

Safe for concurrent processes: each entry has a lock file. The first process to want an
entry holds it exclusively while it downloads to a temporary name in the same folder and
renames it into place (readers never see a partial file); everyone using an entry holds it
shared, and eviction only removes entries it can lock exclusively without waiting, so a
video being decoded is never deleted under its reader.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
PART_PREFIX = ".part-"
DEFAULT_FOLDER_NAME = "vtrack-video-cache"


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / DEFAULT_FOLDER_NAME


class VideoCache:
    """Local copies of stored objects under ``folder``, at most ``max_bytes`` in all."""

    def __init__(self, folder: Path | str, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes

    def key(self, uri: str, generation: str | None) -> str:
        return hashlib.sha256(f"{uri}\n{generation or ''}".encode()).hexdigest()[:40]

    @contextmanager
    def local_copy(
        self,
        uri: str,
        generation: str | None,
        size: int,
        suffix: str,
        fetch: Callable[[Path], None],
    ) -> Iterator[Path]:
        """A local path holding ``uri`` at ``generation``; ``fetch(path)`` downloads when missing.

        ``size`` is the object's size (from its metadata), used to make room first. An object
        larger than the whole cache is still served (downloaded to a file deleted on exit).
        """
        if size > self.max_bytes:
            with temporary_copy(suffix, fetch) as path:
                yield path
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self.key(uri, generation)
        path = self.folder / f"{key}{suffix}"
        with (self.folder / f"{key}{LOCK_SUFFIX}").open("a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.exists():
                os.utime(path)  # most recently used
            else:
                self._make_room(size)
                _fetch_atomically(path, fetch)
            # Downgrade to shared: other readers may use the entry, eviction may not.
            fcntl.flock(lock, fcntl.LOCK_SH)
            yield path

    def entries(self) -> list[Path]:
        """Cached files, least recently used first."""
        if not self.folder.is_dir():
            return []
        files = [
            entry
            for entry in self.folder.iterdir()
            if entry.is_file()
            and not entry.name.endswith(LOCK_SUFFIX)
            and not entry.name.startswith(PART_PREFIX)
        ]
        return sorted(files, key=_mtime)

    def _make_room(self, incoming: int) -> None:
        """Remove least recently used entries (not in use) until ``incoming`` bytes fit."""
        entries = self.entries()
        total = sum(_size(entry) for entry in entries)
        for entry in entries:
            if total + incoming <= self.max_bytes:
                return
            lock_path = self.folder / f"{entry.name.split('.', 1)[0]}{LOCK_SUFFIX}"
            with lock_path.open("a+b") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # in use by another process
                size = _size(entry)
                entry.unlink(missing_ok=True)
                total -= size
                log.info("video cache: removed %s (%d bytes) to make room", entry.name, size)


def _fetch_atomically(path: Path, fetch: Callable[[Path], None]) -> None:
    part = path.with_name(f"{PART_PREFIX}{uuid.uuid4().hex}{path.suffix}")
    try:
        fetch(part)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


@contextmanager
def temporary_copy(
    suffix: str, fetch: Callable[[Path], None], folder: Path | str | None = None
) -> Iterator[Path]:
    """A temporary file (in ``folder``, else the temp folder) that ``fetch`` fills,
    deleted on exit."""
    fd, name = tempfile.mkstemp(prefix="vtrack-", suffix=suffix, dir=folder)
    os.close(fd)
    path = Path(name)
    try:
        fetch(path)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
