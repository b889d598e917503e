"""Detecting less often where the scene is still (``VTRACK_STILL_DETECT_EVERY``, issue 20):
detector runs, time and the objects found, against detecting every processed frame.

    python -m bench.still_detection [--shared ../shared/data] [--every 2,3] [--clips NAME,...]

For every shared clip (``../shared/data/videos``) and each ``--every`` (and 1, the
reference), the clip is tracked as ``vtrack run`` tracks it (segments of
``VTRACK_SEGMENT_SECONDS`` with their overlap, default settings otherwise, one inference
thread, the detector loaded and run once before timing), in one process. Printed as
Markdown for docs/benchmarks.md:

- processed frames, detector runs and runs per video second; frames given interpolated
  boxes, and skipped frames detected after all (a change seen at the next detected frame);
- wall and CPU seconds of the tracking (noisy on a shared machine: compare within a run);
- the objects (all, and 10+ frames: what the render keeps) and their labels, and against
  the reference, object for object (paired one to one by the number of common moments
  at which their boxes overlap at IoU 0.5 or more): objects missing or extra, pairs whose
  label changed, frames of the paired objects (reference, this run, at the same moments)
  and their boxes' mean IoU at those moments.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from workers.annotations.model import ObjectTrack, VideoAnnotation
from workers.geometry import box_iou

RENDER_MIN_FRAMES = 10


def _boxes_by_time(track: ObjectTrack) -> dict[float, tuple[float, ...]]:
    return {
        round(frame.time, 3): (frame.box.left, frame.box.top, frame.box.right, frame.box.bottom)
        for frame in track.frames
    }


def compare(reference: VideoAnnotation, other: VideoAnnotation) -> dict[str, float]:
    """Object for object, ``other`` against ``reference`` (see the module doc)."""
    first = [_boxes_by_time(track) for track in reference.objects]
    second = [_boxes_by_time(track) for track in other.objects]
    agreement = np.zeros((len(first), len(second)))
    for i, boxes in enumerate(first):
        for j, others in enumerate(second):
            common = boxes.keys() & others.keys()
            agreement[i, j] = sum(box_iou(boxes[t], others[t]) >= 0.5 for t in common)
    rows, columns = linear_sum_assignment(agreement, maximize=True)
    pairs = [(i, j) for i, j in zip(rows, columns, strict=True) if agreement[i, j] > 0]
    frames_reference = frames_other = frames_common = 0
    ious: list[float] = []
    relabelled = 0
    for i, j in pairs:
        boxes, others = first[i], second[j]
        common = boxes.keys() & others.keys()
        frames_reference += len(boxes)
        frames_other += len(others)
        frames_common += len(common)
        ious.extend(box_iou(boxes[t], others[t]) for t in common)
        if reference.objects[i].entity.description != other.objects[j].entity.description:
            relabelled += 1
    return {
        "missing": len(first) - len(pairs),
        "extra": len(second) - len(pairs),
        "relabelled": relabelled,
        "frames_reference": frames_reference,
        "frames_other": frames_other,
        "frames_common": frames_common,
        "mean_iou": float(np.mean(ious)) if ious else 0.0,
    }


def labels(annotation: VideoAnnotation) -> str:
    kept = Counter(
        track.entity.description
        for track in annotation.objects
        if track.frame_count >= RENDER_MIN_FRAMES
    )
    return ", ".join(f"{name} {count}" for name, count in sorted(kept.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--every", default="3")
    parser.add_argument("--clips", default=None, help="clip names, comma-separated")
    arguments = parser.parse_args()

    import workers.local.backend as backend
    from config.settings import get_settings
    from tasks.local_backend import local_tracking_options
    from workers.local.still import StillSceneDetection
    from workers.media.video import probe_video

    runs: list[StillSceneDetection] = []

    class Counted(StillSceneDetection):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            runs.append(self)

    backend.StillSceneDetection = Counted  # type: ignore[misc]
    settings = get_settings()
    base = local_tracking_options(settings).model_copy(
        update={"inference_threads": 1, "still_detect_every": 1}
    )
    backend.warm_up(base)
    everies = [1, *(int(value) for value in arguments.every.split(",") if int(value) > 1)]
    clips = sorted((arguments.shared / "videos").glob("*.mp4"))
    if arguments.clips:
        wanted = {name.strip() for name in arguments.clips.split(",")}
        clips = [clip for clip in clips if clip.name in wanted]
    print(f"load average before {os.getloadavg()[0]:.2f}\n")
    print(
        "| clip | every | processed frames | detector runs | runs per video-s "
        "| interpolated | detected after a change | wall s | CPU s | objects (10+ frames) "
        "| labels (10+ frames) | missing / extra / relabelled | frames: reference, this, "
        "same moments | mean IoU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for clip in clips:
        duration = probe_video(clip).duration
        reference: VideoAnnotation | None = None
        for every in everies:
            options = base.model_copy(update={"still_detect_every": every})
            runs.clear()
            started, cpu = time.perf_counter(), time.process_time()
            result = backend.track_video(
                clip,
                options,
                segment_seconds=settings.segment_seconds,
                overlap_seconds=settings.segment_overlap,
            )
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            processed = sum(run.counts.frames for run in runs)
            detected = sum(run.counts.detected for run in runs)
            interpolated = sum(run.counts.interpolated for run in runs)
            backfilled = sum(run.counts.backfilled for run in runs)
            kept = sum(track.frame_count >= RENDER_MIN_FRAMES for track in result.objects)
            if reference is None:
                reference = result
                against = "-"
                frames = "-"
                iou = "-"
            else:
                c = compare(reference, result)
                against = f"{c['missing']} / {c['extra']} / {c['relabelled']}"
                frames = f"{c['frames_reference']}, {c['frames_other']}, {c['frames_common']}"
                iou = f"{c['mean_iou']:.3f}"
            print(
                f"| {clip.name} | {every} | {processed} | {detected} | {detected / duration:.2f} "
                f"| {interpolated} | {backfilled} | {wall:.1f} | {cpu:.1f} "
                f"| {len(result.objects)} ({kept}) | {labels(result)} | {against} | {frames} "
                f"| {iou} |",
                flush=True,
            )
    print(f"\nload average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
