"""vtrack export with SOURCE and --out in Cloud Storage (gcp-storage-emulator)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from entrypoints.cli import main
from tests.support.gcs_emulator import create_bucket, running_gcs_emulator, using_gcs_emulator
from tests.support.videos import write_test_video
from workers.annotations.model import (
    Entity,
    NormalizedBox,
    ObjectTrack,
    Segment,
    TrackedFrame,
    VideoAnnotation,
)
from workers.annotations.vi_json import dump_annotation_json
from workers.storage import GCSStorage


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[str]:
    with running_gcs_emulator() as host, using_gcs_emulator(host):
        yield host


def test_export_reads_an_annotation_and_its_video_from_a_bucket_and_writes_there(
    gcs_emulator: str, tmp_path: Path
) -> None:
    bucket = create_bucket(gcs_emulator)
    storage = GCSStorage(temp_dir=tmp_path)
    video = write_test_video(tmp_path / "clip.mp4", frames=30, fps=10)
    storage.upload_file(video, f"gs://{bucket}/in/clip.mp4", "video/mp4")
    frames = tuple(TrackedFrame(t / 10, NormalizedBox(0.1, 0.2, 0.4, 0.8)) for t in range(0, 20, 2))
    track = ObjectTrack(
        entity=Entity(entity_id="/m/01yrx", description="cat"),
        confidence=0.9,
        segment=Segment(0.0, 1.8),
        frames=frames,
    )
    annotation = VideoAnnotation(input_uri=f"gs://{bucket}/in/clip.mp4", objects=(track,))
    storage.write_bytes(
        f"gs://{bucket}/annotations/clip.mp4.json",
        dump_annotation_json(annotation).encode(),
        "application/json",
    )
    result = CliRunner().invoke(
        main,
        [
            "export",
            f"gs://{bucket}/annotations/clip.mp4.json",
            "--format",
            "mot",
            "--out",
            f"gs://{bucket}/exports/clip.txt",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(
        csv.reader(io.StringIO(storage.read_bytes(f"gs://{bucket}/exports/clip.txt").decode()))
    )
    assert [int(row[0]) for row in rows] == list(range(1, 20, 2))
    assert {row[1] for row in rows} == {"1"}
    assert float(rows[0][4]) == pytest.approx(0.3 * 160)  # the video's own width in pixels
