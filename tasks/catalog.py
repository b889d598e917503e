"""The catalog from the Celery side: which database, the write at job completion, its retry.

:func:`record_completed` is called by the job's last task (``assemble_summary``) once the
manifest is written. A catalog that cannot be written never fails the job: the write is
handed to :func:`record_in_catalog`, a task that reads the manifest again and retries with
backoff; whatever is still missed after that, ``vtrack catalog rebuild`` repairs from the
manifests.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from config.settings import Settings
from tasks import runtime
from tasks.celery_app import app
from tasks.jobstore import JobRecord
from workers.errors import VtrackError
from workers.job import Manifest
from workers.service.backoff import retry_delay

if TYPE_CHECKING:  # SQLAlchemy is imported on first use, not by every `vtrack` command
    from workers.catalog import Catalog, CatalogJob, RebuildReport

log = logging.getLogger(__name__)

RECORD_IN_CATALOG = "vtrack.record_in_catalog"
RETRY_BASE_SECONDS = 5
RETRY_CAP_SECONDS = 300
# Up to about an hour of retries (full jitter); after that, `vtrack catalog rebuild`.
MAX_RETRIES = 15

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


def record_completed(manifest: Manifest) -> bool:
    """Record a completed job; on failure, schedule retries and return False. Never raises."""
    try:
        current_catalog().record(manifest)
        return True
    except Exception as exc:
        log.warning(
            "job %s: catalog not written (%s); retrying in the background",
            manifest.job_id,
            _first_line(exc),
        )
    try:
        record_in_catalog.apply_async(
            args=(manifest.manifest_uri, manifest.job_id),
            countdown=retry_delay(0, RETRY_BASE_SECONDS, RETRY_CAP_SECONDS),
        )
    except Exception as exc:
        log.warning("job %s: catalog retry not scheduled: %s", manifest.job_id, _first_line(exc))
    return False


class CatalogNotWritten(VtrackError):
    """The catalog database could not be written: retried, then one line in the log."""


@app.task(
    name=RECORD_IN_CATALOG,
    autoretry_for=(CatalogNotWritten,),
    retry_backoff=RETRY_BASE_SECONDS,
    retry_backoff_max=RETRY_CAP_SECONDS,
    retry_jitter=True,
    max_retries=MAX_RETRIES,
    throws=(CatalogNotWritten,),
)
def record_in_catalog(manifest_uri: str, job_id: str) -> dict[str, Any]:
    """Record the manifest at ``manifest_uri`` in the catalog, retried with backoff."""
    rt = runtime.current()
    try:
        manifest = Manifest.model_validate(json.loads(rt.storage.read_bytes(manifest_uri)))
        if manifest.job_id != job_id:  # the video was processed again since: nothing to do
            return {"job_id": job_id, "recorded": False}
        current_catalog().record(manifest)
    except Exception as exc:
        raise CatalogNotWritten(
            f"job {job_id}: catalog not written ({_first_line(exc)}); "
            "if it still fails, `vtrack catalog rebuild` records it"
        ) from exc
    return {"job_id": job_id, "recorded": True}


def rebuild_catalog() -> RebuildReport:
    """Re-read every manifest under the output root into the catalog."""
    rt = runtime.current()
    return current_catalog().rebuild(rt.storage, rt.settings.output_root)


def catalog_record(job_id: str) -> JobRecord | None:
    """The record of a completed job as the catalog knows it (its Redis record expired)."""
    try:
        job = current_catalog().job(job_id)
    except Exception as exc:
        log.warning("catalog not readable: %s", _first_line(exc))
        return None
    return None if job is None else indexed_record(job)


def indexed_record(job: CatalogJob) -> JobRecord:
    """A finished job's record from its catalog row: the manifest's own fields, as the job's
    last task recorded them (``vtrack catalog rebuild`` reads them again from the manifests),
    so the manifest answers without its file being read again. Not in a manifest: how the
    job was started (``source``, empty) and when (its completion less its total time)."""
    return JobRecord(
        job_id=job.job_id,
        video_uri=job.video_uri,
        backend=job.backend,
        status=job.status,
        stage="done",
        percent=100.0,
        error=job.error,
        objects_total=job.objects_kept,
        objects_done=job.objects_kept,
        manifest_uri=job.manifest_uri,
        summary_uri=job.summary_uri,
        created_at=job.completed_at - (job.total_seconds or 0.0),
        updated_at=job.completed_at,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
