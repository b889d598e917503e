"""What a scan picks: video files, oldest first, unless this version was already processed."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from celery.schedules import crontab

from config.beat import beat_schedule, parse_schedule
from config.settings import Settings
from tasks.claims import Claim, FailureNote
from tasks.scan import ScanReport, StartedJob
from workers.errors import ConfigurationError
from workers.service.scanning import (
    SourceStamp,
    VideoVersion,
    is_processed,
    is_video,
    list_videos,
    still_being_written,
    write_stamp,
)
from workers.storage import LocalStorage, ObjectStat


def stat(uri: str, content_type: str | None = None, mtime: float = 0.0) -> ObjectStat:
    return ObjectStat(uri=uri, size=10, generation=None, mtime=mtime, content_type=content_type)


@pytest.mark.parametrize(
    ("uri", "content_type", "expected"),
    [
        ("/in/clip.mp4", None, True),
        ("/in/CLIP.MOV", None, True),
        ("/in/dashcam/capture.ts", None, True),  # MPEG-TS
        ("/in/AVCHD/00001.MTS", None, True),
        ("gs://b/hls/segment3.ts", "video/mp2t", True),
        ("/in/clip.mp4.json", None, False),
        ("/in/.clip.mp4.partial", None, False),
        ("/in/.clip.mp4", None, False),
        ("gs://b/v/clip.mp4", "video/mp4", True),
        ("gs://b/v/clip", "video/quicktime", True),
        ("gs://b/v/clip.mp4", "application/octet-stream", True),
        ("gs://b/v/clip.mp4", None, True),
        ("gs://b/v/clip.mp4", "text/html; charset=utf-8", False),
        ("gs://b/v/notes.txt", "application/octet-stream", False),
    ],
)
def test_videos_are_told_by_extension_and_bucket_content_type(
    uri: str, content_type: str | None, expected: bool
) -> None:
    assert is_video(stat(uri, content_type)) is expected


def test_versions_compare_by_generation_else_by_size_and_mtime() -> None:
    def v(size: int, generation: str | None = None, mtime: float | None = None) -> VideoVersion:
        return VideoVersion(size=size, generation=generation, mtime=mtime)

    assert v(5, "17").same_as(v(9, "17"))
    assert not v(5, "17").same_as(v(5, "18"))
    assert not v(5, "17").same_as(v(5, None, 1.0))
    assert v(5, None, 1.25).same_as(v(5, None, 1.25))
    assert not v(5, None, 1.25).same_as(v(6, None, 1.25))
    assert not v(5, None, 1.25).same_as(v(5, None, 2.0))
    assert not v(5).same_as(v(5))  # nothing to compare: not the same
    version = v(5, None, 1700000000.123456)
    assert VideoVersion.model_validate(version.model_dump()) == version


def test_the_stamp_file_is_flat_and_keeps_its_keys(tmp_path: Path) -> None:
    """The stamp file as the hand-written code wrote it: the version's keys beside the job's."""
    manifest = str(tmp_path / "clip.mp4.manifest.json")
    version = VideoVersion(size=10, generation="1712", mtime=None)
    stamp = SourceStamp(
        video_uri="gs://b/clip.mp4", **version.model_dump(), job_id="job-1",
        manifest_uri=manifest, recorded_at=1700000000.5,
    )  # fmt: skip
    uri = write_stamp(LocalStorage([tmp_path]), str(tmp_path), stamp)
    assert uri == str(tmp_path / "clip.mp4.source.json")
    text = Path(uri).read_text()
    assert json.loads(text) == {
        "video_uri": "gs://b/clip.mp4", "size": 10, "generation": "1712", "mtime": None,
        "job_id": "job-1", "manifest_uri": manifest, "recorded_at": 1700000000.5,
    }  # fmt: skip
    assert list(json.loads(text)) == list(SourceStamp.model_fields)
    assert text == json.dumps(json.loads(text), indent=2)
    assert stamp.version == version
    # An older stamp: no recorded_at, a local file's version; a newer one's keys are ignored.
    old = {"video_uri": "/in/a.mp4", "size": 3, "mtime": 5, "job_id": "j", "manifest_uri": "m"}
    read = SourceStamp.model_validate({**old, "added_later": True})
    assert read.version == VideoVersion(size=3, mtime=5.0) and read.recorded_at == 0.0


def test_listing_keeps_videos_oldest_first(tmp_path: Path) -> None:
    names_and_ages = {"new.mp4": 10, "old.mp4": 300, "middle.webm": 100, "notes.txt": 500}
    for name, age in names_and_ages.items():
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime - age))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.mkv").write_bytes(b"x")
    listed = [Path(v.uri).name for v in list_videos(LocalStorage([tmp_path]), str(tmp_path))]
    assert listed == ["old.mp4", "middle.webm", "new.mp4", "deep.mkv"]


def test_a_file_still_being_copied_waits_for_the_next_scan() -> None:
    now = 1000.0
    assert still_being_written(stat("/in/a.mp4", mtime=995.0), min_age=10, now=now)
    assert not still_being_written(stat("/in/a.mp4", mtime=980.0), min_age=10, now=now)
    assert not still_being_written(stat("/in/a.mp4", mtime=999.0), min_age=0, now=now)
    assert not still_being_written(stat("gs://b/a.mp4", mtime=999.0), min_age=10, now=now)


def test_claims_and_failure_notes_keep_their_redis_json() -> None:
    version = VideoVersion(size=10, generation=None, mtime=1.5)
    claim = Claim(job_id="job-1", claimed_at=2.5, version=version)
    written_before = (
        b'{"claimed_at": 2.5, "job_id": "job-1", '
        b'"version": {"generation": null, "mtime": 1.5, "size": 10}}'
    )
    assert claim.encode() == written_before
    assert Claim.decode(written_before) == claim.model_copy(update={"raw": written_before})
    assert (
        Claim(job_id="job-2", claimed_at=1.0).encode() == b'{"claimed_at": 1.0, "job_id": "job-2"}'
    )
    assert Claim.decode(b'{"job_id": "job-3"}').version is None
    note = FailureNote(job_id="job-1", error="not a video", version=version)
    document = {"job_id": "job-1", "error": "not a video", "version": version.model_dump()}
    assert json.loads(note.model_dump_json()) == document
    assert list(json.loads(note.model_dump_json())) == list(document)
    assert FailureNote.model_validate_json(json.dumps(document)) == note


def test_the_scan_report_keeps_its_json() -> None:
    """``vtrack.scan_source``'s result, as the hand-written ``to_dict`` made it."""
    report = ScanReport(
        source="/in", videos=4, started=(StartedJob(video_uri="/in/a.mp4", job_id="j1"),),
        skipped={"processed": 2, "in_flight": 1}, seconds=0.125,
    )  # fmt: skip
    assert report.model_dump(mode="json") == {
        "source": "/in", "videos": 4, "started": [{"video_uri": "/in/a.mp4", "job_id": "j1"}],
        "skipped": {"processed": 2, "in_flight": 1}, "seconds": 0.125,
    }  # fmt: skip
    assert list(report.model_dump()) == ["source", "videos", "started", "skipped", "seconds"]
    assert report.job_ids == ["j1"]
    assert (
        report.describe() == "/in: 4 video(s), 1 job(s) started; skipped: 1 in_flight, 2 processed"
    )


def test_processed_means_a_manifest_and_a_stamp_for_this_version(tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    (inputs / "sub").mkdir(parents=True)
    out.mkdir()
    video = inputs / "clip.mp4"
    video.write_bytes(b"first version")
    storage = LocalStorage([tmp_path])
    roots = [str(inputs)]
    listed = storage.stat(str(video))
    assert not is_processed(storage, str(out), listed, roots)

    manifest = str(out / "clip.mp4.manifest.json")
    stamp = SourceStamp(
        video_uri=str(video), **VideoVersion.of(listed).model_dump(), job_id="job-1",
        manifest_uri=manifest, recorded_at=0.0,
    )  # fmt: skip
    write_stamp(storage, str(out), stamp)
    assert (out / "clip.mp4.source.json").is_file()
    assert not is_processed(storage, str(out), listed, roots), "a stamp without a manifest"
    (out / "clip.mp4.manifest.json").write_text("{}")
    assert is_processed(storage, str(out), listed, roots)
    # The same name in a subfolder is another video, with its own stamp and manifest.
    other = inputs / "sub" / "clip.mp4"
    other.write_bytes(b"first version")
    assert not is_processed(storage, str(out), storage.stat(str(other)), roots)

    video.write_bytes(b"second, longer version")
    assert not is_processed(storage, str(out), storage.stat(str(video)), roots)
    (out / "clip.mp4.source.json").write_text("not json")
    assert not is_processed(storage, str(out), listed, roots)


def test_schedule_is_a_crontab_or_seconds() -> None:
    every_five = parse_schedule("*/5 * * * *")
    assert isinstance(every_five, crontab)
    assert every_five.minute == set(range(0, 60, 5)) and every_five.hour == set(range(24))
    assert parse_schedule(" 30 ") == timedelta(seconds=30)
    assert parse_schedule("2.5") == timedelta(seconds=2.5)
    for bad in ("0", "-3", "* * *", "61 * * * *", "every hour"):
        with pytest.raises(ConfigurationError, match="VTRACK_SCAN_SCHEDULE"):
            parse_schedule(bad)


def test_beat_scans_each_source_on_the_schedule() -> None:
    assert beat_schedule(Settings(scan_sources="")) == {}
    schedule = beat_schedule(
        Settings(scan_sources="gs://videos/in, /srv/incoming", scan_schedule="45")
    )
    assert {entry["args"] for entry in schedule.values()} == {
        ("gs://videos/in",),
        ("/srv/incoming",),
    }
    for entry in schedule.values():
        assert entry["task"] == "vtrack.scan_source"
        assert entry["schedule"] == timedelta(seconds=45)
        assert entry["options"]["expires"] == 45
    default = beat_schedule(Settings(scan_sources="/srv/incoming"))
    assert isinstance(next(iter(default.values()))["schedule"], crontab)
