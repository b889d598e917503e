"""Local files (plain paths and ``file://`` URIs), confined to a few allowed folders."""

from __future__ import annotations

import mimetypes
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import BinaryIO

from workers.errors import (
    InputError,
    NotFoundError,
    StorageError,
    UnsafePathError,
    UnsupportedURIError,
)
from workers.storage.base import ObjectStat, describe_size
from workers.uris import LOCAL_SCHEME, parse_uri

# A write in progress lives next to its target as ".NAME.<random>.vtrack-partial"; listings
# skip such files so that a reader never picks up half an object.
_PARTIAL_SUFFIX = ".vtrack-partial"
_COPY_CHUNK = 1024 * 1024


class LocalStorage:
    """Files under ``roots``; any path that resolves elsewhere raises :class:`UnsafePathError`.

    Paths are checked after :func:`os.path.realpath`, so ``..`` and symlinks are followed
    before deciding: a symlink inside a root that points outside it is refused. (A symlink
    swapped in between the check and the use is not guarded against; the roots are the
    service's own folders, not ones that hostile users can write to.)
    Writes are atomic: a temporary file in the target's folder, fsynced, then renamed over
    the target, so readers see the old content or the new, and a failed write leaves the old.
    """

    def __init__(self, roots: Sequence[Path | str]) -> None:
        # A folder named twice (the input and output roots are often the same) counts once.
        self._roots = tuple(
            dict.fromkeys(Path(os.path.realpath(parse_uri(str(root)).path)) for root in roots)
        )

    @property
    def roots(self) -> tuple[Path, ...]:
        return self._roots

    # --- Reading ------------------------------------------------------------------------

    def read_bytes(self, uri: str) -> bytes:
        shown, real = self._resolve(uri)
        with _os_errors(shown, "read"):
            return real.read_bytes()

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        shown, real = self._resolve(uri)
        with _os_errors(shown, "read"), real.open("rb") as source:
            source.seek(start)
            return source.read(length)

    @contextmanager
    def local_copy(self, uri: str, max_bytes: int | None = None) -> Iterator[Path]:
        """The file itself (its resolved path): no copy is made and nothing is deleted."""
        shown, real = self._resolve(uri)
        size = self._stat_file(shown, real).size
        if max_bytes is not None and size > max_bytes:
            raise InputError(
                f"{shown} is {describe_size(size)}, over the limit of {describe_size(max_bytes)}"
            )
        yield real

    def exists(self, uri: str) -> bool:
        """Whether ``uri`` is a file (a folder is not); unsafe paths still raise."""
        _, real = self._resolve(uri)
        return real.is_file()

    def stat(self, uri: str) -> ObjectStat:
        shown, real = self._resolve(uri)
        return self._stat_file(shown, real)

    def list(self, prefix_uri: str) -> Iterator[ObjectStat]:
        """The file ``prefix_uri`` itself, or every file below the folder ``prefix_uri``.

        Files are listed sorted within each folder, each folder before its subfolders;
        symlinked folders are not entered, and symlinks that lead outside the roots and
        writes still in progress are left out. A missing prefix lists nothing.
        """
        shown, real = self._resolve(prefix_uri)
        if real.is_file():
            yield self._stat_file(shown, real)
            return
        for folder, subfolders, names in os.walk(real):
            subfolders.sort()
            for name in sorted(names):
                if name.startswith(".") and name.endswith(_PARTIAL_SUFFIX):
                    continue
                found = Path(folder, name)
                if not self._is_inside_roots(Path(os.path.realpath(found))):
                    continue
                try:
                    info = found.stat()  # follows a symlink to its (checked) target
                except (FileNotFoundError, NotADirectoryError):
                    continue  # deleted while we listed
                if S_ISREG(info.st_mode):
                    yield _object_stat(str(Path(shown, found.relative_to(real))), info)

    # --- Writing ------------------------------------------------------------------------

    def write_bytes(self, uri: str, data: bytes, content_type: str) -> ObjectStat:
        """Write ``data`` atomically; ``content_type`` is not stored (local files have none)."""
        shown, real = self._resolve(uri)
        _atomic_write(shown, real, lambda out: out.write(data))
        return self._stat_file(shown, real)

    def upload_file(self, path: Path, uri: str, content_type: str) -> ObjectStat:
        """Copy ``path`` to ``uri`` atomically.

        ``path`` is a file this process made (a rendered animation), so it is not held to
        the roots; only the destination is.
        """
        shown, real = self._resolve(uri)
        source = Path(path)
        with _os_errors(str(source), "read"), source.open("rb") as src:
            _atomic_write(shown, real, lambda out: shutil.copyfileobj(src, out, _COPY_CHUNK))
        return self._stat_file(shown, real)

    def delete(self, uri: str) -> None:
        """Remove the entry ``uri`` names; a symlink is removed itself, not its target."""
        parsed = parse_uri(uri)
        self._require_local(uri, parsed.scheme)
        entry = Path(parsed.path)
        # The entry's own location, with its folder resolved but not its last component.
        real_entry = Path(os.path.realpath(entry.parent), entry.name)
        self._check_inside_roots(str(parsed), real_entry)
        if real_entry.is_dir() and not real_entry.is_symlink():
            raise InputError(f"{parsed}: is a folder; only files can be deleted")
        with _os_errors(str(parsed), "delete"):
            real_entry.unlink()

    # --- Path safety ----------------------------------------------------------------------

    def _resolve(self, uri: str) -> tuple[str, Path]:
        """The path as the caller wrote it (for messages) and its checked real location."""
        parsed = parse_uri(uri)
        self._require_local(uri, parsed.scheme)
        shown = str(parsed)
        real = Path(os.path.realpath(parsed.path))
        self._check_inside_roots(shown, real)
        return shown, real

    @staticmethod
    def _require_local(uri: str, scheme: str) -> None:
        if scheme != LOCAL_SCHEME:
            raise UnsupportedURIError(
                f"{uri}: local storage handles local paths and file:// URIs only"
            )

    def _is_inside_roots(self, real: Path) -> bool:
        return any(real.is_relative_to(root) for root in self._roots)

    def _check_inside_roots(self, shown: str, real: Path) -> None:
        if self._is_inside_roots(real):
            return
        allowed = ", ".join(str(root) for root in self._roots) or "none are configured"
        where = shown if str(real) == shown else f"{shown} (which resolves to {real})"
        raise UnsafePathError(f"{where} is outside the allowed folders: {allowed}")

    def _stat_file(self, shown: str, real: Path) -> ObjectStat:
        with _os_errors(shown, "read"):
            info = real.stat()
        if S_ISDIR(info.st_mode):
            raise InputError(f"{shown}: is a folder, not a file")
        return _object_stat(shown, info)


def _object_stat(uri: str, info: os.stat_result) -> ObjectStat:
    content_type, _ = mimetypes.guess_type(uri, strict=False)
    return ObjectStat(
        uri=uri, size=info.st_size, generation=None, mtime=info.st_mtime, content_type=content_type
    )


@contextmanager
def _os_errors(shown: str, action: str) -> Iterator[None]:
    """OSErrors turned into one-line vtrack errors that name ``shown``."""
    try:
        yield
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise NotFoundError(f"{shown}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{shown}: is a folder, not a file") from exc
    except PermissionError as exc:
        raise StorageError(f"{shown}: permission denied to {action} it") from exc
    except OSError as exc:
        raise StorageError(f"{shown}: cannot {action} it: {exc.strerror or exc}") from exc


def _atomic_write(shown: str, target: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Make ``target`` hold what ``fill`` writes, replacing any old content in one rename."""
    with _os_errors(shown, "write"):
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = _mode_for(target)
        fd, partial = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=_PARTIAL_SUFFIX
        )
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fchmod(out.fileno(), mode)
                os.fsync(out.fileno())
            os.replace(partial, target)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(partial)
            raise
        _fsync_folder(target.parent)


def _mode_for(target: Path) -> int:
    """Keep an existing file's permissions; new files get the usual ``0o666 & ~umask``."""
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


@cache
def _umask() -> int:
    # The only portable way to read the umask is to set it and put it back.
    current = os.umask(0o022)
    os.umask(current)
    return current


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some filesystems cannot fsync a folder, which is fine."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
