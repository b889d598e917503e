"""An int8 copy of a detector model (``VTRACK_DETECTOR_PRECISION=int8``, or ``auto`` for a
model whose int8 parameters ship with vtrack), made once and cached.

onnxruntime's static quantization: weights are quantized per output channel, activations
per tensor with ranges measured by running the model on real frames (calibration), or, for
the default YOLOv3-tiny, shipped with vtrack (:data:`DEFAULT_MODEL_PARAMETERS`, written by
``python -m bench.calibration_quality --write-parameters``), so its int8 copy is the same
file on every machine and needs no video. The result is cached beside the model cache's
other conversions, keyed by the model file's SHA-256. docs/local-backend.md ("int8") says
how other models are calibrated and which frames are refused.

Three choices keep the detections of the fp32 model (measured, docs/benchmarks.md):

* only convolutions are quantized, and not the last convolution of each path to an
  output (the detection heads): heads output box coordinates in pixels next to scores
  between 0 and 1, which one 8-bit scale cannot hold both of;
* activation ranges come from the 99.999th percentile of the calibration values, not
  their minimum and maximum: with min/max, rare outliers of YOLOv3-tiny's leaky ReLUs
  stretched the scales and the int8 model found 87% of the fp32 model's boxes; with the
  percentile, 98%;
* weights use 7 of their 8 bits (``reduce_range``): on x86 CPUs without VNNI (AVX2
  only) onnxruntime's uint8 x int8 kernel adds pairs of products in 16 bits, which
  saturate with full-range weights. Measured on such a CPU, full-range weights lost the
  dog of the dog clip and 22% of the fp32 boxes scoring 0.3 or more; with 7 bits none,
  at the same speed.

Models of an opset below 13 are upgraded first (per-channel quantization needs it).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from workers.errors import ConfigurationError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "int8")
DEFAULT_PRECISION = "fp32"  # int8 splits a test scene's runner in two: docs/benchmarks.md
# Bump when the recipe below changes, so cached int8 models are made again.
# 2: weights in 7 bits (reduce_range), activation parameters shipped for the default model.
QUANTIZATION_VERSION = 2
CALIBRATION_FRAMES = 32
# A calibration frame whose pixels' standard deviation (0..255) is below this is not used:
# a blank or nearly uniform frame gives every activation a range near zero. Higher refuses
# more real frames (dark scenes have a deviation of 20 to 40); lower lets flat test
# pictures through.
MIN_FRAME_DEVIATION = 12.0
# Fewer usable frames than this and the video is not used for calibration.
MIN_CALIBRATION_FRAMES = 4
DEFAULT_MODEL_PARAMETERS = Path(__file__).with_name("yolov3_tiny_int8.json")
_MIN_OPSET = 13


def check_precision(precision: str) -> str:
    """``precision`` normalized; an unknown value is one clear error."""
    value = (precision or DEFAULT_PRECISION).strip().lower()
    if value not in PRECISIONS:
        raise ConfigurationError(
            f"VTRACK_DETECTOR_PRECISION: {precision!r} is not one of {', '.join(PRECISIONS)}"
        )
    return value


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) across processes."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def int8_path(model_path: Path, cache_dir: Path) -> Path:
    """Where the int8 copy of ``model_path`` is cached (named by the source's content)."""
    stat = model_path.stat()
    digest = _digest(str(model_path.resolve()), stat.st_size, stat.st_mtime_ns)
    return cache_dir / f"{model_path.stem}-int8-q{QUANTIZATION_VERSION}-{digest}.onnx"


@functools.lru_cache(maxsize=16)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """The first 12 hex digits of the file's SHA-256; size and time key the cache (a file
    replaced in place is read again)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def head_convolutions(model: object) -> list[str]:
    """Names of the convolutions from which no other convolution is reached: the heads."""
    graph = model.graph  # type: ignore[attr-defined]
    consumers: dict[str, list[object]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    reaches: dict[int, bool] = {}

    def reaches_a_convolution(node: object) -> bool:
        key = id(node)
        if key not in reaches:
            reaches[key] = False  # cycles cannot occur in an ONNX graph; this stops repeats
            reaches[key] = any(
                later.op_type == "Conv" or reaches_a_convolution(later)  # type: ignore[attr-defined]
                for output in node.output  # type: ignore[attr-defined]
                for later in consumers[output]
            )
        return reaches[key]

    return [
        node.name
        for node in graph.node
        if node.op_type == "Conv" and not reaches_a_convolution(node)
    ]


def quantize_model(
    model_path: Path,
    destination: Path,
    input_name: str,
    blobs: Iterable[np.ndarray] = (),
    *,
    parameters: dict[str, tuple[float, int]] | None = None,
) -> Path:
    """Write the int8 model of ``model_path`` to ``destination``: calibrated on ``blobs``,
    or with the activations' ``parameters`` (tensor name: scale and zero point, see
    :func:`activation_parameters`), in which case no calibration frame is needed and
    every quantized activation must have one.

    Written atomically: processes quantizing at once each write a whole file, the last wins.
    """
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    samples = list(blobs)
    overrides: dict[str, list[dict[str, np.ndarray]]] = {}
    if parameters is not None:
        # The calibration still runs (onnxruntime needs its tensor list) on one small blank
        # input, whose ranges the shipped parameters then replace one by one.
        samples = samples[:1] or [np.zeros((1, 3, 64, 64), dtype=np.float32)]
        overrides = {
            name: [
                {
                    "scale": np.array(scale, dtype=np.float32),
                    "zero_point": np.array(zero_point, dtype=np.uint8),
                }
            ]
            for name, (scale, zero_point) in parameters.items()
        }
    if not samples:
        raise ConfigurationError(f"int8 quantization of {model_path}: no calibration frames")

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._next: Iterator[np.ndarray] = iter(samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            blob = next(self._next, None)
            return None if blob is None else {input_name: blob}

    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".quantize-") as work:
        model = onnx.load(str(model_path))
        opset = max(
            (entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")),
            default=0,
        )
        source = model_path
        if opset < _MIN_OPSET:
            source = Path(work) / "upgraded.onnx"
            onnx.save(version_converter.convert_version(model, _MIN_OPSET), str(source))
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        heads = head_convolutions(onnx.load(str(prepared)))
        partial = Path(work) / "int8.onnx"
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress
            quantize_static(
                str(prepared),
                str(partial),
                Frames(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                op_types_to_quantize=["Conv"],
                nodes_to_exclude=heads,
                calibrate_method=CalibrationMethod.MinMax
                if parameters is not None
                else CalibrationMethod.Percentile,
                extra_options={"CalibPercentile": 99.999, "TensorQuantOverrides": overrides},
            )
        # The source's metadata (class names, stride, where it came from) is the model's
        # description to the detector families; the quantizer does not carry it over.
        quantized = onnx.load(str(partial))
        if parameters is not None:
            missing = sorted(set(activation_parameters(quantized)) - set(parameters))
            if missing:
                raise ConfigurationError(
                    f"int8 quantization of {model_path}: no shipped parameters for the "
                    f"activations {', '.join(missing[:5])}"
                )
        del quantized.metadata_props[:]
        quantized.metadata_props.extend(model.metadata_props)
        quantized.metadata_props.add(key="precision", value="int8")
        onnx.save(quantized, str(partial))
        os.replace(partial, destination)
    return destination


def activation_parameters(model: object) -> dict[str, tuple[float, int]]:
    """The scale and zero point of every quantized activation of an int8 (QDQ) model."""
    from onnx import numpy_helper

    graph = model.graph  # type: ignore[attr-defined]
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    found: dict[str, tuple[float, int]] = {}
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in constants:
            scale, zero_point = constants[node.input[1]], constants[node.input[2]]
            found[node.input[0]] = (float(scale), int(zero_point))
    return found


def write_parameters(int8_model: Path, destination: Path, model_name: str, source: str) -> Path:
    """Save the activation parameters of ``int8_model`` for the fp32 model ``model_name``
    (its file's stem), saying what they were calibrated on (``source``)."""
    import onnx

    payload = {
        "model": model_name,
        "quantization_version": QUANTIZATION_VERSION,
        "calibration": source,
        "activations": {
            name: [scale, zero_point]
            for name, (scale, zero_point) in sorted(
                activation_parameters(onnx.load(str(int8_model))).items()
            )
        },
    }
    destination.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return destination


def shipped_parameters(
    model_path: Path, source: Path = DEFAULT_MODEL_PARAMETERS
) -> dict[str, tuple[float, int]] | None:
    """The shipped activation parameters for ``model_path``, or None when none were
    measured for that model file (another model, another conversion) or this recipe."""
    if not source.is_file():
        return None
    payload = json.loads(source.read_text(encoding="utf-8"))
    if (
        payload.get("model") != model_path.stem
        or payload.get("quantization_version") != QUANTIZATION_VERSION
    ):
        return None
    return {name: (float(v[0]), int(v[1])) for name, v in payload["activations"].items()}


def usable_for_calibration(images: Iterable[np.ndarray]) -> list[np.ndarray]:
    """The frames textured enough to calibrate on (see :data:`MIN_FRAME_DEVIATION`)."""
    return [image for image in images if float(np.std(image)) >= MIN_FRAME_DEVIATION]


def calibration_blobs(detector: object, images: Iterable[np.ndarray]) -> list[np.ndarray]:
    """The network inputs ``detector`` makes of ``images`` (captured at its session's run)."""
    from workers.local.detector import DetectionThresholds

    runner = detector._runner  # type: ignore[attr-defined]  # every family's SessionRunner
    captured: list[np.ndarray] = []
    real_run = runner.run

    def capture(blob: np.ndarray) -> list[np.ndarray]:
        captured.append(np.array(blob, copy=True))
        return real_run(blob)

    runner.run = capture
    try:
        for image in images:
            detector.detect(image, DetectionThresholds())  # type: ignore[attr-defined]
    finally:
        del runner.run  # back to the class's method
    return captured


def sample_frames(video_path: Path, max_width: int | None, count: int = CALIBRATION_FRAMES):
    """``count`` frames spread evenly over ``video_path``, ``max_width`` wide at most."""
    from workers.media.video import iter_frames, probe_video

    info = probe_video(video_path)
    every = max(info.duration / count, 1.0 / (info.fps or 30.0))
    frames = [frame.image for frame in iter_frames(video_path, every=every, max_width=max_width)]
    return frames[:count]
