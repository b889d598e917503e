"""The job's canvas, built by functions that return signatures.

A job with the ``gcp`` or ``file`` backend is ``chain(annotate, poll)``: ``poll`` waits
for the cloud API's operation without holding a worker (``file`` is done at once). Once
the annotations are ready, ``poll`` sends :func:`render_canvas`:
``chord(render_batch per batch of kept objects, assemble_summary)``.

A job with the ``local`` backend is our own work, so nothing polls it: ``annotate``
probes the video, plans the segments and sends :func:`tracking_canvas`,
``chord(track_segment per segment, stitch)``, and ``stitch`` sends the render chord.

The job id is never a Celery task id: every task, a chord's body included, has an id of
its own, so Flower shows each task as itself. The job id travels in the tasks' arguments
(the spec, or ``job_id``) and as the stamp :data:`JOB_STAMP` on every message of the job:
:func:`job_canvas`, :func:`tracking_canvas` and :func:`render_canvas` stamp what they
build, so a cancel revokes the job's tasks by that stamp alone
(``revoke_by_stamped_headers``), and link ``job_failed`` as the error callback. The job's
truth is its record while it runs and its manifest once it ends (the record's
``manifest_uri``), not any task's result.

Signatures are built by task name, so this module does not import the tasks and the
shapes can be compared in tests without a broker.
"""

from __future__ import annotations

from typing import Any

from celery import chain, chord
from celery.canvas import Signature, StampingVisitor

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

# The stamp (a message header) naming the job of every task message: what a cancel revokes.
JOB_STAMP = "vtrack_job"


class JobStamp(StampingVisitor):  # type: ignore[misc]
    """Stamps every signature of a canvas (header, body, chain links) with its job's id."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    def on_signature(self, sig: Signature, **headers: Any) -> dict[str, Any]:
        return {JOB_STAMP: self.job_id}


def stamped(canvas: Signature, job_id: str) -> Signature:
    """``canvas`` with :data:`JOB_STAMP` = ``job_id`` on each of its messages.

    Stamp before linking the error callback: ``job_failed`` must run even for a job whose
    stamp was revoked (it leaves a cancelled job as it is).
    """
    canvas.stamp(visitor=JobStamp(job_id))
    return canvas


def _stamped_chord(header: list[Signature], body: Signature, job_id: str) -> Signature:
    """``chord(header, body)`` with each of its messages stamped (one by one: stamping the
    chord itself would turn its header list into a group); a failure marks the job failed."""
    return chord([stamped(sig, job_id) for sig in header], _failing(stamped(body, job_id), job_id))


def _failing(canvas: Signature, job_id: str) -> Signature:
    """``canvas`` with ``job_failed`` as its error callback (a chord's body's are called
    when a part fails; Celery warns on ``chord.link_error``, which links the same)."""
    canvas.link_error(job_failed_signature(job_id))
    return canvas


def job_failed_signature(job_id: str) -> Signature:
    return app.signature(JOB_FAILED, kwargs={"job_id": job_id})


def job_canvas(spec: JobSpec) -> Signature:
    """The job as sent at submission, stamped with the job id; failures mark it failed.

    ``local``: ``annotate`` alone (it sends the tracking chord). Others:
    ``annotate`` then ``poll``.
    """
    spec_dict = spec.model_dump(mode="json")
    canvas: Signature
    if spec.backend in CHORD_BACKENDS:
        canvas = app.signature(ANNOTATE, args=(spec_dict,))
    else:
        canvas = chain(
            app.signature(ANNOTATE, args=(spec_dict,), immutable=True),
            app.signature(POLL, kwargs={"spec": spec_dict}),
        )
    return _failing(stamped(canvas, spec.job_id), spec.job_id)


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
    return _stamped_chord(header, body, spec.job_id)


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
        assemble = app.signature(
            ASSEMBLE_SUMMARY, args=([],), kwargs={"spec": spec_dict, "plan": plan_summary}
        )
        return _failing(stamped(assemble, spec.job_id), spec.job_id)
    header = [
        app.signature(
            RENDER_BATCH,
            args=(spec_dict, [kept.model_dump(mode="json") for kept in batch]),
            immutable=True,
        )
        for batch in render_batches(plan.kept, spec.render_batch_size)
    ]
    body = app.signature(ASSEMBLE_SUMMARY, kwargs={"spec": spec_dict, "plan": plan_summary})
    return _stamped_chord(header, body, spec.job_id)
