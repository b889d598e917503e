"""The local backend's Celery side: a group of segment tasks is its long-running operation.

``start`` cuts the video into time segments (``VTRACK_SEGMENT_SECONDS`` with
``VTRACK_SEGMENT_OVERLAP``) and sends one ``track_segment`` task per segment, so a long
video is tracked by every free worker at once. ``check`` looks at those tasks the way the
Google backend looks at its operation: not done, progress in segments; a failed segment
fails the job; all done, the tracks are stitched across the boundaries.

In ``vtrack run`` (eager mode) the group runs in this process during ``start``, and its
results are kept in memory for ``check``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from celery import group
from celery.result import AsyncResult, EagerResult

from config.settings import Settings
from tasks.celery_app import app
from tasks.jobstore import JobStore
from workers.annotations.model import Segment, VideoAnnotation
from workers.annotators import register_annotator
from workers.annotators.base import AnnotateRequest, Operation, OperationStatus
from workers.errors import BackendError, VtrackError
from workers.local.backend import LocalTrackingOptions, plan_segments, stitch_segments
from workers.media.video import VideoLimits, probe_video
from workers.storage import Storage

TRACK_SEGMENT = "vtrack.track_segment"


def local_tracking_options(settings: Settings) -> LocalTrackingOptions:
    return LocalTrackingOptions(
        detector_model=settings.detector_model or None,
        model_cache_dir=settings.model_cache_dir or None,
        model_url=settings.model_url or None,
        tracker=settings.tracker,
        process_fps=settings.process_fps or None,
        confidence_threshold=settings.detection_confidence or None,
        track_activation_threshold=settings.track_activation or None,
        inference_threads=settings.inference_threads or None,
    )


class SegmentProgress:
    """Reports how far one segment's tracking is to its job's record, at most once a second.

    A more frequent report would cost a Redis write per processed frame for no one's benefit;
    in a worker, each report is also the task's PROGRESS state that Flower shows.
    """

    def __init__(
        self, jobs: JobStore, job_id: str, number: int, total: int, interval: float = 1.0
    ) -> None:
        self._jobs = jobs
        self._job_id = job_id
        self._label = "tracking objects" if total == 1 else f"tracking segment {number} of {total}"
        self._interval = interval
        self._last = float("-inf")

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        percent = round(100.0 * min(max(fraction, 0.0), 1.0), 1)
        self._jobs.update(self._job_id, stage=f"{self._label} ({percent:.0f}%)", percent=percent)


class LocalSegmentsAnnotator:
    name = "local"

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self._settings = settings
        self._storage = storage
        self._options = local_tracking_options(settings)
        self._eager_results: dict[str, list[EagerResult]] = {}
        self._lock = threading.Lock()

    def start(self, request: AnnotateRequest) -> Operation:
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
        options = self._options.to_dict()
        tracking = group(
            app.signature(
                TRACK_SEGMENT,
                args=(request.video_uri, segment.to_dict(), options),
                kwargs={"job_id": request.job_id, "number": number, "total": len(segments)},
            )
            for number, segment in enumerate(segments, 1)
        )
        result = tracking.apply_async()
        children = list(result.results)
        if app.conf.task_always_eager:
            with self._lock:
                self._eager_results[result.id] = children
        return Operation(
            backend=self.name,
            name=result.id,
            request=request,
            data={
                "segments": [segment.to_dict() for segment in segments],
                "task_ids": [child.id for child in children],
                "overlap": overlap,
                "options": options,
            },
        )

    def check(self, operation: Operation) -> OperationStatus:
        results = self._results(operation)
        failed = [(number, result) for number, result in enumerate(results, 1) if result.failed()]
        if failed:
            number, result = failed[0]
            raise BackendError(
                f"tracking segment {number} of {len(results)} failed: {_reason(result.result)}"
            )
        done = sum(1 for result in results if result.successful())
        if done < len(results):
            return OperationStatus(
                done=False,
                progress_percent=round(100.0 * done / len(results), 1),
                detail=f"tracking: {done} of {len(results)} segments done",
            )
        parts = [
            (Segment.from_dict(segment), VideoAnnotation.from_dict(result.result))
            for segment, result in zip(operation.data["segments"], results, strict=True)
        ]
        annotation = stitch_segments(
            parts,
            float(operation.data["overlap"]),
            options=LocalTrackingOptions.from_dict(operation.data["options"]),
            input_uri=operation.request.video_uri,
        )
        for result in results:
            result.forget()  # the stitched annotation is all that is needed from now on
        with self._lock:
            self._eager_results.pop(operation.name, None)
        return OperationStatus(done=True, progress_percent=100.0, annotation=annotation)

    def _results(self, operation: Operation) -> list[Any]:
        with self._lock:
            eager = self._eager_results.get(operation.name)
        if eager is not None:
            return eager
        return [AsyncResult(task_id, app=app) for task_id in operation.data["task_ids"]]


def _reason(exc: Any) -> str:
    if isinstance(exc, VtrackError):
        return str(exc)
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}"
    return str(exc)


register_annotator("local", LocalSegmentsAnnotator)
