"""A learned appearance embedding for people: an ONNX re-identification model (OSNet).

Hand-made cues (:mod:`workers.local.appearance`) tell a dark coat from a white shirt, but
not two people dressed alike. ``VTRACK_REID_MODEL`` names an ONNX file with one input
``N x 3 x H x W`` (RGB, ImageNet mean and standard deviation: OSNet's layout; H and W
are read from the file) and one output ``N x D``, compared by cosine similarity; it is
used for boxes labelled ``person`` only (docs/local-backend.md, "Re-identification").

Exports whose batch is fixed at 1 (the input's first dimension, and a reshape before the
last layer to ``[1, -1]``) are made batchable when loaded: the first dimension of the
input and output is freed and such a reshape becomes ``[0, -1]`` (tested: the same
embeddings as one crop at a time).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from workers.errors import ConfigurationError

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
REID_LABELS = frozenset({"person"})


def _batchable(model: onnx.ModelProto) -> onnx.ModelProto:
    for value in (*model.graph.input[:1], *model.graph.output[:1]):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].dim_value == 1:
            dims[0].dim_param = "batch"
    reshape_shapes = {node.input[1] for node in model.graph.node if node.op_type == "Reshape"}
    for index, initializer in enumerate(model.graph.initializer):
        if initializer.name in reshape_shapes:
            shape = numpy_helper.to_array(initializer)
            if shape.ndim == 1 and len(shape) == 2 and shape[0] == 1 and shape[1] == -1:
                fixed = np.array([0, -1], dtype=shape.dtype)
                model.graph.initializer[index].CopyFrom(
                    numpy_helper.from_array(fixed, initializer.name)
                )
    return model


class ReidModel:
    """One re-identification network, batched, on ``threads`` onnxruntime threads."""

    def __init__(self, path: Path, threads: int | None = 1) -> None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"VTRACK_REID_MODEL: {path} does not exist (an ONNX re-identification model, "
                "e.g. OSNet; unset it to track with hand-made appearance cues only)"
            )
        try:
            model = _batchable(onnx.load(str(path)))
            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            self.session = ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnx and onnxruntime raise many kinds for a bad file
            raise ConfigurationError(
                f"VTRACK_REID_MODEL: {path} is not a usable ONNX model ({error})"
            ) from error
        inputs = self.session.get_inputs()
        shape = inputs[0].shape
        if len(inputs) != 1 or len(shape) != 4 or not all(isinstance(v, int) for v in shape[2:]):
            raise ConfigurationError(
                f"VTRACK_REID_MODEL: {path} must have one input N x 3 x H x W, not {shape}"
            )
        self.input_name = inputs[0].name
        self.height, self.width = int(shape[2]), int(shape[3])
        self.path = path
        self.seconds = 0.0  # time spent embedding, for benchmarks
        self.crops = 0
        self.batches = 0

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Unit-length embeddings (N x D) of ``boxes`` (normalized xyxy) in the RGB ``image``."""
        if not len(boxes):
            return np.zeros((0, 0), dtype=np.float32)
        started = time.perf_counter()
        height, width = image.shape[:2]
        batch = np.empty((len(boxes), 3, self.height, self.width), dtype=np.float32)
        for index, (left, top, right, bottom) in enumerate(np.clip(boxes, 0, 1)):
            x0 = min(int(left * width), width - 1)
            y0 = min(int(top * height), height - 1)
            x1 = max(int(np.ceil(right * width)), x0 + 1)
            y1 = max(int(np.ceil(bottom * height)), y0 + 1)
            crop = cv2.resize(
                image[y0:y1, x0:x1], (self.width, self.height), interpolation=cv2.INTER_LINEAR
            )
            batch[index] = ((crop.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)
        output = self.session.run(None, {self.input_name: batch})[0].astype(np.float32)
        norms = np.linalg.norm(output, axis=1, keepdims=True)
        self.seconds += time.perf_counter() - started
        self.crops += len(boxes)
        self.batches += 1
        return output / np.maximum(norms, 1e-12)


_models: dict[tuple[str, int | None], ReidModel] = {}
_models_lock = threading.Lock()


def load_reid_model(path: str | None, threads: int | None = 1) -> ReidModel | None:
    """This process's re-identification model at ``path`` (loaded once), None when unset."""
    if not path:
        return None
    key = (str(Path(path).expanduser().resolve()), threads)
    with _models_lock:
        if key not in _models:
            _models[key] = ReidModel(Path(path), threads)
        return _models[key]
