"""Camera motion compensation (workers/local/camera.py) on real pixels: a frame of a shared
clip shifted as a pan would, and the tracker's predictions moved with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from workers.errors import ConfigurationError
from workers.local.camera import CameraMotion, check_mode
from workers.local.tracking import YOLOV3_TINY_THRESHOLDS, make_tracker
from workers.media.video import extract_frames


@pytest.fixture(scope="module")
def street(shared_videos: Path) -> np.ndarray:
    frame = extract_frames(shared_videos / "intel_car-detection.mp4", [0.0])[0]
    return np.asarray(frame.image)


def _view(world: np.ndarray, x: int, width: int = 416, height: int = 234) -> np.ndarray:
    return np.ascontiguousarray(world[100 : 100 + height, x : x + width])


@pytest.mark.shared_data
def test_a_pan_is_measured_and_moves_the_tracks_predictions(street: np.ndarray) -> None:
    tracker = make_tracker("bytetrack", YOLOV3_TINY_THRESHOLDS, frame_rate=10)
    camera = CameraMotion("auto", tracker)
    box = np.array([[150.0, 60.0, 190.0, 150.0]], dtype=np.float32)
    detections = sv.Detections(
        xyxy=box, confidence=np.array([0.9], dtype=np.float32), class_id=np.array([0])
    )
    assert camera.estimate(_view(street, 0)) is None  # the first frame: nothing to compare
    tracker.update(detections)
    tracker.update(detections)
    # The camera pans right by 12 px: the picture, and the still object in it, move left.
    affine = camera.estimate(_view(street, 12), np.array([[150, 60, 190, 150]]) / 416)
    assert affine is not None
    assert affine[0, 2] == pytest.approx(-12, abs=1.0) and abs(affine[1, 2]) < 1.0
    camera.apply(affine, tracker)
    [track] = tracker.tracks
    assert track.get_state_bbox()[0] == pytest.approx(138, abs=1.5)


@pytest.mark.shared_data
def test_a_still_camera_moves_nothing_in_auto_and_off_estimates_nothing(
    street: np.ndarray,
) -> None:
    tracker = make_tracker("bytetrack", YOLOV3_TINY_THRESHOLDS, frame_rate=10)
    still = CameraMotion("auto", tracker)
    still.estimate(_view(street, 0))
    assert still.estimate(_view(street, 0)) is None
    off = CameraMotion("off", tracker)
    off.estimate(_view(street, 0))
    assert off.estimate(_view(street, 12)) is None and off.frames == 0


def test_botsort_compensates_by_itself_and_unknown_modes_are_refused() -> None:
    botsort = make_tracker("botsort", YOLOV3_TINY_THRESHOLDS, frame_rate=10)
    assert not CameraMotion("auto", botsort).active
    assert CameraMotion("on", botsort).active
    with pytest.raises(ConfigurationError, match="VTRACK_CAMERA_MOTION"):
        check_mode("sometimes")
