"""YOLOX (Megvii), any size from nano to x, as exported by the YOLOX repository.

Input ``[1, 3, H, W]``: the frame in BGR order, 0..255 (no normalisation), scaled to fit
and placed at the top-left corner of a canvas padded with grey 114, as YOLOX's own
``preproc`` does. Output ``[1, N, 5 + classes]``: one row per anchor point of the stride
8, 16 and 32 grids (in that order, row-major): x, y, w, h raw, then objectness and class
scores (both already through a sigmoid). The box centre is ``(out + cell) * stride`` and
its size ``exp(out) * stride``; a box's score is objectness times the class score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime

from workers.errors import ConfigurationError
from workers.local.detector import (
    Detections,
    DetectionThresholds,
    Letterbox,
    keep_one_box_per_object,
)
from workers.local.detectors.base import (
    SessionDetector,
    boxes_to_frame,
    describe_io,
    fixed_input_size,
    numbered_class_names,
)

FAMILY = "yolox"
STRIDES = (8, 16, 32)


def anchor_count(height: int, width: int) -> int:
    return sum((height // stride) * (width // stride) for stride in STRIDES)


def matches(session: onnxruntime.InferenceSession) -> bool:
    """One output ``[1, N, 5 + classes]`` whose N is the anchor count of the input size."""
    outputs, size = session.get_outputs(), fixed_input_size(session)
    if len(outputs) != 1 or len(outputs[0].shape) != 3 or size is None:
        return False
    rows, columns = outputs[0].shape[1:]
    return rows == anchor_count(*size) and isinstance(columns, int) and columns > 5


class YoloxDetector(SessionDetector):
    """One session of a YOLOX model with YOLOX's pre- and post-processing (module doc)."""

    family = FAMILY
    default_confidence = 0.25  # objectness x class, as YOLOv8's scores

    def __init__(self, model_path: Path, *, inference_threads: int | None = None) -> None:
        super().__init__(model_path, inference_threads=inference_threads)
        if not matches(self.session):
            raise ConfigurationError(
                f"detector model {model_path}: not the YOLOX layout [1, anchors, 5 + classes] "
                f"at a fixed input size: {describe_io(self.session)}"
            )
        self.input_height, self.input_width = fixed_input_size(self.session)  # type: ignore[misc]
        self.class_names = numbered_class_names(self.session.get_outputs()[0].shape[2] - 5)
        self._grid, self._strides = self._anchor_grid()

    def _anchor_grid(self) -> tuple[np.ndarray, np.ndarray]:
        cells, strides = [], []
        for stride in STRIDES:
            rows, columns = self.input_height // stride, self.input_width // stride
            ys, xs = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
            cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
            strides.append(np.full((rows * columns, 1), stride))
        return (
            np.concatenate(cells).astype(np.float32),
            np.concatenate(strides).astype(np.float32),
        )

    def detect(self, image: np.ndarray, thresholds: DetectionThresholds) -> Detections:
        """Objects in one RGB ``image`` (``[h, w, 3]`` uint8), boxes normalized to it."""
        scale = min(self.input_height / image.shape[0], self.input_width / image.shape[1])
        box = Letterbox(self.input_height, self.input_width, scale, 0, 0)
        canvas = box.apply(image)[:, :, ::-1]  # YOLOX was trained on BGR
        blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
        output = self._runner.run(blob)[0][0]
        class_scores = output[:, 5:] * output[:, 4:5]
        class_ids = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(class_ids)), class_ids]
        keep = scores >= thresholds.confidence
        if not keep.any():
            return Detections.empty()
        centres = (output[keep, :2] + self._grid[keep]) * self._strides[keep]
        sizes = np.exp(output[keep, 2:4]) * self._strides[keep]
        corners = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
        found = Detections(
            boxes=boxes_to_frame(corners, image.shape, (scale, scale)),
            scores=scores[keep].astype(np.float32),
            class_ids=class_ids[keep].astype(np.int64),
        )
        return keep_one_box_per_object(found, thresholds)
