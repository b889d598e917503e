"""The job's steps as plain functions: what each Celery task calls, testable without a broker.

1. :func:`start_annotation` asks a backend to start tracking (returns at once).
2. The backend is checked until done (the ``poll`` task does that with the annotator).
3. :func:`plan_render` validates the annotations against the video, publishes the
   annotation JSON and picks the objects to render.
4. :func:`render_kept_objects` renders a batch of objects from one decode pass (one
   Celery task per batch, batches in parallel).
5. :func:`assemble_manifest` builds the summary grid and writes the manifest, last.

Nothing is published for a video that fails validation in step 3; the summary and the
manifest are written only in step 5, so a failed job leaves no summary.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from workers import naming
from workers.annotations.model import VideoAnnotation
from workers.annotations.selection import check_annotation_fits, frame_minimum, select_objects
from workers.annotations.vi_json import dump_annotation_json
from workers.annotators.base import AnnotateRequest, Annotator, Operation
from workers.errors import NotFoundError, VtrackError
from workers.job import JobSpec, JobStatus, KeptObject, Manifest, ObjectResult, RenderPlan
from workers.media.render import (
    RenderedObject,
    RenderOptions,
    assemble_summary_grid,
    pick_frames,
    render_each,
)
from workers.media.video import VideoInfo, VideoLimits, probe_video
from workers.storage import Storage
from workers.uris import parse_uri

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
JPEG_TYPE = "image/jpeg"


def describe_error(exc: BaseException) -> str:
    """One line for users: our own errors speak for themselves, others say what they are."""
    if isinstance(exc, VtrackError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def describe_box_fixes(boxes_clipped: int, boxes_dropped: int) -> str:
    """What reading the boxes into the frame took, for the job's log and ``vtrack run``."""
    clipped = f"{boxes_clipped} box{'es' if boxes_clipped != 1 else ''} clipped into the frame"
    dropped = f"{boxes_dropped} empty frame{'s' if boxes_dropped != 1 else ''} dropped"
    return f"{clipped}, {dropped}"


def describe_no_summary(manifest: dict[str, Any]) -> str:
    """Why a finished job has no summary, from its manifest: nothing was detected at all,
    or objects were tracked and none passed the thresholds (or none could be rendered)."""
    found = int(manifest.get("objects_total", 0))
    if found == 0:
        if manifest.get("backend") == "file":
            return "the annotations hold no objects: no summary"
        return "no objects detected: no summary"
    if manifest.get("objects"):
        return "no object could be rendered: no summary"
    thresholds = manifest.get("thresholds", {})
    confidence = float(thresholds.get("min_confidence", 0.0))
    frames = int(thresholds.get("min_frames", 0))
    applied = int(thresholds.get("min_frames_applied", frames))
    frames_text = f"{applied} frames" + (
        f" (--min-frames {frames}, lowered for a short clip)" if applied != frames else ""
    )
    return (
        f"none of the {found} object(s) found passed the thresholds (confidence "
        f"{confidence:.2f}, {frames_text}): no summary"
    )


def check_inputs(spec: JobSpec, storage: Storage) -> None:
    """Refuse an unsupported URI or a missing video or annotation file, naming it."""
    parse_uri(spec.video_uri)  # unsupported schemes fail here, before anything starts
    storage.stat(spec.video_uri)  # NotFoundError names a missing video at once
    if spec.annotations_uri:
        storage.stat(spec.annotations_uri)


def start_annotation(spec: JobSpec, annotator: Annotator, storage: Storage) -> Operation:
    """Check the inputs exist, then start the backend's operation."""
    check_inputs(spec, storage)
    request = AnnotateRequest(
        video_uri=spec.video_uri,
        output_uri=naming.annotation_uri(spec.annotation_root, spec.stem),
        annotations_uri=spec.annotations_uri,
        job_id=spec.job_id,
    )
    return annotator.start(request)


def plan_render(
    spec: JobSpec,
    annotation: VideoAnnotation,
    storage: Storage,
    publish_annotation: bool = True,
    info: VideoInfo | None = None,
) -> RenderPlan:
    """Validate the annotations against the video and choose the objects and frames to draw.

    ``publish_annotation`` writes the annotations (camelCase JSON) as ``VIDEO.json`` under
    the annotation root; a backend that already wrote them there (the Google API writes
    its own ``output_uri``) passes False, and they are written only if missing. ``info``
    is the video's probe when an earlier step made it (the video is not read again).
    Each kept object carries only the frames its animation draws.
    """
    if info is None:
        info = probe_stored_video(spec, storage)
    limits = VideoLimits(max_pixels=spec.max_video_pixels, max_seconds=spec.max_video_seconds)
    limits.check(info, spec.video_uri)
    check_annotation_fits(annotation, info.duration, info.fps, source=spec.video_uri)
    if annotation.boxes_clipped or annotation.boxes_dropped:
        fixes = describe_box_fixes(annotation.boxes_clipped, annotation.boxes_dropped)
        log.info("job %s: %s", spec.job_id, fixes)
    remove_partial_outputs(spec, storage)
    min_frames = frame_minimum(spec.min_frames, info.frame_count)
    kept = tuple(
        obj.with_frames(pick_frames(obj.track.frames, spec.animation_frames))
        for obj in select_objects(annotation, spec.min_confidence, min_frames)
    )
    annotation_uri = naming.annotation_uri(spec.annotation_root, spec.stem)
    if not publish_annotation and storage.exists(annotation_uri):
        published = storage.stat(annotation_uri)
    else:
        data = dump_annotation_json(annotation).encode()
        published = storage.write_bytes(annotation_uri, data, JSON_TYPE)
    return RenderPlan(
        annotation_uri=annotation_uri,
        video=info.model_dump(mode="json"),
        objects_total=len(annotation.objects),
        kept=kept,
        annotated_at=time.time(),
        annotation_generation=published.generation,
        boxes_clipped=annotation.boxes_clipped,
        boxes_dropped=annotation.boxes_dropped,
    )


def remove_partial_outputs(spec: JobSpec, storage: Storage) -> list[str]:
    """Remove what an earlier job of this video rendered without finishing; their URIs.

    A job that could not finish (lost with Redis, or failed after some objects were
    rendered) leaves cells, animations, maybe a summary, and no manifest. While the video
    has no manifest, no file of its outputs belongs to anything, so the next job of the
    video (resubmitted, or started again by a scan) removes them before it renders its own.
    A video with a manifest keeps everything: those files are a finished job's.
    """
    if storage.exists(naming.manifest_uri(spec.output_root, spec.stem)):
        return []
    folder = naming.output_folder(spec.output_root, spec.stem)
    pattern = naming.rendered_output_pattern(spec.stem)
    removed = []
    for stat in list(storage.list(folder)):
        parent, _, name = stat.uri.rpartition("/")
        if parent == folder and pattern.fullmatch(name):
            try:
                storage.delete(stat.uri)
            except NotFoundError:
                continue
            removed.append(stat.uri)
    if removed:
        log.warning(
            "job %s: removed %d output(s) an earlier job of %s left without a manifest: %s",
            spec.job_id,
            len(removed),
            spec.video_uri,
            ", ".join(removed),
        )
    return removed


def probe_stored_video(spec: JobSpec, storage: Storage) -> VideoInfo:
    """Probe the job's video (a local copy of it, for a bucket's video)."""
    with storage.local_copy(spec.video_uri, max_bytes=spec.max_video_bytes) as video_path:
        return probe_video(video_path)


def render_kept_objects(
    spec: JobSpec,
    batch: Sequence[KeptObject],
    storage: Storage,
    on_done: Callable[[ObjectResult], None] | None = None,
) -> list[ObjectResult]:
    """Render a batch of objects from one decode pass; a failure fails its object alone.

    One object that cannot be rendered must not sink the job: the manifest records it as
    failed with the reason, and the job completes with errors. When decoding the batch's
    frames fails, each object is tried alone so the error lands on the objects it concerns.
    ``on_done`` sees each result as soon as its files are written (progress).
    """
    started = time.monotonic()
    try:
        with storage.local_copy(spec.video_uri, max_bytes=spec.max_video_bytes) as video_path:
            outcomes = render_each(
                video_path,
                [kept.track for kept in batch],
                RenderOptions.from_settings(spec),
                frame_counts=[kept.frame_count for kept in batch],
            )
    except Exception as exc:
        if len(batch) > 1:
            log.warning(
                "a batch of %s failed to decode (%s): objects one by one", spec.video_uri, exc
            )
            return [
                result
                for kept in batch
                for result in render_kept_objects(spec, [kept], storage, on_done)
            ]
        outcomes = [exc]
    per_object = (time.monotonic() - started) / max(1, len(batch))
    results: list[ObjectResult] = []
    for kept, outcome in zip(batch, outcomes, strict=True):
        result = _store_rendered(spec, kept, outcome, storage, per_object)
        if on_done is not None:
            on_done(result)
        results.append(result)
    return results


def _store_rendered(
    spec: JobSpec,
    kept: KeptObject,
    outcome: RenderedObject | Exception,
    storage: Storage,
    decode_seconds: float,
) -> ObjectResult:
    """Write one rendered object's files; its result, ok or failed with the reason."""
    track = kept.track
    started = time.monotonic()
    base = {
        "index": kept.index,
        "entity": track.entity.description,
        "confidence": track.confidence,
        "frame_count": kept.frame_count,
        "first_time": track.first_time,
        "last_time": track.last_time,
    }
    names = (kept.index, track.entity.description, track.confidence, kept.frame_count)
    try:
        if isinstance(outcome, Exception):
            raise outcome
        cell_uri = naming.cell_uri(spec.output_root, spec.stem, *names)
        animation_uri = naming.animation_uri(
            spec.output_root, spec.stem, *names, spec.animation_format
        )
        cell = storage.write_bytes(cell_uri, outcome.cell_jpeg, JPEG_TYPE)
        animation = storage.write_bytes(
            animation_uri, outcome.animation, outcome.animation_content_type
        )
        outcome_fields = {
            "status": "ok",
            "cell_uri": cell_uri,
            "animation_uri": animation_uri,
            "generations": {"cell": cell.generation, "animation": animation.generation},
        }
    except Exception as exc:
        log.warning("object %s of %s failed to render: %s", kept.index, spec.video_uri, exc)
        outcome_fields = {"status": "failed", "error": describe_error(exc)}
    seconds = decode_seconds + time.monotonic() - started
    return ObjectResult(**base, **outcome_fields, render_seconds=seconds)


def assemble_manifest(
    spec: JobSpec,
    plan: RenderPlan,
    results: Sequence[ObjectResult],
    storage: Storage,
    before_write: Callable[[], None] = lambda: None,
) -> Manifest:
    """Build the summary grid from the rendered cells, then write the manifest, last;
    ``before_write`` runs right before each is written (a worker's cancel check: it raises).

    With no object rendered there is no summary (``summary_uri`` is null): a job with zero
    kept objects completes with an empty object list, one whose renders all failed
    completes with errors.
    """
    started = time.time()
    results = sorted(results, key=lambda result: result.index)
    info = VideoInfo.model_validate(plan.video)
    rendered = [result for result in results if result.status == "ok" and result.cell_uri]
    summary_uri: str | None = None
    summary_generation: str | None = None
    if rendered:
        cells = [storage.read_bytes(result.cell_uri) for result in rendered if result.cell_uri]
        grid = assemble_summary_grid(
            cells,
            info.width,
            info.height,
            max_width=spec.summary_max_width,
            max_height=spec.summary_max_height,
        )
        summary_uri = naming.summary_uri(
            spec.output_root, spec.stem, spec.min_confidence, spec.min_frames
        )
        before_write()
        summary_generation = storage.write_bytes(summary_uri, grid, JPEG_TYPE).generation
    errors = tuple(
        f"object {result.index} ({result.entity}): {result.error}"
        for result in results
        if result.status == "failed"
    )
    finished = time.time()
    manifest = Manifest(
        job_id=spec.job_id,
        video_uri=spec.video_uri,
        backend=spec.backend,
        status=JobStatus.COMPLETED_WITH_ERRORS if errors else JobStatus.COMPLETED,
        thresholds={
            "min_confidence": spec.min_confidence,
            "min_frames": spec.min_frames,
            # What this video's objects were held to: fewer frames on a short clip.
            "min_frames_applied": frame_minimum(spec.min_frames, info.frame_count),
        },
        video=info.model_dump(mode="json"),
        objects_total=plan.objects_total,
        objects=tuple(results),
        summary_uri=summary_uri,
        annotation_uri=plan.annotation_uri,
        manifest_uri=naming.manifest_uri(spec.output_root, spec.stem),
        timings={
            "annotate_seconds": round(plan.annotated_at - spec.submitted_at, 3),
            "render_seconds": round(started - plan.annotated_at, 3),
            "assemble_seconds": round(finished - started, 3),
            "total_seconds": round(finished - spec.submitted_at, 3),
        },
        errors=errors,
        generations={"summary": summary_generation, "annotation": plan.annotation_generation},
        boxes_clipped=plan.boxes_clipped,
        boxes_dropped=plan.boxes_dropped,
    )
    before_write()
    write_manifest(manifest, storage)
    return manifest


def write_manifest(manifest: Manifest, storage: Storage) -> None:
    text = json.dumps(manifest.model_dump(mode="json"), indent=2, ensure_ascii=False)
    storage.write_bytes(manifest.manifest_uri, text.encode(), JSON_TYPE)
