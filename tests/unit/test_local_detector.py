"""The detector's pre- and post-processing, run through onnxruntime on a fixed-output model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.fixed_yolo import fixed_output, write_fixed_yolo
from workers.errors import ConfigurationError
from workers.local.detector import (
    Detections,
    DetectionThresholds,
    Letterbox,
    suppress_duplicates,
)
from workers.local.detectors.yolo_export import YoloDetector

NAMES = ("person", "motorbike", "dog")  # darknet's spelling, reported as "motorcycle"
PERSON, MOTORBIKE, DOG = range(3)


def test_boxes_are_mapped_back_through_the_letterbox_and_duplicates_suppressed(
    tmp_path: Path,
) -> None:
    columns = [
        (32, 32, 32, 16, DOG, 0.9),  # the dog
        (30, 32, 8, 6, DOG, 0.6),  # a smaller box inside it: the second head's duplicate
        (33, 32, 30, 16, DOG, 0.5),  # nearly the same box: removed by NMS
        (36, 30, 20, 20, PERSON, 0.8),  # overlaps the dog, other class: kept
        (10, 10, 4, 4, DOG, 0.1),  # below the confidence threshold
    ]
    detector = YoloDetector(write_fixed_yolo(tmp_path / "m.onnx", columns, NAMES))
    # A 2:1 frame letterboxed into 64x64: scaled by 1/2, 16 grey rows above and below.
    image = np.zeros((64, 128, 3), dtype=np.uint8)
    found = detector.detect(image, DetectionThresholds(confidence=0.2))
    assert [detector.class_names[c] for c in found.class_ids] == ["dog", "person"]
    np.testing.assert_allclose(found.scores, [0.9, 0.8], rtol=1e-6)
    np.testing.assert_allclose(found.boxes[0], [0.25, 0.25, 0.75, 0.75], atol=1e-6)
    np.testing.assert_allclose(found.boxes[1], [52 / 128, 8 / 64, 92 / 128, 48 / 64], atol=1e-6)
    assert detector.class_names[MOTORBIKE] == "motorcycle"


def test_a_model_with_a_free_input_size_runs_a_wide_frame_without_the_grey_rows(
    tmp_path: Path,
) -> None:
    columns = [(32, 16, 32, 16, DOG, 0.9)]
    metadata = {"names": repr(dict(enumerate(NAMES))), "imgsz": "[64, 64]", "stride": "16"}
    path = write_fixed_yolo(
        tmp_path / "m.onnx", columns, NAMES, free_input_size=True, metadata=metadata
    )
    detector = YoloDetector(path)
    image = np.zeros((64, 128, 3), dtype=np.uint8)
    # Scaled by 1/2 to 32x64; the square would put it 16 rows down, a whole stride: the
    # network input is cut to the 32x64 picture itself.
    assert detector.letterbox_for((64, 128)) == Letterbox(32, 64, 0.5, 0, 0)
    found = detector.detect(image, DetectionThresholds())
    np.testing.assert_allclose(found.boxes[0], [0.25, 0.25, 0.75, 0.75], atol=1e-6)
    # Asked for the square input, the same network output lies 16 grey rows higher.
    square = detector.detect(image, DetectionThresholds(), input_size=(64, 64))
    np.testing.assert_allclose(square.boxes[0], [0.25, 0.0, 0.75, 0.25], atol=1e-6)


def test_a_model_with_a_fixed_input_size_keeps_its_square_letterbox(tmp_path: Path) -> None:
    detector = YoloDetector(write_fixed_yolo(tmp_path / "m.onnx", [], NAMES))
    assert detector.letterbox_for((720, 1280)) == Letterbox(64, 64, 0.05, 14, 0)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        # 16:9: 416x234 of picture, 27 rows down as in the square (91 = 2 * 32 + 27).
        ((720, 1280), Letterbox(288, 416, 0.325, 27, 0)),
        ((1280, 720), Letterbox(416, 288, 0.325, 0, 27)),  # portrait
        ((480, 640), Letterbox(352, 416, 0.65, 20, 0)),  # 4:3: 312 rows, 52 down in the square
        ((1080, 1080), Letterbox(416, 416, 416 / 1080, 0, 0)),
    ],
)
def test_the_fitted_letterbox_keeps_the_square_letterbox_position_on_the_stride_grid(
    frame: tuple[int, int], expected: Letterbox
) -> None:
    fitted = Letterbox.fitted(frame, (416, 416), 32)
    assert fitted == expected
    square = Letterbox.centred(frame, 416, 416)
    assert (square.top - fitted.top) % 32 == 0 and (square.left - fitted.left) % 32 == 0


def test_boxes_past_the_frame_are_clipped(tmp_path: Path) -> None:
    columns = [(2, 32, 20, 70, PERSON, 0.9)]
    detector = YoloDetector(write_fixed_yolo(tmp_path / "m.onnx", columns, NAMES))
    found = detector.detect(np.zeros((64, 64, 3), dtype=np.uint8), DetectionThresholds())
    assert found.boxes.min() >= 0.0 and found.boxes.max() <= 1.0
    assert found.boxes[0][0] == 0.0 and found.boxes[0][3] == 1.0


def test_containment_suppression_keeps_a_small_object_beside_a_large_one() -> None:
    boxes = np.array(
        [[0.1, 0.1, 0.6, 0.9], [0.2, 0.3, 0.4, 0.6], [0.55, 0.1, 0.9, 0.9]], dtype=np.float32
    )
    detections = Detections(boxes, np.array([0.9, 0.5, 0.4]), np.array([DOG, DOG, DOG]))
    kept = suppress_duplicates(detections, nms_iou=0.45, containment=0.8)
    # The box inside the first goes; the one only touching it stays.
    np.testing.assert_allclose(kept.boxes, boxes[[0, 2]])


def test_a_model_without_class_names_is_refused(tmp_path: Path) -> None:
    path = write_fixed_yolo(tmp_path / "m.onnx", [(1, 1, 1, 1, 0, 0.5)], NAMES, metadata={})
    with pytest.raises(ConfigurationError, match="names"):
        YoloDetector(path)


def test_a_model_with_another_output_layout_is_refused(tmp_path: Path) -> None:
    # An end-to-end export ([1, 300, 6]) is not the YOLOv8 layout.
    output = np.zeros((1, 300, 6), dtype=np.float32)
    path = write_fixed_yolo(tmp_path / "m.onnx", [], NAMES, output=output)
    with pytest.raises(ConfigurationError, match="YOLOv8 layout"):
        YoloDetector(path)


def test_a_file_that_is_not_a_model_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"this is not onnx")
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        YoloDetector(path)


def test_fixed_output_helper_matches_the_layout() -> None:
    output = fixed_output([(1, 2, 3, 4, 2, 0.7)], 3)
    assert output.shape == (1, 7, 1) and output[0, 6, 0] == pytest.approx(0.7)
