"""The catalog's tables, and the version of their layout.

One row per completed job (``catalog_jobs``) and one per object it kept
(``catalog_objects``). The manifests under the output root stay the truth: every row here
can be made again from them (``vtrack catalog rebuild``).

The schema is versioned: ``catalog_meta`` holds ``schema_version``. :func:`ensure_schema`
creates the tables of an empty database and refuses, with one clear line, a database whose
version it does not know (made by a newer vtrack). A later version adds its upgrade steps
to ``UPGRADES``; a catalog can always be dropped and rebuilt from the manifests instead.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)

from workers.errors import VtrackError

SCHEMA_VERSION = 1

metadata = MetaData()

catalog_meta = Table(
    "catalog_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

catalog_jobs = Table(
    "catalog_jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("video_uri", Text, nullable=False),
    Column("backend", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    # A manifest's name follows its video: a video processed again replaces its manifest,
    # so one row per manifest URI is kept (the newest job).
    Column("manifest_uri", Text, nullable=False),
    Column("summary_uri", Text),
    Column("annotation_uri", Text),
    Column("min_confidence", Float, nullable=False),
    Column("min_frames", Integer, nullable=False),
    Column("objects_total", Integer, nullable=False),
    Column("objects_kept", Integer, nullable=False),
    Column("duration", Float),
    Column("total_seconds", Float),
    Column("error", Text),
    Column("completed_at", Float, nullable=False),
)

catalog_objects = Table(
    "catalog_objects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "job_id",
        String(64),
        ForeignKey("catalog_jobs.job_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("object_index", Integer, nullable=False),
    # Labels are stored lower-cased, trimmed: "Dog" and "dog " are one label to search.
    Column("entity", String(255), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("frame_count", Integer, nullable=False),
    Column("first_time", Float, nullable=False),
    Column("last_time", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("animation_uri", Text),
    Column("cell_uri", Text),
)

Index("ix_catalog_jobs_completed_at", catalog_jobs.c.completed_at)
Index("ix_catalog_jobs_manifest_uri", catalog_jobs.c.manifest_uri)
Index("ix_catalog_objects_entity", catalog_objects.c.entity)
Index("ix_catalog_objects_job_id", catalog_objects.c.job_id)

# version -> the step that upgrades a catalog from the version before it.
UPGRADES: dict[int, Callable[[Connection], None]] = {}


class CatalogVersionError(VtrackError):
    """The catalog database was made by a vtrack that knows a newer schema."""


def ensure_schema(engine: Engine) -> int:
    """Create the tables when missing, upgrade an older schema; returns the version in use."""
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[catalog_meta])
        found = conn.execute(
            select(catalog_meta.c.value).where(catalog_meta.c.key == "schema_version")
        ).scalar_one_or_none()
        if found is None:
            metadata.create_all(conn)
            conn.execute(catalog_meta.insert().values(key="schema_version", value="1"))
            found = "1"
        version = int(found)
        if version > SCHEMA_VERSION:
            raise CatalogVersionError(
                f"the catalog at {engine.url.render_as_string(hide_password=True)} has schema "
                f"version {version}; this vtrack knows up to {SCHEMA_VERSION}"
            )
        while version < SCHEMA_VERSION:
            version += 1
            UPGRADES[version](conn)
            conn.execute(
                catalog_meta.update()
                .where(catalog_meta.c.key == "schema_version")
                .values(value=str(version))
            )
        return version
