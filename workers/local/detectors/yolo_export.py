"""The YOLOv5u/v8/11 export layout (``yolo export format=onnx``), and YOLOv3-tiny converted to it.

One input ``[1, 3, H, W]`` (RGB scaled to 0..1, letterboxed), one output ``[1, 4 + classes, N]``
(box centre x, centre y, width, height in input pixels, then one score per class, no
objectness), the class names in the model's ``names`` metadata (the 80 COCO names when a
model with 80 classes has none). The default YOLOv3-tiny network is converted to that
layout by :mod:`workers.local.darknet_onnx`.

A model whose input height and width are free (the converted YOLOv3-tiny, or an
Ultralytics export made with ``dynamic=True``) does not get the square letterbox, whose
grey rows are 44% of a 16:9 frame's input and pure wasted compute: the frame is scaled as
for the square, and the input is cut to the picture plus the padding the network's stride
grid needs to see it exactly as in the square (:meth:`Letterbox.fitted`). A 1280x720 frame
runs at 416x288 instead of 416x416, with the same detections, in 70% of the time. A model
with a fixed input size gets the square letterbox to that size, as it was exported for.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import onnxruntime

from workers.errors import ConfigurationError
from workers.local.coco import COCO_CLASS_NAMES
from workers.local.detector import (
    DEFAULT_STRIDE,
    Detections,
    DetectionThresholds,
    Letterbox,
    keep_one_box_per_object,
    read_class_names,
)
from workers.local.detectors.base import SessionDetector, boxes_to_frame, describe_io

FAMILY = "yolo-export"


def matches(session: onnxruntime.InferenceSession) -> bool:
    """One output ``[1, 4 + classes, N]``: its rows are 4 plus the classes its ``names``
    metadata lists, or (no names) 84 for COCO, or fewer than its columns."""
    outputs = session.get_outputs()
    if len(outputs) != 1 or len(outputs[0].shape) != 3:
        return False
    rows, columns = outputs[0].shape[1:]
    if not isinstance(rows, int) or rows <= 4:
        return False
    metadata = session.get_modelmeta().custom_metadata_map
    if metadata.get("names"):
        try:
            return rows == 4 + len(read_class_names(metadata))
        except ConfigurationError:
            return False
    return rows == 4 + len(COCO_CLASS_NAMES) or not isinstance(columns, int) or columns > rows


class YoloDetector(SessionDetector):
    """One onnxruntime session of a YOLO model and the pre- and post-processing around it.

    ``detect`` may be called from several threads (runs are serialized); a process keeps
    one detector per model (see :func:`workers.local.backend.load_detector`).
    ``input_height`` / ``input_width`` are the model's size (``imgsz`` for a model with a
    free input size, which ``fits_input_to_frame``: see the module doc); ``stride`` is
    the network's largest downsampling, from the ``stride`` metadata (default 32).
    """

    family = FAMILY
    default_confidence = 0.25  # Ultralytics' own default

    def __init__(self, model_path: Path, *, inference_threads: int | None = None) -> None:
        super().__init__(model_path, inference_threads=inference_threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ConfigurationError(
                f"detector model {model_path}: expected one image input [1, 3, H, W]"
            )
        metadata = self.session.get_modelmeta().custom_metadata_map
        output_rows = outputs[0].shape[1] if len(outputs[0].shape) == 3 else None
        self.class_names = (
            COCO_CLASS_NAMES
            if "names" not in metadata and output_rows == 4 + len(COCO_CLASS_NAMES)
            else read_class_names(metadata)
        )
        self.input_height, self.input_width = self._input_size(inputs[0].shape, metadata)
        height, width = inputs[0].shape[2:]
        self.fits_input_to_frame = not (isinstance(height, int) and isinstance(width, int))
        self.stride = self._stride(metadata)
        output_shape = outputs[0].shape
        if len(output_shape) != 3 or output_shape[1] != 4 + len(self.class_names):
            raise ConfigurationError(
                f"detector model {model_path}: not the YOLOv8 layout "
                f"[1, 4 + {len(self.class_names)} classes, N]: {describe_io(self.session)}"
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
        output = self._runner.run(blob)[0][0]
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
        centres, halves = output[:2, keep].T, output[2:4, keep].T / 2
        corners = np.concatenate([centres - halves, centres + halves], axis=1)
        found = Detections(
            boxes=boxes_to_frame(corners, image_size, (scale, scale), (left, top)),
            scores=scores[keep].astype(np.float32),
            class_ids=class_ids[keep].astype(np.int64),
        )
        return keep_one_box_per_object(found, thresholds)
