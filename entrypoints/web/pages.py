"""The server-rendered pages: jobs, one job's results, search; and the files they show."""

from __future__ import annotations

import datetime as dt
import os
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from entrypoints.web import files
from tasks.api import (
    Job,
    JobNotFound,
    current_catalog,
    list_jobs,
    make_spec,
    refuse_unusable_inputs,
    service_settings,
    service_storage,
    start_job,
)
from workers.errors import VtrackError
from workers.steps import describe_no_summary
from workers.uris import GCS_SCHEME, parse_uri

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)

# Containers a browser's <video> plays (with the usual codecs inside them).
PLAYABLE_SUFFIXES = frozenset({".mp4", ".m4v", ".webm", ".ogv", ".ogg", ".mov"})
EXPORT_LISTING_LIMIT = 2000
JOBS_PER_PAGE = 50


def served_roots() -> dict[str, str]:
    """The roots the app serves files from, by the name in their URL."""
    settings = service_settings()
    return {"outputs": settings.output_root, "annotations": settings.annotation_root}


def clock(seconds: float | None) -> str:
    """``83.25`` -> ``1:23.2``: a time in a video, as players show it."""
    if seconds is None:
        return "-"
    minutes, rest = divmod(max(0.0, float(seconds)), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def url_for_output(uri: str | None) -> str | None:
    return files.output_url(uri, served_roots())


TEMPLATES.env.filters["clock"] = clock
TEMPLATES.env.filters["when"] = when
TEMPLATES.env.filters["output_url"] = url_for_output
TEMPLATES.env.filters["percent"] = lambda value: f"{round(float(value) * 100)}%"


@router.get("/", response_class=HTMLResponse)
def jobs_page(request: Request, status: str | None = None, page: int = 1) -> Response:
    return _jobs_page(request, status=status, page=page)


def _jobs_page(
    request: Request,
    *,
    status: str | None = None,
    page: int = 1,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    page = max(1, page)
    records, total = list_jobs(
        status=status or None, offset=(page - 1) * JOBS_PER_PAGE, limit=JOBS_PER_PAGE
    )
    context = {
        "jobs": [record.model_dump(mode="json") for record in records],
        "total": total,
        "page": page,
        "pages": max(1, -(-total // JOBS_PER_PAGE)),
        "status": status or "",
        "error": error,
        "form": form or {},
    }
    return TEMPLATES.TemplateResponse(
        request, "jobs.html", context, status_code=422 if error else 200
    )


@router.post("/jobs")
async def submit_form(request: Request) -> Response:
    """The jobs page's form (url-encoded, no JavaScript needed)."""
    fields = {
        key: values[0].strip()
        for key, values in parse_qs((await request.body()).decode("utf-8", "replace")).items()
    }
    confidence, frames = fields.get("min_confidence"), fields.get("min_frames")
    try:
        spec = make_spec(
            fields.get("video_uri", ""),
            annotations_uri=fields.get("annotations_uri") or None,
            min_confidence=float(confidence) if confidence else None,
            min_frames=int(frames) if frames else None,
        )
        refuse_unusable_inputs(spec)
        job = start_job(spec, source="web")
    except (VtrackError, ValueError) as exc:
        return _jobs_page(request, error=str(exc), form=fields)
    return RedirectResponse(f"/jobs/{quote(job.id)}", status_code=303)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str) -> Response:
    job = Job(job_id)
    try:
        record = job.status()
    except JobNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    manifest = job.manifest() if record.finished else None
    objects = list((manifest or {}).get("objects", []))
    labels = sorted({obj["entity"] for obj in objects})
    context = {
        "job": record.model_dump(mode="json"),
        "manifest": manifest,
        "objects": objects,
        "labels": labels,
        "playable": manifest is not None and _playable(record.video_uri),
        "exports": _exports(manifest) if manifest else [],
        "no_summary": _no_summary(manifest),
    }
    return TEMPLATES.TemplateResponse(request, "job.html", context)


def _no_summary(manifest: dict[str, Any] | None) -> str | None:
    """Why a finished job shows no summary, as ``vtrack run`` says it (nothing detected, or
    nothing passed the thresholds), as a sentence; None when it has one."""
    if manifest is None or manifest.get("summary_uri"):
        return None
    reason = describe_no_summary(manifest)
    return f"{reason[:1].upper()}{reason[1:]}."


@router.api_route("/jobs/{job_id}/video", methods=["GET", "HEAD"])
def job_video(request: Request, job_id: str) -> Response:
    """The job's video, for the job page's player (only that video, from its record)."""
    try:
        record = Job(job_id).status()
    except JobNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    if not _playable(record.video_uri):
        raise HTTPException(404, "this video cannot be played in a browser")
    parsed = parse_uri(record.video_uri)
    if parsed.scheme == GCS_SCHEME:
        return files.serve_object(request, service_storage(), record.video_uri)
    real = Path(os.path.realpath(parsed.path))
    if not _inside_input_roots(real) or not real.is_file():
        raise HTTPException(404, "video not found")
    return files.serve_local(request, real, real.name)


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, entity: str = "", min_confidence: float = 0.0) -> Response:
    catalog = current_catalog()
    matches = catalog.search(entity, min_confidence=min_confidence) if entity.strip() else []
    context = {
        "entity": entity,
        "min_confidence": min_confidence,
        "matches": matches,
        "suggestions": catalog.labels(limit=50),
    }
    return TEMPLATES.TemplateResponse(request, "search.html", context)


@router.api_route("/files/{root}/{path:path}", methods=["GET", "HEAD"])
def serve_file(request: Request, root: str, path: str) -> Response:
    """Outputs and annotation JSON, from a folder or a bucket, never from outside them."""
    roots = served_roots()
    if root not in roots:
        raise HTTPException(404, "not found")
    return files.serve_under_root(request, roots[root], path, service_storage())


def _playable(video_uri: str) -> bool:
    try:
        parsed = parse_uri(video_uri)
    except VtrackError:
        return False
    if PurePosixPath(parsed.path).suffix.lower() not in PLAYABLE_SUFFIXES:
        return False
    if parsed.scheme == GCS_SCHEME:
        return True
    real = Path(os.path.realpath(parsed.path))
    return _inside_input_roots(real) and real.is_file()


def _inside_input_roots(real: Path) -> bool:
    for root in service_settings().input_root_list():
        parsed = parse_uri(root)
        if parsed.is_local and real.is_relative_to(os.path.realpath(parsed.path)):
            return True
    return False


def _exports(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """Other files the job's video has beside its manifest (exports: CSV, MOT, ...)."""
    manifest_uri = manifest.get("manifest_uri") or ""
    parsed = parse_uri(manifest_uri)
    stem = PurePosixPath(parsed.path).name.removesuffix(".manifest.json")
    folder = str(parsed)[: -len(PurePosixPath(parsed.path).name)].rstrip("/")
    known = {
        manifest.get("summary_uri"),
        manifest.get("annotation_uri"),
        manifest_uri,
        *(obj.get("animation_uri") for obj in manifest.get("objects", [])),
        *(obj.get("cell_uri") for obj in manifest.get("objects", [])),
    }
    found: list[dict[str, str]] = []
    try:
        for stat in islice(service_storage().list(folder), EXPORT_LISTING_LIMIT):
            name = PurePosixPath(parse_uri(stat.uri).path).name
            same_folder = stat.uri[: -len(name)].rstrip("/") == folder
            if (
                same_folder
                and name.startswith(stem + ".")
                and stat.uri not in known
                and not name.endswith((".source.json", ".jpeg", ".gif", ".webp"))
            ):
                url = url_for_output(stat.uri)
                if url:
                    found.append({"name": name.removeprefix(stem + "."), "url": url})
    except VtrackError:
        return []
    return found
