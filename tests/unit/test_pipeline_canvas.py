"""The job's canvas shapes, compared as signatures without a broker."""

from __future__ import annotations

from celery import chord
from celery.canvas import _chain

from tasks.pipeline import job_canvas, render_canvas
from workers.annotations.model import Entity, NormalizedBox, ObjectTrack, Segment, TrackedFrame
from workers.job import JobSpec, KeptObject, RenderPlan


def make_spec() -> JobSpec:
    return JobSpec(
        job_id="job-1",
        video_uri="/videos/dog.mp4",
        backend="file",
        output_root="/out",
        annotation_root="/out",
        annotations_uri="/videos/dog.json",
    )


def make_plan(kept: int) -> RenderPlan:
    track = ObjectTrack(
        entity=Entity("/m/0bt9lr", "dog"),
        confidence=0.9,
        segment=Segment(0.0, 1.0),
        frames=(TrackedFrame(0.0, NormalizedBox(0.1, 0.1, 0.5, 0.5)),),
    )
    return RenderPlan(
        annotation_uri="/out/dog.mp4.json",
        video={"duration": 1.0, "fps": 30.0, "width": 64, "height": 48, "frame_count": 30},
        objects_total=kept + 2,
        kept=tuple(KeptObject(index=i, track=track) for i in range(1, kept + 1)),
        annotated_at=1.0,
        boxes_clipped=70,
        boxes_dropped=3,
    )


def test_job_is_annotate_then_poll_carrying_the_job_id() -> None:
    spec = make_spec()
    canvas = job_canvas(spec)
    assert isinstance(canvas, _chain)
    annotate, poll = canvas.tasks
    assert annotate.task == "vtrack.annotate"
    assert annotate.args == (spec.to_dict(),)
    assert annotate.immutable
    assert poll.task == "vtrack.poll"
    assert poll.kwargs == {"spec": spec.to_dict()}
    assert poll.options["task_id"] == spec.job_id
    for task in canvas.tasks:
        errbacks = task.options.get("link_error") or canvas.options.get("link_error")
        assert [e["task"] for e in errbacks] == ["vtrack.job_failed"]
        assert errbacks[0]["kwargs"] == {"job_id": spec.job_id}


def test_render_canvas_is_one_render_per_kept_object_then_assemble() -> None:
    spec, plan = make_spec(), make_plan(kept=3)
    canvas = render_canvas(spec, plan)
    assert isinstance(canvas, chord)
    header = list(canvas.tasks)
    assert [sig.task for sig in header] == ["vtrack.render_object"] * 3
    assert [sig.args[1]["index"] for sig in header] == [1, 2, 3]
    assert all(sig.immutable for sig in header)
    assert canvas.body.task == "vtrack.assemble_summary"
    # The assembler gets counts and video info, not every object's frames again.
    assert canvas.body.kwargs["plan"]["kept"] == []
    assert canvas.body.kwargs["plan"]["objects_total"] == 5
    # ...and what clipping the boxes into the frame took, for the manifest.
    assert canvas.body.kwargs["plan"]["boxes_clipped"] == 70
    assert canvas.body.kwargs["plan"]["boxes_dropped"] == 3


def test_zero_kept_objects_go_straight_to_assemble() -> None:
    canvas = render_canvas(make_spec(), make_plan(kept=0))
    assert canvas.task == "vtrack.assemble_summary"
    assert canvas.args == ([],)


def test_task_arguments_are_plain_json() -> None:
    import json

    canvas = render_canvas(make_spec(), make_plan(kept=2))
    for sig in [*canvas.tasks, canvas.body]:
        json.dumps([sig.args, sig.kwargs])  # raises on anything that is not JSON
