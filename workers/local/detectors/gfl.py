"""Generalized-focal-loss heads: PP-PicoDet (PaddleDetection) and NanoDet-style exports.

Input ``[1, 3, H, W]``: the frame in RGB, stretched to the input size (PaddleDetection's
``Resize`` with ``keep_ratio: false``), scaled to 0..1 and normalised with the ImageNet
mean and standard deviation. Outputs, one pair per stride (8, 16, 32 and 64 for PicoDet):
class scores ``[1, N, classes]`` (already through a sigmoid) and box distributions
``[1, N, 4 * bins]``: for each side (left, top, right, bottom) a distribution over
``0 .. bins - 1`` strides from the anchor centre ``(cell + 0.5) * stride``; the side's
distance is the expectation of its softmax, times the stride. A pair's stride is read
from its N and the input size.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import onnxruntime

from workers.errors import ConfigurationError
from workers.local.detector import Detections, DetectionThresholds, keep_one_box_per_object
from workers.local.detectors.base import (
    SessionDetector,
    boxes_to_frame,
    describe_io,
    fixed_input_size,
    numbered_class_names,
)

FAMILY = "gfl"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


def _levels(session: onnxruntime.InferenceSession) -> list[tuple[int, int, int]] | None:
    """``(scores output, distributions output, stride)`` per level, or None if not GFL."""
    size = fixed_input_size(session)
    outputs = session.get_outputs()
    if size is None or len(outputs) < 2 or len(outputs) % 2:
        return None
    shapes = [output.shape for output in outputs]
    if any(len(shape) != 3 or not all(isinstance(d, int) for d in shape[1:]) for shape in shapes):
        return None
    half = len(shapes) // 2
    class_count = shapes[0][2]
    levels = []
    for index in range(half):
        scores, distributions = shapes[index], shapes[index + half]
        if scores[2] != class_count or scores[1] != distributions[1] or distributions[2] % 4:
            return None
        stride = round(math.sqrt(size[0] * size[1] / scores[1]))
        if (size[0] // stride) * (size[1] // stride) != scores[1]:
            return None
        levels.append((index, index + half, stride))
    return levels


def matches(session: onnxruntime.InferenceSession) -> bool:
    return _levels(session) is not None


class GflDetector(SessionDetector):
    """One session of a PicoDet / NanoDet-style model (module doc)."""

    family = FAMILY
    # GFL scores (IoU-aware) run high on clutter: on MOT17-mini PicoDet-S-416 kept
    # pedestrians at precision 0.45 at 0.2, 0.64 at 0.3, 0.81 at 0.4 (recall 0.51, 0.41, 0.32).
    default_confidence = 0.4

    def __init__(self, model_path: Path, *, inference_threads: int | None = None) -> None:
        super().__init__(model_path, inference_threads=inference_threads)
        levels = _levels(self.session)
        if levels is None:
            raise ConfigurationError(
                f"detector model {model_path}: not a GFL head (pairs of class scores "
                f"[1, N, classes] and box distributions [1, N, 4 x bins] per stride): "
                f"{describe_io(self.session)}"
            )
        self.input_height, self.input_width = fixed_input_size(self.session)  # type: ignore[misc]
        outputs = self.session.get_outputs()
        self.bins = outputs[levels[0][1]].shape[2] // 4
        self.class_names = numbered_class_names(outputs[0].shape[2])
        self._levels = levels
        self._centres = {
            stride: self._anchor_centres(stride) for _scores, _distributions, stride in levels
        }

    def _anchor_centres(self, stride: int) -> np.ndarray:
        rows, columns = self.input_height // stride, self.input_width // stride
        ys, xs = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
        return ((np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * stride).astype(np.float32)

    def detect(self, image: np.ndarray, thresholds: DetectionThresholds) -> Detections:
        """Objects in one RGB ``image`` (``[h, w, 3]`` uint8), boxes normalized to it."""
        resized = cv2.resize(
            image, (self.input_width, self.input_height), interpolation=cv2.INTER_LINEAR
        )
        normalised = (resized.astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD
        blob = np.ascontiguousarray(normalised.transpose(2, 0, 1)[None])
        outputs = self._runner.run(blob)
        all_boxes, all_scores, all_classes = [], [], []
        bin_values = np.arange(self.bins, dtype=np.float32)
        for scores_index, distributions_index, stride in self._levels:
            class_scores = outputs[scores_index][0]
            class_ids = class_scores.argmax(axis=1)
            scores = class_scores[np.arange(len(class_ids)), class_ids]
            keep = scores >= thresholds.confidence
            if not keep.any():
                continue
            logits = outputs[distributions_index][0][keep].reshape(-1, 4, self.bins)
            logits = np.exp(logits - logits.max(axis=2, keepdims=True))
            distances = (logits / logits.sum(axis=2, keepdims=True)) @ bin_values * stride
            centres = self._centres[stride][keep]
            all_boxes.append(
                np.concatenate([centres - distances[:, :2], centres + distances[:, 2:]], axis=1)
            )
            all_scores.append(scores[keep])
            all_classes.append(class_ids[keep])
        if not all_boxes:
            return Detections.empty()
        scale_xy = (self.input_width / image.shape[1], self.input_height / image.shape[0])
        found = Detections(
            boxes=boxes_to_frame(np.concatenate(all_boxes), image.shape, scale_xy),
            scores=np.concatenate(all_scores).astype(np.float32),
            class_ids=np.concatenate(all_classes).astype(np.int64),
        )
        return keep_one_box_per_object(found, thresholds)
