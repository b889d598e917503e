"""A vtrack job seen as a Video Intelligence long-running operation.

An operation's name carries its job's id: ``projects/vtrack/locations/L/operations/JOB_ID``.
What the request asked that the job does not keep (the input URI as the API reports it,
``output_uri``, the start time) is kept in Redis beside the job's record, with the same
lifetime, so any server process answers for any operation.

The operation is done as soon as the job's tracking is: its annotation JSON is written and
the job moves on to rendering (vtrack's summary and animations, which the API never had,
follow in ``vtrack status``). A failed job ends its operation with the job's message, as
``INVALID_ARGUMENT`` for bad input and ``INTERNAL`` for anything else.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import grpc
from google.cloud import videointelligence_v1 as vi
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import status_pb2

from tasks.api import OperationEntry
from tasks.jobstore import JobRecord
from workers.annotations.model import VideoAnnotation
from workers.annotations.vi_json import dump_annotation_json, dump_api_output_json
from workers.job import JobStatus

OPERATION_PATH = "projects/vtrack/locations/{location}/operations/{job_id}"
DEFAULT_LOCATION = "global"

# Job statuses after which the annotation JSON exists: the operation's answer is ready.
ANNOTATED_STATUSES = frozenset(
    {
        JobStatus.RENDERING,
        JobStatus.ASSEMBLING,
        JobStatus.COMPLETED,
        JobStatus.COMPLETED_WITH_ERRORS,
    }
)
# How much of an operation's progress the job's own stages stand for, before tracking ends.
ANNOTATING_SHARE = 0.99


def operation_name(job_id: str, location: str = "") -> str:
    return OPERATION_PATH.format(location=location or DEFAULT_LOCATION, job_id=job_id)


def job_id_of(name: str) -> str:
    """The job id an operation name carries (its last segment)."""
    return name.rstrip("/").rsplit("/", 1)[-1]


def api_input_uri(video_uri: str) -> str:
    """The API reports ``gs://bucket/name`` as ``/bucket/name``; local paths stay as they are."""
    return "/" + video_uri.removeprefix("gs://") if video_uri.startswith("gs://") else video_uri


def overall_percent(record: JobRecord | None) -> int:
    """The operation's ``progress_percent``: the job's tracking progress, 100 once it is done."""
    if record is None or record.status == JobStatus.QUEUED:
        return 0
    if record.status in ANNOTATED_STATUSES:
        return 100
    if record.status == JobStatus.ANNOTATING:
        return min(99, int(record.percent * ANNOTATING_SHARE))
    return 100  # failed or cancelled: the operation is over


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def progress_metadata(entry: OperationEntry, record: JobRecord | None) -> any_pb2.Any:
    """``AnnotateVideoProgress`` for the operation, packed as the API packs it.

    ``entry.progress`` is the highest progress reported: a job's stages are not evenly long,
    and tracking segments in parallel report one by one, but clients expect it to rise.
    """
    updated = record.updated_at if record is not None and record.updated_at else time.time()
    progress = vi.AnnotateVideoProgress(
        annotation_progress=[
            vi.VideoAnnotationProgress(
                input_uri=entry.input_uri,
                progress_percent=max(entry.progress, overall_percent(record)),
                start_time=timestamp(entry.started_at),
                update_time=timestamp(updated),
                feature=vi.Feature.OBJECT_TRACKING,
            )
        ]
    )
    packed = any_pb2.Any()
    packed.Pack(vi.AnnotateVideoProgress.pb(progress))
    return packed


def error_status(code: grpc.StatusCode, message: str) -> status_pb2.Status:
    return status_pb2.Status(code=code.value[0], message=message)


def job_error(record: JobRecord) -> status_pb2.Status:
    """How a failed job ends its operation: bad input is the caller's, the rest is ours."""
    code = grpc.StatusCode.INVALID_ARGUMENT
    if record.error_kind != "input":
        code = grpc.StatusCode.INTERNAL
    return error_status(code, record.error or "the job failed")


def response_for(annotation: VideoAnnotation, entry: OperationEntry) -> Any:
    """The ``AnnotateVideoResponse`` protobuf the API would answer for ``annotation``.

    With an ``output_uri`` the API puts the results in that file and names only the video
    in the response; vtrack does the same.
    """
    if entry.output_uri:
        results = vi.AnnotateVideoResponse(
            annotation_results=[vi.VideoAnnotationResults(input_uri=entry.input_uri)]
        )
    else:
        reported = replace(annotation, input_uri=entry.input_uri)
        results = vi.AnnotateVideoResponse.from_json(
            dump_annotation_json(reported), ignore_unknown_fields=True
        )
    return vi.AnnotateVideoResponse.pb(results)


def output_file(annotation: VideoAnnotation, entry: OperationEntry) -> bytes:
    """What ``output_uri`` receives: the JSON the API writes there."""
    return dump_api_output_json(replace(annotation, input_uri=entry.input_uri)).encode()


def operation_message(
    entry: OperationEntry,
    record: JobRecord | None,
    *,
    response: Any = None,
    error: status_pb2.Status | None = None,
) -> operations_pb2.Operation:
    """The ``google.longrunning.Operation`` for ``entry`` in its current state."""
    operation = operations_pb2.Operation(name=entry.name, metadata=progress_metadata(entry, record))
    if error is not None:
        operation.done = True
        operation.error.CopyFrom(error)
    elif response is not None:
        operation.done = True
        operation.response.Pack(response)
    return operation
