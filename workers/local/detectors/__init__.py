"""Detector families behind one interface, and the registry that picks one for a model file.

Each family is a module with ``FAMILY`` (its name), ``matches(session)`` (whether a model's
input and output shapes are that family's) and a detector class following
:class:`~workers.local.detectors.base.ObjectDetector`:

- ``yolo-export``: the YOLOv5u/v8/11 export layout, ``[1, 4 + classes, N]``, and the
  default YOLOv3-tiny converted to it (:mod:`.yolo_export`);
- ``yolox``: YOLOX nano to x, ``[1, N, 5 + classes]`` (:mod:`.yolox`);
- ``gfl``: PP-PicoDet and NanoDet-style heads, class scores and box distributions per
  stride (:mod:`.gfl`).

:func:`open_detector` reads the family from the model file's shapes unless one is named
(``VTRACK_DETECTOR_FAMILY``); a file no family fits is one error saying what was found.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from workers.errors import ConfigurationError
from workers.local.detectors import gfl, yolo_export, yolox
from workers.local.detectors.base import ObjectDetector, describe_io, open_session

__all__ = ["FAMILIES", "ObjectDetector", "family_of", "open_detector"]

_MODULES: tuple[ModuleType, ...] = (yolox, gfl, yolo_export)  # strictest test first
FAMILIES: dict[str, Callable[..., ObjectDetector]] = {
    yolo_export.FAMILY: yolo_export.YoloDetector,
    yolox.FAMILY: yolox.YoloxDetector,
    gfl.FAMILY: gfl.GflDetector,
}
FAMILY_ALIASES = {
    "yolov5": yolo_export.FAMILY,
    "yolov8": yolo_export.FAMILY,
    "yolo11": yolo_export.FAMILY,
    "ultralytics": yolo_export.FAMILY,
    "picodet": gfl.FAMILY,
    "nanodet": gfl.FAMILY,
}


def canonical_family(name: str) -> str:
    """A family's registry name from its name or an alias; unknown names are an error."""
    key = name.strip().lower()
    key = FAMILY_ALIASES.get(key, key)
    if key not in FAMILIES:
        known = ", ".join([*FAMILIES, *FAMILY_ALIASES])
        raise ConfigurationError(
            f"VTRACK_DETECTOR_FAMILY: unknown family {name!r} (known: {known})"
        )
    return key


def family_of(model_path: Path) -> str:
    """The family whose input and output shapes ``model_path`` has."""
    session = open_session(model_path, 1)
    for module in _MODULES:
        if module.matches(session):
            return module.FAMILY
    raise ConfigurationError(
        f"detector model {model_path}: its shapes fit no detector family ({describe_io(session)}); "
        "expected the YOLOv5/v8/11 export [1, 4 + classes, N], YOLOX [1, N, 5 + classes] or a "
        "GFL head (PicoDet, NanoDet); set VTRACK_DETECTOR_FAMILY if the model is one of them"
    )


def open_detector(
    model_path: Path, *, family: str | None = None, inference_threads: int | None = None
) -> ObjectDetector:
    """The detector for ``model_path``: its ``family`` if given, else read from its shapes."""
    name = canonical_family(family) if family else family_of(model_path)
    return FAMILIES[name](model_path, inference_threads=inference_threads)
