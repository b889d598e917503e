"""Annotation backends, chosen by name (``VTRACK_BACKEND`` or ``--backend``).

Each backend registers a factory that builds it once per process from the settings and
the process's storage. The ``local`` backend's Celery side (a group of segment tasks)
lives in ``tasks/``; its processing functions live in ``workers/local``.
"""

from __future__ import annotations

from collections.abc import Callable

from config.settings import Settings
from workers.annotators.base import (
    AnnotateRequest,
    Annotator,
    Operation,
    OperationStatus,
)
from workers.annotators.file import FileAnnotator
from workers.errors import ConfigurationError
from workers.storage import Storage

AnnotatorFactory = Callable[[Settings, Storage], Annotator]


def _gcp_annotator(settings: Settings, storage: Storage) -> Annotator:
    # Imported on demand: gRPC and the Google client load only where the backend is used.
    from workers.annotators.gcp import annotator_from_config
    from workers.annotators.gcp_client import GcpConfig

    return annotator_from_config(GcpConfig.from_settings(settings), storage)


ANNOTATORS: dict[str, AnnotatorFactory] = {
    "file": lambda settings, storage: FileAnnotator(storage),
    "gcp": _gcp_annotator,
}


def register_annotator(name: str, factory: AnnotatorFactory) -> None:
    ANNOTATORS[name] = factory


def build_annotator(name: str, settings: Settings, storage: Storage) -> Annotator:
    try:
        factory = ANNOTATORS[name]
    except KeyError:
        known = ", ".join(sorted(ANNOTATORS))
        raise ConfigurationError(f"unknown backend {name!r} (known: {known})") from None
    return factory(settings, storage)


__all__ = [
    "ANNOTATORS",
    "AnnotateRequest",
    "Annotator",
    "Operation",
    "OperationStatus",
    "build_annotator",
    "register_annotator",
]
