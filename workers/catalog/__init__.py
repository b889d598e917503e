"""The catalog across videos: one row per completed job and per kept object, in SQL.

Plain functions and a :class:`Catalog` class that know nothing of Celery; the job's last
task calls :meth:`Catalog.record`, the web app searches, ``vtrack catalog rebuild``
re-reads the manifests.
"""

from workers.catalog.store import (
    Catalog,
    CatalogError,
    CatalogJob,
    CatalogObject,
    RebuildReport,
    VideoMatch,
    default_catalog_url,
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
