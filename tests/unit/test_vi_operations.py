"""A job as a Video Intelligence operation: names, progress, results and errors."""

from __future__ import annotations

import json
from dataclasses import replace

import grpc
import pytest
from google.cloud import videointelligence_v1 as vi

from entrypoints.vi_server.operations import (
    OperationEntry,
    api_input_uri,
    job_error,
    job_id_of,
    operation_message,
    operation_name,
    output_file,
    overall_percent,
    response_for,
)
from entrypoints.vi_server.protocol import annotate_video_rpc
from tasks.jobstore import JobRecord
from tests.support.fake_videointelligence import sample_annotation
from workers.annotations.vi_json import parse_annotation_json

ENTRY = OperationEntry(
    job_id="0f3c",
    name=operation_name("0f3c", "europe-west1"),
    input_uri="/videos/street.mp4",
    started_at=1_700_000_000.5,
)


def test_the_operation_book_keeps_its_json_keys() -> None:
    """The book's Redis values as the dataclass wrote them, so a running book still reads."""
    document = json.loads(ENTRY.model_dump_json())
    assert document == {
        "job_id": "0f3c", "name": ENTRY.name, "input_uri": "/videos/street.mp4",
        "output_uri": "", "started_at": 1_700_000_000.5, "output_written": False,
        "cancelled": False, "progress": 0,
    }  # fmt: skip
    assert list(document) == list(OperationEntry.model_fields)
    written_before = json.dumps({**document, "progress": 40})  # json.dumps(asdict(entry))
    assert OperationEntry.model_validate_json(written_before) == ENTRY.model_copy(
        update={"progress": 40}
    )


def test_operation_names_carry_the_job_id() -> None:
    assert ENTRY.name == "projects/vtrack/locations/europe-west1/operations/0f3c"
    assert job_id_of(ENTRY.name) == "0f3c"
    assert operation_name("ab") == "projects/vtrack/locations/global/operations/ab"


def test_the_api_reports_gs_uris_without_their_scheme() -> None:
    assert api_input_uri("gs://videos/a b.mp4") == "/videos/a b.mp4"
    assert api_input_uri("/data/a.mp4") == "/data/a.mp4"


@pytest.mark.parametrize(
    ("status", "percent", "expected"),
    [
        ("queued", 0.0, 0),
        ("annotating", 0.0, 0),
        ("annotating", 53.4, 52),
        ("annotating", 100.0, 99),  # tracked, not yet written: not done
        ("rendering", 10.0, 100),
        ("completed", 100.0, 100),
    ],
)
def test_progress_is_the_tracking_progress(status: str, percent: float, expected: int) -> None:
    record = JobRecord(job_id="0f3c", status=status, percent=percent)
    assert overall_percent(record) == expected


def test_a_running_operation_has_metadata_and_no_result() -> None:
    record = JobRecord(job_id="0f3c", status="annotating", percent=40.0, updated_at=1.7e9)
    message = operation_message(ENTRY, record)
    assert not message.done
    progress = vi.AnnotateVideoProgress.deserialize(message.metadata.value)
    (item,) = progress.annotation_progress
    assert item.input_uri == "/videos/street.mp4"
    assert item.progress_percent == 39
    assert item.feature == vi.Feature.OBJECT_TRACKING
    assert item.start_time.timestamp() == pytest.approx(1_700_000_000.5)


def test_results_in_the_response_read_as_the_api_would_send_them() -> None:
    message = operation_message(
        ENTRY,
        JobRecord(job_id="0f3c", status="rendering"),
        response=response_for(sample_annotation(), ENTRY),
    )
    assert message.done
    response = vi.AnnotateVideoResponse.deserialize(message.response.value)
    (result,) = response.annotation_results
    assert result.input_uri == "/videos/street.mp4"
    labels = [obj.entity.description for obj in result.object_annotations]
    assert labels == ["dog", "ball"]
    assert len(result.object_annotations[0].frames) == 10


def test_tracked_objects_are_answered_with_their_segment_as_the_batch_api_does() -> None:
    """The local backend's tracks carry a tracker id; the batch API's response never fills
    track_id (streaming only, one oneof with segment): each object gets its segment."""
    tracked = sample_annotation()
    tracked = replace(
        tracked,
        objects=tuple(
            replace(obj, track_id=number) for number, obj in enumerate(tracked.objects, 1)
        ),
    )
    message = operation_message(
        ENTRY, JobRecord(job_id="0f3c", status="rendering"), response=response_for(tracked, ENTRY)
    )
    response = vi.AnnotateVideoResponse.deserialize(message.response.value)
    objects = response.annotation_results[0].object_annotations
    assert len(objects) == 2
    for obj in objects:
        assert vi.ObjectTrackingAnnotation.pb(obj).WhichOneof("track_info") == "segment"
        times = [frame.time_offset for frame in obj.frames]
        assert obj.segment.start_time_offset == min(times)
        assert obj.segment.end_time_offset == max(times)
    for obj in json.loads(output_file(tracked, ENTRY))["annotation_results"][0][
        "object_annotations"
    ]:
        assert "segment" in obj and "track_id" not in obj


def test_with_an_output_uri_the_file_holds_the_results_in_the_apis_file_form() -> None:
    entry = OperationEntry(**{**ENTRY.__dict__, "output_uri": "gs://out/street.json"})
    response = vi.AnnotateVideoResponse.pb(vi.AnnotateVideoResponse())
    response.ParseFromString(response_for(sample_annotation(), entry).SerializeToString())
    assert list(response.annotation_results[0].object_annotations) == []
    text = output_file(sample_annotation(), entry)
    document = json.loads(text)
    first = document["annotation_results"][0]["object_annotations"][0]
    assert first["frames"][1]["time_offset"] == {"seconds": 1, "nanos": 400000000}
    assert first["segment"]["start_time_offset"] == {"nanos": 500000000}
    library = vi.AnnotateVideoResponse(document)
    assert library.annotation_results[0].object_annotations[1].entity.description == "ball"
    ours = parse_annotation_json(text, "street.json")
    assert [obj.entity.description for obj in ours.objects] == ["dog", "ball"]


def test_failed_jobs_end_with_the_code_that_says_whose_fault_it_is() -> None:
    bad_input = JobRecord(
        job_id="1", status="failed", error="x.mp4: not a video", error_kind="input"
    )
    bug = JobRecord(job_id="2", status="failed", error="KeyError: 'frames'", error_kind="internal")
    assert job_error(bad_input).code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert job_error(bad_input).message == "x.mp4: not a video"
    assert job_error(bug).code == grpc.StatusCode.INTERNAL.value[0]


def test_annotate_video_is_served_at_the_path_the_client_calls() -> None:
    rpc = annotate_video_rpc()
    assert rpc.path == "/google.cloud.videointelligence.v1.VideoIntelligenceService/AnnotateVideo"
    assert rpc.request_type is vi.AnnotateVideoRequest
