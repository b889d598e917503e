"""``vtrack watch FOLDER...``: start a job seconds after a video is copied into a folder.

watchdog reports what happens in the folders (inotify on Linux); a video is submitted once
it is complete (docs/operations.md, "vtrack watch", says when that is). Every file goes
through the scans' own path (:func:`tasks.scan.start_video_job`): the same claims and
source stamps, so a watcher, a scan and a submit never make two jobs for one version of a
video. Naming a folder allows it as an input root of this process only: the workers need
it within their own ``VTRACK_INPUT_ROOTS``.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from config.settings import Settings
from tasks.api import REDIS_DOWN, configure_service, service_storage
from tasks.scan import start_video_job
from workers.errors import InputError, StorageError
from workers.service import scanning

log = logging.getLogger(__name__)

# Failures that pass (broker or Redis down): the file is tried again after a while.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    *REDIS_DOWN,
    StorageError,
)
TICK_SECONDS = 0.2


# Longest wait for watchdog's threads to stop before the watcher returns regardless.
STOP_WAIT_SECONDS = 5.0


@dataclass
class _Pending:
    signature: tuple[int, int]  # size, mtime in ns
    changed_at: float
    closed: bool = False


class Settler:
    """Which files of the watched folders are complete, from what watchdog saw and their stat.

    A file is complete when it was closed after writing or moved in, or when its size and
    modification time have not changed for ``stable_seconds``. A longer wait is safer with
    copies that stall (a writer that pauses longer than it, file still open, is taken as
    done); a shorter one starts jobs sooner.
    """

    def __init__(self, stable_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stable_seconds = stable_seconds
        self._clock = clock
        self._pending: dict[Path, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def changed(self, path: Path, *, complete: bool = False) -> None:
        """Something was written to ``path`` (``complete``: closed after writing, moved in)."""
        signature = _signature(path)
        if signature is None:
            self._pending.pop(path, None)
            return
        entry = self._pending.get(path)
        if entry is None or entry.signature != signature or not complete:
            self._pending[path] = _Pending(signature, self._clock(), closed=complete)
        else:
            entry.closed = True

    def found(self, path: Path) -> None:
        """``path`` was there at start: as old as its modification time says."""
        signature = _signature(path)
        if signature is None:
            return
        age = max(0.0, time.time() - signature[1] / 1e9)
        self._pending[path] = _Pending(signature, self._clock() - age)

    def gone(self, path: Path) -> None:
        self._pending.pop(path, None)

    def due(self) -> list[Path]:
        """The files complete now, oldest change first; they are no longer pending."""
        now = self._clock()
        ready: list[tuple[float, Path]] = []
        for path, entry in list(self._pending.items()):
            signature = _signature(path)
            if signature is None:
                del self._pending[path]
                continue
            if signature != entry.signature:  # written since, with no event seen yet
                self._pending[path] = _Pending(signature, now)
                continue
            if entry.closed or now - entry.changed_at >= self.stable_seconds:
                ready.append((entry.changed_at, path))
                del self._pending[path]
        return [path for _, path in sorted(ready)]


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    if not os.path.isfile(path):
        return None
    return info.st_size, info.st_mtime_ns


class Watcher:
    """Starts jobs for the complete videos of ``folders``; :meth:`run` until :meth:`stop`."""

    def __init__(self, folders: Sequence[Path], stable_seconds: float) -> None:
        self.folders = [folder.resolve() for folder in folders]
        self.settler = Settler(stable_seconds)
        self.counts: Counter[str] = Counter()
        # queue.Queue, not SimpleQueue: CPython 3.11's SimpleQueue.get(timeout) waits forever
        # when a signal handler (SIGTERM's) runs past its deadline, and the watcher never stops.
        self._events: queue.Queue[tuple[str, Path]] = queue.Queue()
        self._stopping = threading.Event()
        self._retry_at: dict[Path, float] = {}

    def run(self) -> Counter[str]:
        observer = Observer()
        # watchdog's inotify reader can stay blocked in read() after stop() (it then never
        # returns): daemon threads, and a bounded wait below, let the process exit anyway.
        observer.daemon = True
        handler = _Handler(self._events)
        for folder in self.folders:
            observer.schedule(handler, str(folder), recursive=True)
        observer.start()  # before listing, so nothing lands unseen in between
        try:
            for folder in self.folders:
                for video in scanning.list_videos(service_storage(), str(folder)):
                    self.settler.found(Path(video.uri))
            log.info(
                "watching %s (%d video(s) there already)",
                ", ".join(map(str, self.folders)),
                len(self.settler),
            )
            while not self._stopping.is_set():
                self._drain(TICK_SECONDS)
                self._retry_due()
                for path in self.settler.due():
                    if self._stopping.is_set():
                        break
                    self._handle(path)
        finally:
            stopper = threading.Thread(target=observer.stop, name="watch-stop", daemon=True)
            stopper.start()
            stopper.join(timeout=STOP_WAIT_SECONDS)
            observer.join(timeout=STOP_WAIT_SECONDS)
        return Counter(self.counts)

    def stop(self) -> None:
        self._stopping.set()

    def describe_counts(self) -> str:
        return ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items())) or "none"

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                kind, path = self._events.get(timeout=remaining)
            except queue.Empty:
                return
            if kind == "gone":
                self.settler.gone(path)
            else:
                self.settler.changed(path, complete=kind == "complete")

    def _retry_due(self) -> None:
        now = time.monotonic()
        for path, when in list(self._retry_at.items()):
            if when <= now:
                del self._retry_at[path]
                self.settler.changed(path, complete=True)

    def _handle(self, path: Path) -> None:
        storage = service_storage()
        try:
            stat = storage.stat(str(path))
            if not scanning.is_video(stat):
                return
            outcome = start_video_job(stat, source="watch")
        except InputError as exc:  # gone meanwhile, or refused
            log.info("ignored %s: %s", path, exc)
            self.counts["ignored"] += 1
            return
        except TRANSIENT_ERRORS as exc:
            delay = self.settler.stable_seconds + 5.0
            log.warning("%s: %s: %s; trying again in %.0fs", path, type(exc).__name__, exc, delay)
            self._retry_at[path] = time.monotonic() + delay
            self.counts["retry"] += 1
            return
        if outcome.started:
            log.info("started job %s for %s", outcome.job_id, path)
            self.counts["started"] += 1
        else:
            held_by = f" (job {outcome.job_id})" if outcome.job_id else ""
            log.info("skipped %s: %s%s", path, outcome.reason, held_by)
            self.counts["duplicate"] += 1


class _Handler(FileSystemEventHandler):
    """watchdog's callbacks (on its thread): queue what happened for the watcher's loop."""

    def __init__(self, events: queue.Queue[tuple[str, Path]]) -> None:
        super().__init__()
        self._events = events

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileMovedEvent):
            self._events.put(("gone", Path(os.fsdecode(event.src_path))))
            self._events.put(("complete", Path(os.fsdecode(event.dest_path))))
        elif isinstance(event, FileClosedEvent):
            self._events.put(("complete", Path(os.fsdecode(event.src_path))))
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent):
            self._events.put(("changed", Path(os.fsdecode(event.src_path))))
        elif isinstance(event, FileDeletedEvent):
            self._events.put(("gone", Path(os.fsdecode(event.src_path))))


def watch_settings(settings: Settings, folders: Iterable[Path]) -> Settings:
    """``settings`` with ``folders`` added to the input roots: naming a folder allows it."""
    roots = [*settings.input_root_list(), *(str(folder.resolve()) for folder in folders)]
    return settings.model_copy(update={"input_roots": ",".join(roots)})


def watch(folders: Sequence[Path], settings: Settings) -> Counter[str]:
    """Watch ``folders`` until SIGTERM or Ctrl-C; the counts of each outcome."""
    for folder in folders:
        if not folder.is_dir():
            raise InputError(f"{folder}: no such folder")
    configured = [Path(root).resolve() for root in settings.input_root_list()]
    for folder in folders:
        if not any(folder.resolve().is_relative_to(root) for root in configured):
            log.warning(
                "%s is not within VTRACK_INPUT_ROOTS: workers refuse its videos unless "
                "their own VTRACK_INPUT_ROOTS include it",
                folder,
            )
    configure_service(watch_settings(settings, folders))
    watcher = Watcher(folders, settings.watch_stable_seconds)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        watcher.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return watcher.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped; files: %s", watcher.describe_counts())
        configure_service(None)
