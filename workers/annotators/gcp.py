"""The Google Cloud backend: Video Intelligence OBJECT_TRACKING on videos in Cloud Storage.

``start`` submits ``annotate_video`` and returns the long-running operation's name at
once; ``check`` reads that operation with ``GetOperation`` and, when it is done, loads the
annotation JSON the API wrote to ``output_uri`` (or, failing that, the operation's own
response). Nothing here waits on an operation: ``operation.result()`` would hold a worker
for the whole annotation, and the poll task's countdown does the waiting instead.

Every RPC is made with ``retry=None`` and a timeout: the client's built-in retry keeps
trying UNAVAILABLE for up to ten minutes inside one task, hidden from the job and holding a
worker. Instead a failure is classified once (:func:`classify_api_error`) and the task
layer retries transient ones with backoff.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
from google.api_core import exceptions as api_exceptions
from google.cloud import videointelligence_v1 as vi
from google.longrunning import operations_pb2
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from workers.annotations.model import VideoAnnotation
from workers.annotations.vi_json import parse_annotation_json
from workers.annotators.base import AnnotateRequest, Operation, OperationStatus
from workers.annotators.gcp_client import GcpConfig, cached_client
from workers.errors import (
    BackendError,
    InputError,
    StorageError,
    TransientBackendError,
    VtrackError,
)
from workers.uris import GCS_SCHEME, parse_uri

if TYPE_CHECKING:
    from workers.storage.base import Storage

BACKEND_NAME = "gcp"

# The failures the API documents as "try again later". Everything else (INVALID_ARGUMENT,
# PERMISSION_DENIED, NOT_FOUND, UNAUTHENTICATED, FAILED_PRECONDITION...) will fail the same
# way on every retry.
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
    }
)
# A connection the server reset mid-call. Older gRPC releases reported it as UNKNOWN
# ("Stream removed"), newer ones as UNAVAILABLE; both are worth another try.
_STREAM_RESET_TEXT = "stream removed"

_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_code_name(code: int | grpc.StatusCode | None) -> str:
    """``3`` or ``StatusCode.INVALID_ARGUMENT`` -> ``"INVALID_ARGUMENT"``."""
    if isinstance(code, grpc.StatusCode):
        return code.name
    if code is None:
        return "UNKNOWN"
    found = _CODE_BY_NUMBER.get(code)
    return found.name if found is not None else f"code {code}"


def is_transient(code: grpc.StatusCode | None, message: str) -> bool:
    """Whether a call that failed with ``code`` and ``message`` may succeed when repeated."""
    if code in TRANSIENT_CODES:
        return True
    return code in (grpc.StatusCode.UNKNOWN, None) and _STREAM_RESET_TEXT in message.lower()


def classify_api_error(error: api_exceptions.GoogleAPICallError, action: str) -> VtrackError:
    """The vtrack error for an API call that failed: transient or permanent, one line."""
    code = error.grpc_status_code
    message = " ".join(str(error.message or "").split()) or type(error).__name__
    text = f"Video Intelligence {action} failed: {status_code_name(code)}: {message}"
    if is_transient(code, message):
        return TransientBackendError(text)
    return BackendError(text)


def check_video_uri(video_uri: str, allowed_buckets: frozenset[str]) -> None:
    """Refuse what the API cannot read or this deployment may not read, before any call.

    The API reads only ``gs://`` objects; ``allowed_buckets`` (empty = any bucket) keeps a
    shared worker from being pointed at someone else's bucket on our bill.
    """
    parsed = parse_uri(video_uri)
    if parsed.scheme != GCS_SCHEME:
        raise InputError(
            f"{video_uri}: the gcp backend annotates videos in Cloud Storage only; "
            "give a gs://bucket/path URI (upload local files first, or use the local backend)"
        )
    if not parsed.path:
        raise InputError(f"{video_uri}: a gs:// video URI needs an object name after the bucket")
    if allowed_buckets and parsed.bucket not in allowed_buckets:
        allowed = ", ".join(sorted(allowed_buckets))
        raise InputError(
            f"{video_uri}: bucket {parsed.bucket!r} is not in VTRACK_ALLOWED_BUCKETS ({allowed})"
        )


def progress_percent(operation: operations_pb2.Operation) -> float | None:
    """The metadata's progress (0-100), averaged over its videos; None when it has none."""
    if not operation.HasField("metadata"):
        return None
    progress = vi.AnnotateVideoProgress.pb()()
    if not operation.metadata.Unpack(progress):
        return None
    values = [item.progress_percent for item in progress.annotation_progress]
    if not values:
        return None
    return float(sum(values)) / len(values)


def operation_error_message(status: status_pb2.Status) -> str:
    message = " ".join(status.message.split()) or "no message"
    return f"{status_code_name(status.code)}: {message}"


class GcpAnnotator:
    """:class:`workers.annotators.base.Annotator` over the Video Intelligence API.

    ``client`` is a ``VideoIntelligenceServiceClient`` (see :mod:`workers.annotators.gcp_client`),
    ``storage`` reads the annotation JSON the API writes. ``call_timeout`` bounds each RPC.
    """

    name = BACKEND_NAME

    def __init__(
        self,
        client: vi.VideoIntelligenceServiceClient,
        storage: Storage,
        *,
        allowed_buckets: frozenset[str] = frozenset(),
        location_id: str | None = None,
        call_timeout: float = 60.0,
    ) -> None:
        self._client = client
        self._storage = storage
        self._allowed_buckets = allowed_buckets
        self._location_id = location_id
        self._call_timeout = call_timeout

    def start(self, request: AnnotateRequest) -> Operation:
        """Submit the video for OBJECT_TRACKING; returns as soon as the API accepted it."""
        check_video_uri(request.video_uri, self._allowed_buckets)
        body: dict[str, object] = {
            "input_uri": request.video_uri,
            "features": [vi.Feature.OBJECT_TRACKING],
        }
        # The API can only write to Cloud Storage; for a local annotation root the
        # annotation is taken from the operation's response instead.
        api_output_uri = request.output_uri if _is_gcs(request.output_uri) else ""
        if api_output_uri:
            body["output_uri"] = api_output_uri
        if self._location_id:
            body["location_id"] = self._location_id
        try:
            future = self._client.annotate_video(
                request=body, retry=None, timeout=self._call_timeout
            )
        except api_exceptions.GoogleAPICallError as error:
            raise classify_api_error(error, f"submission of {request.video_uri}") from error
        name = future.operation.name
        if not name:
            raise BackendError(
                f"Video Intelligence accepted {request.video_uri} but named no operation"
            )
        return Operation(
            backend=BACKEND_NAME,
            name=name,
            request=request,
            data={"api_output_uri": api_output_uri},
        )

    def check(self, operation: Operation) -> OperationStatus:
        """Read the operation once; done operations yield their annotation or an error."""
        if operation.backend != BACKEND_NAME:
            raise BackendError(
                f"operation {operation.name} belongs to backend {operation.backend!r}, not gcp"
            )
        try:
            state = self._client.transport.operations_client.get_operation(
                operation.name, retry=None, timeout=self._call_timeout
            )
        except api_exceptions.GoogleAPICallError as error:
            raise classify_api_error(error, f"status of operation {operation.name}") from error
        percent = progress_percent(state)
        if not state.done:
            return OperationStatus(done=False, progress_percent=percent)
        if state.HasField("error"):
            raise BackendError(
                f"Video Intelligence could not annotate {operation.request.video_uri} "
                f"(operation {operation.name}): {operation_error_message(state.error)}"
            )
        annotation = self._read_annotation(operation, state)
        return OperationStatus(done=True, progress_percent=100.0, annotation=annotation)

    def _read_annotation(
        self, operation: Operation, state: operations_pb2.Operation
    ) -> VideoAnnotation:
        video_uri = operation.request.video_uri
        output_uri = str(operation.data.get("api_output_uri") or "")
        if output_uri:
            try:
                if self._storage.exists(output_uri):
                    text = self._storage.read_bytes(output_uri)
                    return parse_annotation_json(text, source=output_uri, input_uri=video_uri)
            except StorageError as error:
                raise TransientBackendError(
                    f"cannot read the annotations of {video_uri} from {output_uri}: {error}"
                ) from error
        if state.HasField("response"):
            response = vi.AnnotateVideoResponse.pb()()
            try:
                unpacked = state.response.Unpack(response)
            except DecodeError as error:
                raise BackendError(
                    f"operation {operation.name}: unreadable response: {error}"
                ) from error
            if unpacked and response.annotation_results:
                text = json_format.MessageToJson(response, preserving_proto_field_name=True)
                return parse_annotation_json(
                    text, source=f"operation {operation.name}", input_uri=video_uri
                )
        where = output_uri or "the operation's response"
        raise BackendError(
            f"Video Intelligence finished {video_uri} (operation {operation.name}) "
            f"but no annotations were found in {where}"
        )


def annotator_from_config(config: GcpConfig, storage: Storage) -> GcpAnnotator:
    """The annotator for ``config``, on this process's cached client.

    Raises :class:`workers.errors.ConfigurationError` when credentials or the project are
    missing; call it from the worker's process-init hook so that shows at start-up.
    """
    return GcpAnnotator(
        cached_client(config.endpoint, config.project),
        storage,
        allowed_buckets=config.allowed_buckets,
        location_id=config.location_id,
        call_timeout=config.call_timeout,
    )


def _is_gcs(uri: str) -> bool:
    return uri.startswith(f"{GCS_SCHEME}://")
