"""Render benchmark: the seed's renderer vs ours on one clip with 12 tracked objects.

Each method runs in its own child process (so its peak RSS is its own) and renders every
object of the benchmark annotation set (:mod:`bench.make_bench_annotations`) ``--runs``
times; the median wall time is reported.

* ``seed``: OpenCV seek + read per frame, Pillow's default GIF save at full size, a cell.
* ``ours-gif`` / ``ours-webp``: :func:`workers.media.render.render_object` per object, one after
  the other in one process (as the render tasks of a job do, each decoding its own
  stretch), then :func:`workers.media.render.assemble_summary_grid`, with the product defaults.
* ``ours-gif-batch``: the same in GIF, but :func:`workers.media.render.render_objects` renders all
  objects from one decoding pass (what a task rendering a batch of objects would cost).

``--profile gif`` instead runs ours once under cProfile and sums the time by phase.

Usage (from the repository root)::

    python -m bench.render_bench [--video PATH] [--runs 3] [--methods seed,ours-gif,...]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.make_bench_annotations import bench_annotation
from workers.annotations.model import VideoAnnotation

DEFAULT_VIDEO = Path(__file__).resolve().parents[1] / ".." / "shared/data/videos/sam2_01_dog.mp4"
METHODS = ("seed", "ours-gif", "ours-webp", "ours-gif-batch")


def run_seed(video: Path, annotation: VideoAnnotation) -> int:
    from bench.seed_renderer import seed_render_object

    total = 0
    for obj in annotation.objects:
        animation, cell = seed_render_object(video, obj)
        total += len(animation) + len(cell)
    return total


def run_ours(video: Path, annotation: VideoAnnotation, fmt: str, batch: bool = False) -> int:
    from workers.media.render import (
        RenderOptions,
        assemble_summary_grid,
        render_object,
        render_objects,
    )
    from workers.media.video import probe_video

    info = probe_video(video)
    options = RenderOptions(animation_format=fmt)
    if batch:
        rendered = render_objects(video, annotation.objects, options)
    else:
        rendered = [render_object(video, obj, options) for obj in annotation.objects]
    grid = assemble_summary_grid([r.cell_jpeg for r in rendered], info.width, info.height)
    return len(grid) + sum(len(r.animation) + len(r.cell_jpeg) for r in rendered)


def _runner(method: str) -> Callable[[Path, VideoAnnotation], int]:
    if method == "seed":
        return run_seed
    fmt = method.removeprefix("ours-").removesuffix("-batch")
    batch = method.endswith("-batch")
    return lambda video, annotation: run_ours(video, annotation, fmt, batch)


@dataclass(frozen=True)
class Result:
    """One method's measurements: wall and CPU seconds per run, output size, peak RSS."""

    method: str
    objects: int
    annotated_frames: int
    seconds: list[float]
    cpu_seconds: list[float]
    output_bytes: int
    peak_rss_mib: float

    @property
    def wall(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_seconds)


def worker(method: str, video: Path, runs: int) -> Result:
    """Run ``method`` ``runs`` times in this process and measure it."""
    annotation = bench_annotation(video)
    render = _runner(method)
    seconds: list[float] = []
    cpu_seconds: list[float] = []
    output_bytes = 0
    for _ in range(runs):
        start, cpu_start = time.perf_counter(), _cpu_time()
        output_bytes = render(video, annotation)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(_cpu_time() - cpu_start)
    return Result(
        method=method,
        objects=len(annotation.objects),
        annotated_frames=sum(obj.frame_count for obj in annotation.objects),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        output_bytes=output_bytes,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def _cpu_time() -> float:
    """User + system CPU time of this process, all threads (decoders run several)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_in_child(method: str, video: Path, runs: int) -> Result:
    command = [sys.executable, "-m", "bench.render_bench", "--worker", method]
    command += ["--video", str(video), "--runs", str(runs)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return Result(**json.loads(done.stdout))


def report(results: list[Result]) -> str:
    lines = [
        "| method | median wall (s) | runs, wall (s) | median CPU (s) | output (MiB) "
        "| peak RSS (MiB) |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for result in results:
        runs = ", ".join(f"{s:.2f}" for s in result.seconds)
        lines.append(
            f"| {result.method} | {result.wall:.2f} | {runs} | {result.cpu:.2f} | "
            f"{result.output_bytes / 2**20:.1f} | {result.peak_rss_mib:.0f} |"
        )
    by_method = {result.method: result for result in results}
    lines.append("")
    seed = by_method.get("seed")
    for method in METHODS[1:]:
        if seed is not None and method in by_method:
            ours = by_method[method]
            lines.append(
                f"seed / {method}: {seed.wall / ours.wall:.1f}x wall, "
                f"{seed.cpu / ours.cpu:.1f}x CPU"
            )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines.append(f"load average when done: {load} ({os.cpu_count()} cores)")
    return "\n".join(lines)


# Where ours spends its time: (label, function name, module file) summed as cumulative time.
PROFILE_PHASES = (
    ("open + demux index", "_open_video", "video.py"),
    ("open + demux index", "_read_index", "video.py"),
    ("decode + convert to RGB", "_decode_stretch", "video.py"),
    ("  of which RGB conversion + scaling", "_to_rgb_image", "video.py"),
    ("drawing boxes + captions", "draw_box", "render_cells.py"),
    ("drawing boxes + captions", "draw_caption", "render_cells.py"),
    ("animation encoding", "encode_animation", "animation.py"),
    ("cell JPEG encoding", "encode_jpeg", "render_cells.py"),
    ("summary grid", "assemble_summary_grid", "grid.py"),
)


def profile(video: Path, fmt: str) -> str:
    """One run of ours under cProfile, summed by phase."""
    annotation = bench_annotation(video)
    run_ours(video, annotation, fmt)  # warm up: imports, page cache
    profiler = cProfile.Profile()
    profiler.enable()
    start = time.perf_counter()
    run_ours(video, annotation, fmt)
    total = time.perf_counter() - start
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    phases: dict[str, float] = {}
    for label, function, module in PROFILE_PHASES:
        seconds = sum(
            entry[3]
            for (filename, _, name), entry in stats.items()
            if name == function and filename.endswith(module)
        )
        phases[label] = phases.get(label, 0.0) + seconds
    lines = [
        f"ours-{fmt}, one run under cProfile: {total:.2f} s",
        "| phase | s |",
        "| --- | ---: |",
    ]
    lines += [f"| {label} | {seconds:.2f} |" for label, seconds in phases.items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--profile", choices=("gif", "webp"), help="profile ours by phase")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.video.exists():
        print(f"{args.video}: no such video", file=sys.stderr)
        return 2
    if args.profile:
        print(profile(args.video, args.profile))
        return 0
    if args.worker:
        print(json.dumps(asdict(worker(args.worker, args.video, args.runs))))
        return 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    results = []
    for method in methods:
        print(f"running {method} x{args.runs}...", file=sys.stderr)
        results.append(run_in_child(method, args.video, args.runs))
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
