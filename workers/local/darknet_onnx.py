"""Convert a darknet YOLO network (``.cfg`` + ``.weights``) to an ONNX model.

The converted model speaks the same language as an Ultralytics YOLOv8/YOLO11 export, so
one runner serves both: input ``images`` ``[1, 3, H, W]`` (RGB, 0..1, letterboxed), output
``[1, 4 + classes, N]`` where each column holds a box centre and size in input pixels and
one score per class (objectness x class probability, as darknet reports it), and the
class names in the model's ``names`` metadata.

The input's height and width are left free (like an Ultralytics ``dynamic=True`` export):
any multiple of the network's stride (``stride`` metadata, 32 for YOLOv3-tiny) works, and
``imgsz`` records the size the cfg was trained at. The network is fully convolutional;
only the yolo heads' reshapes and cell grid depended on the size, and they now read it
from the tensors at run time. One cached model and one onnxruntime session therefore
serve every video shape, and a 16:9 frame runs at 416x288 instead of a letterboxed 416x416
(see :class:`workers.local.detector.Letterbox`). The other choice, one static model
converted and cached per input size, would cost a conversion, a 35 MB file and a loaded
session per shape, for no speed gain: measured here, the free-size model runs as fast as
a static one at 416x416 (29 ms with 2 threads) and at 256x416 (within 1.5 ms of 18 ms).

Supported layers are those of the YOLOv3 family: convolutional (with batch norm, folded
into the convolution), maxpool, upsample, route, shortcut and yolo.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from workers.errors import ConfigurationError
from workers.local.coco import COCO_CLASS_NAMES, read_names_file
from workers.local.model_files import DarknetFiles

OPSET = 13
INPUT_NAME = "images"
OUTPUT_NAME = "output0"
LEAKY_SLOPE = 0.1
BATCH_NORM_EPSILON = 1e-5


@dataclass
class CfgSection:
    """One ``[section]`` of a darknet ``.cfg`` file with its ``key=value`` options."""

    kind: str
    options: dict[str, str] = field(default_factory=dict)

    def integer(self, key: str, default: int | None = None) -> int:
        if key not in self.options:
            if default is None:
                raise ConfigurationError(f"darknet cfg: [{self.kind}] has no '{key}'")
            return default
        return int(self.options[key])

    def integers(self, key: str) -> list[int]:
        return [int(part) for part in self.options.get(key, "").split(",") if part.strip()]


def parse_cfg(text: str) -> list[CfgSection]:
    """The sections of a darknet ``.cfg`` file, in order (``[net]`` first)."""
    sections: list[CfgSection] = []
    for raw_line in text.splitlines():
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append(CfgSection(kind=line[1:-1].strip()))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1].options[key.strip()] = value.strip()
        else:
            raise ConfigurationError(f"darknet cfg: cannot read line {raw_line!r}")
    if not sections or sections[0].kind not in ("net", "network"):
        raise ConfigurationError("darknet cfg: the first section must be [net]")
    return sections


class _WeightReader:
    """Reads the float32 arrays of a ``.weights`` file in network order."""

    def __init__(self, data: bytes) -> None:
        major, minor, _revision = np.frombuffer(data, dtype=np.int32, count=3)
        # Files from darknet 0.2 on store the "images seen" counter as 64 bits.
        seen_bytes = 8 if (major * 10 + minor) >= 2 and major < 1000 and minor < 1000 else 4
        self._values = np.frombuffer(data, dtype=np.float32, offset=12 + seen_bytes)
        self._position = 0

    def take(self, count: int) -> np.ndarray:
        if self._position + count > self._values.size:
            raise ConfigurationError(
                "darknet weights: the file is shorter than the network in the cfg needs"
            )
        values = self._values[self._position : self._position + count]
        self._position += count
        return values

    def check_consumed(self) -> None:
        left = self._values.size - self._position
        if left:
            raise ConfigurationError(
                f"darknet weights: {left} values left over: the cfg does not match the weights"
            )


@dataclass
class _Tensor:
    name: str
    channels: int
    height: int
    width: int


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._counter = 0

    def fresh(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}_{self._counter}"

    def constant(self, stem: str, value: np.ndarray) -> str:
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(value, name=name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attributes: object) -> str:
        output = self.fresh(stem)
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


def _convolution(
    builder: _GraphBuilder, section: CfgSection, source: _Tensor, weights: _WeightReader
) -> _Tensor:
    filters = section.integer("filters")
    size = section.integer("size", 1)
    stride = section.integer("stride", 1)
    padding = size // 2 if section.integer("pad", 0) else section.integer("padding", 0)
    if section.integer("groups", 1) != 1:
        raise ConfigurationError("darknet cfg: grouped convolutions are not supported")
    bias = weights.take(filters).copy()
    if section.integer("batch_normalize", 0):
        scale = weights.take(filters)
        mean = weights.take(filters)
        variance = weights.take(filters)
    kernel = weights.take(filters * source.channels * size * size).reshape(
        filters, source.channels, size, size
    )
    if section.integer("batch_normalize", 0):
        factor = scale / np.sqrt(variance + BATCH_NORM_EPSILON)
        kernel = kernel * factor[:, None, None, None]
        bias = bias - mean * factor
    output = builder.node(
        "Conv",
        [
            source.name,
            builder.constant("kernel", kernel.astype(np.float32)),
            builder.constant("bias", bias.astype(np.float32)),
        ],
        "conv",
        kernel_shape=[size, size],
        strides=[stride, stride],
        pads=[padding, padding, padding, padding],
    )
    activation = section.options.get("activation", "logistic")
    if activation == "leaky":
        output = builder.node("LeakyRelu", [output], "leaky", alpha=LEAKY_SLOPE)
    elif activation == "logistic":
        output = builder.node("Sigmoid", [output], "logistic")
    elif activation != "linear":
        raise ConfigurationError(f"darknet cfg: activation '{activation}' is not supported")
    return _Tensor(
        output,
        filters,
        (source.height + 2 * padding - size) // stride + 1,
        (source.width + 2 * padding - size) // stride + 1,
    )


def _maxpool(builder: _GraphBuilder, section: CfgSection, source: _Tensor) -> _Tensor:
    size = section.integer("size", 2)
    stride = section.integer("stride", size)
    padding = section.integer("padding", size - 1)
    # Darknet pads on the right and bottom first (its offset is -padding // 2).
    before, after = padding // 2, padding - padding // 2
    output = builder.node(
        "MaxPool",
        [source.name],
        "maxpool",
        kernel_shape=[size, size],
        strides=[stride, stride],
        pads=[before, before, after, after],
    )
    return _Tensor(
        output,
        source.channels,
        (source.height + padding - size) // stride + 1,
        (source.width + padding - size) // stride + 1,
    )


def _upsample(builder: _GraphBuilder, section: CfgSection, source: _Tensor) -> _Tensor:
    stride = section.integer("stride", 2)
    scales = builder.constant("scales", np.array([1, 1, stride, stride], dtype=np.float32))
    output = builder.node(
        "Resize",
        [source.name, "", scales],
        "upsample",
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    return _Tensor(output, source.channels, source.height * stride, source.width * stride)


def _yolo_head(
    builder: _GraphBuilder, section: CfgSection, source: _Tensor, net_height: int, net_width: int
) -> tuple[str, int]:
    """Decode one yolo head to ``[1, 4 + classes, anchors * H * W]`` in input pixels.

    Nothing here depends on the head's grid size, which is read from the tensor at run
    time (the cell grid is built with ``CumSum``), so one model serves every input size
    that is a multiple of the network's stride.
    """
    classes = section.integer("classes")
    mask = section.integers("mask")
    anchor_values = section.integers("anchors")
    anchors = np.array(anchor_values, dtype=np.float32).reshape(-1, 2)[mask]
    count = len(mask)
    if source.channels != count * (5 + classes):
        raise ConfigurationError("darknet cfg: a yolo layer's input has the wrong channel count")

    def integers(stem: str, *values: int) -> str:
        return builder.constant(stem, np.array(values, dtype=np.int64))

    def part(start: int, end: int) -> str:
        return builder.node(
            "Slice",
            [grouped, integers("start", start), integers("end", end), integers("axis", 2)],
            "slice",
        )

    grid_size = builder.node(  # [H, W] of this head, at run time
        "Slice",
        [
            builder.node("Shape", [source.name], "shape"),
            integers("start", 2),
            integers("end", 4),
            integers("axis", 0),
        ],
        "grid_size",
    )
    grouped = builder.node(  # [1, anchors, 5 + classes, H, W]
        "Reshape",
        [
            source.name,
            builder.node(
                "Concat",
                [integers("shape", 1, count, 5 + classes), grid_size],
                "grouped_shape",
                axis=0,
            ),
        ],
        "grouped",
    )
    ones = builder.node(
        "ConstantOfShape",
        [grid_size],
        "ones",
        value=numpy_helper.from_array(np.ones(1, dtype=np.float32)),
    )

    def index_along(axis: int, stem: str) -> str:  # 0, 1, 2, ... along one grid axis
        counted = builder.node(
            "CumSum",
            [ones, builder.constant("axis", np.array(axis, dtype=np.int64))],
            stem,
            exclusive=1,
        )
        return builder.node("Unsqueeze", [counted, integers("axes", 0)], stem)

    grid = builder.node(  # [2, H, W]: column, row of each cell
        "Concat", [index_along(1, "column"), index_along(0, "row")], "grid", axis=0
    )
    cell_size = np.array(
        [net_width / source.width, net_height / source.height], dtype=np.float32
    ).reshape(1, 1, 2, 1, 1)
    centres = builder.node(
        "Mul",
        [
            builder.node("Add", [builder.node("Sigmoid", [part(0, 2)], "sig"), grid], "cell"),
            builder.constant("cell_size", cell_size),
        ],
        "centre",
    )
    sizes = builder.node(
        "Mul",
        [
            builder.node("Exp", [part(2, 4)], "exp"),
            builder.constant("anchors", anchors.reshape(1, count, 2, 1, 1)),
        ],
        "size",
    )
    scores = builder.node(
        "Mul",
        [
            builder.node("Sigmoid", [part(5, 5 + classes)], "class_probability"),
            builder.node("Sigmoid", [part(4, 5)], "objectness"),
        ],
        "score",
    )
    decoded = builder.node("Concat", [centres, sizes, scores], "decoded", axis=2)
    by_attribute = builder.node("Transpose", [decoded], "transposed", perm=[0, 2, 1, 3, 4])
    flat = builder.node("Reshape", [by_attribute, integers("shape", 1, 4 + classes, -1)], "head")
    return flat, classes


def convert_darknet(files: DarknetFiles, cfg_text: str | None = None) -> onnx.ModelProto:
    """An ONNX model equivalent to the darknet network in ``files`` (see the module doc).

    ``cfg_text`` replaces the content of ``files.cfg`` when given (a corrected copy).
    """
    text = cfg_text if cfg_text is not None else files.cfg.read_text(encoding="utf-8")
    sections = parse_cfg(text)
    weights = _WeightReader(files.weights.read_bytes())
    net = sections[0]
    height, width = net.integer("height", 416), net.integer("width", 416)
    builder = _GraphBuilder()
    current = _Tensor(INPUT_NAME, net.integer("channels", 3), height, width)
    layers: list[_Tensor] = []
    heads: list[str] = []
    class_count = 0
    stride = 1
    for index, section in enumerate(sections[1:]):
        if section.kind == "convolutional":
            current = _convolution(builder, section, current, weights)
        elif section.kind == "maxpool":
            current = _maxpool(builder, section, current)
        elif section.kind == "upsample":
            current = _upsample(builder, section, current)
        elif section.kind == "route":
            sources = [layers[i if i >= 0 else index + i] for i in section.integers("layers")]
            name = (
                sources[0].name
                if len(sources) == 1
                else builder.node("Concat", [s.name for s in sources], "route", axis=1)
            )
            current = _Tensor(
                name, sum(s.channels for s in sources), sources[0].height, sources[0].width
            )
        elif section.kind == "shortcut":
            other = layers[int(section.options["from"]) + index]
            name = builder.node("Add", [current.name, other.name], "shortcut")
            current = _Tensor(name, current.channels, current.height, current.width)
        elif section.kind == "yolo":
            head, class_count = _yolo_head(builder, section, current, height, width)
            heads.append(head)
            stride = max(stride, height // current.height, width // current.width)
        else:
            raise ConfigurationError(f"darknet cfg: layer [{section.kind}] is not supported")
        layers.append(current)
    weights.check_consumed()
    if not heads:
        raise ConfigurationError("darknet cfg: the network has no [yolo] layer")
    builder.nodes.append(helper.make_node("Concat", heads, [OUTPUT_NAME], axis=2))

    names = (
        read_names_file(files.names.read_text(encoding="utf-8"))
        if files.names
        else COCO_CLASS_NAMES
    )
    if len(names) != class_count:
        raise ConfigurationError(
            f"darknet: {len(names)} class names for a network with {class_count} classes"
        )
    graph = helper.make_graph(
        builder.nodes,
        "darknet",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, 4 + class_count, None])],
        initializer=builder.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vtrack"
    )
    model.ir_version = 8
    helper.set_model_props(
        model,
        {
            "names": repr(dict(enumerate(names))),
            "imgsz": repr([height, width]),
            "stride": str(stride),
            "source": f"darknet {files.weights.name}",
        },
    )
    onnx.checker.check_model(model)
    return model


def save_model_atomically(model: onnx.ModelProto, destination: Path) -> Path:
    """Write ``model`` so that concurrent readers see either nothing or the whole file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, suffix=".onnx.part")
    try:
        with os.fdopen(handle, "wb") as output:
            output.write(model.SerializeToString())
        os.replace(temporary, destination)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return destination
