"""When ``vtrack watch`` takes a file as complete: real files, a clock the test moves."""

from __future__ import annotations

import os
import time
from pathlib import Path

from entrypoints.watch import Settler


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_file_still_growing_is_never_due_and_one_left_alone_is(tmp_path: Path) -> None:
    clock = Clock()
    settler = Settler(stable_seconds=5, clock=clock)
    video = tmp_path / "clip.mp4"
    with video.open("wb") as out:
        for _ in range(10):  # a slow copy: a chunk every 2 s, no close
            out.write(b"x" * 1000)
            out.flush()
            settler.changed(video)
            clock.now += 2
            assert settler.due() == []
        clock.now += 2.9  # 4.9 s since the last chunk
        assert settler.due() == []
        clock.now += 0.2
        assert settler.due() == [video]  # quiet for 5 s, though still open
    assert settler.due() == [] and len(settler) == 0


def test_a_change_no_event_reported_is_seen_by_its_size(tmp_path: Path) -> None:
    clock = Clock()
    settler = Settler(stable_seconds=5, clock=clock)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x" * 10)
    settler.changed(video)
    clock.now += 4
    video.write_bytes(b"x" * 20)  # written again, the event not drained yet
    assert settler.due() == []
    clock.now += 4
    assert settler.due() == []  # 4 s since the size changed
    clock.now += 1
    assert settler.due() == [video]


def test_closed_after_writing_or_moved_in_is_due_at_once(tmp_path: Path) -> None:
    clock = Clock()
    settler = Settler(stable_seconds=60, clock=clock)
    copied, moved = tmp_path / "copied.mp4", tmp_path / "moved.mp4"
    copied.write_bytes(b"x" * 100)
    settler.changed(copied)
    settler.changed(copied, complete=True)
    moved.write_bytes(b"y" * 100)
    settler.changed(moved, complete=True)
    assert sorted(settler.due()) == [copied, moved]


def test_files_there_at_start_are_as_old_as_their_mtime(tmp_path: Path) -> None:
    clock = Clock()
    settler = Settler(stable_seconds=5, clock=clock)
    old, fresh = tmp_path / "old.mp4", tmp_path / "fresh.mp4"
    old.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    fresh.write_bytes(b"y")
    settler.found(old)
    settler.found(fresh)
    assert settler.due() == [old]
    clock.now += 5
    assert settler.due() == [fresh]


def test_a_file_deleted_or_renamed_away_is_forgotten(tmp_path: Path) -> None:
    clock = Clock()
    settler = Settler(stable_seconds=1, clock=clock)
    deleted, renamed = tmp_path / "a.mp4", tmp_path / ".b.mp4.part"
    deleted.write_bytes(b"x")
    renamed.write_bytes(b"x")
    settler.changed(deleted)
    settler.changed(renamed)
    deleted.unlink()
    settler.gone(renamed)
    clock.now += 2
    assert settler.due() == [] and len(settler) == 0
