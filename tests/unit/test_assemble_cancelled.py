"""A job cancelled while ``assemble_summary`` runs writes nothing more (issue 22): the task
checks the record right before it writes the summary and the manifest, so a cancel that
lands after the task's first check leaves no summary, no manifest and no catalog row."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from celery.exceptions import Ignore

from config.settings import get_settings
from tasks import runtime
from tasks.jobs import assemble_summary
from tasks.jobstore import JobRecord, MemoryJobStore
from workers.job import JobSpec, JobStatus, ObjectResult, RenderPlan
from workers.storage import open_storage


@pytest.mark.parametrize("rendered", [1, 0], ids=["summary-and-manifest", "manifest-only"])
def test_a_cancel_during_the_assembly_leaves_no_summary_manifest_or_catalog_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, rendered: int
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cell = tmp_path / "cell.jpg"
    cell.write_bytes(_jpeg())
    spec = JobSpec(
        job_id="job-cancelled",
        video_uri=str(tmp_path / "dog.mp4"),
        backend="file",
        output_root=str(out),
        annotation_root=str(out),
    )
    plan = RenderPlan(
        annotation_uri=str(out / "dog.mp4.json"),
        video={"duration": 2.0, "fps": 10.0, "width": 64, "height": 48, "frame_count": 20},
        objects_total=1,
        kept=(),
        annotated_at=1.0,
    )
    results = [
        ObjectResult(
            index=1,
            entity="dog",
            confidence=0.9,
            frame_count=20,
            first_time=0.0,
            last_time=2.0,
            status="ok",
            cell_uri=str(cell),
        ).model_dump(mode="json")
    ][:rendered]

    def cancel_as_it_assembles(record: JobRecord) -> None:
        if record.status == JobStatus.ASSEMBLING:  # after the task's first check
            jobs.update(record.job_id, status=JobStatus.CANCELLED, stage="cancelled")

    jobs = MemoryJobStore(listener=cancel_as_it_assembles)
    jobs.create(JobRecord(job_id=spec.job_id, video_uri=spec.video_uri, status="rendering"))
    settings = get_settings().model_copy(update={"catalog_url": ""})
    runtime.configure(runtime.Runtime(settings, open_storage([str(tmp_path)]), jobs))
    try:
        with caplog.at_level(logging.INFO), pytest.raises(Ignore):
            assemble_summary(
                [results],
                spec=spec.model_dump(mode="json"),
                plan=plan.model_dump(mode="json"),
            )
    finally:
        runtime.configure(None)

    assert list(out.iterdir()) == []  # no summary, no manifest, no catalog database
    assert jobs.get(spec.job_id).status == JobStatus.CANCELLED
    said = [r.getMessage() for r in caplog.records if spec.job_id in r.getMessage()]
    assert said == [f"job {spec.job_id} was cancelled: nothing more to do"]


def _jpeg() -> bytes:
    import cv2
    import numpy as np

    ok, encoded = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))
    assert ok
    return encoded.tobytes()
