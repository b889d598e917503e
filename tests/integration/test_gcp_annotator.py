"""GcpAnnotator against a real gRPC Video Intelligence server and the Cloud Storage emulator.

The real ``VideoIntelligenceServiceClient`` talks over an insecure channel to the fake
server of :mod:`tests.support.fake_videointelligence`, which writes its annotation JSON
into gcp-storage-emulator, where the annotator reads it back through vtrack's storage. Each
scenario is driven as the poll task would: ``start`` once, then ``check`` until done.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import grpc
import pytest
from google.cloud import videointelligence_v1 as vi

from tests.support.fake_videointelligence import (
    INVALID_ARGUMENT,
    PERMISSION_DENIED,
    POLL_TIMEOUT,
    QUOTA_EXCEEDED,
    STREAM_REMOVED,
    UNDECODABLE_VIDEO,
    FakeVideoIntelligence,
    Scenario,
    fake_videointelligence_process,
    running_fake_videointelligence,
    sample_annotation,
)
from tests.support.gcs_emulator import create_bucket, running_gcs_emulator, using_gcs_emulator
from workers.annotations.model import VideoAnnotation
from workers.annotators.base import AnnotateRequest, Operation, OperationStatus
from workers.annotators.gcp import GcpAnnotator, annotator_from_config
from workers.annotators.gcp_client import GcpConfig, cached_client, insecure_client
from workers.errors import BackendError, InputError, TransientBackendError
from workers.naming import annotation_uri
from workers.storage import open_storage

pytestmark = pytest.mark.integration

MAX_CHECKS = 20


@pytest.fixture(scope="module")
def gcs_host() -> Iterator[str]:
    with running_gcs_emulator() as host, using_gcs_emulator(host):
        yield host


@pytest.fixture
def buckets(gcs_host: str) -> tuple[str, str]:
    """A video bucket holding one (fake) video, and an annotation bucket."""
    videos, annotations = create_bucket(gcs_host), create_bucket(gcs_host)
    open_storage([]).write_bytes(f"gs://{videos}/clips/dog.mp4", b"not decoded here", "video/mp4")
    return videos, annotations


@pytest.fixture
def fake(gcs_host: str) -> Iterator[FakeVideoIntelligence]:
    with running_fake_videointelligence() as server:
        yield server


def request_for(buckets: tuple[str, str]) -> AnnotateRequest:
    videos, annotations = buckets
    video = f"gs://{videos}/clips/dog.mp4"
    return AnnotateRequest(video_uri=video, output_uri=annotation_uri(f"gs://{annotations}", video))


def annotator_for(endpoint: str, **options: object) -> GcpAnnotator:
    return GcpAnnotator(
        insecure_client(endpoint),
        open_storage([]),
        call_timeout=10.0,
        **options,  # type: ignore[arg-type]
    )


def poll_until_done(annotator: GcpAnnotator, operation: Operation) -> list[OperationStatus]:
    statuses: list[OperationStatus] = []
    for _ in range(MAX_CHECKS):
        statuses.append(annotator.check(operation))
        if statuses[-1].done:
            return statuses
    raise AssertionError(f"operation not done after {MAX_CHECKS} checks: {statuses}")


def assert_same_tracks(found: VideoAnnotation, expected: VideoAnnotation) -> None:
    assert [obj.entity.description for obj in found.objects] == [
        obj.entity.description for obj in expected.objects
    ]
    for got, want in zip(found.objects, expected.objects, strict=True):
        assert got.confidence == pytest.approx(want.confidence)
        assert [frame.time for frame in got.frames] == pytest.approx(
            [frame.time for frame in want.frames]
        )
        for got_frame, want_frame in zip(got.frames, want.frames, strict=True):
            assert got_frame.box.to_dict() == pytest.approx(want_frame.box.to_dict())


@pytest.mark.parametrize("json_style", ["snake", "camel", "proto3"])
def test_annotation_is_read_once_the_operation_is_done(
    fake: FakeVideoIntelligence, buckets: tuple[str, str], json_style: str
) -> None:
    fake.set_scenario(Scenario(polls_until_done=4, json_style=json_style))
    annotator = annotator_for(fake.endpoint, location_id="europe-west1")
    request = request_for(buckets)

    operation = annotator.start(request)

    assert operation.name.startswith("projects/424242/locations/europe-west1/operations/")
    sent = fake.requests[-1]
    assert sent.input_uri == request.video_uri
    assert sent.output_uri == request.output_uri
    assert list(sent.features) == [vi.Feature.OBJECT_TRACKING]
    assert sent.location_id == "europe-west1"

    statuses = poll_until_done(annotator, operation)
    assert [status.done for status in statuses] == [False, False, False, True]
    assert [status.progress_percent for status in statuses] == [25.0, 50.0, 75.0, 100.0]
    annotation = statuses[-1].annotation
    assert annotation is not None
    assert annotation.input_uri == request.video_uri
    assert_same_tracks(annotation, sample_annotation())


def test_output_file_is_in_the_form_the_api_writes(
    fake: FakeVideoIntelligence, buckets: tuple[str, str]
) -> None:
    fake.set_scenario(Scenario(polls_until_done=1, json_style="snake"))
    annotator = annotator_for(fake.endpoint)
    request = request_for(buckets)
    poll_until_done(annotator, annotator.start(request))

    document = json.loads(open_storage([]).read_bytes(request.output_uri))
    result = document["annotation_results"][0]
    assert result["input_uri"] == "/" + request.video_uri.removeprefix("gs://")
    first_frame = result["object_annotations"][0]["frames"][0]
    assert first_frame["time_offset"] == {"nanos": 500_000_000}


def test_local_annotation_root_takes_the_annotation_from_the_response(
    fake: FakeVideoIntelligence, buckets: tuple[str, str], tmp_path: object
) -> None:
    videos, _ = buckets
    video = f"gs://{videos}/clips/dog.mp4"
    request = AnnotateRequest(video_uri=video, output_uri=f"{tmp_path}/dog.mp4.json")
    annotator = annotator_for(fake.endpoint)

    operation = annotator.start(request)

    assert fake.requests[-1].output_uri == ""  # the API can only write to gs://
    annotation = poll_until_done(annotator, operation)[-1].annotation
    assert annotation is not None
    assert_same_tracks(annotation, sample_annotation())


def test_transient_submission_errors_are_retryable_then_succeed(
    fake: FakeVideoIntelligence, buckets: tuple[str, str]
) -> None:
    fake.set_scenario(Scenario(polls_until_done=2, submit_errors=(STREAM_REMOVED, QUOTA_EXCEEDED)))
    annotator = annotator_for(fake.endpoint)
    request = request_for(buckets)

    with pytest.raises(TransientBackendError, match="UNAVAILABLE: Stream removed"):
        annotator.start(request)
    with pytest.raises(TransientBackendError, match="RESOURCE_EXHAUSTED: Quota exceeded"):
        annotator.start(request)
    operation = annotator.start(request)

    assert poll_until_done(annotator, operation)[-1].annotation is not None
    assert fake.calls["AnnotateVideo"] == 3


def test_transient_poll_errors_are_retryable_and_polling_resumes(
    fake: FakeVideoIntelligence, buckets: tuple[str, str]
) -> None:
    fake.set_scenario(Scenario(polls_until_done=2, poll_errors=(STREAM_REMOVED, POLL_TIMEOUT)))
    annotator = annotator_for(fake.endpoint)
    operation = annotator.start(request_for(buckets))

    with pytest.raises(TransientBackendError, match="UNAVAILABLE: Stream removed"):
        annotator.check(operation)
    with pytest.raises(TransientBackendError, match="DEADLINE_EXCEEDED"):
        annotator.check(operation)
    statuses = poll_until_done(annotator, operation)
    assert [status.done for status in statuses] == [False, True]


@pytest.mark.parametrize("failure", [INVALID_ARGUMENT, PERMISSION_DENIED])
def test_permanent_submission_error_fails_with_the_api_message(
    fake: FakeVideoIntelligence, buckets: tuple[str, str], failure: tuple[grpc.StatusCode, str]
) -> None:
    code, message = failure
    fake.set_scenario(Scenario(always_submit_error=failure))
    request = request_for(buckets)

    with pytest.raises(BackendError) as raised:
        annotator_for(fake.endpoint).start(request)

    assert not isinstance(raised.value, TransientBackendError)
    assert str(raised.value) == (
        f"Video Intelligence submission of {request.video_uri} failed: {code.name}: {message}"
    )
    assert fake.calls["AnnotateVideo"] == 1  # the client library did not retry on its own


def test_operation_ending_in_error_fails_with_the_api_message(
    fake: FakeVideoIntelligence, buckets: tuple[str, str]
) -> None:
    fake.set_scenario(Scenario(polls_until_done=2, operation_error=UNDECODABLE_VIDEO))
    annotator = annotator_for(fake.endpoint)
    request = request_for(buckets)
    operation = annotator.start(request)

    assert not annotator.check(operation).done
    with pytest.raises(BackendError) as raised:
        annotator.check(operation)

    assert not isinstance(raised.value, TransientBackendError)
    message = str(raised.value)
    assert message.startswith(f"Video Intelligence could not annotate {request.video_uri}")
    assert message.endswith(f"INVALID_ARGUMENT: {UNDECODABLE_VIDEO[1]}")
    assert not open_storage([]).exists(request.output_uri)


def test_unwritable_output_bucket_fails_the_operation(
    fake: FakeVideoIntelligence, buckets: tuple[str, str]
) -> None:
    videos, _ = buckets
    video = f"gs://{videos}/clips/dog.mp4"
    request = AnnotateRequest(
        video_uri=video, output_uri=annotation_uri("gs://no-such-bucket-vtrack", video)
    )
    annotator = annotator_for(fake.endpoint)
    operation = annotator.start(request)

    with pytest.raises(BackendError, match="PERMISSION_DENIED: Cannot write to output URI"):
        poll_until_done(annotator, operation)


def test_bucket_outside_the_allowlist_is_refused_before_any_call(
    fake: FakeVideoIntelligence, buckets: tuple[str, str]
) -> None:
    request = request_for(buckets)
    annotator = annotator_for(fake.endpoint, allowed_buckets=frozenset({"only-this-one"}))

    with pytest.raises(InputError, match="is not in VTRACK_ALLOWED_BUCKETS"):
        annotator.start(request)

    assert fake.calls["AnnotateVideo"] == 0


def test_local_video_is_refused_before_any_call(
    fake: FakeVideoIntelligence, buckets: tuple[str, str]
) -> None:
    _, annotations = buckets
    request = AnnotateRequest(
        video_uri="/videos/dog.mp4", output_uri=f"gs://{annotations}/dog.mp4.json"
    )

    with pytest.raises(InputError, match="Cloud Storage only"):
        annotator_for(fake.endpoint).start(request)

    assert fake.calls["AnnotateVideo"] == 0


def test_restarted_worker_resumes_polling_from_the_stored_operation(
    fake: FakeVideoIntelligence, buckets: tuple[str, str]
) -> None:
    fake.set_scenario(Scenario(polls_until_done=3))
    first_worker = annotator_for(fake.endpoint)
    operation = first_worker.start(request_for(buckets))
    assert not first_worker.check(operation).done
    stored = operation.model_dump_json()  # what the job record keeps

    restarted = annotator_for(fake.endpoint)  # a new process: new client, new channel
    statuses = poll_until_done(restarted, Operation.model_validate_json(stored))

    assert [status.done for status in statuses] == [False, True]
    assert fake.calls["AnnotateVideo"] == 1


def test_unreachable_server_is_a_transient_error(buckets: tuple[str, str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{probe.getsockname()[1]}"
    annotator = GcpAnnotator(insecure_client(endpoint), open_storage([]), call_timeout=3.0)

    with pytest.raises(TransientBackendError, match="UNAVAILABLE"):
        annotator.start(request_for(buckets))


def test_server_runs_as_a_separate_process(gcs_host: str, buckets: tuple[str, str]) -> None:
    request = request_for(buckets)
    with fake_videointelligence_process(
        "transient-submit", polls=2, failures=1, json_style="camel"
    ) as endpoint:
        annotator = annotator_for(endpoint)
        with pytest.raises(TransientBackendError, match="Stream removed"):
            annotator.start(request)
        operation = annotator.start(request)
        annotation = poll_until_done(annotator, operation)[-1].annotation

    assert annotation is not None
    assert_same_tracks(annotation, sample_annotation())
    document = json.loads(open_storage([]).read_bytes(request.output_uri))
    assert "annotationResults" in document


def test_annotator_from_settings_uses_endpoint_location_and_allowlist(
    fake: FakeVideoIntelligence, buckets: tuple[str, str]
) -> None:
    videos, _ = buckets
    config = GcpConfig(
        endpoint=fake.endpoint,
        location_id="asia-east1",
        allowed_buckets=frozenset({videos}),
        call_timeout=5.0,
    )
    cached_client.cache_clear()
    try:
        annotator = annotator_from_config(config, open_storage([]))
        operation = annotator.start(request_for(buckets))
        with pytest.raises(InputError, match="VTRACK_ALLOWED_BUCKETS"):
            annotator.start(
                AnnotateRequest(video_uri="gs://other/v.mp4", output_uri="gs://other/v.mp4.json")
            )
    finally:
        cached_client.cache_clear()

    assert "/locations/asia-east1/" in operation.name
    assert fake.calls["AnnotateVideo"] == 1
