"""Run a YOLO detector exported to ONNX on video frames, on the CPU.

Any model in the Ultralytics YOLOv8/YOLO11 export layout is accepted: one input
``[1, 3, H, W]`` (RGB scaled to 0..1, letterboxed), one output ``[1, 4 + classes, N]``
(box centre x, centre y, width, height in input pixels, then one score per class), and
the class names in the model's ``names`` metadata. The default YOLOv3-tiny network is
converted to that layout by :mod:`workers.local.darknet_onnx`.

After the network, boxes go through class-aware non-maximum suppression and then a
containment pass: YOLOv3-tiny's two heads often report one object twice, a large box and
a smaller one inside it, whose IoU is too low for NMS to catch, so a box mostly inside a
higher-scoring box of the same class is dropped too.
"""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime

from workers.errors import ConfigurationError
from workers.local.coco import canonical_class_name

LETTERBOX_FILL = 114  # grey, as Ultralytics pads; darknet's 127 gives the same detections


@dataclass(frozen=True, slots=True)
class Detections:
    """One frame's detections; ``boxes`` is ``[n, 4]`` normalized left, top, right, bottom."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            boxes=np.zeros((0, 4), dtype=np.float32),
            scores=np.zeros(0, dtype=np.float32),
            class_ids=np.zeros(0, dtype=np.int64),
        )

    def select(self, keep: np.ndarray) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep])


@dataclass(frozen=True, slots=True)
class DetectionThresholds:
    """What the detector keeps.

    ``confidence``: the lowest class score kept. Lower finds more of the real objects (and
    lets the tracker's low-score stage keep tracks alive) at the price of more false boxes.
    ``nms_iou``: two boxes of one class overlapping more than this are one object; lower
    merges more (and may merge two people side by side).
    ``containment``: a box whose area lies this much inside a higher-scoring box of the same
    class is dropped; lower removes more nested duplicates (and may drop a small object held
    in front of a larger one of the same class).
    """

    confidence: float = 0.15
    nms_iou: float = 0.45
    containment: float = 0.8


def read_class_names(metadata: dict[str, str]) -> tuple[str, ...]:
    """Class names from an Ultralytics-style ``names`` metadata entry (a dict literal)."""
    raw = metadata.get("names")
    if not raw:
        raise ConfigurationError("detector model: no 'names' metadata (class names) in the model")
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as error:
        raise ConfigurationError(f"detector model: unreadable 'names' metadata: {error}") from error
    if isinstance(parsed, dict):
        return tuple(canonical_class_name(str(parsed[key])) for key in sorted(parsed))
    if isinstance(parsed, list | tuple):
        return tuple(canonical_class_name(str(name)) for name in parsed)
    raise ConfigurationError("detector model: 'names' metadata is neither a dict nor a list")


def letterbox(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, float, int, int]:
    """``image`` scaled to fit ``height`` x ``width``, centred on grey; with scale and offsets."""
    source_height, source_width = image.shape[:2]
    scale = min(height / source_height, width / source_width)
    new_height = max(1, round(source_height * scale))
    new_width = max(1, round(source_width * scale))
    canvas = np.full((height, width, 3), LETTERBOX_FILL, dtype=np.uint8)
    top, left = (height - new_height) // 2, (width - new_width) // 2
    resized = (
        image
        if (new_height, new_width) == (source_height, source_width)
        else cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    )
    canvas[top : top + new_height, left : left + new_width] = resized
    return canvas, scale, left, top


def pairwise_overlaps(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersection-over-the-smaller-box of every pair of ``[n, 4]`` xyxy boxes."""
    left = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    top = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    right = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    bottom = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    intersection = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = areas[:, None] + areas[None, :] - intersection
    smaller = np.minimum(areas[:, None], areas[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, intersection / union, 0.0)
        containment = np.where(smaller > 0, intersection / smaller, 0.0)
    return iou, containment


def suppress_duplicates(detections: Detections, nms_iou: float, containment: float) -> Detections:
    """Class-aware greedy suppression by IoU and by containment (see the module doc)."""
    if len(detections) <= 1:
        return detections
    order = np.argsort(-detections.scores, kind="stable")
    ranked = detections.select(order)
    iou, contained = pairwise_overlaps(ranked.boxes.astype(np.float64))
    same_class = ranked.class_ids[:, None] == ranked.class_ids[None, :]
    duplicate = same_class & ((iou > nms_iou) | (contained > containment))
    keep = np.ones(len(ranked), dtype=bool)
    for index in range(len(ranked)):
        if keep[index]:
            later = duplicate[index].copy()
            later[: index + 1] = False
            keep &= ~later
    return ranked.select(keep)


class YoloDetector:
    """One onnxruntime session of a YOLO model and the pre- and post-processing around it.

    ``run`` is safe to call from one thread at a time; a process keeps one detector per
    model (see :func:`workers.local.backend.load_detector`).
    """

    def __init__(self, model_path: Path, *, inference_threads: int | None = None) -> None:
        options = onnxruntime.SessionOptions()
        if inference_threads:
            options.intra_op_num_threads = inference_threads
            options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise ConfigurationError(
                f"detector model {model_path}: cannot be loaded by onnxruntime: {error}"
            ) from error
        self.model_path = model_path
        self._lock = threading.Lock()
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ConfigurationError(
                f"detector model {model_path}: expected one image input [1, 3, H, W]"
            )
        self.input_name = inputs[0].name
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.class_names = read_class_names(metadata)
        self.input_height, self.input_width = self._input_size(inputs[0].shape, metadata)
        output_shape = outputs[0].shape
        if len(output_shape) != 3 or output_shape[1] != 4 + len(self.class_names):
            raise ConfigurationError(
                f"detector model {model_path}: output {output_shape} is not the YOLOv8 layout "
                f"[1, 4 + {len(self.class_names)} classes, N]"
            )

    @staticmethod
    def _input_size(shape: list[object], metadata: dict[str, str]) -> tuple[int, int]:
        height, width = shape[2], shape[3]
        if isinstance(height, int) and isinstance(width, int):
            return height, width
        size = ast.literal_eval(metadata.get("imgsz", "[640, 640]"))
        return (int(size[0]), int(size[1])) if isinstance(size, list | tuple) else (size, size)

    @property
    def model_name(self) -> str:
        return self.model_path.stem

    def detect(self, image: np.ndarray, thresholds: DetectionThresholds) -> Detections:
        """Objects in one RGB ``image`` (``[h, w, 3]`` uint8), boxes normalized to it."""
        canvas, scale, left, top = letterbox(image, self.input_height, self.input_width)
        blob = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
        blob *= 1.0 / 255.0
        with self._lock:
            output = self.session.run(None, {self.input_name: blob})[0][0]
        return self._decode(output, image.shape[:2], scale, left, top, thresholds)

    @staticmethod
    def _decode(
        output: np.ndarray,
        image_size: tuple[int, ...],
        scale: float,
        left: int,
        top: int,
        thresholds: DetectionThresholds,
    ) -> Detections:
        class_scores = output[4:]
        class_ids = class_scores.argmax(axis=0)
        scores = class_scores[class_ids, np.arange(class_scores.shape[1])]
        keep = scores >= thresholds.confidence
        if not keep.any():
            return Detections.empty()
        centre_x, centre_y, width, height = output[:4, keep]
        image_height, image_width = image_size
        boxes = np.stack(
            [
                (centre_x - width / 2 - left) / scale / image_width,
                (centre_y - height / 2 - top) / scale / image_height,
                (centre_x + width / 2 - left) / scale / image_width,
                (centre_y + height / 2 - top) / scale / image_height,
            ],
            axis=1,
        ).clip(0.0, 1.0)
        found = Detections(
            boxes=boxes.astype(np.float32),
            scores=scores[keep].astype(np.float32),
            class_ids=class_ids[keep].astype(np.int64),
        )
        return suppress_duplicates(found, thresholds.nms_iou, thresholds.containment)
