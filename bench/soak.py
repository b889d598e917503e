"""Soak: many short videos submitted at once to real workers; completeness, memory, rate.

    python -m bench.soak [--videos 50] [--seconds 4] [--backend local|file] [--dbs 11,12]

One ``annotate`` worker (one process) and one ``render`` worker (two processes) are started
on this machine, on their own Redis databases (``--dbs``, flushed first); ``--videos``
generated videos of ``--seconds`` each are submitted at once through the Python API. The
local backend (the default) tracks real photo sprites over a real background (cut from
``../shared/data/videos``), so every job has objects to render; the file backend renders
the test videos' own annotations.

It checks that every job completes and none is lost or run twice (each task id succeeds
once, one manifest per video), samples the RSS of every worker process twice a second
(peak per process, and whether it grows between the first and last fifth of the run), and
reports videos per minute with the load average: the machine is shared.

``tests/integration/test_soak.py`` runs the same :func:`run_soak` on eight videos.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.celery_worker import worker_command
from tests.support.processes import stop_group

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = REPO_ROOT.parent / "shared" / "data" / "videos"
SAMPLE_SECONDS = 0.5
_SUCCEEDED = re.compile(r"Task (vtrack\.[a-z_]+)\[([0-9a-f-]+)\] succeeded")


@dataclass
class Worker:
    """A ``celery worker`` process group; its log, and the RSS samples of its processes."""

    role: str
    process: subprocess.Popen[bytes]
    log_path: Path
    samples: dict[int, list[tuple[float, int]]] = field(default_factory=dict)  # pid: (t, rss)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_group(self.process, timeout=60)


def soak_env(work: Path, broker_url: str, results_url: str, backend: str) -> dict[str, str]:
    """This process's environment plus the ``VTRACK_`` settings a soak's workers and its
    submitting process share: messages and results on the given Redis URLs, inputs under
    ``work/input``, outputs and annotations under ``work/output``, ``backend`` tracking
    on one inference thread each."""
    return {
        **os.environ,
        "VTRACK_BROKER_URL": broker_url,
        "VTRACK_RESULT_BACKEND": results_url,
        "VTRACK_OUTPUT_ROOT": str(work / "output"),
        "VTRACK_ANNOTATION_ROOT": str(work / "output"),
        "VTRACK_INPUT_ROOTS": str(work / "input"),
        "VTRACK_BACKEND": backend,
        "VTRACK_INFERENCE_THREADS": "1",
    }


def start_worker(
    role: str, queue: str, concurrency: int, env: dict[str, str], logs: Path
) -> Worker:
    log_path = logs / f"{role}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            worker_command(queue, concurrency, f"soak-{role}-{os.getpid()}"),
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(role, process, log_path)
    deadline = time.monotonic() + 120
    while b"ready." not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"{role} worker did not start:\n{worker.log()[-3000:]}")
        time.sleep(0.2)
    return worker


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class MemorySampler(threading.Thread):
    """Every ``SAMPLE_SECONDS``, the RSS of each worker's main process and pool children."""

    def __init__(self, workers: Sequence[Worker]) -> None:
        super().__init__(daemon=True)
        self._workers = workers
        self._stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self._stopping.is_set():
            now = time.monotonic() - started
            for worker in self._workers:
                for pid in (worker.process.pid, *_children(worker.process.pid)):
                    rss = _rss_bytes(pid)
                    if rss is not None:
                        worker.samples.setdefault(pid, []).append((now, rss))
            self._stopping.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._stopping.set()
        self.join()


@dataclass
class SoakResult:
    videos: int
    completed: int
    statuses: Counter[str]
    duplicated_tasks: list[str]
    manifests_per_video: Counter[str]
    wall_seconds: float
    memory: dict[str, dict[str, Any]]  # "role kind pid": peak/first/last MiB, tenths
    tasks_succeeded: Counter[str]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    failures: list[str]

    @property
    def videos_per_minute(self) -> float:
        return 60.0 * self.completed / self.wall_seconds if self.wall_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "videos": self.videos,
            "completed": self.completed,
            "statuses": dict(self.statuses),
            "duplicated_tasks": self.duplicated_tasks,
            "videos_with_more_than_one_manifest": [
                uri for uri, count in self.manifests_per_video.items() if count > 1
            ],
            "wall_seconds": round(self.wall_seconds, 1),
            "videos_per_minute": round(self.videos_per_minute, 2),
            "tasks_succeeded": dict(self.tasks_succeeded),
            "memory_mib": self.memory,
            "load_before": self.load_before,
            "load_after": self.load_after,
            "failures": self.failures,
        }


def memory_summary(workers: Sequence[Worker]) -> dict[str, dict[str, Any]]:
    """Per process: peak RSS, and the mean RSS over the first and the last fifth of its life."""
    mib = 1024 * 1024
    summary: dict[str, dict[str, Any]] = {}
    for worker in workers:
        for pid, samples in sorted(worker.samples.items()):
            values = [rss for _, rss in samples]
            fifth = max(1, len(values) // 5)
            kind = "main" if pid == worker.process.pid else "child"
            summary[f"{worker.role} {kind} {pid}"] = {
                "peak": round(max(values) / mib, 1),
                "first_fifth": round(sum(values[:fifth]) / fifth / mib, 1),
                "last_fifth": round(sum(values[-fifth:]) / fifth / mib, 1),
                "seconds_alive": round(samples[-1][0] - samples[0][0], 1),
                # RSS at each tenth of the process's life: how it grows, not only by how much.
                "tenths": [
                    round(values[min(len(values) - 1, len(values) * tenth // 10)] / mib, 1)
                    for tenth in range(11)
                ],
            }
    return summary


def run_soak(
    submit_all: Callable[[], list[Any]],
    worker_env: dict[str, str],
    logs: Path,
    render_processes: int = 2,
    timeout: float = 3600,
) -> SoakResult:
    """Start the workers, call ``submit_all`` (returns ``tasks.api.Job`` handles), wait, stop.

    The caller's process must already be configured (``tasks`` imported) for the same
    broker and result backend as ``worker_env``.
    """
    from tasks.api import JobFailed

    workers = [
        start_worker("annotate", "annotate", 1, worker_env, logs),
        start_worker("render", "render", render_processes, worker_env, logs),
    ]
    sampler = MemorySampler(workers)
    load_before = os.getloadavg()
    sampler.start()
    failures: list[str] = []
    statuses: Counter[str] = Counter()
    manifests: Counter[str] = Counter()
    try:
        started = time.monotonic()
        jobs = submit_all()
        deadline = started + timeout
        for job in jobs:
            try:
                manifest = job.wait(timeout=max(1.0, deadline - time.monotonic()))
            except (JobFailed, TimeoutError) as exc:
                failures.append(str(exc))
                statuses["failed"] += 1
                continue
            statuses[manifest["status"]] += 1
            manifests[manifest["video_uri"]] += 1
        wall = time.monotonic() - started
        time.sleep(2)  # a duplicate still running would show in the logs now
    finally:
        try:
            sampler.stop()
        finally:
            for worker in workers:
                worker.stop()
    succeeded: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    for worker in workers:
        for name, task_id in _SUCCEEDED.findall(worker.log()):
            succeeded[name] += 1
            runs[f"{name}[{task_id}]"] += 1
    return SoakResult(
        videos=len(jobs),
        completed=statuses["completed"] + statuses["completed_with_errors"],
        statuses=statuses,
        duplicated_tasks=sorted(task for task, count in runs.items() if count > 1),
        manifests_per_video=manifests,
        wall_seconds=wall,
        memory=memory_summary(workers),
        tasks_succeeded=succeeded,
        load_before=load_before,
        load_after=os.getloadavg(),
        failures=failures,
    )


def make_videos(
    folder: Path, count: int, seconds: float, backend: str
) -> list[tuple[Path, Path | None]]:
    """``count`` distinct short videos (and their annotation files for the file backend)."""
    from tests.support.annotations import standard_annotation, write_annotation
    from tests.support.videos import write_test_video

    folder.mkdir(parents=True, exist_ok=True)
    made: list[tuple[Path, Path | None]] = []
    if backend == "local":
        from tests.support.sprite_video import real_scene, write_sprite_video

        background, sprites = real_scene(SHARED_VIDEOS, width=640, height=360)
        for number in range(count):
            video = folder / f"soak-{number:03d}.mp4"
            write_sprite_video(video, background, sprites, fps=10, duration=seconds)
            made.append((video, None))
        return made
    frames = round(seconds * 10)
    for number in range(count):
        video = write_test_video(folder / f"soak-{number:03d}.mp4", frames=frames, fps=10)
        annotation = standard_annotation(str(video), frames, 10, 160, 96)
        made.append((video, write_annotation(Path(f"{video}.json"), annotation)))
    return made


def markdown(result: SoakResult, backend: str, seconds: float) -> str:
    lines = [
        f"{result.videos} videos of {seconds:g} s ({backend} backend), submitted at once to one "
        f"annotate process and two render processes: {result.completed} completed "
        f"({dict(result.statuses)}), {len(result.duplicated_tasks)} task(s) run twice, "
        f"{sum(1 for c in result.manifests_per_video.values() if c > 1)} video(s) with more "
        f"than one manifest; {result.wall_seconds:.0f} s wall, "
        f"**{result.videos_per_minute:.1f} videos per minute**. Load average "
        f"{result.load_before[0]:.1f} before, {result.load_after[0]:.1f} after.",
        "",
        "| process | peak RSS MiB | mean RSS, first fifth | mean RSS, last fifth | alive s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, figures in result.memory.items():
        lines.append(
            f"| {name} | {figures['peak']} | {figures['first_fifth']} | "
            f"{figures['last_fifth']} | {figures['seconds_alive']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--backend", choices=("local", "file"), default="local")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument(
        "--dbs",
        default=os.environ.get("VTRACK_TEST_REDIS_DBS", "11,12"),
        help="broker and results databases, flushed first (default: VTRACK_TEST_REDIS_DBS)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)

    broker_db, results_db = args.dbs.split(",")
    work = Path(tempfile.mkdtemp(prefix="vtrack-soak-"))
    env = soak_env(
        work, f"{args.redis}/{broker_db}", f"{args.redis}/{results_db}", args.backend
    ) | {"VTRACK_POLL_INITIAL_DELAY": "0.5", "VTRACK_POLL_MAX_DELAY": "2"}
    os.environ.update(env)  # before tasks is imported: this process submits to the same Redis
    import redis

    for db in (broker_db, results_db):
        redis.Redis.from_url(f"{args.redis}/{db}").flushdb()
    videos = make_videos(work / "input", args.videos, args.seconds, args.backend)

    from tasks.api import submit

    def submit_all() -> list[Any]:
        return [
            submit(str(video), annotations_uri=str(notes) if notes else None)
            for video, notes in videos
        ]

    result = run_soak(submit_all, env, work)
    print(markdown(result, args.backend, args.seconds))
    if result.failures:
        print("\nfailures:\n" + "\n".join(result.failures))
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=2))
    print(f"\nlogs and outputs: {work}", file=sys.stderr)
    ok = result.completed == result.videos and not result.duplicated_tasks
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
