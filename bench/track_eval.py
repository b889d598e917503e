"""Tracking quality of the local backend, printed as Markdown for docs/local-backend.md.

    python -m bench.track_eval [--shared ../shared/data] [--process-fps 10]

1. Objects found on every shared clip (all, and those the render keeps: 10+ frames).
2. MOTA, IDF1 and HOTA on a generated video with known ground truth (real photo sprites
   crossing over a real background; tests/support/sprite_video.py), single pass.
3. Pedestrian detection recall and precision at IoU 0.5 on MOT17-04 frames 1-8.
4. Segments tracked apart and stitched against a single pass: objects and ID switches.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from trackers.eval import compute_clear_metrics, compute_hota_metrics, compute_identity_metrics

from tests.support.sprite_video import TruthRow, real_scene, write_sprite_video
from workers.annotations.model import VideoAnnotation
from workers.evaluation import read_mot_rows
from workers.geometry import box_iou_matrix, xywh_to_xyxy
from workers.local.backend import (
    LocalTrackingOptions,
    detection_thresholds,
    load_detector,
    track_video,
)
from workers.media.video import iter_frames, probe_video

RENDER_MIN_FRAMES = 10


def clip_counts(shared: Path, options: LocalTrackingOptions) -> None:
    print("| clip | seconds | objects (all) | objects with 10+ frames | classes (10+ frames) |")
    print("|---|---|---|---|---|")
    for clip in sorted((shared / "videos").glob("*.mp4")):
        result = track_video(clip, options)
        kept = [o for o in result.objects if o.frame_count >= RENDER_MIN_FRAMES]
        classes = defaultdict(int)
        for obj in kept:
            classes[obj.entity.description] += 1
        summary = ", ".join(f"{name} {count}" for name, count in sorted(classes.items()))
        duration = probe_video(clip).duration
        print(f"| {clip.name} | {duration:.1f} | {len(result.objects)} | {len(kept)} | {summary} |")


def sequence_metrics(
    truth: list[TruthRow],
    result: VideoAnnotation,
    processed: list[float],
    width: int,
    height: int,
) -> dict[str, float]:
    """CLEAR, Identity and HOTA over the processed frames (class-aware IoU)."""
    by_time: dict[float, list[TruthRow]] = defaultdict(list)
    for row in truth:
        by_time[round(row.time, 3)].append(row)
    predicted: dict[float, list[tuple[int, str, np.ndarray]]] = defaultdict(list)
    for obj in result.objects:
        for frame in obj.frames:
            box = np.array(frame.box.to_pixels(width, height), dtype=float)
            predicted[round(frame.time, 3)].append((obj.track_id or 0, obj.entity.description, box))
    gt_ids, tracker_ids, similarities = [], [], []
    for moment in (round(t, 3) for t in processed):
        rows = by_time.get(moment, [])
        found = predicted.get(moment, [])
        gt_boxes = np.array([row.box for row in rows], dtype=float).reshape(-1, 4)
        pr_boxes = np.array([box for _, _, box in found], dtype=float).reshape(-1, 4)
        similarity = box_iou_matrix(gt_boxes, pr_boxes)
        for i, row in enumerate(rows):
            for j, (_, name, _) in enumerate(found):
                if name != row.class_name:
                    similarity[i, j] = 0.0
        gt_ids.append(np.array([row.object_id for row in rows], dtype=int))
        tracker_ids.append(np.array([track_id for track_id, _, _ in found], dtype=int))
        similarities.append(similarity)
    clear = compute_clear_metrics(gt_ids, tracker_ids, similarities)
    identity = compute_identity_metrics(gt_ids, tracker_ids, similarities)
    hota = compute_hota_metrics(gt_ids, tracker_ids, similarities)
    return {
        "MOTA": clear["MOTA"],
        "IDF1": identity["IDF1"],
        "HOTA": float(np.mean(hota["HOTA"])),
        "IDSW": clear["IDSW"],
        "recall": clear["CLR_Re"],
        "precision": clear["CLR_Pr"],
        "objects": len(result.objects),
    }


def sprite_evaluation(shared: Path, options: LocalTrackingOptions, folder: Path) -> None:
    background, sprites = real_scene(shared / "videos")
    video = folder / "sprites.mp4"
    truth = write_sprite_video(video, background, sprites, fps=30, duration=8.0)
    height, width = background.shape[:2]
    rate = options.process_fps
    processed = [f.time for f in iter_frames(video, every=1 / rate if rate else None, max_width=64)]
    print("| run | objects (3 real) | MOTA | IDF1 | HOTA | ID switches | recall | precision |")
    print("|---|---|---|---|---|---|---|---|")
    runs = {
        "single pass": {},
        "segments of 3 s, 1 s overlap": {"segment_seconds": 3.0, "overlap_seconds": 1.0},
    }
    for label, split in runs.items():
        result = track_video(video, options, **split)
        m = sequence_metrics(truth, result, processed, width, height)
        print(
            f"| {label} | {m['objects']} | {m['MOTA']:.3f} | {m['IDF1']:.3f} | {m['HOTA']:.3f} "
            f"| {m['IDSW']} | {m['recall']:.3f} | {m['precision']:.3f} |"
        )


def mot17_detection(shared: Path, options: LocalTrackingOptions) -> None:
    folder = shared / "mot" / "MOT17-04_frames1-8"
    rows = read_mot_rows(folder / "gt.txt")
    detector = load_detector(options)
    thresholds = detection_thresholds(options, detector)
    person = detector.class_names.index("person")
    tp = fp = fn = 0
    for frame in iter_frames(folder / "video_frames1-8.mp4"):
        height, width = frame.image.shape[:2]
        mot_frame = frame.index + 1
        here = rows[rows[:, 0] == mot_frame]
        boxes = xywh_to_xyxy(here[:, 2:6])
        pedestrians = boxes[(here[:, 7] == 1) & (here[:, 6] == 1)]
        ignored = boxes[~((here[:, 7] == 1) & (here[:, 6] == 1))]
        found = detector.detect(frame.image, thresholds)
        mine = found.boxes[found.class_ids == person] * [width, height, width, height]
        similarity = box_iou_matrix(pedestrians, mine)
        rows_idx, cols_idx = linear_sum_assignment(similarity, maximize=True)
        matched = {
            (r, c) for r, c in zip(rows_idx, cols_idx, strict=True) if similarity[r, c] >= 0.5
        }
        matched_cols = {c for _, c in matched}
        unmatched = [c for c in range(len(mine)) if c not in matched_cols]
        # Detections on ignored ground truth (reflections, static people, ...) do not count.
        ignore_overlap = box_iou_matrix(mine[unmatched], ignored)
        false = sum(1 for k in range(len(unmatched)) if not (ignore_overlap[k] >= 0.5).any())
        tp += len(matched)
        fp += false
        fn += len(pedestrians) - len(matched)
    print("| frames | pedestrians | found (IoU 0.5) | false | recall | precision |")
    print("|---|---|---|---|---|---|")
    print(f"| 8 | {tp + fn} | {tp} | {fp} | {tp / (tp + fn):.3f} | {tp / max(tp + fp, 1):.3f} |")


def segments_vs_single(shared: Path, options: LocalTrackingOptions) -> None:
    print("| clip | single pass objects (10+ frames) | 3 s segments objects (10+ frames) |")
    print("|---|---|---|")
    for name in ("sam2_01_dog.mp4", "sam2_bedroom.mp4"):
        clip = shared / "videos" / name
        single = track_video(clip, options)
        split = track_video(clip, options, segment_seconds=3.0, overlap_seconds=1.0)

        def kept(result: VideoAnnotation) -> int:
            return sum(1 for o in result.objects if o.frame_count >= RENDER_MIN_FRAMES)

        print(
            f"| {name} | {len(single.objects)} ({kept(single)}) "
            f"| {len(split.objects)} ({kept(split)}) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--process-fps", type=float, default=10.0)
    parser.add_argument("--tracker", default="bytetrack")
    arguments = parser.parse_args()
    options = LocalTrackingOptions(process_fps=arguments.process_fps, tracker=arguments.tracker)
    started = time.perf_counter()
    print(f"process_fps={arguments.process_fps}, tracker={arguments.tracker}\n")
    clip_counts(arguments.shared, options)
    print()
    with tempfile.TemporaryDirectory() as folder:
        sprite_evaluation(arguments.shared, options, Path(folder))
    print()
    mot17_detection(arguments.shared, options)
    print()
    segments_vs_single(arguments.shared, options)
    print(f"\n(took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
