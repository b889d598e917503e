"""Render batches: the plan picks the frames; a batch decodes once; failures stay per object."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from tasks.pipeline import render_canvas
from tests.support.annotations import standard_annotation
from tests.support.videos import write_test_video
from workers import steps
from workers.job import JobSpec, KeptObject
from workers.storage import open_storage

FRAMES, FPS, WIDTH, HEIGHT = 40, 10, 160, 96


@pytest.fixture
def job(tmp_path: Path) -> JobSpec:
    video = write_test_video(
        tmp_path / "clip.mp4", frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT
    )
    return JobSpec(
        job_id="job-1",
        video_uri=str(video),
        backend="file",
        output_root=str(tmp_path / "out"),
        annotation_root=str(tmp_path / "out"),
        min_confidence=0.2,
        min_frames=2,
    )


def plan_for(job: JobSpec, tmp_path: Path):  # type: ignore[no-untyped-def]
    storage = open_storage([tmp_path])
    annotation = standard_annotation(job.video_uri, FRAMES, FPS, WIDTH, HEIGHT)
    return steps.plan_render(job, annotation, storage), storage


def test_the_plan_carries_only_the_frames_to_draw(job: JobSpec, tmp_path: Path) -> None:
    plan, _ = plan_for(job, tmp_path)
    by_name = {kept.track.entity.description: kept for kept in plan.kept}
    red = by_name["red box"]
    assert red.frame_count == FRAMES  # what the caption, names and manifest show
    assert len(red.track.frames) == job.animation_frames  # what the message carries
    assert red.track.first_time == 0.0 and red.track.last_time == pytest.approx(3.9)
    assert len(by_name["blink"].track.frames) == 3  # fewer than 12: all of them
    canvas = render_canvas(job, plan)
    message = json.dumps([sig.args for sig in canvas.tasks])
    assert message.count('"time"') == sum(len(k.track.frames) for k in plan.kept)


def test_a_batch_renders_every_object_with_its_full_frame_count(
    job: JobSpec, tmp_path: Path
) -> None:
    plan, storage = plan_for(job, tmp_path)
    done: list[int] = []
    results = steps.render_kept_objects(
        job, plan.kept, storage, on_done=lambda r: done.append(r.index)
    )
    assert [r.status for r in results] == ["ok"] * 4
    assert sorted(done) == [1, 2, 3, 4]
    red = next(r for r in results if r.entity == "red box")
    assert red.frame_count == FRAMES
    assert red.animation_uri is not None and red.animation_uri.endswith("_pct92_fr40.gif")
    with Image.open(red.animation_uri) as gif:
        assert gif.n_frames == job.animation_frames


def test_one_object_failing_in_a_batch_fails_that_object_alone(
    job: JobSpec, tmp_path: Path
) -> None:
    plan, storage = plan_for(job, tmp_path)
    panel = next(k for k in plan.kept if k.track.entity.description == "left panel")
    blocker = Path(job.output_root) / f"clip.mp4.{panel.index:03d}_left_panel_pct81_fr20.gif"
    blocker.mkdir(parents=True)  # its animation cannot be written
    empty = KeptObject(index=9, track=replace(panel.track, frames=()), annotated_frames=5)
    results = steps.render_kept_objects(job, [*plan.kept, empty], storage)
    status = {r.index: (r.status, r.error) for r in results}
    assert status[panel.index][0] == "failed" and status[panel.index][1]
    assert status[9][0] == "failed" and "no annotated frames" in (status[9][1] or "")
    assert [s for i, (s, _) in status.items() if i not in (panel.index, 9)] == ["ok"] * 3


def test_a_batch_that_cannot_decode_is_retried_object_by_object(
    job: JobSpec, tmp_path: Path
) -> None:
    """A frame past the video's end breaks the batch's decode; only its object fails."""
    plan, storage = plan_for(job, tmp_path)
    first = plan.kept[0]
    late_frame = replace(first.track.frames[-1], time=60.0)
    broken = KeptObject(
        index=7, track=replace(first.track, frames=(late_frame,)), annotated_frames=1
    )
    results = steps.render_kept_objects(job, [*plan.kept[:2], broken], storage)
    assert [(r.index, r.status) for r in results] == [
        (plan.kept[0].index, "ok"),
        (plan.kept[1].index, "ok"),
        (7, "failed"),
    ]
    assert "60.000s" in (results[-1].error or "")
