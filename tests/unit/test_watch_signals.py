"""``vtrack watch`` stops on SIGTERM however late its handler returns: a real watcher on a
real folder, in this process's main thread (where Python runs signal handlers)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from config.settings import Settings
from entrypoints.watch import TICK_SECONDS, Watcher, watch_settings
from tasks import runtime

# A watcher that stops ends a second or two after the alarm (up to 2 x STOP_WAIT_SECONDS more
# when watchdog's reader is slow to stop), a stuck one only at the rescue: far apart, so that
# a loaded machine slowing the first never makes it look like the second.
RESCUE_AFTER_S = 30.0


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    watched = tmp_path / "incoming"
    watched.mkdir()
    runtime.configure(runtime.build_runtime(watch_settings(Settings(), [watched])))
    try:
        yield watched
    finally:
        runtime.configure(None)


def test_a_signal_handler_slower_than_a_tick_still_stops_the_watcher(folder: Path) -> None:
    """On a loaded machine SIGTERM's handler (a log line) can return after the loop's wait
    for events was due to end; the watcher must still see it was asked to stop. (CPython
    3.11's ``SimpleQueue.get(timeout)`` then waited forever: the CI saw a watcher killed.)"""
    watcher = Watcher([folder], stable_seconds=1.0)

    def slow_stop(signum: int, frame: FrameType | None) -> None:
        time.sleep(TICK_SECONDS * 2)
        watcher.stop()

    # Were the loop stuck, a file written later wakes it, and the time below says so.
    rescue = threading.Timer(RESCUE_AFTER_S, (folder / "wake.txt").write_text, ("x",))
    previous = signal.signal(signal.SIGALRM, slow_stop)
    rescue.start()
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        started = time.monotonic()
        counts = watcher.run()
        elapsed = time.monotonic() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        rescue.cancel()
    assert elapsed < RESCUE_AFTER_S / 2, f"stopped only after {elapsed:.1f}s"
    assert sum(counts.values()) == 0
