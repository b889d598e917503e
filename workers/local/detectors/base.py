"""What every detector family shares: the onnxruntime session and the detector protocol."""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime

from workers.errors import ConfigurationError
from workers.local.coco import COCO_CLASS_NAMES
from workers.local.detector import Detections, DetectionThresholds

ORT_LOG_ERRORS_ONLY = 3  # PaddlePaddle exports warn about every initializer at load time


class ObjectDetector(Protocol):
    """A detector the local backend can run: one RGB frame in, normalized boxes out.

    ``family``: the family's registry name (``yolo-export``, ``yolox``, ``gfl``);
    ``input_height`` / ``input_width``: the network input the model was made for;
    ``class_names``: indexed by the class ids of :class:`Detections`;
    ``default_confidence``: the detection threshold used when none is configured (scores
    of different families are not on one scale).
    """

    family: str
    default_confidence: float
    model_path: Path
    class_names: tuple[str, ...]
    input_height: int
    input_width: int

    @property
    def model_name(self) -> str: ...

    def detect(self, image: np.ndarray, thresholds: DetectionThresholds) -> Detections: ...


def open_session(
    model_path: Path, inference_threads: int | None = None
) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session of ``model_path``; a file it cannot load is one clear error."""
    options = onnxruntime.SessionOptions()
    options.log_severity_level = ORT_LOG_ERRORS_ONLY
    if inference_threads:
        options.intra_op_num_threads = inference_threads
        options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own untyped errors
        raise ConfigurationError(
            f"detector model {model_path}: cannot be loaded by onnxruntime: {error}"
        ) from error


def describe_io(session: onnxruntime.InferenceSession) -> str:
    """The model's inputs and outputs as ``name[shape]`` lists, for error messages."""
    inputs = ", ".join(f"{i.name}{list(i.shape)}" for i in session.get_inputs())
    outputs = ", ".join(f"{o.name}{list(o.shape)}" for o in session.get_outputs())
    return f"inputs {inputs}; outputs {outputs}"


class SessionRunner:
    """One session shared by threads: runs are serialized (onnxruntime uses every core)."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self._lock = threading.Lock()

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            return self.session.run(None, {self.input_name: blob})


class SessionDetector:
    """What a family's detector is built on: its model file and one onnxruntime session of
    it, whose runs are serialized by ``_runner``."""

    def __init__(self, model_path: Path, *, inference_threads: int | None = None) -> None:
        self.session = open_session(model_path, inference_threads)
        self.model_path = model_path

    @cached_property
    def _runner(self) -> SessionRunner:
        return SessionRunner(self.session)

    @property
    def model_name(self) -> str:
        return self.model_path.stem


def numbered_class_names(count: int) -> tuple[str, ...]:
    """The COCO names for a model of 80 classes, else ``class 0``, ``class 1``..."""
    if count == len(COCO_CLASS_NAMES):
        return COCO_CLASS_NAMES
    return tuple(f"class {index}" for index in range(count))


def fixed_input_size(session: onnxruntime.InferenceSession) -> tuple[int, int] | None:
    """``(height, width)`` of a ``[1, 3, H, W]`` input with a fixed size, else None."""
    shape = session.get_inputs()[0].shape
    if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
        return shape[2], shape[3]
    return None


def boxes_to_frame(
    boxes: np.ndarray, image_size: tuple[int, ...], scale_xy: tuple[float, float], offset_xy=(0, 0)
) -> np.ndarray:
    """``[n, 4]`` xyxy input-pixel boxes to boxes normalized to the frame, clipped to it."""
    image_height, image_width = image_size[:2]
    scale_x, scale_y = scale_xy
    left, top = offset_xy
    out = np.empty_like(boxes, dtype=np.float32)
    out[:, 0] = (boxes[:, 0] - left) / scale_x / image_width
    out[:, 2] = (boxes[:, 2] - left) / scale_x / image_width
    out[:, 1] = (boxes[:, 1] - top) / scale_y / image_height
    out[:, 3] = (boxes[:, 3] - top) / scale_y / image_height
    return out.clip(0.0, 1.0)
