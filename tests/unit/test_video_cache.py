"""The machine's cache of downloaded videos: one download per version, bounded, shared safely."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

from workers.storage.cache import VideoCache


def counting_fetch(content: bytes, log: Path, delay: float = 0.0):  # type: ignore[no-untyped-def]
    """A fetch that writes ``content`` and appends a line to ``log`` (shared by processes)."""

    def fetch(path: Path) -> None:
        with log.open("a") as out:
            out.write(f"{os.getpid()}\n")
        time.sleep(delay)
        path.write_bytes(content)

    return fetch


def fetches(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def _read_through_cache(folder: str, log: str, results: str) -> None:
    cache = VideoCache(folder, 10_000)
    fetch = counting_fetch(b"video bytes", Path(log), delay=0.3)
    with cache.local_copy("gs://b/v.mp4", "1", 11, ".mp4", fetch) as path:
        data = path.read_bytes()
    with Path(results).open("a") as out:
        out.write(data.decode() + "\n")


def test_concurrent_processes_download_a_version_once(tmp_path: Path) -> None:
    log, results = tmp_path / "fetches.log", tmp_path / "results.log"
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_read_through_cache, args=(str(tmp_path / "cache"), str(log), str(results))
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert fetches(log) == 1
    assert results.read_text().splitlines() == ["video bytes"] * 4


def test_a_new_generation_is_a_new_entry(tmp_path: Path) -> None:
    cache, log = VideoCache(tmp_path / "cache", 10_000), tmp_path / "fetches.log"
    with cache.local_copy("gs://b/v.mp4", "1", 3, ".mp4", counting_fetch(b"old", log)) as path:
        assert path.read_bytes() == b"old" and path.suffix == ".mp4"
    with cache.local_copy("gs://b/v.mp4", "1", 3, ".mp4", counting_fetch(b"xxx", log)) as path:
        assert path.read_bytes() == b"old"
    with cache.local_copy("gs://b/v.mp4", "2", 3, ".mp4", counting_fetch(b"new", log)) as path:
        assert path.read_bytes() == b"new"
    assert fetches(log) == 2


def test_least_recently_used_entries_make_room(tmp_path: Path) -> None:
    cache, log = VideoCache(tmp_path / "cache", 250), tmp_path / "fetches.log"
    for name in ("a", "b"):
        with cache.local_copy(f"gs://b/{name}", "1", 100, ".mp4", counting_fetch(b"x" * 100, log)):
            pass
        time.sleep(0.02)
    with cache.local_copy("gs://b/a", "1", 100, ".mp4", counting_fetch(b"?", log)):
        pass  # a is now the most recently used
    with cache.local_copy("gs://b/c", "1", 100, ".mp4", counting_fetch(b"x" * 100, log)):
        pass
    assert fetches(log) == 3
    kept = {path.name for path in cache.entries()}
    assert kept == {f"{cache.key('gs://b/a', '1')}.mp4", f"{cache.key('gs://b/c', '1')}.mp4"}
    assert sum(path.stat().st_size for path in cache.entries()) <= 250


def test_an_entry_in_use_is_not_removed_to_make_room(tmp_path: Path) -> None:
    cache, log = VideoCache(tmp_path / "cache", 150), tmp_path / "fetches.log"
    in_use = threading.Event()
    release = threading.Event()

    def reader() -> None:
        with cache.local_copy("gs://b/a", "1", 100, ".mp4", counting_fetch(b"a" * 100, log)) as p:
            in_use.set()
            release.wait(10)
            assert p.read_bytes() == b"a" * 100

    thread = threading.Thread(target=reader)
    thread.start()
    assert in_use.wait(10)
    # Another process (its own open of the lock file) needs room while a is being read.
    with cache.local_copy("gs://b/b", "1", 100, ".mp4", counting_fetch(b"b" * 100, log)) as path:
        assert path.read_bytes() == b"b" * 100
    release.set()
    thread.join(10)
    names = {path.name for path in cache.entries()}
    assert f"{cache.key('gs://b/a', '1')}.mp4" in names


def test_an_object_larger_than_the_cache_is_served_and_not_kept(tmp_path: Path) -> None:
    cache, log = VideoCache(tmp_path / "cache", 10), tmp_path / "fetches.log"
    with cache.local_copy("gs://b/big", "1", 100, ".mp4", counting_fetch(b"x" * 100, log)) as p:
        assert p.read_bytes() == b"x" * 100
    assert not p.exists()
    assert cache.entries() == []


def test_a_failed_download_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path / "cache", 1000)

    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise ConnectionError("reset by peer")

    try:
        with cache.local_copy("gs://b/v", "1", 10, ".mp4", broken):
            raise AssertionError("must not be reached")
    except ConnectionError:
        pass
    leftovers = [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []
