"""Where a video's outputs go below the output root (README: "Where the outputs go")."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tasks.specs import make_spec
from workers import naming
from workers.job import JobSpec


def test_a_bucket_video_keeps_its_bucket_and_path() -> None:
    assert naming.video_stem("gs://cams/north/clip.mp4", ["/data"]) == "cams/north/clip.mp4"


def test_a_local_video_in_the_first_input_root_keeps_its_path_below_it(tmp_path: Path) -> None:
    roots = [str(tmp_path / "in"), str(tmp_path / "other")]
    assert naming.video_stem(str(tmp_path / "in" / "clip.mp4"), roots) == "clip.mp4"
    assert naming.video_stem(str(tmp_path / "in" / "a" / "clip.mp4"), roots) == "a/clip.mp4"
    assert naming.video_stem(str(tmp_path / "in" / "b" / "clip.mp4"), roots) == "b/clip.mp4"


def test_other_local_videos_go_under_their_folders_name_and_key(tmp_path: Path) -> None:
    roots = [str(tmp_path / "in"), str(tmp_path / "other")]
    for folder in (tmp_path / "other" / "cam", tmp_path / "elsewhere" / "cam"):
        key = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
        assert naming.video_stem(str(folder / "clip.mp4"), roots) == f"cam-{key}/clip.mp4"
    first = naming.video_stem(str(tmp_path / "other" / "cam" / "clip.mp4"), roots)
    second = naming.video_stem(str(tmp_path / "elsewhere" / "cam" / "clip.mp4"), roots)
    assert first != second  # same folder name, same file name: two videos, two places
    assert naming.video_stem("/clip.mp4", []).startswith("root-")


def test_a_relative_input_root_is_the_working_directory_of_who_submits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert naming.video_stem(str(tmp_path / "v" / "clip.mp4"), ["."]) == "v/clip.mp4"


def test_the_spec_fixes_the_place_and_old_specs_keep_the_flat_name(tmp_path: Path) -> None:
    from config.settings import Settings

    settings = Settings(input_roots=str(tmp_path), output_root=str(tmp_path / "out"))
    spec = make_spec(str(tmp_path / "a" / "clip.mp4"), settings=settings, job_id="j")
    assert spec.stem == "a/clip.mp4"
    assert naming.manifest_uri(spec.output_root, spec.stem) == str(
        tmp_path / "out" / "a" / "clip.mp4.manifest.json"
    )
    # A spec queued by an earlier version (no output_stem) is named as then.
    old = JobSpec.model_validate(spec.model_dump(exclude={"output_stem"}))
    assert old.stem == "clip.mp4"
