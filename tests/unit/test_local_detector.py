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
    YoloDetector,
    suppress_duplicates,
)

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
