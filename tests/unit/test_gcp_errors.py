"""The pure parts of the gcp backend: error classification, URI checks, progress."""

from __future__ import annotations

import grpc
import pytest
from google.api_core import exceptions as api_exceptions
from google.cloud import videointelligence_v1 as vi
from google.longrunning import operations_pb2
from google.rpc import status_pb2

from workers.annotators.gcp import (
    check_video_uri,
    classify_api_error,
    operation_error_message,
    progress_percent,
)
from workers.errors import BackendError, InputError, TransientBackendError


def api_error(code: grpc.StatusCode, message: str) -> api_exceptions.GoogleAPICallError:
    """The exception the client library raises for a call that ended with ``code``."""
    return api_exceptions.from_grpc_status(code, message)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (grpc.StatusCode.UNAVAILABLE, "Stream removed"),
        (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "Quota exceeded for quota metric 'Requests'"),
        (grpc.StatusCode.INTERNAL, "Internal error encountered."),
        (grpc.StatusCode.UNKNOWN, "Stream removed"),  # how older gRPC reported a reset stream
    ],
)
def test_transient_failures_are_retryable(code: grpc.StatusCode, message: str) -> None:
    error = classify_api_error(api_error(code, message), "submission of gs://b/v.mp4")
    assert type(error) is TransientBackendError
    assert str(error) == (
        f"Video Intelligence submission of gs://b/v.mp4 failed: {code.name}: {message}"
    )


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "Request contains an invalid argument."),
        (grpc.StatusCode.PERMISSION_DENIED, "The caller does not have permission"),
        (grpc.StatusCode.NOT_FOUND, "Operation not found"),
        (grpc.StatusCode.UNAUTHENTICATED, "Request had invalid authentication credentials."),
        (grpc.StatusCode.UNKNOWN, "Something else"),
    ],
)
def test_permanent_failures_carry_the_api_message(code: grpc.StatusCode, message: str) -> None:
    error = classify_api_error(api_error(code, message), "status of operation op/1")
    assert type(error) is BackendError
    assert f"{code.name}: {message}" in str(error)


def test_operation_error_status_reads_as_the_api_documents_it() -> None:
    status = status_pb2.Status(code=3, message="Unable to process\n the video")
    assert operation_error_message(status) == "INVALID_ARGUMENT: Unable to process the video"
    assert operation_error_message(status_pb2.Status(code=99)) == "code 99: no message"


@pytest.mark.parametrize("uri", ["gs://videos/a/b.mp4", "gs://public-clips/x.mov"])
def test_video_in_an_allowed_bucket_passes(uri: str) -> None:
    check_video_uri(uri, frozenset({"videos", "public-clips"}))


def test_empty_allowlist_allows_any_bucket() -> None:
    check_video_uri("gs://anything/v.mp4", frozenset())


def test_video_outside_the_allowlist_is_refused_naming_the_setting() -> None:
    with pytest.raises(InputError) as raised:
        check_video_uri("gs://elsewhere/v.mp4", frozenset({"videos", "clips"}))
    assert str(raised.value) == (
        "gs://elsewhere/v.mp4: bucket 'elsewhere' is not in VTRACK_ALLOWED_BUCKETS (clips, videos)"
    )


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("/data/v.mp4", "annotates videos in Cloud Storage only"),
        ("file:///data/v.mp4", "annotates videos in Cloud Storage only"),
        ("gs://bucket-only", "needs an object name after the bucket"),
    ],
)
def test_video_not_in_cloud_storage_is_refused(uri: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        check_video_uri(uri, frozenset())


def _operation_with_progress(*percents: int) -> operations_pb2.Operation:
    progress = vi.AnnotateVideoProgress.pb()(
        annotation_progress=[
            vi.VideoAnnotationProgress.pb()(input_uri="/b/v.mp4", progress_percent=percent)
            for percent in percents
        ]
    )
    operation = operations_pb2.Operation(name="op/1")
    operation.metadata.Pack(progress)
    return operation


def test_progress_is_read_from_the_metadata() -> None:
    assert progress_percent(_operation_with_progress(40)) == 40.0
    assert progress_percent(_operation_with_progress(20, 60)) == 40.0


def test_operation_without_progress_reports_none() -> None:
    assert progress_percent(operations_pb2.Operation(name="op/1")) is None
    assert progress_percent(_operation_with_progress()) is None
    other = operations_pb2.Operation(name="op/1")
    other.metadata.Pack(status_pb2.Status(code=1))  # metadata of another type
    assert progress_percent(other) is None
