"""The JSON API: submit, list, inspect and cancel jobs; search the catalog.

Every route is a plain function (run in the server's thread pool): Redis, the catalog and
storage are blocking clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from tasks.api import (
    Job,
    JobFinished,
    JobNotFound,
    current_catalog,
    list_jobs,
    make_spec,
    refuse_unusable_inputs,
    start_job,
)
from workers.errors import InputError, ServiceUnavailableError, VtrackError
from workers.job import JobStatus as Status

if TYPE_CHECKING:
    from workers.catalog import VideoMatch

router = APIRouter(prefix="/api", tags=["api"])

STATUSES = (
    "running",  # any of the four below
    *(s.value for s in Status if s not in Status.TERMINAL),
    *sorted(Status.TERMINAL),
)


class JobRequest(BaseModel):
    video_uri: str = Field(description="Local path, file:// or gs:// URI of the video.")
    annotations_uri: str | None = Field(
        None, description="An existing annotation JSON to render instead of tracking."
    )
    min_confidence: float | None = Field(None, ge=0.0, le=1.0)
    min_frames: int | None = Field(None, ge=1)


class JobCreated(BaseModel):
    job_id: str


class JobStatus(BaseModel):
    """The record ``vtrack status --json`` prints, plus the manifest once the job is done.

    Fields the record gains later are passed through as they are.
    """

    model_config = ConfigDict(extra="allow")

    job_id: str
    video_uri: str
    backend: str
    status: str
    stage: str
    percent: float
    error: str | None
    objects_total: int
    objects_done: int
    manifest_uri: str | None
    summary_uri: str | None
    outputs: list[str]
    created_at: float
    updated_at: float
    source: str
    manifest: dict[str, Any] | None = None


class JobList(BaseModel):
    jobs: list[JobStatus]
    total: int
    offset: int
    limit: int


class VideoObject(BaseModel):
    entity: str
    confidence: float
    first_time: float
    last_time: float
    animation_uri: str | None


class VideoResult(BaseModel):
    video_uri: str
    job_id: str
    summary_uri: str | None
    completed_at: float
    objects: list[VideoObject]


class Label(BaseModel):
    entity: str
    videos: int


def job_status(job: Job, *, with_manifest: bool) -> dict[str, Any]:
    record = job.status()
    data = record.model_dump(mode="json")
    data["manifest"] = job.manifest() if with_manifest and record.finished else None
    return data


@router.post(
    "/jobs",
    response_model=JobCreated,
    status_code=202,
    responses={422: {"description": "An input that can never work; no job was made."}},
)
def submit_job(request: JobRequest) -> dict[str, str]:
    """Start a job; a job already in flight for the same video is answered instead.

    A local video or annotation file that is missing, a folder or outside
    ``VTRACK_INPUT_ROOTS``, or an unsupported URI scheme, is refused with 422 and one line
    in ``detail``; no job is made.
    """
    try:
        spec = make_spec(
            request.video_uri,
            annotations_uri=request.annotations_uri,
            min_confidence=request.min_confidence,
            min_frames=request.min_frames,
        )
        refuse_unusable_inputs(spec)
        job = start_job(spec, source="web")
    except ServiceUnavailableError as exc:  # "the service cannot reach Redis right now: ..."
        raise HTTPException(503, str(exc)) from exc
    except InputError as exc:
        raise HTTPException(422, str(exc)) from exc
    except VtrackError as exc:
        raise HTTPException(400, str(exc)) from exc
    except Exception as exc:  # the broker or Redis is down: nothing was started
        raise HTTPException(503, f"cannot start the job: {type(exc).__name__}: {exc}") from exc
    return {"job_id": job.id}


@router.get("/jobs", response_model=JobList)
def get_jobs(
    status: str | None = Query(None, description=f"One of {', '.join(STATUSES)}."),
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    """Jobs, newest first."""
    records, total = list_jobs(status=status, offset=offset, limit=limit)
    jobs = [{**record.model_dump(mode="json"), "manifest": None} for record in records]
    return {"jobs": jobs, "total": total, "offset": offset, "limit": limit}


@router.get("/jobs/{job_id}", response_model=JobStatus)
def get_job(job_id: str) -> dict[str, Any]:
    try:
        return job_status(Job(job_id), with_manifest=True)
    except JobNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.delete("/jobs/{job_id}", response_model=JobStatus)
def cancel_job(job_id: str) -> dict[str, Any]:
    """Cancel a job: revoke its tasks, mark it ``cancelled``, publish nothing more."""
    job = Job(job_id)
    try:
        job.cancel()
        return job_status(job, with_manifest=False)
    except JobNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except JobFinished as exc:
        raise HTTPException(409, str(exc)) from exc


@router.get("/videos", response_model=list[VideoResult])
def search_videos(
    entity: str = Query(..., min_length=1, description="An object label, e.g. dog."),
    min_confidence: float = Query(0.0, ge=0.0, le=1.0),
) -> list[VideoMatch]:
    """Videos whose kept objects include ``entity``, with each object's times, newest first."""
    return current_catalog().search(entity, min_confidence=min_confidence)


@router.get("/labels", response_model=list[Label])
def labels(prefix: str = "", limit: int = Query(20, ge=1, le=200)) -> list[dict[str, Any]]:
    """Labels the catalog holds (for suggestions), most common first."""
    found = current_catalog().labels(prefix, limit)
    return [{"entity": entity, "videos": videos} for entity, videos in found]
