"""A real ONNX model in the Ultralytics YOLOv8 layout whose output is fixed in advance.

It lets tests run the detector's real pre- and post-processing, onnxruntime included,
and know exactly which boxes the network "saw": every image gives the same columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def fixed_output(
    columns: Sequence[tuple[float, float, float, float, int, float]], class_count: int
) -> np.ndarray:
    """``[1, 4 + classes, N]`` from ``(cx, cy, w, h, class_id, score)`` in input pixels."""
    output = np.zeros((1, 4 + class_count, len(columns)), dtype=np.float32)
    for index, (cx, cy, w, h, class_id, score) in enumerate(columns):
        output[0, :4, index] = (cx, cy, w, h)
        output[0, 4 + class_id, index] = score
    return output


def write_fixed_yolo(
    path: Path,
    columns: Sequence[tuple[float, float, float, float, int, float]],
    class_names: Sequence[str],
    *,
    input_size: tuple[int, int] = (64, 64),
    free_input_size: bool = False,
    metadata: dict[str, str] | None = None,
    output: np.ndarray | None = None,
) -> Path:
    """Write the model to ``path``: input ``images`` ``[1, 3, H, W]``, output ``output0``.

    ``free_input_size``: declare H and W as named dimensions (as an Ultralytics
    ``dynamic=True`` export does), ``input_size`` then only in the ``imgsz`` metadata.
    """
    values = output if output is not None else fixed_output(columns, len(class_names))
    height, width = input_size
    declared: list[int | str] = (
        [1, 3, "height", "width"] if free_input_size else [1, 3, height, width]
    )
    graph = helper.make_graph(
        [helper.make_node("Identity", ["fixed"], ["output0"])],
        "fixed_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, declared)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(values.shape))],
        initializer=[numpy_helper.from_array(values, name="fixed")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    props = {"names": repr(dict(enumerate(class_names))), "imgsz": repr([height, width])}
    helper.set_model_props(model, metadata if metadata is not None else props)
    onnx.save(model, str(path))
    return path
