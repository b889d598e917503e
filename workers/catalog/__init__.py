"""The catalog across videos: one row per completed job and per kept object, in SQL.

Plain functions and a :class:`Catalog` class that know nothing of Celery; the job's last
task calls :meth:`Catalog.record`, the web app searches, ``vtrack catalog rebuild``
re-reads the manifests. The names below load SQLAlchemy on first use only
(:mod:`workers.catalog.location` never does), so a command that merely looks for the
catalog starts fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from workers.catalog.location import default_catalog_url

if TYPE_CHECKING:
    from workers.catalog.store import (
        Catalog,
        CatalogError,
        CatalogJob,
        CatalogObject,
        RebuildReport,
        VideoMatch,
        normalize_entity,
    )

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogJob",
    "CatalogObject",
    "RebuildReport",
    "VideoMatch",
    "default_catalog_url",
    "normalize_entity",
]
_FROM_STORE = frozenset(__all__) - {"default_catalog_url"}


def __getattr__(name: str) -> Any:
    if name in _FROM_STORE:
        return getattr(import_module("workers.catalog.store"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
