"""Detector quality per family and model, with and without tiles, as Markdown for
docs/local-backend.md.

    python -m bench.detector_quality [--shared ../shared] [--models NAME,...] [--tiles off,auto]
                                     [--clips] [--skip-mot]

For each detector (YOLOv3-tiny and the models in ``../shared/models``) and tile setting:

- pedestrians found on MOT17-mini (every frame of its four sequences) at IoU 0.5: recall
  and precision, beside the sequences' own public Faster R-CNN detections (det/det.txt).
  Ground truth: class 1 (pedestrian) with the "consider" flag; a box matching a distractor
  (person on a vehicle, static person, distractor, reflection) counts neither way, as in
  MOTChallenge's own evaluation;
- ms per MOT17 frame (1920x1080) on one thread (detection only, with tiles when on): the
  fastest of the 20 frames (the cost without the machine's other processes) and the median;
- with ``--clips``: objects reported and the real-time factor (video seconds per wall
  second) of ``vtrack run`` on each shared clip, one process, one thread.

Times are noisy on this shared 2-core machine: compare them within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from workers.evaluation import MOT_DISTRACTORS, MOT_PEDESTRIAN, read_mot_rows
from workers.geometry import box_iou_matrix, xywh_to_xyxy

if TYPE_CHECKING:
    from workers.local.detector import DetectionThresholds
    from workers.local.detectors import ObjectDetector

REPO = Path(__file__).resolve().parents[1]
MODELS = {
    "yolov3-tiny": None,
    "yolox-nano": "yolox_nano_416.onnx",
    "picodet-s-416": "picodet_s_416_coco.onnx",
    "picodet-s-320": "picodet_s_320_coco.onnx",
}
CLIPS = (
    "sam2_01_dog.mp4",
    "sam2_bedroom.mp4",
    "intel_car-detection.mp4",
    "intel_one-by-one-person-detection.mp4",
    "intel_bottle-detection.mp4",
)


def score_frame(truth: np.ndarray, ignored: np.ndarray, found: np.ndarray) -> tuple[int, int, int]:
    """(true positives, false positives, positives) of one frame at IoU 0.5."""
    if len(truth) and len(found):
        iou = box_iou_matrix(truth, found)
        rows, cols = linear_sum_assignment(-iou)
        matched = [(r, c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= 0.5]
    else:
        matched = []
    used = {c for _, c in matched}
    false = [c for c in range(len(found)) if c not in used]
    if len(ignored) and false:
        overlap = box_iou_matrix(found[false], ignored).max(axis=1)
        false = [c for c, o in zip(false, overlap, strict=True) if o < 0.5]
    return len(matched), len(false), len(truth)


def read_mot(path: Path) -> dict[int, np.ndarray]:
    rows = read_mot_rows(path)
    return {int(frame): rows[rows[:, 0] == frame] for frame in np.unique(rows[:, 0])}


def sequences(shared: Path) -> list[tuple[str, list[Path], dict, dict]]:
    found = []
    for folder in sorted((shared / "data" / "mot" / "MOT17-mini").iterdir()):
        frames = sorted((folder / "img1").glob("*.jpg"))
        found.append(
            (
                folder.name,
                frames,
                read_mot(folder / "gt" / "gt.txt"),
                read_mot(folder / "det" / "det.txt"),
            )
        )
    return found


def truth_of(gt: dict, number: int) -> tuple[np.ndarray, np.ndarray]:
    rows = gt.get(number, np.zeros((0, 9)))
    positive = rows[(rows[:, 7] == MOT_PEDESTRIAN) & (rows[:, 6] == 1)]
    ignored = rows[np.isin(rows[:, 7], MOT_DISTRACTORS)]
    return xywh_to_xyxy(positive[:, 2:6]), xywh_to_xyxy(ignored[:, 2:6])


def public_detections(shared: Path) -> list[dict]:
    results = []
    for name, frames, gt, det in sequences(shared):
        tp = fp = positives = 0
        for frame in frames:
            number = int(frame.stem)
            truth, ignored = truth_of(gt, number)
            found = xywh_to_xyxy(det.get(number, np.zeros((0, 7)))[:, 2:6])
            t, f, p = score_frame(truth, ignored, found)
            tp, fp, positives = tp + t, fp + f, positives + p
        results.append({"sequence": name, "tp": tp, "fp": fp, "positives": positives})
    return results


def options_for(model: str, tiles: str, shared: Path):
    from workers.local.backend import LocalTrackingOptions

    path = MODELS[model]
    detector = None if path is None else str(shared / "models" / path)
    return LocalTrackingOptions(detector=detector, detect_tiles=tiles, inference_threads=1)


def score_persons(
    detector: ObjectDetector, thresholds: DetectionThresholds, frames: list[Path], gt: dict
) -> tuple[dict[str, int], list[float]]:
    """A loaded detector's person boxes on one MOT17 sequence, scored at IoU 0.5 by
    :func:`score_frame`: ``{"tp", "fp", "positives"}`` summed over ``frames``, and the
    seconds ``detect`` took on each frame (detection only: reading the image is not timed)."""
    person = detector.class_names.index("person")
    tp = fp = positives = 0
    times = []
    for frame in frames:
        image = cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2RGB)
        started = time.perf_counter()
        found = detector.detect(image, thresholds)
        times.append(time.perf_counter() - started)
        height, width = image.shape[:2]
        boxes = found.boxes[found.class_ids == person] * np.array([width, height] * 2)
        truth, ignored = truth_of(gt, int(frame.stem))
        t, f, p = score_frame(truth, ignored, boxes)
        tp, fp, positives = tp + t, fp + f, positives + p
    return {"tp": tp, "fp": fp, "positives": positives}, times


def detector_on_mot(model: str, tiles: str, shared: Path) -> dict:
    from workers.local.backend import detection_thresholds, load_detector

    options = options_for(model, tiles, shared)
    detector = load_detector(options)
    thresholds = detection_thresholds(options, detector)
    per_sequence, times = [], []
    for name, frames, gt, _det in sequences(shared):
        counts, frame_times = score_persons(detector, thresholds, frames, gt)
        per_sequence.append({"sequence": name, **counts})
        times.extend(frame_times)
    # The fastest run is the cost without the other processes of this shared machine.
    return {
        "sequences": per_sequence,
        "ms_per_frame": 1000 * float(np.min(times[1:] or times)),
        "ms_median": 1000 * float(np.median(times[1:] or times)),
    }


def clip_run(model: str, tiles: str, shared: Path, clip: str, tree: Path = REPO) -> dict:
    """``vtrack run`` on one clip in a process of its own, one thread; objects and speed.
    ``tree``: the vtrack checkout to run (another one gives the "before" figures)."""
    from workers.media.video import probe_video

    video = shared / "data" / "videos" / clip
    path = MODELS[model]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTRACK_")}
    env |= {"VTRACK_DETECT_TILES": tiles, "VTRACK_INFERENCE_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = str(tree)
    if path is not None:
        env["VTRACK_DETECTOR"] = str(shared / "models" / path)
    with tempfile.TemporaryDirectory() as out:
        env["VTRACK_STORAGE_DIR"] = out
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "entrypoints.cli",
                "run",
                str(video),
                "--out",
                out,
                "--processes",
                "1",
            ],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            return {"clip": clip, "error": done.stderr.strip().splitlines()[-1:]}
        manifest = json.loads(next(Path(out).glob("*.manifest.json")).read_text())
    objects = manifest["objects"]  # what the user is shown (default thresholds)
    labels = Counter(o["entity"] for o in objects)
    duration = probe_video(video).duration
    return {"clip": clip, "objects": len(objects), "labels": dict(labels), "rtf": duration / wall}


def rate(tp: int, fp: int, positives: int) -> tuple[float, float]:
    return tp / max(positives, 1), tp / max(tp + fp, 1)


def cells(per_sequence: list[dict]) -> str:
    """``recall / precision`` per sequence, then over all of them."""
    parts = [rate(s["tp"], s["fp"], s["positives"]) for s in per_sequence]
    total = rate(*(sum(s[key] for s in per_sequence) for key in ("tp", "fp", "positives")))
    return " | ".join(f"{r:.2f} / {p:.2f}" for r, p in [*parts, total])


def clip_cell(clip: dict) -> str:
    if "error" in clip:
        return f"error: {clip['error']}"
    labels = ", ".join(
        f"{n} {label}" for label, n in sorted(clip["labels"].items(), key=lambda x: -x[1])
    )
    return f"{clip['objects']} ({labels}); RTF {clip['rtf']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--tiles", default="off,auto")
    parser.add_argument("--clips", action="store_true", help="also vtrack run on each clip")
    parser.add_argument("--skip-mot", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--tree", type=Path, default=REPO, help="vtrack checkout whose `vtrack run` the clips use"
    )
    args = parser.parse_args()
    public = public_detections(args.shared)
    results: dict = {"public": public, "runs": []}
    names = [s["sequence"].removesuffix("-FRCNN") for s in public]
    if not args.skip_mot:
        heads = " | ".join(f"{n} recall / precision" for n in names)
        print(f"| detector | tiles | {heads} | all | ms/frame (1080p, 1 thread): fastest, median |")
        print("|---|---|" + "---|" * (len(names) + 2))
        print(f"| public Faster R-CNN (det.txt) | - | {cells(public)} | - |", flush=True)
    for model in args.models.split(","):
        for tiles in args.tiles.split(","):
            run: dict = {"model": model, "tiles": tiles}
            if not args.skip_mot:
                run["mot"] = detector_on_mot(model, tiles, args.shared)
                ms = f"{run['mot']['ms_per_frame']:.0f}, {run['mot']['ms_median']:.0f}"
                print(f"| {model} | {tiles} | {cells(run['mot']['sequences'])} | {ms} |")
            if args.clips:
                run["clips"] = [
                    clip_run(model, tiles, args.shared, clip, args.tree) for clip in CLIPS
                ]
                print(f"clips {model} {tiles}: " + "; ".join(map(clip_cell, run["clips"])))
            sys.stdout.flush()
            results["runs"].append(run)
    if args.clips:
        print("\n| detector | tiles | " + " | ".join(CLIPS) + " |")
        print("|---|---|" + "---|" * len(CLIPS))
        for run in results["runs"]:
            row = " | ".join(clip_cell(clip) for clip in run["clips"])
            print(f"| {run['model']} | {run['tiles']} | {row} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
