"""What a scan picks: video files, oldest first, unless this version was already processed."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from celery.schedules import crontab

from config.beat import beat_schedule, parse_schedule
from config.settings import Settings
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
    assert VideoVersion(5, "17").same_as(VideoVersion(9, "17"))
    assert not VideoVersion(5, "17").same_as(VideoVersion(5, "18"))
    assert not VideoVersion(5, "17").same_as(VideoVersion(5, None, 1.0))
    assert VideoVersion(5, None, 1.25).same_as(VideoVersion(5, None, 1.25))
    assert not VideoVersion(5, None, 1.25).same_as(VideoVersion(6, None, 1.25))
    assert not VideoVersion(5, None, 1.25).same_as(VideoVersion(5, None, 2.0))
    assert not VideoVersion(5).same_as(VideoVersion(5))  # nothing to compare: not the same
    version = VideoVersion(5, None, 1700000000.123456)
    assert VideoVersion.from_dict(version.to_dict()) == version


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
    stamp = SourceStamp(str(video), VideoVersion.of(listed), "job-1", manifest, 0.0)
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
