"""Tracking throughput against the cost of one decode of the same video (issue 20).

    python -m bench.tracking_bench [--seconds 254] [--processes 1,2] [--repeats 2]
        [--models default,yolox_nano_416,...] [--set VTRACK_X=value ...]

For the default detector and every detector model in ``../shared/models`` (files that fit
no detector family, such as the re-id model, are left out), it prints a Markdown table:
video seconds per wall second on 1 and 2 processes, milliseconds per processed frame by
stage, the peak memory of one tracking process, and the ratio of the tracking wall time to
one decode of the same video, measured in the same run.

The video is the dog clip (``sam2_01_dog.mp4``, 1280x720, 30 fps) looped to ``--seconds``
(254 by default: the video of the issue's goals). Every measurement is a fresh process
(``--child``), so peak memory is the measurement's own; decodes and tracking runs take
turns (decode, track on 1 process, decode, track on 2 processes, ...) so a change of the
machine's load hits both sides of a ratio alike. Ratios use the decode measured just
before the run; the table shows the run of ``--repeats`` with the best ratio, and every
run's ratio. On a loaded machine the wall ratio moves with the other processes; the CPU
ratio (CPU seconds of the tracking processes, all their threads, over the CPU seconds of
the decode) is the steadier measure of the work done.

What is timed, as ``vtrack run --processes N`` tracks (but without its annotate and render
steps): the video cut into the service's segments (``VTRACK_SEGMENT_SECONDS``, 30 s with
2 s overlap), tracked by N spawned processes with :func:`tasks.inprocess.run_tracking_threads`'
thread options, then stitched. Models are loaded and run once before timing (a worker
loads its detector once). One decode is PyAV decoding every frame with FFmpeg's frame
threads, no conversion (the issue's "one decode").

Stages, in milliseconds per processed frame (detected or not: see
``VTRACK_STILL_DETECT_EVERY``), summed over the processes (CPU-ish time of
the stage in each process, not wall time): ``decode`` is the time the tracking loop waited
for its next frame (with decoding in a thread of its own, only the wait: the decoding
itself overlaps inference), ``pre`` the detector's work before ``run`` (letterbox, blob),
``infer`` onnxruntime's ``run``, ``post`` the detector's work after it (decoding the
outputs, suppression), ``track`` the tracker and the track collector, ``merge`` the stitch
of the segments (ms per frame of the whole video, in the parent).

``--set KEY=VALUE`` (repeatable) passes settings to the tracking processes as environment
variables, e.g. ``--set VTRACK_DETECTOR_PRECISION=int8``; ``--variant NAME:KEY=VALUE,...``
(repeatable) adds a row per model with those settings beside the plain one, run in turn.
With ``VTRACK_DETECTOR_PRECISION=int8`` (or ``auto``), the default model's int8 copy is made
by the processes' warm-up, before timing (from its shipped parameters); for another model,
make it first (any tracking run with int8, e.g. ``python -m bench.precision_quality``):
otherwise the first timed run includes the calibration.

The machine is shared: figures are noisy, the load average before and after is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VTRACK_SHARED", REPO.parent / "shared"))
DOG = SHARED / "data" / "videos" / "sam2_01_dog.mp4"
STAGES = ("decode", "pre", "infer", "post", "track")


# --- inside the measured processes ----------------------------------------------------

_stage_totals: dict[str, float] = defaultdict(float)


def _install_stage_clocks() -> None:
    """Wrap the tracking loop's parts with clocks adding to :data:`_stage_totals`."""
    import workers.local.backend as backend
    from workers.local.detectors import base
    from workers.local.tracking import TrackCollector

    clock = time.perf_counter
    marks: dict[str, float] = {}

    real_run = base.SessionRunner.run

    def timed_run(self, blob):  # type: ignore[no-untyped-def]
        marks["run_start"] = clock()
        try:
            return real_run(self, blob)
        finally:
            marks["run_end"] = clock()
            _stage_totals["infer"] += marks["run_end"] - marks["run_start"]

    base.SessionRunner.run = timed_run  # type: ignore[method-assign]

    real_load = backend.load_detector

    def timed_detector(options, video_path=None):  # type: ignore[no-untyped-def]
        detector = real_load(options, video_path)
        if getattr(detector, "_bench_timed", False):
            return detector
        real_detect = detector.detect

        def detect(image, thresholds, **kwargs):  # type: ignore[no-untyped-def]
            started = clock()
            found = real_detect(image, thresholds, **kwargs)
            ended = clock()
            _stage_totals["pre"] += marks.get("run_start", started) - started
            _stage_totals["post"] += ended - marks.get("run_end", ended)
            _stage_totals["frames"] += 1
            return found

        detector.detect = detect  # type: ignore[method-assign]
        detector._bench_timed = True  # type: ignore[attr-defined]
        return detector

    backend.load_detector = timed_detector

    real_update = TrackCollector.update

    def timed_update(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        started = clock()
        try:
            return real_update(self, *args, **kwargs)
        finally:
            _stage_totals["track"] += clock() - started
            _stage_totals["processed"] += 1

    TrackCollector.update = timed_update  # type: ignore[method-assign]

    real_ahead = backend.read_ahead

    def timed_ahead(*args, **kwargs):  # type: ignore[no-untyped-def]
        frames = iter(real_ahead(*args, **kwargs))
        while True:
            started = clock()
            try:
                frame = next(frames)
            except StopIteration:
                return
            finally:
                _stage_totals["decode"] += clock() - started
            yield frame

    backend.read_ahead = timed_ahead


def _options() -> Any:
    from config.settings import get_settings
    from tasks.local_backend import local_tracking_options

    return local_tracking_options(get_settings())


def _init_tracking_process(threads: dict[str, Any]) -> None:

    from workers.local.backend import warm_up

    _install_stage_clocks()
    global _process_options
    _process_options = _options().model_copy(update=threads)
    warm_up(_process_options)
    _stage_totals.clear()


_process_options: Any = None


def _track_one(arguments: tuple[str, dict[str, float]]) -> tuple[dict, dict[str, float], int]:
    from workers.annotations.model import Segment
    from workers.local.backend import track_segment

    video, segment = arguments
    _stage_totals.clear()
    cpu = time.process_time()
    annotation = track_segment(Path(video), Segment.from_dict(segment), _process_options)
    _stage_totals["cpu"] = time.process_time() - cpu
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return annotation.to_dict(), dict(_stage_totals), peak_kb


def child_track(video: Path, processes: int) -> dict[str, Any]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from config.settings import get_settings
    from tasks.inprocess import run_tracking_threads
    from workers.annotations.model import VideoAnnotation
    from workers.local.segments import plan_segments, stitch_segments
    from workers.media.video import probe_video

    settings = get_settings()
    info = probe_video(video)
    segments = plan_segments(info, settings.segment_seconds, settings.segment_overlap)
    threads = run_tracking_threads(processes, len(segments))
    jobs = [(str(video), segment.to_dict()) for segment in segments]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        processes, mp_context=context, initializer=_init_tracking_process, initargs=(threads,)
    ) as pool:
        list(pool.map(_noop, range(processes * 4)))  # every process started and warm
        started = time.perf_counter()
        results = list(pool.map(_track_one, jobs))
        tracked = time.perf_counter()
    parts = [
        (segment, VideoAnnotation.from_dict(result))
        for segment, (result, _, _) in zip(segments, results, strict=True)
    ]
    merge_started = time.perf_counter()
    annotation = stitch_segments(
        parts, settings.segment_overlap, options=_options(), video_frames=info.frame_count
    )
    ended = time.perf_counter()
    stages: dict[str, float] = defaultdict(float)
    for _, totals, _ in results:
        for key, value in totals.items():
            stages[key] += value
    detected = stages.pop("frames", 0.0)
    frames = stages.pop("processed", 0.0) or detected or 1.0
    cpu = stages.pop("cpu", 0.0)
    per_frame = {key: 1000 * stages[key] / frames for key in STAGES}
    per_frame["merge"] = 1000 * (ended - merge_started) / frames
    return {
        "wall": ended - started,
        "tracking_wall": tracked - started,
        "cpu": cpu,
        "frames": frames,
        "detections": detected,
        "ms_per_frame": per_frame,
        "peak_mb": max(peak for _, _, peak in results) / 1024,
        "objects": len(annotation.objects),
        "duration": info.duration,
    }


def _noop(_: int) -> None:
    time.sleep(0.05)


def child_decode(video: Path) -> dict[str, Any]:
    import av

    started, cpu = time.perf_counter(), time.process_time()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = sum(1 for _ in container.decode(stream))
    return {
        "wall": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "frames": frames,
    }


# --- the parent -----------------------------------------------------------------------


def detector_models() -> list[tuple[str, str | None]]:
    """``(label, VTRACK_DETECTOR value)``: the default, then every detector in the models folder."""
    from workers.errors import ConfigurationError
    from workers.local.detectors import family_of

    models: list[tuple[str, str | None]] = [("default (yolov3-tiny)", None)]
    for path in sorted((SHARED / "models").rglob("*.onnx")):
        try:
            family_of(path)
        except ConfigurationError:
            continue  # not a detector (the re-id model)
        models.append((str(path.relative_to(SHARED / "models")), str(path)))
    return models


def run_child(arguments: list[str], env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.tracking_bench", "--child", *arguments],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bench child {arguments} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def make_video(seconds: float, work: Path) -> Path:
    from bench.bench_media import loop_video

    work.mkdir(parents=True, exist_ok=True)
    target = work / f"dog-{seconds:g}s.mp4"
    if not target.is_file():
        loop_video(DOG, target, seconds)
    return target


def parse_assignments(text: str) -> dict[str, str]:
    pairs = [part.split("=", 1) for part in text.split(",") if part]
    return {key.strip(): value.strip() for key, value in pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=254.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vtrack-tracking-bench"))
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", default=None, help="labels or file names, comma-separated")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...")
    arguments = parser.parse_args()
    if arguments.child:
        kind, video, *rest = arguments.child
        if kind == "decode":
            print(json.dumps(child_decode(Path(video))))
        else:
            print(json.dumps(child_track(Path(video), int(rest[0]))))
        return

    if not DOG.is_file():
        sys.exit(f"{DOG} is missing: this benchmark needs the shared clips")
    video = arguments.video or make_video(arguments.seconds, arguments.work)
    base_env = parse_assignments(",".join(arguments.set))
    variants: list[tuple[str, dict[str, str]]] = [("", {})]
    for text in arguments.variant:
        name, _, assignments = text.partition(":")
        variants.append((name, parse_assignments(assignments)))
    models = detector_models()
    if arguments.models:
        keep = [name.strip() for name in arguments.models.split(",")]
        models = [m for m in models if any(k in m[0] for k in keep)]
    counts = [int(n) for n in arguments.processes.split(",")]
    from workers.media.video import probe_video

    info = probe_video(video)
    print(
        f"{video.name}: {info.width}x{info.height}, {info.fps:.2f} fps, {info.duration:.1f} s; "
        f"{os.cpu_count()} cores; settings {base_env or 'defaults'}; "
        f"load average before {os.getloadavg()[0]:.2f}\n",
        flush=True,
    )
    rows: dict[tuple[str, str, int], list[tuple[dict[str, Any], dict]]] = defaultdict(list)
    for _ in range(arguments.repeats):
        for label, model in models:
            for variant, extra in variants:
                env = {**base_env, **extra}
                if model:
                    env["VTRACK_DETECTOR"] = model
                for processes in counts:
                    decode = run_child(["decode", str(video)], env)
                    tracked = run_child(["track", str(video), str(processes)], env)
                    rows[(label, variant, processes)].append((tracked, decode))
                    print(
                        f"  {label} {variant} x{processes}: {tracked['wall']:.1f} s, "
                        f"decode {decode['wall']:.1f} s, CPU {tracked['cpu']:.1f} s vs "
                        f"{decode['cpu']:.1f} s, {tracked['objects']} objects, "
                        f"{tracked['detections']:.0f} detector runs of "
                        f"{tracked['frames']:.0f} processed frames",
                        file=sys.stderr,
                        flush=True,
                    )
    print(
        "| detector | variant | processes | video-s per wall-s | wall s | one decode s "
        "| wall ratio to one decode (runs) | CPU ratio to one decode (runs) "
        "| ms/frame decode wait | pre | infer | post | track | merge | peak MB / process "
        "| objects | detector runs per video-s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (label, variant, processes), runs in rows.items():
        best, decode = min(runs, key=lambda run: run[0]["wall"] / run[1]["wall"])
        ratios = ", ".join(f"{run['wall'] / dec['wall']:.2f}" for run, dec in runs)
        cpu_ratios = [run["cpu"] / dec["cpu"] for run, dec in runs if dec.get("cpu")]
        cpu_cell = (
            f"{min(cpu_ratios):.2f} ({', '.join(f'{r:.2f}' for r in cpu_ratios)})"
            if cpu_ratios
            else "-"
        )
        stages = best["ms_per_frame"]
        cells = " | ".join(f"{stages[key]:.1f}" for key in (*STAGES, "merge"))
        print(
            f"| {label} | {variant or '-'} | {processes} | {best['duration'] / best['wall']:.2f} "
            f"| {best['wall']:.1f} | {decode['wall']:.1f} "
            f"| {best['wall'] / decode['wall']:.2f} ({ratios}) | {cpu_cell} "
            f"| {cells} | {best['peak_mb']:.0f} | {best['objects']} "
            f"| {best.get('detections', best['frames']) / best['duration']:.2f} |"
        )
    print(f"\nload average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
