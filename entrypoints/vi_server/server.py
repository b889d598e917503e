"""The gRPC server of ``vtrack vi-server``.

``AnnotateVideo`` starts a vtrack job and answers with its operation; the
``google.longrunning.Operations`` methods report, list, cancel and forget operations. Every
call carries the API key in ``x-goog-api-key`` when one is set (as the client library
sends ``client_options={"api_key": ...}``); without a key the server serves loopback only.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.cloud import videointelligence_v1 as vi
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import empty_pb2

from config.settings import Settings
from entrypoints.vi_server.operations import (
    ANNOTATED_STATUSES,
    api_input_uri,
    error_status,
    job_error,
    job_id_of,
    operation_message,
    operation_name,
    output_file,
    overall_percent,
    response_for,
)
from entrypoints.vi_server.protocol import annotate_video_rpc
from tasks.api import (
    REDIS_DOWN,
    OperationBook,
    OperationEntry,
    describe_redis_error,
    job_record,
    make_spec,
    new_job_id,
    operation_book,
    service_storage,
    start_job,
)
from workers import naming
from workers.annotations.vi_json import parse_annotation_json
from workers.errors import ConfigurationError, InputError, VtrackError
from workers.job import JobStatus
from workers.uris import join_uri, parse_uri

log = logging.getLogger("vtrack.vi_server")

SUPPORTED_FEATURES = (vi.Feature.OBJECT_TRACKING,)
API_KEY_HEADER = "x-goog-api-key"
UPLOADS_FOLDER = "vi-uploads"
SWEEP_SECONDS = 1.0
DEFAULT_PAGE_SIZE = 100


REDIS_DOWN_MESSAGE = "the service cannot reach Redis right now"


class _Abort(Exception):
    """A call refused with a status code and a message the client shows."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _answer(call: Callable[[Any], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
    """Turn :class:`_Abort` and vtrack's input errors into gRPC statuses; log bugs once."""

    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return call(request)
        except _Abort as refused:
            log.warning("refused: %s", refused)
            context.abort(refused.code, str(refused))
        except InputError as error:
            log.warning("refused: %s", error)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except VtrackError as error:
            log.error("failed: %s", error)
            context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        except REDIS_DOWN as error:
            log.warning("%s: %s", REDIS_DOWN_MESSAGE, describe_redis_error(error))
            context.abort(grpc.StatusCode.UNAVAILABLE, REDIS_DOWN_MESSAGE)

    return handler


class VideoIntelligenceService:
    """What the RPCs do, on vtrack's job API and an :class:`OperationBook`."""

    def __init__(self, settings: Settings, book: OperationBook) -> None:
        self.settings = settings
        self.book = book
        self._storage = service_storage()

    # --- AnnotateVideo ----------------------------------------------------------------

    def annotate_video(self, request: vi.AnnotateVideoRequest) -> operations_pb2.Operation:
        features = list(request.features)
        unsupported = [vi.Feature(f).name for f in features if f not in SUPPORTED_FEATURES]
        if not features or unsupported:
            what = (
                f"unsupported features: {', '.join(unsupported)}"
                if unsupported
                else ("no feature requested")
            )
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{what}; this server (vtrack) supports OBJECT_TRACKING only",
            )
        if bool(request.input_uri) == bool(request.input_content):
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "give exactly one of input_uri and input_content",
            )
        if request.output_uri:
            parse_uri(request.output_uri)
        job_id = new_job_id()  # time-ordered: a job lost with Redis is told from an unknown one
        if request.input_content:
            video_uri = self._store_upload(job_id, request.input_content)
        else:
            video_uri = request.input_uri
            self._storage.stat(video_uri)  # missing, or outside the input roots: refused now
        spec = make_spec(
            video_uri,
            backend=self.settings.vi_server_backend,
            job_id=job_id,
            settings=self.settings,  # the settings _annotation finds the results with
        )
        job = start_job(spec)  # a job already in flight for this video is shared
        entry = self.book.get(job.id)
        if entry is None or entry.output_uri != request.output_uri:
            entry = OperationEntry(
                job_id=job.id,
                name=operation_name(job.id, request.location_id),
                input_uri=api_input_uri(video_uri),
                output_uri=request.output_uri,
                started_at=time.time(),
            )
            self.book.add(entry)
        log.info("operation %s: tracking %s", entry.name, video_uri)
        return self.operation(entry)

    def _store_upload(self, job_id: str, content: bytes) -> str:
        limit = self.settings.vi_server_max_content_bytes
        if len(content) > limit:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input_content is {len(content)} bytes, over this server's limit of {limit} "
                "(VTRACK_VI_SERVER_MAX_CONTENT_BYTES); give an input_uri instead",
            )
        uri = join_uri(self.settings.output_root, f"{UPLOADS_FOLDER}/{job_id}.video")
        self._storage.write_bytes(uri, content, "application/octet-stream")
        return uri

    # --- Operations -------------------------------------------------------------------

    def get_operation(self, request: operations_pb2.GetOperationRequest) -> Any:
        return self.operation(self._entry(request.name))

    def list_operations(self, request: operations_pb2.ListOperationsRequest) -> Any:
        entries = [entry for entry in self.book.all() if entry.name.startswith(request.name)]
        start = int(request.page_token or 0)
        size = request.page_size or DEFAULT_PAGE_SIZE
        page = entries[start : start + size]
        following = start + size
        return operations_pb2.ListOperationsResponse(
            operations=[self.operation(entry) for entry in page],
            next_page_token=str(following) if following < len(entries) else "",
        )

    def cancel_operation(self, request: operations_pb2.CancelOperationRequest) -> Any:
        entry = self._entry(request.name)
        record = job_record(entry.job_id)
        if record is None or record.finished or record.status in ANNOTATED_STATUSES:
            return empty_pb2.Empty()  # already over: nothing to cancel, as the API answers
        from tasks.api import cancel_job

        cancel_job(entry.job_id)
        self.book.update(entry, cancelled=True)
        log.info("operation %s: cancelled", entry.name)
        return empty_pb2.Empty()

    def delete_operation(self, request: operations_pb2.DeleteOperationRequest) -> Any:
        if not self.book.delete(job_id_of(request.name)):
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"operation {request.name} not found")
        return empty_pb2.Empty()

    def _entry(self, name: str) -> OperationEntry:
        entry = self.book.get(job_id_of(name))
        if entry is None or entry.name != name:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"operation {name} not found")
        return entry

    def operation(self, entry: OperationEntry) -> operations_pb2.Operation:
        """The operation as it stands: running, done with the results, or done with an error."""
        record = job_record(entry.job_id)
        if overall_percent(record) > entry.progress:
            entry = self.book.update(entry, progress=overall_percent(record))
        if entry.cancelled:
            error = error_status(grpc.StatusCode.CANCELLED, "the operation was cancelled")
            return operation_message(entry, record, error=error)
        if record is None:
            error = error_status(
                grpc.StatusCode.ABORTED,
                f"the record of job {entry.job_id} was lost (Redis restarted or was "
                "flushed); start the annotation again",
            )
            return operation_message(entry, record, error=error)
        if record.status == JobStatus.FAILED:
            return operation_message(entry, record, error=job_error(record))
        if record.status == JobStatus.CANCELLED:
            error = error_status(grpc.StatusCode.CANCELLED, "the job was cancelled")
            return operation_message(entry, record, error=error)
        if record.status not in ANNOTATED_STATUSES:
            return operation_message(entry, record)
        try:
            annotation = self._annotation(record.video_uri)
            if entry.output_uri and not entry.output_written:
                data = output_file(annotation, entry)
                self._storage.write_bytes(entry.output_uri, data, "application/json")
                entry = self.book.update(entry, output_written=True)
        except VtrackError as error:
            log.warning("operation %s: %s", entry.name, error)
            status = error_status(
                grpc.StatusCode.PERMISSION_DENIED if entry.output_uri else grpc.StatusCode.INTERNAL,
                str(error),
            )
            return operation_message(entry, record, error=status)
        return operation_message(entry, record, response=response_for(annotation, entry))

    def _annotation(self, video_uri: str) -> Any:
        stem = naming.video_stem(video_uri, self.settings.input_root_list())
        uri = naming.annotation_uri(self.settings.annotation_root, stem)
        return parse_annotation_json(self._storage.read_bytes(uri), uri)

    def sweep(self) -> None:
        """Write the ``output_uri`` of every operation that finished, whether polled or not."""
        for entry in self.book.all():
            if entry.output_uri and not entry.output_written and not entry.cancelled:
                self.operation(entry)


class ApiKeyCheck(grpc.ServerInterceptor):
    """Refuses every call whose ``x-goog-api-key`` is not the server's key."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "API key missing or not valid")

        self._refusal = grpc.unary_unary_rpc_method_handler(refuse)

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        given = dict(details.invocation_metadata or ()).get(API_KEY_HEADER, "")
        if hmac.compare_digest(str(given).encode(), self._key):
            return continuation(details)
        return self._refusal


class _OperationsServicer(operations_pb2_grpc.OperationsServicer):
    def __init__(self, service: VideoIntelligenceService) -> None:
        self.GetOperation = _answer(service.get_operation)
        self.ListOperations = _answer(service.list_operations)
        self.CancelOperation = _answer(service.cancel_operation)
        self.DeleteOperation = _answer(service.delete_operation)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_server(settings: Settings, host: str, port: int) -> tuple[grpc.Server, int, Any]:
    """The server, bound but not started, the port it got, and its service."""
    api_key = settings.vi_server_api_key
    if not api_key and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host} without an API key: set VTRACK_VI_SERVER_API_KEY, "
            "or serve on 127.0.0.1"
        )
    service = VideoIntelligenceService(settings, operation_book(settings))
    interceptors = [ApiKeyCheck(api_key)] if api_key else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=interceptors)
    rpc = annotate_video_rpc()
    annotate = grpc.unary_unary_rpc_method_handler(
        _answer(service.annotate_video),
        request_deserializer=rpc.request_type.deserialize,
        response_serializer=rpc.response_type.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(rpc.service, {rpc.method: annotate})]
    )
    operations_pb2_grpc.add_OperationsServicer_to_server(_OperationsServicer(service), server)
    address = f"{host}:{port}"
    if settings.vi_server_tls_cert or settings.vi_server_tls_key:
        credentials = grpc.ssl_server_credentials(
            [
                (
                    Path(settings.vi_server_tls_key).read_bytes(),
                    Path(settings.vi_server_tls_cert).read_bytes(),
                )
            ]
        )
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise ConfigurationError(f"cannot listen on {address}")
    return server, bound, service


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve until SIGTERM or Ctrl-C; calls under way are given a few seconds to finish."""
    server, bound, service = build_server(settings, host, port)
    stopping = threading.Event()
    server.start()
    scheme = "TLS" if settings.vi_server_tls_cert else "plain gRPC"
    key = "API key required" if settings.vi_server_api_key else "no API key (loopback only)"
    print(f"vtrack vi-server listening on {host}:{bound} ({scheme}, {key})", flush=True)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    redis_down = False
    while not stopping.wait(SWEEP_SECONDS):
        try:
            service.sweep()
        except REDIS_DOWN as error:  # one line per outage; the sweep goes on when it ends
            if not redis_down:
                log.warning("%s: %s", REDIS_DOWN_MESSAGE, describe_redis_error(error))
            redis_down = True
            continue
        except Exception:  # a bug in one sweep must not stop the server
            log.exception("writing finished operations' output files failed")
        if redis_down:
            log.warning("Redis is back")
            redis_down = False
    server.stop(grace=5).wait()
    print("vtrack vi-server stopped", flush=True)
