"""The job's canvas, built by functions that return signatures.

A job is ``chain(annotate, poll)``. Once the annotations are ready, ``poll`` replaces
itself with :func:`render_canvas`: ``chord(render_object per kept object,
assemble_summary)``. Because Celery's ``replace`` hands the replaced task's id to the
chord's body, the job id (the id of ``poll``) ends up holding the manifest.

Signatures are built by task name, so this module does not import the tasks and the
shapes can be compared in tests without a broker.
"""

from __future__ import annotations

from dataclasses import replace

from celery import chain, chord
from celery.canvas import Signature

from tasks.celery_app import app
from workers.job import JobSpec, RenderPlan

ANNOTATE = "vtrack.annotate"
POLL = "vtrack.poll"
RENDER_OBJECT = "vtrack.render_object"
ASSEMBLE_SUMMARY = "vtrack.assemble_summary"
JOB_FAILED = "vtrack.job_failed"


def job_failed_signature(job_id: str) -> Signature:
    return app.signature(JOB_FAILED, kwargs={"job_id": job_id})


def job_canvas(spec: JobSpec) -> Signature:
    """``annotate`` then ``poll``; ``poll`` carries the job id; any failure marks the job failed."""
    spec_dict = spec.to_dict()
    canvas = chain(
        app.signature(ANNOTATE, args=(spec_dict,), immutable=True),
        app.signature(POLL, kwargs={"spec": spec_dict}).set(task_id=spec.job_id),
    )
    canvas.link_error(job_failed_signature(spec.job_id))
    return canvas


def render_canvas(spec: JobSpec, plan: RenderPlan) -> Signature:
    """One ``render_object`` per kept object in parallel, then ``assemble_summary``.

    With no object to render this is ``assemble_summary`` alone: an empty chord header is
    a corner Celery has handled differently across versions, and a job must never hang.
    """
    spec_dict = spec.to_dict()
    # The assembler needs the plan's video and counts, not every kept object's frames.
    plan_summary = replace(plan, kept=()).to_dict()
    if not plan.kept:
        return app.signature(
            ASSEMBLE_SUMMARY, args=([],), kwargs={"spec": spec_dict, "plan": plan_summary}
        )
    header = [
        app.signature(RENDER_OBJECT, args=(spec_dict, kept.to_dict()), immutable=True)
        for kept in plan.kept
    ]
    body = app.signature(ASSEMBLE_SUMMARY, kwargs={"spec": spec_dict, "plan": plan_summary})
    return chord(header, body)
