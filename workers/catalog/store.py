"""The catalog across videos: which videos hold which objects, and when.

Written once per completed job from its manifest (:meth:`Catalog.record`), read by the web
app's search and job list, and rebuilt from the manifests under the output root
(:meth:`Catalog.rebuild`) when it is lost or missed a write. It lives in a real database
(SQLite by default, PostgreSQL for the service), not in Redis, whose job records expire.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field
from sqlalchemy import Engine, create_engine, delete, event, func, insert, select
from sqlalchemy.engine import make_url

from workers.catalog.schema import catalog_jobs, catalog_objects, ensure_schema
from workers.errors import VtrackError
from workers.job import Manifest
from workers.messages import Message
from workers.naming import MANIFEST_SUFFIX
from workers.storage import Storage

log = logging.getLogger(__name__)
# Ids bound into one IN (...) query: well under SQLite's and PostgreSQL's limits.
_IDS_PER_QUERY = 500

# SQLite allows one writer at a time: a worker finding the file locked waits this long.
SQLITE_BUSY_SECONDS = 30


def normalize_entity(label: str) -> str:
    """The form labels are stored and searched in: trimmed, lower-cased."""
    return " ".join(label.split()).lower()


class CatalogObject(Message):
    """A kept object of a catalogued job (its row in ``catalog_objects``)."""

    index: int = Field(validation_alias=AliasChoices("index", "object_index"))
    entity: str
    confidence: float
    frame_count: int
    first_time: float
    last_time: float
    status: str
    animation_uri: str | None
    cell_uri: str | None


class CatalogJob(Message):
    """A completed job (its row in ``catalog_jobs``)."""

    job_id: str
    video_uri: str
    backend: str
    status: str
    manifest_uri: str
    summary_uri: str | None
    annotation_uri: str | None
    min_confidence: float
    min_frames: int
    objects_total: int
    objects_kept: int
    duration: float | None
    total_seconds: float | None
    error: str | None
    completed_at: float


class MatchedObject(Message):
    """An object of a :class:`VideoMatch`: what a search answers of it."""

    entity: str
    confidence: float
    first_time: float
    last_time: float
    animation_uri: str | None


class VideoMatch(Message):
    """A video whose kept objects include the label searched for, with those objects: the
    shape ``GET /api/videos`` answers with."""

    video_uri: str
    job_id: str
    summary_uri: str | None
    completed_at: float
    objects: tuple[MatchedObject, ...] = ()


class RebuildReport(Message):
    """What :meth:`Catalog.rebuild` did: jobs recorded, rows removed, manifests skipped."""

    recorded: int
    removed: int
    unreadable: tuple[str, ...]

    def describe(self) -> str:
        text = f"catalog rebuilt: {self.recorded} job(s) recorded, {self.removed} removed"
        if self.unreadable:
            text += f", {len(self.unreadable)} unreadable manifest(s) skipped"
        return text


class CatalogError(VtrackError):
    """The catalog database could not be reached or written."""


class Catalog:
    """The catalog in the database at ``url`` (any SQLAlchemy URL; SQLite or PostgreSQL).

    The schema is created (or its version checked) on first use, so building a catalog
    costs nothing until it is read or written.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                engine = _build_engine(self.url)
                try:
                    ensure_schema(engine)
                except Exception:
                    engine.dispose()  # not kept: the next use tries again from the start
                    raise
                self._engine = engine
            return self._engine

    def prepare(self) -> None:
        """Connect and create (or check) the schema now rather than on first use."""
        _ = self.engine

    def describe(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    # --- Writing ------------------------------------------------------------------------

    def record(self, manifest: Manifest, completed_at: float | None = None) -> None:
        """Record a completed job and its kept objects, replacing what the catalog held for
        the same job or the same manifest (the video processed again)."""
        self.record_many([(manifest, completed_at or time.time())])

    def record_many(self, manifests: Iterable[tuple[Manifest, float]]) -> int:
        count = 0
        with self.engine.begin() as conn:
            for manifest, completed_at in manifests:
                stale = conn.execute(
                    select(catalog_jobs.c.job_id).where(
                        (catalog_jobs.c.job_id == manifest.job_id)
                        | (catalog_jobs.c.manifest_uri == manifest.manifest_uri)
                    )
                ).scalars()
                _delete_jobs(conn, list(stale))
                conn.execute(insert(catalog_jobs).values(**_job_row(manifest, completed_at)))
                rows = [_object_row(manifest.job_id, obj) for obj in manifest.objects]
                if rows:
                    conn.execute(insert(catalog_objects), rows)
                count += 1
        return count

    def rebuild(self, storage: Storage, output_root: str) -> RebuildReport:
        """Re-read every manifest under ``output_root``; rows of manifests that are gone
        from it are removed."""
        found: list[tuple[Manifest, float]] = []
        unreadable: list[str] = []
        for stat in storage.list(output_root):
            if not stat.uri.endswith(MANIFEST_SUFFIX):
                continue
            try:
                manifest = Manifest.model_validate(json.loads(storage.read_bytes(stat.uri)))
            except Exception as exc:
                log.warning("skipping unreadable manifest %s: %s", stat.uri, exc)
                unreadable.append(stat.uri)
                continue
            found.append((manifest, stat.mtime or time.time()))
        recorded = self.record_many(found)
        kept = {manifest.manifest_uri for manifest, _ in found}
        prefix = output_root.rstrip("/") + "/"
        with self.engine.begin() as conn:
            rows = conn.execute(select(catalog_jobs.c.job_id, catalog_jobs.c.manifest_uri))
            gone = [
                job_id
                for job_id, uri in rows
                if uri.startswith(prefix) and uri not in kept and uri not in unreadable
            ]
            _delete_jobs(conn, gone)
        return RebuildReport(recorded=recorded, removed=len(gone), unreadable=tuple(unreadable))

    # --- Reading ------------------------------------------------------------------------

    def job(self, job_id: str) -> CatalogJob | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(catalog_jobs).where(catalog_jobs.c.job_id == job_id)
            ).one_or_none()
        return None if row is None else CatalogJob.model_validate(row._asdict())

    def jobs(self, *, status: str | None = None, limit: int = 50) -> list[CatalogJob]:
        """Completed jobs, newest first."""
        query = select(catalog_jobs).order_by(catalog_jobs.c.completed_at.desc()).limit(limit)
        if status:
            query = query.where(catalog_jobs.c.status == status)
        with self.engine.connect() as conn:
            return [CatalogJob.model_validate(row._asdict()) for row in conn.execute(query)]

    def count_jobs(self, *, status: str | None = None, excluding: Iterable[str] = ()) -> int:
        """How many completed jobs the catalog holds (``status`` filters), leaving out the
        ids in ``excluding`` (jobs counted elsewhere: those Redis still has records of)."""
        matching = select(func.count()).select_from(catalog_jobs)
        if status:
            matching = matching.where(catalog_jobs.c.status == status)
        left_out = sorted(set(excluding))
        with self.engine.connect() as conn:
            count = int(conn.execute(matching).scalar_one())
            for start in range(0, len(left_out), _IDS_PER_QUERY):
                chunk = left_out[start : start + _IDS_PER_QUERY]
                count -= int(
                    conn.execute(matching.where(catalog_jobs.c.job_id.in_(chunk))).scalar_one()
                )
        return count

    def objects(self, job_id: str) -> list[CatalogObject]:
        query = (
            select(catalog_objects)
            .where(catalog_objects.c.job_id == job_id)
            .order_by(catalog_objects.c.object_index)
        )
        with self.engine.connect() as conn:
            return [CatalogObject.model_validate(row._asdict()) for row in conn.execute(query)]

    def search(
        self, entity: str, *, min_confidence: float = 0.0, limit: int = 100
    ) -> list[VideoMatch]:
        """Videos whose kept objects include ``entity`` (any case), newest first."""
        label = normalize_entity(entity)
        query = (
            select(catalog_jobs, catalog_objects)
            .join(catalog_objects, catalog_objects.c.job_id == catalog_jobs.c.job_id)
            .where(catalog_objects.c.entity == label)
            .where(catalog_objects.c.confidence >= min_confidence)
            .order_by(catalog_jobs.c.completed_at.desc(), catalog_objects.c.object_index)
        )
        matches: dict[str, dict[str, Any]] = {}  # job id -> its first row, with the objects
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                data = row._asdict()
                if data["job_id"] not in matches and len(matches) >= limit:
                    break
                matches.setdefault(data["job_id"], {**data, "objects": []})["objects"].append(data)
        return [VideoMatch.model_validate(match) for match in matches.values()]

    def labels(self, prefix: str = "", limit: int = 20) -> list[tuple[str, int]]:
        """Labels the catalog holds, with how many videos show each, most common first."""
        videos = func.count(func.distinct(catalog_objects.c.job_id))
        query = (
            select(catalog_objects.c.entity, videos)
            .group_by(catalog_objects.c.entity)
            .order_by(videos.desc(), catalog_objects.c.entity)
            .limit(limit)
        )
        if prefix:
            escaped = normalize_entity(prefix).replace("\\", "\\\\").replace("%", "\\%")
            escaped = escaped.replace("_", "\\_")
            query = query.where(catalog_objects.c.entity.like(f"{escaped}%", escape="\\"))
        with self.engine.connect() as conn:
            return [(entity, int(count)) for entity, count in conn.execute(query)]


def _build_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets the web app read while a worker writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _delete_jobs(conn: Any, job_ids: list[str]) -> None:
    if job_ids:
        conn.execute(delete(catalog_objects).where(catalog_objects.c.job_id.in_(job_ids)))
        conn.execute(delete(catalog_jobs).where(catalog_jobs.c.job_id.in_(job_ids)))


def _job_row(manifest: Manifest, completed_at: float) -> dict[str, Any]:
    return {
        "job_id": manifest.job_id,
        "video_uri": manifest.video_uri,
        "backend": manifest.backend,
        "status": manifest.status,
        "manifest_uri": manifest.manifest_uri,
        "summary_uri": manifest.summary_uri,
        "annotation_uri": manifest.annotation_uri,
        "min_confidence": float(manifest.thresholds.get("min_confidence", 0.0)),
        "min_frames": int(manifest.thresholds.get("min_frames", 0)),
        "objects_total": manifest.objects_total,
        "objects_kept": len(manifest.objects),
        "duration": manifest.video.get("duration"),
        "total_seconds": manifest.timings.get("total_seconds"),
        "error": "; ".join(manifest.errors) or None,
        "completed_at": completed_at,
    }


def _object_row(job_id: str, obj: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "object_index": obj.index,
        "entity": normalize_entity(obj.entity),
        "confidence": obj.confidence,
        "frame_count": obj.frame_count,
        "first_time": obj.first_time,
        "last_time": obj.last_time,
        "status": obj.status,
        "animation_uri": obj.animation_uri,
        "cell_uri": obj.cell_uri,
    }
