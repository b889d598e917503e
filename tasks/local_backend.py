"""The local backend's Celery side: the video's segments are tracked by a chord.

``start`` probes the video once and cuts it into time segments (``VTRACK_SEGMENT_SECONDS``
with ``VTRACK_SEGMENT_OVERLAP``); the ``annotate`` task then sends
``chord(track_segment per segment, stitch)`` (:func:`tasks.pipeline.tracking_canvas`), so a
long video is tracked by every free worker at once and nothing polls our own work. A failed
segment fails the chord, hence the job; ``stitch`` joins the tracks across the boundaries.

``vtrack run`` does not use Celery at all (:mod:`tasks.inprocess`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from config.settings import Settings
from tasks.jobstore import JobStore
from workers.annotations.model import Segment, VideoAnnotation
from workers.annotators.base import AnnotateRequest, Operation, OperationStatus
from workers.errors import BackendError
from workers.local.options import LocalTrackingOptions
from workers.local.segments import plan_segments, stitch_segments
from workers.media.video import VideoLimits, probe_video
from workers.storage import Storage

# Planning and stitching need neither the detector nor the trackers (workers.local.backend:
# onnxruntime, supervision, SciPy, most of a second to import): the process that plans and
# stitches a job (a control-queue worker, vtrack run's own process) never loads them.

TRACK_SEGMENT = "vtrack.track_segment"


def local_tracking_options(settings: Settings) -> LocalTrackingOptions:
    return LocalTrackingOptions(
        detector_model=settings.detector_model or None,
        detector=settings.detector or None,
        detector_family=settings.detector_family or None,
        detector_precision=settings.detector_precision,
        detect_tiles=settings.detect_tiles,
        model_dir=settings.model_dir or None,
        model_cache_dir=settings.model_cache_dir or None,
        model_url=settings.model_url or None,
        tracker=settings.tracker,
        process_fps=settings.process_fps or None,
        confidence_threshold=settings.detection_confidence or None,
        track_activation_threshold=settings.track_activation or None,
        inference_threads=settings.inference_threads or None,
        camera_motion=settings.camera_motion,
        reid_model=settings.reid_model or None,
        decode_ahead=settings.decode_ahead,
        still_detect_every=settings.still_detect_every,
    )


class SegmentProgress:
    """Reports how far the tracking of a job is to its record, at most once a second.

    Segments are tracked in parallel by several workers: each notes its own fraction in the
    job store, and the job's percent is their mean, so it only rises. A more frequent report
    would cost a Redis write per processed frame for no one's benefit; in a worker, each
    report is also the task's PROGRESS state that Flower shows.
    """

    def __init__(
        self,
        jobs: JobStore,
        job_id: str,
        number: int,
        total: int,
        interval: float = 1.0,
        after_report: Callable[[], None] | None = None,
    ) -> None:
        """``after_report`` runs after each report (at most once a second): a worker's check
        that the job was not cancelled, which may raise to stop the tracking."""
        self._jobs = jobs
        self._after_report = after_report
        self._job_id = job_id
        self._number = number
        self._total = total
        self._label = "tracking objects" if total == 1 else f"tracking {total} segments"
        self._interval = interval
        self._last = float("-inf")

    def __call__(self, fraction: float) -> None:
        if self._throttled(fraction):
            return
        if self._total > 1:
            fraction = self._jobs.tracking_progress(
                self._job_id, self._number, self._total, fraction
            )
        self._write(self._label, fraction)

    def report(self, label: str, fraction: float) -> None:
        """``label (N%)`` as the job's stage, unless the last report is under a second old."""
        if not self._throttled(fraction):
            self._write(label, fraction)

    def _throttled(self, fraction: float) -> bool:
        now = time.monotonic()
        if now - self._last < self._interval and fraction < 1.0:
            return True
        self._last = now
        return False

    def _write(self, label: str, fraction: float) -> None:
        percent = round(100.0 * min(max(fraction, 0.0), 1.0), 1)
        self._jobs.update(self._job_id, stage=f"{label} ({percent:.0f}%)", percent=percent)
        if self._after_report is not None:
            self._after_report()


class LocalSegmentsAnnotator:
    """Plans the local tracking of a video; the tracking itself is a chord of tasks."""

    name = "local"

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self._settings = settings
        self._storage = storage
        self._options = local_tracking_options(settings)

    def start(self, request: AnnotateRequest) -> Operation:
        """Probe the video and plan its segments; the operation carries both, nothing is sent."""
        with self._storage.local_copy(
            request.video_uri, max_bytes=self._settings.max_video_bytes or None
        ) as path:
            info = probe_video(path)
        # Refused here, before hours of tracking, not only when the render is planned.
        VideoLimits(
            max_pixels=self._settings.max_video_pixels or None,
            max_seconds=self._settings.max_video_seconds or None,
        ).check(info, request.video_uri)
        overlap = self._settings.segment_overlap
        segments = plan_segments(info, self._settings.segment_seconds, overlap)
        return Operation(
            backend=self.name,
            name=request.job_id or request.video_uri,
            request=request,
            data={
                "segments": [segment.to_dict() for segment in segments],
                "overlap": overlap,
                "options": self._options.model_dump(mode="json"),
                "video": info.model_dump(mode="json"),
            },
        )

    def check(self, operation: Operation) -> OperationStatus:
        raise BackendError(
            "local tracking runs as a chord of track_segment tasks; there is nothing to poll"
        )


def stitch_operation(operation: Operation, results: Sequence[dict[str, Any]]) -> VideoAnnotation:
    """The segments' annotations (in segment order) stitched into the video's annotation."""
    parts = [
        (Segment.from_dict(segment), VideoAnnotation.from_dict(result))
        for segment, result in zip(operation.data["segments"], results, strict=True)
    ]
    return stitch_segments(
        parts,
        float(operation.data["overlap"]),
        options=LocalTrackingOptions.model_validate(operation.data["options"]),
        input_uri=operation.request.video_uri,
        video_frames=int(operation.data.get("video", {}).get("frame_count", 0)),
    )
