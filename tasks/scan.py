"""Scans: find the videos of a folder or bucket that need a job, and start those jobs.

celery beat sends ``vtrack.scan_source`` (:mod:`tasks.service_tasks`) for each
``VTRACK_SCAN_SOURCES`` entry on the ``VTRACK_SCAN_SCHEDULE`` (see :mod:`config.beat`);
``vtrack scan SOURCE`` calls :func:`scan_source` directly. A scan is idempotent: it starts
a job only for a video with no manifest made from its current version, no job in flight
and no recent failure, so running it again, or from two places at once, starts nothing
twice. That also makes it the reconciler: a job lost with its queue leaves no manifest,
and the next scan starts it again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tasks import runtime
from tasks.api import make_spec, start_job
from workers.messages import Message
from workers.service import scanning
from workers.service.scanning import VideoVersion
from workers.storage import ObjectStat

log = logging.getLogger(__name__)

# Why a listed video was not started; the keys of ScanReport.skipped.
SKIP_PROCESSED = "processed"
SKIP_IN_FLIGHT = "in_flight"
SKIP_RECENTLY_FAILED = "recently_failed"
SKIP_BEING_WRITTEN = "being_written"
SKIP_OVER_LIMIT = "over_limit"


class StartedJob(Message):
    """A job a scan started, and for which video."""

    video_uri: str
    job_id: str


class ScanReport(Message):
    """What one scan of one source found and did (``vtrack.scan_source``'s result)."""

    source: str
    videos: int
    started: tuple[StartedJob, ...]
    skipped: dict[str, int]  # why -> how many, in the order first met
    seconds: float  # rounded to the millisecond

    @property
    def job_ids(self) -> list[str]:
        return [job.job_id for job in self.started]

    def describe(self) -> str:
        skipped = ", ".join(f"{count} {why}" for why, count in sorted(self.skipped.items()))
        return f"{self.source}: {self.videos} video(s), {len(self.started)} job(s) started" + (
            f"; skipped: {skipped}" if skipped else ""
        )


@dataclass(frozen=True)
class VideoOutcome:
    """What became of one found video: a job started (``reason`` None) or why not."""

    video_uri: str
    job_id: str | None = None
    reason: str | None = None

    @property
    def started(self) -> bool:
        return self.reason is None


def start_video_job(video: ObjectStat, min_age: float = 0.0, source: str = "scan") -> VideoOutcome:
    """Start a job for a found ``video`` unless it needs none: the one path of scans,
    ``vtrack listen`` and ``vtrack watch``.

    Nothing starts for a video whose manifest was made from this version (its stamp), one
    with a job in flight (its claim), one whose job failed lately for this version, or a
    local file modified less than ``min_age`` seconds ago (maybe still being written).
    ``source`` is how the job is started, as job lists show it (scan, event or watch).
    """
    rt = runtime.current()
    if scanning.still_being_written(video, min_age):
        return VideoOutcome(video.uri, reason=SKIP_BEING_WRITTEN)
    claims = rt.claims()
    if claims is not None:
        if claims.is_done(video, rt.settings.output_root, rt.settings.input_root_list()):
            return VideoOutcome(video.uri, reason=SKIP_PROCESSED)
        if claims.failed_recently(video):
            return VideoOutcome(video.uri, reason=SKIP_RECENTLY_FAILED)
    spec = make_spec(video.uri, **_job_options(video))
    job = start_job(spec, VideoVersion.of(video), source=source)
    if job.id != spec.job_id:
        return VideoOutcome(video.uri, job_id=job.id, reason=SKIP_IN_FLIGHT)
    return VideoOutcome(video.uri, job_id=job.id)


def scan_source(source: str, max_jobs: int | None = None) -> ScanReport:
    """Start jobs for the videos of ``source`` that need one, oldest first, at most ``max_jobs``.

    ``max_jobs`` defaults to ``VTRACK_SCAN_MAX_JOBS``. Local sources must lie within
    ``VTRACK_INPUT_ROOTS`` or ``VTRACK_SCAN_SOURCES`` (the storage refuses anything else).
    """
    started_at = time.monotonic()
    rt = runtime.current()
    settings = rt.settings
    limit = settings.scan_max_jobs if max_jobs is None else max_jobs
    videos = scanning.list_videos(rt.storage, source)
    started: list[StartedJob] = []
    skipped: Counter[str] = Counter()
    for position, video in enumerate(videos):
        if len(started) >= limit:
            skipped[SKIP_OVER_LIMIT] += len(videos) - position
            break
        outcome = start_video_job(video, settings.scan_min_age)
        if outcome.reason is not None or outcome.job_id is None:
            skipped[outcome.reason or SKIP_IN_FLIGHT] += 1
            continue
        log.info("scan of %s started job %s for %s", source, outcome.job_id, video.uri)
        started.append(StartedJob(video_uri=video.uri, job_id=outcome.job_id))
    return ScanReport(
        source=source,
        videos=len(videos),
        started=tuple(started),
        skipped=dict(skipped),
        seconds=round(time.monotonic() - started_at, 3),
    )


def _job_options(video: ObjectStat) -> dict[str, Any]:
    """With ``VTRACK_SCAN_SIDECAR_ANNOTATIONS``, a ``VIDEO.json`` beside it is used."""
    rt = runtime.current()
    if rt.settings.scan_sidecar_annotations:
        sidecar = scanning.sidecar_annotation_uri(video.uri)
        if rt.storage.exists(sidecar):
            return {"annotations_uri": sidecar, "backend": "file"}
    return {}
