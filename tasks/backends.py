"""Annotation backends by name (``VTRACK_BACKEND`` or ``--backend``): file, gcp and local.

Each is built once per process from the settings and the process's storage. The ``local``
backend's Celery side (a chord of segment tasks) is :mod:`tasks.local_backend`; its
processing lives in ``workers/local``.
"""

from __future__ import annotations

from collections.abc import Callable

from config.settings import Settings
from tasks.local_backend import LocalSegmentsAnnotator
from workers.annotators.base import Annotator
from workers.annotators.file import FileAnnotator
from workers.errors import ConfigurationError
from workers.storage import Storage


def _gcp_annotator(settings: Settings, storage: Storage) -> Annotator:
    # Imported on demand: gRPC and the Google client load only where the backend is used.
    from workers.annotators.gcp import annotator_from_config
    from workers.annotators.gcp_client import GcpConfig

    return annotator_from_config(GcpConfig.from_settings(settings), storage)


ANNOTATORS: dict[str, Callable[[Settings, Storage], Annotator]] = {
    "file": lambda settings, storage: FileAnnotator(storage),
    "gcp": _gcp_annotator,
    "local": LocalSegmentsAnnotator,
}


def build_annotator(name: str, settings: Settings, storage: Storage) -> Annotator:
    try:
        factory = ANNOTATORS[name]
    except KeyError:
        known = ", ".join(sorted(ANNOTATORS))
        raise ConfigurationError(f"unknown backend {name!r} (known: {known})") from None
    return factory(settings, storage)
