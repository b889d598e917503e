"""Running a whole job in this process: no broker, no Celery, no network.

``vtrack run`` uses it. The job's steps are the service's own (:mod:`workers.steps`, the
local backend's segment plan and stitch), called directly: annotate, track the segments,
plan the render, render the batches, assemble. The parallel steps (tracking segments,
rendering batches) run in a pool of processes, one per core by default
(``--processes N``, ``VTRACK_RUN_PROCESSES``), so the outputs are exactly what the workers
would write, made with the whole machine.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import Settings, get_settings, usable_cores
from tasks.backends import build_annotator
from tasks.jobstore import JobRecord, JobStore, MemoryJobStore, finished_fields
from tasks.local_backend import LocalSegmentsAnnotator, SegmentProgress, stitch_operation
from tasks.specs import make_spec
from workers import steps
from workers.annotations.model import Segment, VideoAnnotation
from workers.annotators.base import AnnotateRequest
from workers.errors import BackendError, InputError
from workers.job import JobSpec, JobStatus, KeptObject, ObjectResult, render_batches
from workers.media.video import VideoInfo, decode_threads, set_decode_threads
from workers.storage import Storage, open_storage


def run_processes(settings: Settings, requested: int | None = None) -> int:
    """How many processes ``vtrack run`` uses: asked for, else the setting, else every core.

    Every core this process may run on: a container's CPU set or ``taskset`` counts, not the
    machine's cores (more processes than cores only makes them take turns).
    """
    return max(1, requested or settings.run_processes or usable_cores())


# Fewer objects than this render in vtrack run's own process: starting a process of the
# pool (importing PyAV, Pillow, NumPy: about half a second) costs more than it saves. Their
# batches still run side by side, in threads: decoding, scaling and GIF encoding release
# the GIL.
RUN_POOL_MIN_OBJECTS = 24

# Most objects one batch of vtrack run holds decoded frames for: 64 objects x 12 frames at
# 480 px is about 300 MB per process.
RUN_BATCH_LIMIT = 64


def run_tracking_threads(processes: int, segments: int) -> dict[str, int | None]:
    """The local backend's thread options for tracking ``segments`` on ``processes`` cores.

    One segment is tracked in this process, its detector on every core (onnxruntime's
    threads give the same boxes as one thread, about 1.4 to 1.7 times as fast on two cores).
    Several segments are tracked side by side, one pool process per core: each runs its
    detector on its share of the cores and decodes on one thread, as FFmpeg's own threads
    would only take turns with the other processes (about 5% slower).
    """
    if segments <= 1 or processes <= 1:
        return {"inference_threads": processes, "decode_threads": None}
    side_by_side = min(processes, segments)
    return {"inference_threads": max(1, processes // side_by_side), "decode_threads": 1}


def run_batch_size(objects: int, spec: JobSpec, processes: int) -> int:
    """Objects per render batch in ``vtrack run``: about two batches per process.

    Workers of the service get small batches (``VTRACK_RENDER_BATCH_SIZE``) to spread a job
    over many machines; in one process pool, fewer and longer batches decode less (each
    batch decodes from the keyframe before its first frame to its last frame, so
    neighbouring batches overlap) while still keeping every process busy. The outputs are
    the same whatever the batches.
    """
    wanted = math.ceil(objects / (2 * max(1, processes)))
    return max(spec.render_batch_size, min(RUN_BATCH_LIMIT, wanted))


def run_video(
    video: Path,
    out_dir: Path,
    *,
    annotations: Path | None = None,
    backend: str | None = None,
    min_confidence: float | None = None,
    min_frames: int | None = None,
    animation_format: str | None = None,
    listener: Callable[[JobRecord], None] | None = None,
    processes: int | None = None,
    settings: Settings | None = None,
    notice: Callable[[str], None] | None = None,
) -> JobRecord:
    """Run the job for a local ``video`` and return its final record.

    Outputs go to ``out_dir``; ``listener`` sees every change of the job's record (stage
    and percent), for progress displays; ``notice`` gets one-off messages for the user
    (the default detector being converted on first use). Errors in the input (a missing or
    broken video, bad annotations) are raised after the record is marked failed, as the
    service's job would fail; one object failing to render only marks that object failed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    configured = settings or get_settings()
    settings = configured.model_copy(
        update={"output_root": str(out_dir), "annotation_root": str(out_dir)}
    )
    roots = [str(video.parent), str(out_dir)]
    if annotations is not None:
        roots.append(str(annotations.parent))
    jobs = MemoryJobStore(listener=listener)
    spec = make_spec(
        str(video),
        annotations_uri=str(annotations) if annotations else None,
        backend=backend,
        min_confidence=min_confidence,
        min_frames=min_frames,
        animation_format=animation_format,
        settings=settings,
    )
    jobs.create(JobRecord(job_id=spec.job_id, video_uri=spec.video_uri, backend=spec.backend))
    runner = InProcessJob(
        spec, settings, roots, jobs, run_processes(settings, processes), notice or (lambda _: None)
    )
    try:
        runner.run()
    except BaseException as exc:
        jobs.update(
            spec.job_id,
            status=JobStatus.FAILED,
            stage="failed",
            error=steps.describe_error(exc),
            error_kind="input" if isinstance(exc, InputError) else "internal",
        )
        raise
    record = jobs.get(spec.job_id)
    if record is None:
        raise RuntimeError(f"job {spec.job_id} left no record")
    if record.manifest_uri:
        record_in_output_catalog(record.manifest_uri, run_catalog_url(configured, out_dir))
    return record


def run_catalog_url(settings: Settings, out_dir: Path) -> str:
    """The catalog that the web app of ``out_dir`` reads: ``VTRACK_CATALOG_URL`` when
    ``out_dir`` is the configured output root, else the SQLite file inside ``out_dir``."""
    from workers.catalog import location
    from workers.uris import parse_uri

    root = parse_uri(settings.output_root)
    if root.is_local and Path(root.path).resolve() == out_dir.resolve():
        return location.catalog_url(settings.catalog_url, settings.output_root)
    return location.default_catalog_url(str(out_dir))


def record_in_output_catalog(manifest_uri: str, url: str) -> bool:
    """Record the finished job's manifest in the catalog at ``url``; never fails the run.

    A catalog that cannot be written costs one warning: the outputs are complete, and
    ``vtrack catalog rebuild`` records them later.
    """
    import json
    import logging

    from workers.catalog import Catalog
    from workers.job import Manifest

    catalog = Catalog(url)
    try:
        manifest = Manifest.model_validate(json.loads(Path(manifest_uri).read_bytes()))
        catalog.record(manifest)
        return True
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        logging.getLogger(__name__).warning(
            "results not recorded in the catalog %s (%s: %s); `vtrack catalog rebuild` "
            "records them",
            catalog.describe(),
            type(exc).__name__,
            first,
        )
        return False
    finally:
        catalog.dispose()


@dataclass
class InProcessJob:
    """One job's steps, in order, with the parallel ones spread over ``processes``."""

    spec: JobSpec
    settings: Settings
    roots: Sequence[str]
    jobs: JobStore
    processes: int
    notice: Callable[[str], None]

    def run(self) -> None:
        storage = open_storage(self.roots)
        with _pool(self.processes, self.roots) as pool:
            annotation, info, publish = self._annotate(storage, pool)
            plan = steps.plan_render(
                self.spec, annotation, storage, publish_annotation=publish, info=info
            )
            total = len(plan.kept)
            self.jobs.update(
                self.spec.job_id,
                status=JobStatus.RENDERING,
                stage=f"rendering 0 of {total} objects",
                percent=0.0,
                objects_total=total,
                objects_done=0,
            )
            results = self._render(plan.kept, storage, pool)
        self.jobs.update(
            self.spec.job_id, status=JobStatus.ASSEMBLING, stage="assembling the summary"
        )
        manifest = steps.assemble_manifest(self.spec, plan, results, storage)
        self.jobs.update(self.spec.job_id, **finished_fields(manifest))

    def _annotate(
        self, storage: Storage, pool: _Pool
    ) -> tuple[VideoAnnotation, VideoInfo | None, bool]:
        """The video's annotations, its probe when tracking made one, whether to publish them."""
        job = self.spec
        self.jobs.update(
            job.job_id, status=JobStatus.ANNOTATING, stage="starting annotation", percent=0.0
        )
        if job.backend != "local":
            annotator = build_annotator(job.backend, self.settings, storage)
            operation = steps.start_annotation(job, annotator, storage)
            status = annotator.check(operation)
            if not status.done or status.annotation is None:
                raise BackendError(f"the {job.backend} backend cannot run in this process")
            return status.annotation, None, not operation.data.get("api_output_uri")
        steps.check_inputs(job, storage)
        operation = LocalSegmentsAnnotator(self.settings, storage).start(
            AnnotateRequest(video_uri=job.video_uri, output_uri="", job_id=job.job_id)
        )
        segments = operation.data["segments"]
        options = operation.data["options"]
        self._prepare_detector(options)
        results = pool.track(job, segments, options, storage, self.jobs)
        self.jobs.update(job.job_id, stage="stitching segments", percent=100.0)
        annotation = stitch_operation(operation, results)
        return annotation, VideoInfo.model_validate(operation.data["video"]), True

    def _prepare_detector(self, options: dict[str, Any]) -> None:
        """Convert the default detector here, once, saying so, before the pool's processes
        need it (they would each wait for it in silence); say so too when its int8 copy is
        to be made (the first of the pool's processes makes it, the others wait for it)."""
        from workers.local.backend import (
            LocalTrackingOptions,
            default_model_to_convert,
            default_model_to_quantize,
            ensure_default_model,
        )

        tracking = LocalTrackingOptions.model_validate(options)
        target = default_model_to_convert(tracking)
        if target is not None:
            self.jobs.update(self.spec.job_id, stage="converting the detector (first use)")
            self.notice(
                "first use: converting the default detector (YOLOv3-tiny) to ONNX, a few "
                f"seconds; cached in {target.parent}"
            )
            ensure_default_model(target.parent, weights_url=tracking.model_url)
        quantized = default_model_to_quantize(tracking)
        if quantized is not None:
            self.notice(
                "first use: quantizing the default detector to int8, a few seconds; "
                f"cached in {quantized.parent}"
            )

    def _render(
        self, kept: Sequence[KeptObject], storage: Storage, pool: _Pool
    ) -> list[ObjectResult]:
        batches = render_batches(kept, run_batch_size(len(kept), self.spec, self.processes))
        return pool.render(self.spec, batches, storage, self.jobs)


# --- the pool ---------------------------------------------------------------------------


class _Pool:
    """Runs the parallel steps on ``cores`` cores: inline (one process) or in worker processes."""

    def __init__(self, executor: Executor | None, events: Any, cores: int = 1) -> None:
        self._executor = executor
        self._events = events
        self._cores = cores

    def track(
        self,
        job: JobSpec,
        segments: Sequence[dict[str, Any]],
        options: dict[str, Any],
        storage: Storage,
        jobs: JobStore,
    ) -> list[dict[str, Any]]:
        """Each segment's annotation (as a dict), in segment order."""
        total = len(segments)
        options = {**options, **run_tracking_threads(self._cores, total)}
        if self._executor is None or total == 1:
            return [
                _track(
                    job.video_uri,
                    segment,
                    options,
                    SegmentProgress(jobs, job.job_id, number, total),
                    storage,
                )
                for number, segment in enumerate(segments, 1)
            ]
        fractions = [0.0] * total
        report = SegmentProgress(jobs, job.job_id, 1, total)

        def on_event(event: tuple[Any, ...]) -> None:
            _, number, fraction = event
            fractions[number - 1] = fraction
            done = sum(1 for f in fractions if f >= 1.0)
            report.report(f"tracking {total} segments, {done} done", sum(fractions) / total)

        with _relay(self._events, on_event):
            futures = [
                self._executor.submit(_track_in_worker, job.video_uri, segment, options, n)
                for n, segment in enumerate(segments, 1)
            ]
            return [future.result() for future in futures]

    def render(
        self,
        job: JobSpec,
        batches: Sequence[Sequence[KeptObject]],
        storage: Storage,
        jobs: JobStore,
    ) -> list[ObjectResult]:
        objects = sum(len(batch) for batch in batches)
        if self._executor is None or len(batches) == 1 or objects < RUN_POOL_MIN_OBJECTS:

            def render(batch: Sequence[KeptObject]) -> list[ObjectResult]:
                return steps.render_kept_objects(
                    job, batch, storage, on_done=lambda _: jobs.object_done(job.job_id)
                )

            side_by_side = min(self._cores, len(batches))
            # Batches decoding side by side on every core: one decoding thread each.
            one_each = 1 if side_by_side > 1 and side_by_side >= usable_cores() else None
            with decode_threads(one_each), ThreadPoolExecutor(max_workers=self._cores) as threads:
                return [result for part in threads.map(render, batches) for result in part]
        futures = [self._executor.submit(_render_in_worker, job, batch) for batch in batches]
        with _relay(self._events, lambda _: jobs.object_done(job.job_id)):
            results: list[ObjectResult] = []
            for future in as_completed(futures):
                results.extend(future.result())
        return results


@contextmanager
def _pool(processes: int, roots: Sequence[str]) -> Iterator[_Pool]:
    if processes <= 1:
        yield _Pool(None, None, cores=processes)
        return
    # spawn: worker processes start clean (no copy of this process's threads or clients).
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    with ProcessPoolExecutor(
        max_workers=processes,
        mp_context=context,
        initializer=_init_worker,
        # One decoding thread each when the pool has a process per core (render batches
        # decode side by side); tracking segments say so in their own options.
        initargs=(list(roots), events, 1 if processes >= usable_cores() else None),
    ) as executor:
        yield _Pool(executor, events, cores=processes)


@contextmanager
def _relay(events: Any, handle: Callable[[tuple[Any, ...]], None]) -> Iterator[None]:
    """Hand the worker processes' progress events to ``handle`` in a thread of this process."""
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                continue
            handle(event)

    thread = threading.Thread(target=drain, name="vtrack-run-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        while True:  # events sent just before the end
            try:
                handle(events.get_nowait())
            except queue.Empty:
                break


# --- what runs in a worker process ------------------------------------------------------

_worker_storage: Storage | None = None
_worker_events: Any = None


def _init_worker(roots: list[str], events: Any, decoding_threads: int | None) -> None:
    global _worker_storage, _worker_events
    set_decode_threads(decoding_threads)
    _worker_storage = open_storage(roots)
    _worker_events = events


def _track(
    video_uri: str,
    segment: dict[str, Any],
    options: dict[str, Any],
    progress: Callable[[float], None] | None,
    storage: Storage,
) -> dict[str, Any]:
    from workers.local.backend import LocalTrackingOptions, track_segment

    with storage.local_copy(video_uri) as path:
        annotation = track_segment(
            path,
            Segment.from_dict(segment),
            LocalTrackingOptions.model_validate(options),
            input_uri=video_uri,
            progress=progress,
        )
    return annotation.to_dict()


def _track_in_worker(
    video_uri: str, segment: dict[str, Any], options: dict[str, Any], number: int
) -> dict[str, Any]:
    events = _worker_events
    last = [-1.0]

    def progress(fraction: float) -> None:
        if fraction - last[0] >= 0.02 or fraction >= 1.0:  # about 50 events a segment
            last[0] = fraction
            events.put(("segment", number, fraction))

    assert _worker_storage is not None
    return _track(video_uri, segment, options, progress, _worker_storage)


def _render_in_worker(job: JobSpec, batch: Sequence[KeptObject]) -> list[ObjectResult]:
    assert _worker_storage is not None
    events = _worker_events
    return steps.render_kept_objects(
        job, batch, _worker_storage, on_done=lambda _: events.put(("object",))
    )


__all__ = ["InProcessJob", "run_processes", "run_video"]
