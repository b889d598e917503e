"""Throughput of the local backend in video-seconds per wall-second, printed as Markdown.

    python -m bench.track_throughput [--video ../shared/data/videos/sam2_01_dog.mp4]

1. One process, default settings (10 processed frames a second, onnxruntime's own thread
   count), and every frame for comparison.
2. Segments: the video cut in two; one process with one inference thread tracks both in
   turn, then two processes with one inference thread each track one segment each (as two
   Celery worker processes would).

3. With ``--tree DIR`` (repeatable): the default settings with one inference thread (the
   service's setting: the real-time factor on one core), timed in each code tree given,
   the trees taking turns run after run so a load change hits all alike, pinned to one
   core (``taskset -c 0``). Wall time and the process's CPU time are both printed: on a
   busy machine the CPU time is the steadier measure of the work done. This is how the
   before/after figures in docs/local-backend.md were measured.

4. With ``--cues``: in one process (pin it: ``taskset -c 1 python -m ...``), runs with
   and without issue 10's cues (colour histograms and distance matching) taking turns:
   the cost of those cues alone, with the least noise a busy machine allows.

Models are loaded before timing (a worker loads its detector once, at process start).
The machine's load average is printed: on a shared machine, figures move with it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from pathlib import Path

from workers.annotations.model import Segment
from workers.local.backend import LocalTrackingOptions, track_segment, track_video, warm_up
from workers.media.video import probe_video


def _timed_segment(arguments: tuple[str, dict, dict]) -> float:
    video, segment, options = arguments
    started = time.perf_counter()
    track_segment(
        Path(video), Segment.from_dict(segment), LocalTrackingOptions.model_validate(options)
    )
    return time.perf_counter() - started


def _warm(options: dict) -> None:
    warm_up(LocalTrackingOptions.model_validate(options))


def single_process(video: Path, duration: float, repeats: int) -> None:
    print("| settings | wall s | video-s per wall-s |")
    print("|---|---|---|")
    for label, options in (
        ("default (10 fps processed, ORT threads default)", LocalTrackingOptions()),
        ("every frame, ORT threads default", LocalTrackingOptions(process_fps=None)),
        ("default, 1 inference thread", LocalTrackingOptions(inference_threads=1)),
    ):
        warm_up(options)
        best = min(_time(lambda o=options: track_video(video, o)) for _ in range(repeats))
        print(f"| {label} | {best:.2f} | {duration / best:.2f} |")


def _time(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def two_processes(video: Path, duration: float, repeats: int) -> None:
    options = LocalTrackingOptions(inference_threads=1).model_dump(mode="json")
    half = duration / 2
    segments = [Segment(0.0, half + 1.0).to_dict(), Segment(half, duration).to_dict()]
    jobs = [(str(video), segment, options) for segment in segments]
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, initializer=_warm, initargs=(options,)) as pool:
        one = min(
            _time(lambda: [pool.apply(_timed_segment, (job,)) for job in jobs])
            for _ in range(repeats)
        )
    with context.Pool(2, initializer=_warm, initargs=(options,)) as pool:
        pool.map(_timed_segment, jobs)  # make sure both processes are up and warm
        two = min(_time(lambda: pool.map(_timed_segment, jobs)) for _ in range(repeats))
    print("| workers (1 inference thread each) | wall s | video-s per wall-s | speed-up |")
    print("|---|---|---|---|")
    print(f"| 1 process, 2 segments in turn | {one:.2f} | {duration / one:.2f} | 1.00 |")
    print(f"| 2 processes, 1 segment each | {two:.2f} | {duration / two:.2f} | {one / two:.2f} |")


ONE_CORE_SNIPPET = """
import sys, time
from pathlib import Path
from workers.local.backend import LocalTrackingOptions, track_video, warm_up
options = LocalTrackingOptions(inference_threads=1)
warm_up(options)
track_video(Path(sys.argv[1]), options)
started, cpu = time.perf_counter(), time.process_time()
track_video(Path(sys.argv[1]), options)
print(time.perf_counter() - started, time.process_time() - cpu)
"""


def compare_trees(video: Path, duration: float, trees: list[Path], repeats: int) -> None:
    import subprocess
    import sys

    times: dict[Path, list[float]] = {tree: [] for tree in trees}
    cpu_times: dict[Path, list[float]] = {tree: [] for tree in trees}
    for _ in range(repeats):
        for tree in trees:
            output = subprocess.run(
                [
                    "taskset",
                    "-c",
                    "0",
                    sys.executable,
                    "-c",
                    ONE_CORE_SNIPPET,
                    str(video.resolve()),
                ],
                cwd=tree,
                env={**os.environ, "PYTHONPATH": str(tree.resolve())},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            wall, cpu = (float(value) for value in output.strip().splitlines()[-1].split())
            times[tree].append(wall)
            cpu_times[tree].append(cpu)
    print(
        f"| code | wall s (best of {repeats}) | video-s per wall-s | CPU s (best) "
        "| video-s per CPU-s | wall s, all runs |"
    )
    print("|---|---|---|---|---|---|")
    for tree, measured in times.items():
        best, cpu = min(measured), min(cpu_times[tree])
        runs = ", ".join(f"{value:.2f}" for value in measured)
        print(
            f"| {tree.resolve().name} | {best:.2f} | {duration / best:.2f} | {cpu:.2f} "
            f"| {duration / cpu:.2f} | {runs} |"
        )


def compare_cues(video: Path, duration: float, repeats: int) -> None:
    import dataclasses

    import workers.local.backend as backend

    with_cues = LocalTrackingOptions(inference_threads=1)
    without = LocalTrackingOptions(inference_threads=1, appearance=False)
    base = backend.YOLOV3_TINY_THRESHOLDS
    no_reach = dataclasses.replace(base, reach=0.0)
    warm_up(with_cues)
    track_video(video, with_cues)
    runs: dict[str, list[tuple[float, float]]] = {"with the cues": [], "without": []}
    for _ in range(repeats):
        for name in runs:
            backend.YOLOV3_TINY_THRESHOLDS = base if name == "with the cues" else no_reach
            options = with_cues if name == "with the cues" else without
            cpu, wall = time.process_time(), time.perf_counter()
            track_video(video, options)
            runs[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    backend.YOLOV3_TINY_THRESHOLDS = base
    print("| run | CPU s (best) | video-s per CPU-s | CPU s, all runs |")
    print("|---|---|---|---|")
    for name, measured in runs.items():
        best = min(cpu for cpu, _ in measured)
        every = ", ".join(f"{cpu:.2f}" for cpu, _ in measured)
        print(f"| {name} | {best:.2f} | {duration / best:.2f} | {every} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--video", type=Path, default=Path("../shared/data/videos/sam2_01_dog.mp4"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tree", type=Path, action="append", default=None)
    parser.add_argument("--cues", action="store_true")
    arguments = parser.parse_args()
    info = probe_video(arguments.video)
    print(
        f"{arguments.video.name}: {info.width}x{info.height}, {info.fps:.2f} fps, "
        f"{info.duration:.1f} s; {os.cpu_count()} cores; load average before "
        f"{os.getloadavg()[0]:.2f}\n"
    )
    if arguments.cues:
        compare_cues(arguments.video, info.duration, arguments.repeats)
        print(f"\nload average after {os.getloadavg()[0]:.2f}")
        return
    if arguments.tree:
        compare_trees(arguments.video, info.duration, arguments.tree, arguments.repeats)
        print(f"\nload average after {os.getloadavg()[0]:.2f}")
        return
    single_process(arguments.video, info.duration, arguments.repeats)
    print()
    two_processes(arguments.video, info.duration, arguments.repeats)
    print(f"\nload average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
