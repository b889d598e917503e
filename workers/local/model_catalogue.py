"""The models vtrack knows: where each is published, its checksum, its licence.

``vtrack models`` lists them and ``vtrack models fetch NAME`` downloads one into
``VTRACK_MODEL_DIR`` (checked against its sha256; a mismatch is refused and nothing is
kept). ``VTRACK_DETECTOR=NAME`` then uses the fetched file. Nothing is downloaded unless
asked, and AGPL weights (Ultralytics) are listed, marked, and fetched only when the user
says so explicitly (``--accept-agpl``).

The URLs are the publishers' (or, where the publisher ships no ONNX file, the export whose
checksum is recorded here, named as such); the checksums were computed on those files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workers.errors import ConfigurationError
from workers.local.model_files import (
    DEFAULT_WEIGHTS_URL,
    YOLOV3_TINY_WEIGHTS_SHA256,
    YOLOV3_TINY_WEIGHTS_SIZE,
    download_file,
    verify_sha256,
)

DEFAULT_DETECTOR = "yolov3-tiny"


@dataclass(frozen=True, slots=True)
class KnownModel:
    """One model of the catalogue. ``kind``: ``detector`` or ``reid``; ``family``: the
    detector family that decodes it (empty for re-identification models)."""

    name: str
    kind: str
    family: str
    input: str
    coco_map: float | None
    size_bytes: int
    licence: str
    url: str
    sha256: str
    file_name: str
    agpl: bool = False
    note: str = ""


CATALOGUE: tuple[KnownModel, ...] = (
    KnownModel(
        name=DEFAULT_DETECTOR,
        kind="detector",
        family="yolo-export",
        input="416x416 (free size)",
        coco_map=16.6,
        size_bytes=YOLOV3_TINY_WEIGHTS_SIZE,
        licence="public domain (darknet YOLO licence)",
        url=DEFAULT_WEIGHTS_URL,
        sha256=YOLOV3_TINY_WEIGHTS_SHA256,
        file_name="yolov3-tiny.weights",
        note="the default; darknet weights converted to ONNX on first use",
    ),
    KnownModel(
        name="yolox-nano",
        kind="detector",
        family="yolox",
        input="416x416",
        coco_map=25.8,
        size_bytes=3_660_092,
        licence="Apache-2.0 (Megvii YOLOX weights)",
        url=(
            "https://raw.githubusercontent.com/Kazuhito00/MOT-Tracking-by-Detection-Pipeline/"
            "e50a76b8b430b778276e7fd04fd4cafd5d45eab2/Detector/yolox/model/yolox_nano_416x416.onnx"
        ),
        sha256="695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
        file_name="yolox_nano_416.onnx",
        note="a third-party ONNX export of Megvii's official weights",
    ),
    KnownModel(
        name="picodet-s-416",
        kind="detector",
        family="gfl",
        input="416x416",
        coco_map=30.7,
        size_bytes=4_040_573,
        licence="Apache-2.0 (PaddleDetection weights)",
        url=(
            "https://raw.githubusercontent.com/hpc203/picodet-onnxruntime/"
            "dfe4d6cd0a18cd4126ee381e81df8a0b1e6ad97b/coco/picodet_s_416_coco.onnx"
        ),
        sha256="cdab77bdde16e4f76bec734c4e5791801d1739e4c7ec1995e0e110e04300d0c2",
        file_name="picodet_s_416_coco.onnx",
        note="PP-PicoDet-S (2021), exported by hpc203/picodet-onnxruntime",
    ),
    KnownModel(
        name="picodet-s-320",
        kind="detector",
        family="gfl",
        input="320x320",
        coco_map=27.1,
        size_bytes=4_040_569,
        licence="Apache-2.0 (PaddleDetection weights)",
        url=(
            "https://raw.githubusercontent.com/hpc203/picodet-onnxruntime/"
            "dfe4d6cd0a18cd4126ee381e81df8a0b1e6ad97b/coco/picodet_s_320_coco.onnx"
        ),
        sha256="d7852a1508b36bfc2739770ad52ff28bf81e219dc5c15dd7868d5ebdf007b6c8",
        file_name="picodet_s_320_coco.onnx",
        note="PP-PicoDet-S (2021), exported by hpc203/picodet-onnxruntime",
    ),
    KnownModel(
        name="yolo11n-int8-320",
        kind="detector",
        family="yolo-export",
        input="320x320",
        coco_map=None,
        size_bytes=2_923_867,
        licence="AGPL-3.0 (Ultralytics weights)",
        url=(
            "https://raw.githubusercontent.com/achmadnr21/mwc-rpi5/"
            "aa67e80a9cb637de3d271be231905c30253dbce1/yolo11n_int8.onnx"
        ),
        sha256="5ea9b19c6c4d89041175fd2d4f9d2e1581d16f37b817021d547278fc5e2f2b58",
        file_name="yolo11n_int8_320.onnx",
        agpl=True,
        note="int8 export of Ultralytics YOLO11n; AGPL: fetched only with --accept-agpl",
    ),
    KnownModel(
        name="osnet-x0.25-msmt17",
        kind="reid",
        family="",
        input="256x128 (height x width)",
        coco_map=None,
        size_bytes=854_581,
        licence="MIT (deep-person-reid OSNet weights); MSMT17 is a research dataset",
        url=(
            "https://raw.githubusercontent.com/HuyAIHub/PPE_Detection/"
            "2feee103d8501905a501f7411229b1cb511aaae4/weights/osnet_x0_25_msmt17.onnx"
        ),
        sha256="c61799fb79be8959f950590604c6d7a097c7c0aac7aca2baa49b09406ecb5829",
        file_name="osnet_x0_25_msmt17.onnx",
        note="person re-identification, 512-d embedding; for VTRACK_REID_MODEL",
    ),
)


def find_model(name: str) -> KnownModel | None:
    key = name.strip().lower()
    return next((model for model in CATALOGUE if model.name == key), None)


def known_names(kind: str | None = None) -> list[str]:
    return [model.name for model in CATALOGUE if kind is None or model.kind == kind]


def fetched_path(model: KnownModel, folder: Path) -> Path:
    return folder / model.file_name


def fetch_model(
    model: KnownModel,
    folder: Path,
    *,
    url: str | None = None,
    accept_agpl: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download ``model`` into ``folder`` (from ``url`` if given: a mirror of the same file)
    and check its sha256; a mismatch raises and leaves nothing behind. A file already there
    with the right checksum is kept and not downloaded again."""
    if model.agpl and not accept_agpl:
        raise ConfigurationError(
            f"{model.name} is {model.licence}: using it puts your use under the AGPL; "
            "add --accept-agpl to fetch it anyway"
        )
    destination = fetched_path(model, folder)
    if destination.is_file():
        verify_sha256(destination, model.sha256)
        return destination
    return download_file(
        url or model.url, destination, expected_sha256=model.sha256, timeout=timeout
    )


def resolve_known_model(name: str, folder: Path, *, kind: str, setting: str) -> Path:
    """The fetched file of catalogue model ``name`` of ``kind`` (``detector`` or ``reid``);
    one clear error, naming ``setting``, when it is unknown or not fetched yet."""
    model = find_model(name)
    if model is None or model.kind != kind:
        raise ConfigurationError(
            f"{setting}: {name!r} is neither a known {kind} model "
            f"({', '.join(known_names(kind))}) nor an existing ONNX file"
        )
    path = fetched_path(model, folder)
    if not path.is_file():
        raise ConfigurationError(
            f"{setting}: {name} is not in {folder}; get it with `vtrack models fetch {name}`"
        )
    return path


def resolve_detector_name(name: str, folder: Path) -> Path:
    """The fetched file of catalogue detector ``name`` (see :func:`resolve_known_model`)."""
    return resolve_known_model(name, folder, kind="detector", setting="VTRACK_DETECTOR")


def resolve_reid_name(name: str, folder: Path) -> Path:
    """The fetched file of catalogue re-identification model ``name`` (for
    ``VTRACK_REID_MODEL``)."""
    return resolve_known_model(name, folder, kind="reid", setting="VTRACK_REID_MODEL")
