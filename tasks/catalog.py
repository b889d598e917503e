"""The service's catalog: which database, opened once per process, read and rebuilt.

No Celery here (the web pages read the catalog): the write at a job's completion and its
retry are tasks (:mod:`tasks.jobs`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from config.settings import Settings
from tasks import runtime
from tasks.jobstore import JobRecord

if TYPE_CHECKING:  # SQLAlchemy is imported on first use, not by every `vtrack` command
    from workers.catalog import Catalog, CatalogJob, RebuildReport

log = logging.getLogger(__name__)

_lock = threading.Lock()
_catalogs: dict[str, Catalog] = {}


def catalog_url(settings: Settings) -> str:
    from workers.catalog import location

    return location.catalog_url(settings.catalog_url, settings.output_root)


def current_catalog() -> Catalog:
    """This process's catalog, built once per URL (the engine and its pool are shared)."""
    from workers.catalog import Catalog

    url = catalog_url(runtime.current().settings)
    with _lock:
        if url not in _catalogs:
            _catalogs[url] = Catalog(url)
        return _catalogs[url]


def prepare_catalog() -> None:
    """Open the catalog now (worker start): the job's last task then only writes its rows.

    Never raises: a database that is down now is tried again at the first write.
    """
    try:
        current_catalog().prepare()
    except Exception as exc:
        log.warning("catalog not reachable yet (%s); tried again at the first write", exc)


def rebuild_catalog() -> RebuildReport:
    """Re-read every manifest under the output root into the catalog."""
    rt = runtime.current()
    return current_catalog().rebuild(rt.storage, rt.settings.output_root)


def catalog_record(job_id: str) -> JobRecord | None:
    """The record of a completed job as the catalog knows it (its Redis record expired)."""
    try:
        job = current_catalog().job(job_id)
    except Exception as exc:
        log.warning("catalog not readable: %s", first_line(exc))
        return None
    return None if job is None else indexed_record(job)


def indexed_record(job: CatalogJob) -> JobRecord:
    """A finished job's record from its catalog row: the manifest's own fields, as the job's
    last task recorded them (``vtrack catalog rebuild`` reads them again from the manifests),
    so the manifest answers without its file being read again. Not in a manifest: how the
    job was started (``source``, empty) and when (its completion less its total time)."""
    return JobRecord.model_validate(
        {
            **job.model_dump(),  # job_id, video_uri, backend, status, error and the URIs
            "stage": "done",
            "percent": 100.0,
            "objects_total": job.objects_kept,
            "objects_done": job.objects_kept,
            "created_at": job.completed_at - (job.total_seconds or 0.0),
            "updated_at": job.completed_at,
        }
    )


def first_line(exc: BaseException) -> str:
    """An error as one log line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
