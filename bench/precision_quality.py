"""What ``VTRACK_DETECTOR_PRECISION=int8`` costs in quality, per model, as Markdown.

    python -m bench.precision_quality [--models yolov3-tiny,yolox-nano] [--clips dog,bedroom]

For each model, fp32 then int8 (for YOLOv3-tiny the int8 copy made from its shipped
parameters; for another model calibrated on the dog clip, as if it were the first video
tracked; or the copy already cached):

- pedestrians on MOT17-mini (every frame of its four sequences) at IoU 0.5: recall and
  precision, scored as :mod:`bench.detector_quality` scores them (its functions);
- the fastest and median ms of ``detect`` per MOT17 frame on one thread (noisy: a shared
  machine; the fastest is the cost without the other processes);
- with ``--clips``: the objects ``track_video`` reports on each shared clip (labels and
  counts) and how many of the fp32 objects have an int8 object of the same label
  overlapping them in time (a tracked object lost or found by int8 shows there).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from bench.detector_quality import MODELS, rate, score_persons, sequences
from workers.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CALIBRATION = SHARED / "data" / "videos" / "sam2_01_dog.mp4"


def options_for(model: str, precision: str):  # type: ignore[no-untyped-def]
    from workers.local.backend import LocalTrackingOptions

    path = MODELS[model]
    detector = None if path is None else str(SHARED / "models" / path)
    return LocalTrackingOptions(
        detector=detector, detector_precision=precision, inference_threads=1
    )


def on_mot(model: str, precision: str) -> dict:
    from workers.local.backend import detection_thresholds, load_detector

    options = options_for(model, precision)
    detector = load_detector(options, CALIBRATION)
    thresholds = detection_thresholds(options, detector)
    total: Counter[str] = Counter()
    times: list[float] = []
    for _name, frames, gt, _det in sequences(SHARED):
        counts, frame_times = score_persons(detector, thresholds, frames, gt)
        total.update(counts)
        times.extend(frame_times)
    recall, precision_ = rate(total["tp"], total["fp"], total["positives"])
    return {
        "recall": recall,
        "precision": precision_,
        "fastest": 1000 * min(times[1:]),
        "median": 1000 * float(np.median(times[1:])),
        "model": detector.model_path.name,
    }


def on_clip(model: str, precision: str, clip: Path):  # type: ignore[no-untyped-def]
    from workers.local.backend import track_video

    return track_video(clip, options_for(model, precision)).objects


def kept(fp32_objects, int8_objects) -> int:  # type: ignore[no-untyped-def]
    """fp32 objects with an int8 object of the same label overlapping them in time."""
    count = 0
    for a in fp32_objects:
        for b in int8_objects:
            same = a.entity.description == b.entity.description
            if same and a.segment.start <= b.segment.end and b.segment.start <= a.segment.end:
                count += 1
                break
    return count


def labels(objects) -> str:  # type: ignore[no-untyped-def]
    counts = Counter(o.entity.description for o in objects)
    return ", ".join(f"{n} {label}" for label, n in counts.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="yolov3-tiny,yolox-nano")
    parser.add_argument("--clips", default="", help="shared clip names (substrings), or 'all'")
    arguments = parser.parse_args()
    models = [m.strip() for m in arguments.models.split(",") if m.strip()]
    print("| model | precision | MOT17-mini recall / precision | ms per frame, fastest / median |")
    print("|---|---|---|---|")
    for model in models:
        for precision in ("fp32", "int8"):
            try:
                r = on_mot(model, precision)
            except ConfigurationError as refused:  # int8 is refused for families it breaks
                print(f"| {model} | {precision} | refused: {refused} | |", flush=True)
                continue
            print(
                f"| {model} | {precision} | {r['recall']:.3f} / {r['precision']:.3f} "
                f"| {r['fastest']:.1f} / {r['median']:.1f} |",
                flush=True,
            )
    if not arguments.clips:
        return
    clips = sorted((SHARED / "data" / "videos").glob("*.mp4"))
    if arguments.clips != "all":
        wanted = arguments.clips.split(",")
        clips = [c for c in clips if any(w in c.name for w in wanted)]
    print("\n| model | clip | fp32 objects | int8 objects | fp32 objects kept by int8 |")
    print("|---|---|---|---|---|")
    for model in models:
        for clip in clips:
            try:
                a, b = on_clip(model, "fp32", clip), on_clip(model, "int8", clip)
            except ConfigurationError as refused:
                print(f"| {model} | {clip.name} | refused: {refused} | | |", flush=True)
                continue
            print(
                f"| {model} | {clip.name} | {len(a)} ({labels(a)}) | {len(b)} ({labels(b)}) "
                f"| {kept(a, b)} of {len(a)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
