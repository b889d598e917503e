"""Render benchmark: the seed's renderer vs ours on one clip with 12 tracked objects.

Each method runs in its own child process (so its peak RSS is its own) and renders every
object of the benchmark annotation set (:mod:`bench.make_bench_annotations`) ``--runs``
times; the median wall time is reported.

* ``seed``: OpenCV seek + read per frame, Pillow's default GIF save at full size, a cell.
* ``ours-gif`` / ``ours-webp``: :func:`workers.render.render_object` per object, one after
  the other in one process (as the render tasks of a job do, each decoding its own
  stretch), then :func:`workers.render.assemble_summary_grid`, with the product defaults.
* ``ours-gif-batch``: the same in GIF, but :func:`workers.render.render_objects` renders all
  objects from one decoding pass (what a task rendering a batch of objects would cost).

Usage (from the repository root)::

    python -m bench.render_bench [--video PATH] [--runs 3] [--methods seed,ours-gif,...]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.make_bench_annotations import bench_annotation
from workers.annotations import VideoAnnotation

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
    from workers.render import RenderOptions, assemble_summary_grid, render_object, render_objects
    from workers.video import probe_video

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


def worker(method: str, video: Path, runs: int) -> dict[str, object]:
    """Run ``method`` ``runs`` times in this process and measure it."""
    annotation = bench_annotation(video)
    render = _runner(method)
    seconds: list[float] = []
    output_bytes = 0
    for _ in range(runs):
        start = time.perf_counter()
        output_bytes = render(video, annotation)
        seconds.append(time.perf_counter() - start)
    return {
        "method": method,
        "objects": len(annotation.objects),
        "annotated_frames": sum(obj.frame_count for obj in annotation.objects),
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "output_bytes": output_bytes,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_in_child(method: str, video: Path, runs: int) -> dict[str, object]:
    command = [sys.executable, "-m", "bench.render_bench", "--worker", method]
    command += ["--video", str(video), "--runs", str(runs)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def report(results: list[dict[str, object]]) -> str:
    lines = [
        "| method | median wall (s) | runs (s) | output (MiB) | peak RSS (MiB) |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for result in results:
        runs = ", ".join(f"{s:.2f}" for s in result["seconds"])  # type: ignore[attr-defined]
        lines.append(
            f"| {result['method']} | {result['median_seconds']:.2f} | {runs} | "
            f"{result['output_bytes'] / 2**20:.1f} | {result['peak_rss_mib']:.0f} |"
        )
    by_method = {r["method"]: r["median_seconds"] for r in results}
    for method in METHODS[1:]:
        if "seed" in by_method and method in by_method:
            ratio = by_method["seed"] / by_method[method]  # type: ignore[operator]
            lines.append(f"\nseed / {method}: {ratio:.1f}x")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.video.exists():
        print(f"{args.video}: no such video", file=sys.stderr)
        return 2
    if args.worker:
        print(json.dumps(worker(args.worker, args.video, args.runs)))
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
