"""The job's canvas, built by functions that return signatures.

A job with the ``gcp`` or ``file`` backend is ``chain(annotate, poll)``: ``poll`` waits
for the cloud API's operation without holding a worker (``file`` is done at once). Once
the annotations are ready, ``poll`` replaces itself with :func:`render_canvas`:
``chord(render_batch per batch of kept objects, assemble_summary)``.

A job with the ``local`` backend is our own work, so nothing polls it: ``annotate``
probes the video, plans the segments and replaces itself with :func:`tracking_canvas`,
``chord(track_segment per segment, stitch)``, and ``stitch`` replaces itself with the
render chord. Because Celery's ``replace`` hands the replaced task's id to the chord's
body, the job id (given to the last task of :func:`job_canvas`) ends up holding the
manifest either way.

Signatures are built by task name, so this module does not import the tasks and the
shapes can be compared in tests without a broker.
"""

from __future__ import annotations

from typing import Any

from celery import chain, chord
from celery.canvas import Signature

from tasks.celery_app import app
from workers.job import JobSpec, RenderPlan, render_batches

ANNOTATE = "vtrack.annotate"
POLL = "vtrack.poll"
TRACK_SEGMENT = "vtrack.track_segment"
STITCH = "vtrack.stitch"
RENDER_BATCH = "vtrack.render_batch"
ASSEMBLE_SUMMARY = "vtrack.assemble_summary"
JOB_FAILED = "vtrack.job_failed"

# Backends whose work is our own tasks: tracked by a chord, never polled.
CHORD_BACKENDS = frozenset({"local"})


def job_failed_signature(job_id: str) -> Signature:
    return app.signature(JOB_FAILED, kwargs={"job_id": job_id})


def job_canvas(spec: JobSpec) -> Signature:
    """The job as sent at submission; the last task carries the job id; failures mark it failed.

    ``local``: ``annotate`` alone (it replaces itself with the tracking chord). Others:
    ``annotate`` then ``poll``.
    """
    spec_dict = spec.model_dump(mode="json")
    canvas: Signature
    if spec.backend in CHORD_BACKENDS:
        canvas = app.signature(ANNOTATE, args=(spec_dict,)).set(task_id=spec.job_id)
    else:
        canvas = chain(
            app.signature(ANNOTATE, args=(spec_dict,), immutable=True),
            app.signature(POLL, kwargs={"spec": spec_dict}).set(task_id=spec.job_id),
        )
    canvas.link_error(job_failed_signature(spec.job_id))
    return canvas


def tracking_canvas(spec: JobSpec, operation: dict[str, Any]) -> Signature:
    """One ``track_segment`` per planned segment in parallel, then ``stitch``.

    ``operation`` is what the local backend's ``start`` returned: the segments, their
    overlap, the tracking options and the video's probe (which travels on to the plan).
    """
    segments = operation["data"]["segments"]
    header = [
        app.signature(
            TRACK_SEGMENT,
            args=(spec.video_uri, segment, operation["data"]["options"]),
            kwargs={"job_id": spec.job_id, "number": number, "total": len(segments)},
            immutable=True,
        )
        for number, segment in enumerate(segments, 1)
    ]
    body = app.signature(
        STITCH, kwargs={"spec": spec.model_dump(mode="json"), "operation": operation}
    )
    return chord(header, body)


def render_canvas(spec: JobSpec, plan: RenderPlan) -> Signature:
    """One ``render_batch`` per batch of kept objects in parallel, then ``assemble_summary``.

    Batches (``spec.render_batch_size`` objects, grouped by time) each decode their stretch
    of the video once. With no object to render this is ``assemble_summary`` alone: an
    empty chord header is a corner Celery has handled differently across versions, and a
    job must never hang.
    """
    spec_dict = spec.model_dump(mode="json")
    # The assembler needs the plan's video and counts, not every kept object's frames.
    plan_summary = plan.model_copy(update={"kept": ()}).model_dump(mode="json")
    if not plan.kept:
        return app.signature(
            ASSEMBLE_SUMMARY, args=([],), kwargs={"spec": spec_dict, "plan": plan_summary}
        )
    header = [
        app.signature(
            RENDER_BATCH,
            args=(spec_dict, [kept.model_dump(mode="json") for kept in batch]),
            immutable=True,
        )
        for batch in render_batches(plan.kept, spec.render_batch_size)
    ]
    body = app.signature(ASSEMBLE_SUMMARY, kwargs={"spec": spec_dict, "plan": plan_summary})
    return chord(header, body)
