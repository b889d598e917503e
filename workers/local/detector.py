"""Run a YOLO detector exported to ONNX on video frames, on the CPU.

Any model in the Ultralytics YOLOv8/YOLO11 export layout is accepted: one input
``[1, 3, H, W]`` (RGB scaled to 0..1, letterboxed), one output ``[1, 4 + classes, N]``
(box centre x, centre y, width, height in input pixels, then one score per class), and
the class names in the model's ``names`` metadata. The default YOLOv3-tiny network is
converted to that layout by :mod:`workers.local.darknet_onnx`.

A model whose input height and width are free (the converted YOLOv3-tiny, or an
Ultralytics export made with ``dynamic=True``) does not get the square letterbox, whose
grey rows are 44% of a 16:9 frame's input and pure wasted compute: the frame is scaled as
for the square, and the input is cut to the picture plus the padding the network's stride
grid needs to see it exactly as in the square (:meth:`Letterbox.fitted`). A 1280x720 frame
runs at 416x288 instead of 416x416, with the same detections, in 70% of the time. A model
with a fixed input size gets the square letterbox to that size, as it was exported for.

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
DEFAULT_STRIDE = 32  # the largest downsampling of YOLOv3 to YOLO11 when a model does not say


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


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where an image goes on the network input: the input's size, the scale applied to
    the image and the offset of its top-left corner on the grey canvas."""

    height: int
    width: int
    scale: float
    top: int
    left: int

    @classmethod
    def centred(cls, image_size: tuple[int, int], height: int, width: int) -> Letterbox:
        """The image scaled to fit ``height`` x ``width`` and centred (the classic letterbox)."""
        image_height, image_width = image_size
        scale = min(height / image_height, width / image_width)
        content_height, content_width = _scaled(image_size, scale)
        return cls(
            height, width, scale, (height - content_height) // 2, (width - content_width) // 2
        )

    @classmethod
    def fitted(
        cls, image_size: tuple[int, int], model_size: tuple[int, int], stride: int
    ) -> Letterbox:
        """The centred letterbox to ``model_size`` with the padding cut to what the
        ``stride`` grid needs: a 720x1280 frame and a 416x416 model give a 288x416 input.

        The image keeps its position relative to the stride grid (its offset modulo
        ``stride``) so every cell of the network sees the same pixels as in the square
        letterbox. YOLOv3-tiny is not shift-invariant at that scale: measured on
        ``sam2_01_dog.mp4`` (97 frames), cutting to 256 rows with the picture at any other
        offset moved its boxes (median IoU 0.82 to 0.89 with the square's) and its mean dog
        score from 0.52 to between 0.41 and 0.52; aligned, the boxes are the square's
        (median IoU 0.99) and the dog's mean score stays 0.52. That costs less than one stride of
        extra rows (288 instead of 256 for 16:9: 31% fewer pixels than the square
        instead of 38%).
        """
        square = cls.centred(image_size, *model_size)
        content_height, content_width = _scaled(image_size, square.scale)
        top, left = square.top % stride, square.left % stride
        return cls(
            _round_up(top + content_height, stride),
            _round_up(left + content_width, stride),
            square.scale,
            top,
            left,
        )

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image`` scaled and placed on the grey ``[height, width, 3]`` canvas."""
        content_height, content_width = _scaled(image.shape[:2], self.scale)
        canvas = np.full((self.height, self.width, 3), LETTERBOX_FILL, dtype=np.uint8)
        resized = (
            image
            if (content_height, content_width) == image.shape[:2]
            else cv2.resize(image, (content_width, content_height), interpolation=cv2.INTER_LINEAR)
        )
        canvas[self.top : self.top + content_height, self.left : self.left + content_width] = (
            resized
        )
        return canvas


def _scaled(image_size: tuple[int, ...], scale: float) -> tuple[int, int]:
    return max(1, round(image_size[0] * scale)), max(1, round(image_size[1] * scale))


def _round_up(length: int, stride: int) -> int:
    return -(-length // stride) * stride


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

    ``detect`` may be called from several threads (runs are serialized); a process keeps
    one detector per model (see :func:`workers.local.backend.load_detector`).
    ``input_height`` / ``input_width`` are the model's size (``imgsz`` for a model with a
    free input size, which ``fits_input_to_frame``: see the module doc); ``stride`` is
    the network's largest downsampling, from the ``stride`` metadata (default 32).
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
        height, width = inputs[0].shape[2:]
        self.fits_input_to_frame = not (isinstance(height, int) and isinstance(width, int))
        self.stride = self._stride(metadata)
        output_shape = outputs[0].shape
        if len(output_shape) != 3 or output_shape[1] != 4 + len(self.class_names):
            raise ConfigurationError(
                f"detector model {model_path}: output {output_shape} is not the YOLOv8 layout "
                f"[1, 4 + {len(self.class_names)} classes, N]"
            )

    @staticmethod
    def _stride(metadata: dict[str, str]) -> int:
        try:
            stride = int(metadata.get("stride") or DEFAULT_STRIDE)
        except ValueError:
            return DEFAULT_STRIDE
        return stride if stride > 0 else DEFAULT_STRIDE

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

    def letterbox_for(
        self, image_size: tuple[int, int], input_size: tuple[int, int] | None = None
    ) -> Letterbox:
        """How an image of ``image_size`` is put on the network input.

        A model with a free input size gets :meth:`Letterbox.fitted` (a 16:9 frame runs at
        416x288 instead of 416x416), unless ``input_size`` asks for a centred letterbox to
        that size; a model with a fixed size always gets a centred one to its size.
        """
        if input_size is None:
            if self.fits_input_to_frame:
                model_size = (self.input_height, self.input_width)
                return Letterbox.fitted(image_size, model_size, self.stride)
            input_size = (self.input_height, self.input_width)
        return Letterbox.centred(image_size, *input_size)

    def detect(
        self,
        image: np.ndarray,
        thresholds: DetectionThresholds,
        *,
        input_size: tuple[int, int] | None = None,
    ) -> Detections:
        """Objects in one RGB ``image`` (``[h, w, 3]`` uint8), boxes normalized to it.

        ``input_size``: run at this network input ``(height, width)`` (centred letterbox)
        instead of :meth:`letterbox_for`'s choice; only a model with a free input size
        accepts a size other than its own.
        """
        box = self.letterbox_for(image.shape[:2], input_size)
        blob = np.ascontiguousarray(box.apply(image).transpose(2, 0, 1)[None], dtype=np.float32)
        blob *= 1.0 / 255.0
        with self._lock:
            output = self.session.run(None, {self.input_name: blob})[0][0]
        return self._decode(output, image.shape[:2], box.scale, box.left, box.top, thresholds)

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
