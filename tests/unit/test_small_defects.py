"""Small defects a first-day user saw (issue 8, section 6), each as the user sees it."""

from __future__ import annotations

import importlib.metadata
import re
import uuid
from pathlib import Path

import pytest

from config.settings import Settings
from entrypoints.cluster import ClusterPorts, cluster_ports
from tasks import job_ids
from tasks.api import make_spec
from tasks.jobstore import JobRecord
from tasks.runtime import local_roots
from tests.conftest import REPO_ROOT
from tests.support.cli import vtrack
from workers.annotations.vi_json import parse_annotation_json
from workers.errors import AnnotationFormatError, UnsafePathError
from workers.storage import LocalStorage


def test_vtrack_version_comes_from_the_package_metadata() -> None:
    result = vtrack("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"vtrack, version {importlib.metadata.version('vtrack')}"


def test_status_shows_the_percent_once_and_whole_paths_when_piped(redis_server: None) -> None:
    from tasks import runtime

    long_path = "/srv/videos/" + "/".join(f"camera-{n:02}-north-entrance" for n in range(6))
    record = JobRecord(
        job_id=job_ids.new_job_id(),
        video_uri=f"{long_path}/clip.mp4",
        backend="local",
        status="annotating",
        stage="tracking objects (53%)",
        percent=53.0,
    )
    runtime.current().jobs.create(record)

    shown = vtrack("status", record.job_id)  # stdout is a pipe, not a terminal

    assert shown.returncode == 0, shown.stderr
    assert "tracking objects (53%)" in shown.stdout and "(53%) (53%)" not in shown.stdout
    assert f"{long_path}/clip.mp4" in shown.stdout and "…" not in shown.stdout
    runtime.current().jobs.update(record.job_id, stage="rendering 0 of 3 objects", percent=0.0)
    assert "rendering 0 of 3 objects (0%)" in vtrack("status", record.job_id).stdout


def test_a_json_syntax_error_reads_as_one_sentence() -> None:
    with pytest.raises(AnnotationFormatError) as raised:
        parse_annotation_json('{"annotationResults": "unterminated', source="broken.json")
    message = str(raised.value)
    assert "at at" not in message
    assert re.search(r"Unterminated string starting at line 1 column \d+$", message), message


def test_the_allowed_folders_are_listed_once_each(tmp_path: Path) -> None:
    inputs = tmp_path / "data"
    inputs.mkdir()
    settings = Settings(
        input_roots=f"{inputs},{inputs}/", output_root=str(inputs), annotation_root=str(inputs)
    )
    storage = LocalStorage(local_roots(settings))
    with pytest.raises(UnsafePathError) as raised:
        storage.stat(str(tmp_path / "elsewhere.mp4"))
    assert str(raised.value).endswith(f"is outside the allowed folders: {inputs}")


def test_scan_sources_are_allowed_folders(tmp_path: Path) -> None:
    settings = Settings(
        input_roots=str(tmp_path / "inputs"),
        scan_sources=f"{tmp_path / 'incoming'},gs://bucket/prefix",
        output_root=str(tmp_path / "out"),
        annotation_root=str(tmp_path / "out"),
    )
    storage = LocalStorage(local_roots(settings))
    assert tmp_path / "incoming" in storage.roots


def test_video_uris_are_stored_absolute_and_normalized(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "videos").mkdir()
    monkeypatch.chdir(tmp_path / "videos")
    spec = make_spec("../videos/./clip.mp4", annotations_uri="sub/../clip.json")
    assert spec.video_uri == str(tmp_path / "videos" / "clip.mp4")
    assert spec.annotations_uri == str(tmp_path / "videos" / "clip.json")
    assert make_spec("gs://bucket/a/clip.mp4").video_uri == "gs://bucket/a/clip.mp4"


def test_job_ids_carry_their_submission_time() -> None:
    job_id = job_ids.new_job_id(now=1_700_000_000.123)
    assert uuid.UUID(job_id).version == 7
    assert job_ids.submitted_at(job_id) == pytest.approx(1_700_000_000.123, abs=0.001)
    assert job_ids.submitted_at(str(uuid.uuid4())) is None
    assert job_ids.submitted_at("not-a-job") is None


def test_the_readme_names_every_test_setting_the_conftest_reads() -> None:
    conftest = (REPO_ROOT / "tests" / "conftest.py").read_text()
    names = set(re.findall(r"\"(VTRACK_TEST_[A-Z_]+)\"", conftest))
    assert {"VTRACK_TEST_REDIS_DBS", "VTRACK_TEST_REDIS_PORT", "VTRACK_TEST_REDIS_HOST"} <= names
    readme = (REPO_ROOT / "README.md").read_text()
    assert sorted(name for name in names if f"`{name}`" not in readme) == []


def test_cluster_redis_is_the_shells_unless_a_port_is_given() -> None:
    settings = Settings(
        broker_url="redis://127.0.0.1:6390/3", result_backend="redis://127.0.0.1:6390/4"
    )
    ports = cluster_ports(settings, None, 5555)
    assert ports.redis == 6390
    assert ports.urls() == {
        "VTRACK_BROKER_URL": "redis://127.0.0.1:6390/3",
        "VTRACK_RESULT_BACKEND": "redis://127.0.0.1:6390/4",
    }
    assert not any("export" in line for line in ports.describe(settings))
    given = cluster_ports(settings, 6401, 5555)
    assert given == ClusterPorts(redis=6401, flower=5555)
    notes = given.describe(settings)
    assert notes[0].startswith("VTRACK_BROKER_URL=redis://127.0.0.1:6401/0")
    assert "export" in notes[0]
