"""The job's canvas shapes, compared as signatures without a broker."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery import chord
from celery.canvas import Signature, _chain

from tasks.pipeline import ASSEMBLE_SUMMARY, job_canvas, render_canvas, tracking_canvas
from workers.annotations.model import Entity, NormalizedBox, ObjectTrack, Segment, TrackedFrame
from workers.job import JobSpec, KeptObject, RenderPlan


def make_spec(backend: str = "file", batch_size: int = 8) -> JobSpec:
    return JobSpec(
        job_id="job-1",
        video_uri="/videos/dog.mp4",
        backend=backend,
        output_root="/out",
        annotation_root="/out",
        annotations_uri="/videos/dog.json" if backend == "file" else None,
        render_batch_size=batch_size,
    )


def make_track(start: float) -> ObjectTrack:
    return ObjectTrack(
        entity=Entity("/m/0bt9lr", "dog"),
        confidence=0.9,
        segment=Segment(start, start + 1.0),
        frames=(TrackedFrame(start, NormalizedBox(0.1, 0.1, 0.5, 0.5)),),
    )


def make_plan(kept: int, starts: list[float] | None = None) -> RenderPlan:
    starts = starts or [0.0] * kept
    return RenderPlan(
        annotation_uri="/out/dog.mp4.json",
        video={"duration": 9.0, "fps": 30.0, "width": 64, "height": 48, "frame_count": 270},
        objects_total=kept + 2,
        kept=tuple(
            KeptObject(index=i, track=make_track(start)) for i, start in enumerate(starts, 1)
        ),
        annotated_at=1.0,
        boxes_clipped=70,
        boxes_dropped=3,
    )


def test_job_is_annotate_then_poll_stamped_with_the_job_id() -> None:
    spec = make_spec()
    canvas = job_canvas(spec)
    assert isinstance(canvas, _chain)
    annotate, poll = canvas.tasks
    assert annotate.task == "vtrack.annotate"
    assert annotate.args == (spec.model_dump(mode="json"),)
    assert annotate.immutable
    assert poll.task == "vtrack.poll"
    assert poll.kwargs == {"spec": spec.model_dump(mode="json")}
    for task in canvas.tasks:  # the job id is a stamp, never a task's id
        assert "task_id" not in task.options
        assert task.options["stamped_headers"] == ["vtrack_job"]
        assert task.options["vtrack_job"] == spec.job_id
        errbacks = task.options.get("link_error") or canvas.options.get("link_error")
        assert [e["task"] for e in errbacks] == ["vtrack.job_failed"]
        assert errbacks[0]["kwargs"] == {"job_id": spec.job_id}


def test_render_canvas_is_one_render_batch_per_batch_of_objects_then_assemble() -> None:
    spec, plan = make_spec(batch_size=2), make_plan(kept=3)
    canvas = render_canvas(spec, plan)
    assert isinstance(canvas, chord)
    header = list(canvas.tasks)
    assert [sig.task for sig in header] == ["vtrack.render_batch"] * 2
    assert [[kept["index"] for kept in sig.args[1]] for sig in header] == [[1, 2], [3]]
    assert all(sig.args[0] == spec.model_dump(mode="json") for sig in header)
    assert all(sig.immutable for sig in header)
    assert canvas.body.task == "vtrack.assemble_summary"
    # The assembler gets counts and video info, not every kept object's frames again.
    assert canvas.body.kwargs["plan"]["kept"] == []
    assert canvas.body.kwargs["plan"]["objects_total"] == 5
    # ...and what clipping the boxes into the frame took, for the manifest.
    assert canvas.body.kwargs["plan"]["boxes_clipped"] == 70
    assert canvas.body.kwargs["plan"]["boxes_dropped"] == 3
    # Every message of the chord carries the job's stamp, what a cancel revokes.
    assert {sig.options["vtrack_job"] for sig in [*header, canvas.body]} == {spec.job_id}
    assert_fails_the_job(canvas.body, spec.job_id)


def assert_fails_the_job(sig: Signature, job_id: str) -> None:
    """``job_failed`` is ``sig``'s error callback, not stamped: it must run for a job whose
    stamp was revoked."""
    (errback,) = sig.options["link_error"]
    assert errback["task"] == "vtrack.job_failed" and errback["kwargs"] == {"job_id": job_id}
    assert "vtrack_job" not in errback["options"]


def test_render_batches_group_objects_by_time() -> None:
    """Objects numbered by appearance but listed out of order still batch by their time."""
    plan = make_plan(kept=4, starts=[6.0, 0.0, 6.5, 0.5])
    canvas = render_canvas(make_spec(batch_size=2), plan)
    batches = [[kept["index"] for kept in sig.args[1]] for sig in canvas.tasks]
    assert batches == [[2, 4], [1, 3]]


def test_local_jobs_are_annotate_alone_stamped_with_the_job_id() -> None:
    """Our own tracking is a chord that annotate sends: nothing polls it."""
    spec = make_spec(backend="local")
    canvas = job_canvas(spec)
    assert canvas.task == "vtrack.annotate"
    assert canvas.args == (spec.model_dump(mode="json"),)
    assert "task_id" not in canvas.options
    assert canvas.options["vtrack_job"] == spec.job_id
    assert [e["task"] for e in canvas.options["link_error"]] == ["vtrack.job_failed"]
    # The error callback is not stamped: it must run for a job whose stamp was revoked.
    assert "vtrack_job" not in canvas.options["link_error"][0]["options"]


def test_tracking_canvas_is_one_track_segment_per_segment_then_stitch() -> None:
    spec = make_spec(backend="local")
    segments = [{"start": 0.0, "end": 31.0}, {"start": 29.0, "end": 60.0}]
    operation = {
        "backend": "local",
        "name": spec.job_id,
        "request": {"video_uri": spec.video_uri, "output_uri": "", "job_id": spec.job_id},
        "data": {"segments": segments, "overlap": 2.0, "options": {"tracker": "bytetrack"}},
    }
    canvas = tracking_canvas(spec, operation)
    assert isinstance(canvas, chord)
    header = list(canvas.tasks)
    assert [sig.task for sig in header] == ["vtrack.track_segment"] * 2
    assert [sig.args for sig in header] == [
        (spec.video_uri, segment, {"tracker": "bytetrack"}) for segment in segments
    ]
    assert [sig.kwargs for sig in header] == [
        {"job_id": spec.job_id, "number": n, "total": 2} for n in (1, 2)
    ]
    assert all(sig.immutable for sig in header)
    assert canvas.body.task == "vtrack.stitch"
    assert canvas.body.kwargs == {"spec": spec.model_dump(mode="json"), "operation": operation}
    assert {sig.options["vtrack_job"] for sig in [*header, canvas.body]} == {spec.job_id}
    assert_fails_the_job(canvas.body, spec.job_id)


def test_zero_kept_objects_go_straight_to_assemble() -> None:
    canvas = render_canvas(make_spec(), make_plan(kept=0))
    assert canvas.task == "vtrack.assemble_summary"
    assert canvas.args == ([],)
    assert canvas.options["vtrack_job"] == "job-1"
    assert_fails_the_job(canvas, "job-1")


def test_task_arguments_are_plain_json() -> None:
    import json

    canvas = render_canvas(make_spec(), make_plan(kept=2))
    for sig in [*canvas.tasks, canvas.body]:
        json.dumps([sig.args, sig.kwargs])  # raises on anything that is not JSON


def test_a_chord_s_body_has_an_id_of_its_own_made_from_its_sender_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task that sends a chord and runs again (its process killed before the ack) sends
    the body under the same id, so that body's second delivery is not run again."""
    from tasks.jobs import _send

    sent: list[str] = []
    monkeypatch.setattr(chord, "apply_async", lambda self, task_id: sent.append(task_id))

    def send(sender_id: str) -> dict[str, str]:
        sender = SimpleNamespace(request=SimpleNamespace(id=sender_id))
        return _send(sender, render_canvas(make_spec(), make_plan(kept=2)), "job-1")

    first, again = send("stitch-1"), send("stitch-1")
    assert first == again == {"job_id": "job-1", "sent": ASSEMBLE_SUMMARY, "task_id": sent[0]}
    assert send("stitch-2")["task_id"] == sent[2] != sent[0] == sent[1]
    assert "stitch-1" not in sent and "job-1" not in sent
