"""Serving the job's files (outputs, annotation JSON, the video) through the app.

Only what lies under a served root is reachable: a relative path with ``..``, ``.`` or
empty components, a hidden name (the catalog's SQLite file, writes in progress), an
encoded slash or backslash in the raw URL, or a symlink that resolves outside the root is
refused. Local files are sent by Starlette's ``FileResponse`` (ranges, ``sendfile``);
``gs://`` objects are streamed in pieces, with ranges too, so a browser can seek a video.
Every response carries an ``ETag`` and ``Last-Modified``; a matching ``If-None-Match``
answers 304.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from workers.errors import NotFoundError, VtrackError
from workers.storage import Storage
from workers.storage.base import ObjectStat
from workers.uris import GCS_SCHEME, join_uri, parse_uri

CHUNK_BYTES = 1024 * 1024
_ENCODED_SEPARATOR = re.compile(rb"%(2f|5c)", re.IGNORECASE)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Database files (a catalog kept in the output folder) are never served.
_NEVER_SERVED = re.compile(r"\.(sqlite3?|db)(-wal|-shm|-journal)?$", re.IGNORECASE)

# JSON is revalidated on every use (a manifest is rewritten when its video is processed
# again); media may be reused for a few minutes; authenticated content is never shared.
JSON_CACHE = "private, no-cache"
MEDIA_CACHE = "private, max-age=300"

mimetypes.add_type("image/webp", ".webp")
mimetypes.add_type("video/mp4", ".m4v")


def refuse_encoded_separators(request: Request) -> None:
    """``%2F`` or ``%5C`` in the raw path: a name that is not what it appears to be."""
    raw = request.scope.get("raw_path") or b""
    if _ENCODED_SEPARATOR.search(raw):
        raise HTTPException(400, "encoded slashes are not allowed in paths")


def safe_relative(path: str) -> PurePosixPath:
    """``path`` as a relative name with no way out; raises 404 otherwise."""
    parts = path.split("/")
    if (
        not path
        or "\\" in path
        or "\x00" in path
        or any(part in ("", ".", "..") or part.startswith(".") for part in parts)
        or _NEVER_SERVED.search(parts[-1])
    ):
        raise HTTPException(404, "not found")
    return PurePosixPath(*parts)


def content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name)
    if guessed is None:
        return "application/octet-stream"
    if guessed.startswith("text/") or guessed == "application/json":
        return f"{guessed}; charset=utf-8"
    return guessed


def cache_control(name: str) -> str:
    return JSON_CACHE if name.endswith(".json") else MEDIA_CACHE


def output_url(uri: str | None, roots: dict[str, str]) -> str | None:
    """The app URL serving ``uri`` (``/files/outputs/...``), or None when not under a root."""
    if not uri:
        return None
    target = parse_uri(uri)
    for name, root in roots.items():
        base = parse_uri(root)
        if (base.scheme, base.bucket) != (target.scheme, target.bucket):
            continue
        prefix = base.path.strip("/") if base.scheme == GCS_SCHEME else base.path.rstrip("/")
        path = target.path
        if prefix and not path.startswith(prefix + "/"):
            continue
        relative = path[len(prefix) + 1 :] if prefix else path
        if relative:
            return f"/files/{name}/" + quote(relative)
    return None


def serve_under_root(request: Request, root: str, path: str, storage: Storage) -> Response:
    """The file ``path`` under ``root`` (a folder or ``gs://`` prefix), safely."""
    refuse_encoded_separators(request)
    relative = safe_relative(path)
    if parse_uri(root).scheme == GCS_SCHEME:
        return serve_object(request, storage, join_uri(root, str(relative)))
    base = Path(os.path.realpath(parse_uri(root).path))
    target = Path(os.path.realpath(base / relative))
    if not target.is_relative_to(base) or not target.is_file():  # or a symlink leading out
        raise HTTPException(404, "not found")
    return serve_local(request, target, relative.name)


def serve_local(request: Request, target: Path, name: str) -> Response:
    info = target.stat()
    etag = f'"{info.st_size:x}-{int(info.st_mtime_ns):x}"'
    if _not_modified(request, etag):
        return _not_modified_response(etag, name)
    return FileResponse(
        target,
        media_type=content_type(name),
        headers={"Cache-Control": cache_control(name), "ETag": etag},
        stat_result=info,
    )


def serve_object(request: Request, storage: Storage, uri: str) -> Response:
    """A ``gs://`` object, streamed in pieces, with one byte range when asked."""
    try:
        stat = storage.stat(uri)
    except NotFoundError as exc:
        raise HTTPException(404, "not found") from exc
    except VtrackError as exc:
        raise HTTPException(502, str(exc)) from exc
    name = PurePosixPath(parse_uri(uri).path).name
    etag = f'"{stat.generation or f"{stat.size:x}"}"'
    if _not_modified(request, etag):
        return _not_modified_response(etag, name)
    headers = {
        "Cache-Control": cache_control(name),
        "ETag": etag,
        "Accept-Ranges": "bytes",
    }
    if stat.mtime:
        headers["Last-Modified"] = formatdate(stat.mtime, usegmt=True)
    media_type = stat.content_type or content_type(name)
    start, end, status = 0, stat.size - 1, 200
    wanted = _parse_range(request.headers.get("range"), stat.size)
    if wanted is not None:
        start, end = wanted
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{stat.size}"
    headers["Content-Length"] = str(max(0, end - start + 1))
    return StreamingResponse(
        _chunks(storage, stat, start, end),
        status_code=status,
        media_type=media_type,
        headers=headers,
    )


def _chunks(storage: Storage, stat: ObjectStat, start: int, end: int) -> Iterator[bytes]:
    position = start
    while position <= end:
        length = min(CHUNK_BYTES, end - position + 1)
        data = storage.read_range(stat.uri, position, length)
        if not data:
            return
        yield data
        position += len(data)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    if not header or size == 0:
        return None
    match = _RANGE.match(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None  # several ranges or a bad header: the whole object
    first, last = match.group(1), match.group(2)
    if not first:  # the last N bytes
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start > end:
        raise HTTPException(416, "range not satisfiable")
    return start, end


def _not_modified(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match")
    return bool(wanted) and etag in [tag.strip() for tag in wanted.split(",")]


def _not_modified_response(etag: str, name: str) -> Response:
    return Response(status_code=304, headers={"ETag": etag, "Cache-Control": cache_control(name)})
