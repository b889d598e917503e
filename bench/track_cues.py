"""What issue 19's cues cost, per processed frame, printed as Markdown for
docs/local-backend.md.

    python -m bench.track_cues [--video ../shared/data/videos/sam2_01_dog.mp4 ...]
                               [--reid ../shared/models/osnet_x0_25_msmt17.onnx] [--repeats 3]

Tracks each video as ``track_segment`` does (decode, detect, track; one inference thread),
timing separately, with ``time.perf_counter``:

* the whole tracking of a frame (decoding, scaling, detection, the tracker's update);
* the hand-made appearance cues (``workers.local.appearance.describe``: colour, grey
  levels, layout, gradients), timed by wrapping the function;
* camera motion compensation (``CameraMotion.seconds``: estimation and applying it);
* the re-identification model, when ``--reid`` is given (``ReidModel.seconds``: crops,
  the batched forward pass).

The gate and the edge and speed checks of the merge are a few arithmetic operations per
track and are inside "tracker update". Best of ``--repeats`` runs per video (on a shared
machine figures move with the load, printed before and after).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from workers.local import tracking
from workers.local.backend import (
    LocalTrackingOptions,
    detection_thresholds,
    load_detector,
    tracker_thresholds,
)
from workers.local.reid import load_reid_model
from workers.local.tracking import TrackCollector, make_tracker
from workers.media.video import iter_frames

DEFAULT_VIDEOS = ("../shared/data/videos/sam2_01_dog.mp4", "../shared/data/videos/sam2_bedroom.mp4")


def run(video: Path, reid_path: str | None) -> dict[str, float]:
    options = LocalTrackingOptions(inference_threads=1)
    detector = load_detector(options)
    thresholds = detection_thresholds(options, detector)
    tracker = make_tracker("bytetrack", tracker_thresholds(options, detector), 10.0)
    reid = load_reid_model(reid_path, 1)
    if reid is not None:
        reid.seconds, reid.crops = 0.0, 0
    collector = TrackCollector(
        tracker, appearance=True, class_names=detector.class_names, reid=reid
    )
    cue_seconds = 0.0
    original = tracking.describe

    def timed_describe(image: np.ndarray, box: np.ndarray) -> np.ndarray:
        nonlocal cue_seconds
        started = time.perf_counter()
        result = original(image, box)
        cue_seconds += time.perf_counter() - started
        return result

    tracking.describe = timed_describe
    frames = 0
    started = time.perf_counter()
    try:
        for frame in iter_frames(
            video, every=0.1, max_width=max(detector.input_width, detector.input_height)
        ):
            detections = detector.detect(frame.image, thresholds)
            height, width = frame.image.shape[:2]
            collector.update(frame.time, detections, (width, height), frame.image)
            frames += 1
    finally:
        tracking.describe = original
    total = time.perf_counter() - started
    return {
        "frames": frames,
        "total": total,
        "cues": cue_seconds,
        "camera": collector.camera.seconds,
        "reid": reid.seconds if reid else 0.0,
        "crops": reid.crops if reid else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--video", type=Path, action="append", default=None)
    parser.add_argument("--reid", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    videos = arguments.video or [Path(video) for video in DEFAULT_VIDEOS]
    print(f"load average before {os.getloadavg()[0]:.2f}\n")
    print(
        "| video | re-id | frames | ms per frame, all | hand-made cues | camera motion "
        "| re-id (crops) | new cues, share of tracking time |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for video in videos:
        for reid in (None, arguments.reid) if arguments.reid else (None,):
            runs = [run(video, reid) for _ in range(arguments.repeats)]
            best = min(runs, key=lambda figures: figures["total"])
            per_frame = {
                key: best[key] / best["frames"] * 1000
                for key in ("total", "cues", "camera", "reid")
            }
            share = (best["cues"] + best["camera"] + best["reid"]) / best["total"]
            print(
                f"| {video.name} | {'yes' if reid else 'no'} | {best['frames']} "
                f"| {per_frame['total']:.1f} | {per_frame['cues']:.2f} | {per_frame['camera']:.2f} "
                f"| {per_frame['reid']:.1f} ({best['crops']}) | {share:.1%} |"
            )
    print(f"\nload average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
