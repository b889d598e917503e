"""Running a whole job in this process: no broker, no result store, no network.

``vtrack run`` uses it. The canvas is the service's own, run eagerly: every task runs
inline, in order, with a result store kept in memory, so the output is exactly what the
workers would write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from config.settings import get_settings
from tasks import runtime
from tasks.api import make_spec, start_job
from tasks.celery_app import app
from tasks.jobstore import JobRecord, MemoryJobStore
from workers.storage import open_storage

IN_MEMORY_RESULTS = "cache+memory://"


@contextmanager
def eager_runtime(rt: runtime.Runtime) -> Iterator[None]:
    """Run tasks eagerly in this process with ``rt``'s clients, then put things back."""
    keys = ("task_always_eager", "task_eager_propagates", "result_backend")
    previous_conf = {key: app.conf[key] for key in keys}
    missing = object()
    previous_backend = getattr(app._local, "backend", missing)
    runtime.configure(rt)
    app.conf.update(
        task_always_eager=True, task_eager_propagates=True, result_backend=IN_MEMORY_RESULTS
    )
    # Celery keeps one result-store client per thread; this thread's must not reach Redis.
    app._local.backend = app._get_backend()
    try:
        yield
    finally:
        app.conf.update(previous_conf)
        if previous_backend is missing:
            del app._local.backend
        else:
            app._local.backend = previous_backend
        runtime.configure(None)


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
) -> JobRecord:
    """Run the job for a local ``video`` and return its final record.

    Outputs go to ``out_dir``; ``listener`` sees every change of the job's record
    (stage and percent), for progress displays.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = get_settings().model_copy(
        update={"output_root": str(out_dir), "annotation_root": str(out_dir)}
    )
    roots = [str(video.parent), str(out_dir)]
    if annotations is not None:
        roots.append(str(annotations.parent))
    jobs = MemoryJobStore(listener=listener)
    with eager_runtime(runtime.Runtime(settings, open_storage(roots), jobs)):
        spec = make_spec(
            str(video),
            annotations_uri=str(annotations) if annotations else None,
            backend=backend,
            min_confidence=min_confidence,
            min_frames=min_frames,
            animation_format=animation_format,
        )
        start_job(spec)
    record = jobs.get(spec.job_id)
    if record is None:
        raise RuntimeError(f"job {spec.job_id} left no record")
    return record
