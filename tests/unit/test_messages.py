"""The manifest's JSON is a contract: the models write it as the hand-written code did."""

from __future__ import annotations

import json
from pathlib import Path

from workers.job import JobStatus, Manifest, ObjectResult
from workers.steps import write_manifest
from workers.storage import open_storage


def test_the_manifest_file_keeps_its_keys_order_and_whole_numbers(tmp_path: Path) -> None:
    result = ObjectResult(
        index=1, entity="dog", confidence=0.9, frame_count=12, first_time=0.5, last_time=3.0,
        status="ok", cell_uri="/out/c.jpeg", generations={"cell": None},
    )  # fmt: skip
    manifest = Manifest(
        job_id="job", video_uri="/v/dog.mp4", backend="file", status=JobStatus.COMPLETED,
        thresholds={"min_confidence": 0.7, "min_frames": 10, "min_frames_applied": 5},
        video={"width": 64, "fps": 30.0}, objects_total=3, objects=(result,),
        summary_uri=None, annotation_uri="/out/dog.mp4.json",
        manifest_uri=str(tmp_path / "dog.mp4.manifest.json"), timings={"total_seconds": 1.5},
        errors=("object 2 (cat): gone",), generations={"summary": None, "annotation": None},
    )  # fmt: skip
    write_manifest(manifest, open_storage([tmp_path]))
    text = Path(manifest.manifest_uri).read_text()
    document = json.loads(text)
    assert list(document) == [
        "job_id", "video_uri", "backend", "status", "thresholds", "video", "objects_total",
        "objects", "summary_uri", "annotation_uri", "manifest_uri", "timings", "errors",
        "generations", "boxes_clipped", "boxes_dropped",
    ]  # fmt: skip
    assert '"min_frames": 10,' in text and '"status": "completed"' in text
    assert list(document["objects"][0])[:7] == [
        "index", "entity", "confidence", "frame_count", "first_time", "last_time", "status"
    ]  # fmt: skip
    assert Manifest.model_validate({**document, "added_later": 1}) == manifest
