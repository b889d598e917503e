"""What the int8 default detector's quality owes to its calibration frames, as Markdown.

    python -m bench.calibration_quality [--sources dog-32,clips-40,sprite-32,synthetic-32]

For each calibration source the default YOLOv3-tiny is quantized afresh (the recipe of
:mod:`workers.local.quantization`, in a temporary folder) and measured on one thread:

- pedestrians on MOT17-mini at IoU 0.5 (recall / precision, as :mod:`bench.detector_quality`
  scores them);
- ``fp32 boxes kept``: the share of the fp32 model's boxes on held-out frames of the five
  shared clips (10 a clip, none of them a calibration frame) that the int8 model finds
  again at IoU 0.5 with the same class, all of them and those scoring 0.3 or more (what
  the rendered video shows by default; boxes near the 0.15 threshold come and go);
- the cost of making the int8 model: wall and CPU seconds (collecting the calibration
  blobs, the calibration runs and the quantization; decoding the source is not counted).

Sources: ``dog-N`` (N frames spread over the dog clip: what the first video tracked gives
when it is that clip), ``clips-N`` (N frames spread over the five shared clips), ``sprite-N``
(the tests' generated sprite video: real sprites on a real still background),
``synthetic-N`` (the tests' generated grey textured clip), ``blank-1`` (one grey frame),
``shipped`` (no calibration: the activation parameters shipped with vtrack,
``workers/local/yolov3_tiny_int8.json``).

``--write-parameters PATH`` saves the activation parameters of the int8 model calibrated on
the (single) source given, for :func:`workers.local.quantization.shipped_parameters`:

    python -m bench.calibration_quality --sources clips-40 \\
        --write-parameters workers/local/yolov3_tiny_int8.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench.detector_quality import CLIPS, rate, score_persons, sequences
from workers.geometry import box_iou_matrix

SOURCE_NAMES = {
    "dog": "spread over sam2_01_dog.mp4",
    "clips": "spread over each of " + ", ".join(CLIPS),
}
STRONG = 0.3  # the render filter's default (VTRACK_LOCAL_MIN_CONFIDENCE)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
VIDEOS = SHARED / "data" / "videos"


def spread(video: Path, count: int, width: int, offset: float = 0.0) -> list[np.ndarray]:
    """``count`` frames spread evenly over ``video`` (``offset``: share of a gap to skip)."""
    from workers.media.video import iter_frames, probe_video

    info = probe_video(video)
    gap = info.duration / count
    times = [(index + offset) * gap for index in range(count)]
    frames = []
    for frame in iter_frames(video, every=gap / 4, max_width=width):
        if times and frame.time >= times[0]:
            frames.append(frame.image)
            times.pop(0)
    return frames[:count]


def source_images(name: str, width: int, work: Path) -> list[np.ndarray]:
    kind, _, number = name.partition("-")
    count = int(number) if number else 0
    if kind == "dog":
        return spread(VIDEOS / "sam2_01_dog.mp4", count, width)
    if kind == "clips":
        per_clip = max(1, count // len(CLIPS))
        return [image for clip in CLIPS for image in spread(VIDEOS / clip, per_clip, width)]
    if kind == "sprite":
        from tests.support.sprite_video import real_scene, write_sprite_video

        path = work / "sprite.mp4"
        background, sprites = real_scene(VIDEOS)
        write_sprite_video(path, background, sprites)
        return spread(path, count, width)
    if kind == "synthetic":
        from tests.support.videos import write_test_video

        path = write_test_video(work / "synthetic.mp4", frames=60)
        return spread(path, count, width)
    if kind == "blank":
        return [np.full((288, 416, 3), 114, dtype=np.uint8)]
    raise SystemExit(f"unknown source {name!r}")


def held_out(width: int) -> list[np.ndarray]:
    """10 frames a clip, half-way between any ``clips-N`` calibration frames."""
    return [image for clip in CLIPS for image in spread(VIDEOS / clip, 10, width, offset=0.5)]


def kept_share(fp32, int8, thresholds, images: list[np.ndarray]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """fp32 boxes (all, and those scoring at least ``STRONG``) that int8 finds again."""
    counts = {"found": 0, "kept": 0, "strong": 0, "strong_kept": 0}
    for image in images:
        a, b = fp32.detect(image, thresholds), int8.detect(image, thresholds)
        strong = a.scores >= STRONG
        counts["found"] += len(a)
        counts["strong"] += int(strong.sum())
        if len(a) and len(b):
            iou = box_iou_matrix(a.boxes.astype(np.float64), b.boxes.astype(np.float64))
            same = a.class_ids[:, None] == b.class_ids[None, :]
            again = (iou * same).max(axis=1) >= 0.5
            counts["kept"] += int(again.sum())
            counts["strong_kept"] += int((again & strong).sum())
    return counts


def on_mot(detector, thresholds) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    total: Counter[str] = Counter()
    for _name, frames, gt, _det in sequences(SHARED):
        counts, _times = score_persons(detector, thresholds, frames, gt)
        total.update(counts)
    return rate(total["tp"], total["fp"], total["positives"])


def main() -> None:
    from workers.local.backend import LocalTrackingOptions, detection_thresholds, load_model
    from workers.local.detectors import open_detector
    from workers.local.quantization import (
        calibration_blobs,
        quantize_model,
        shipped_parameters,
        write_parameters,
    )

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sources",
        default="dog-32,dog-16,dog-8,dog-4,clips-40,clips-15,sprite-32,synthetic-32,blank-1",
    )
    parser.add_argument("--write-parameters", type=Path, default=None)
    arguments = parser.parse_args()
    if arguments.write_parameters and "," in arguments.sources:
        raise SystemExit("--write-parameters takes one source")
    options = LocalTrackingOptions(detector_precision="fp32", inference_threads=1)
    fp32 = load_model(options)
    thresholds = detection_thresholds(options, fp32)
    width = max(fp32.input_height, fp32.input_width)
    holdout = held_out(width)
    recall, precision = on_mot(fp32, thresholds)
    print(f"fp32 {fp32.model_path.name}: MOT17-mini {recall:.3f} / {precision:.3f}\n")
    print(
        "| calibration source | frames | MOT17-mini recall / precision | fp32 boxes kept "
        f"| fp32 boxes scoring {STRONG} or more kept | making it: wall s / CPU s |"
    )
    print("|---|---|---|---|---|---|")
    name = fp32.session.get_inputs()[0].name
    for source in arguments.sources.split(","):
        with tempfile.TemporaryDirectory(prefix="calibration-") as folder:
            work = Path(folder)
            images = [] if source == "shipped" else source_images(source, width, work)
            wall, cpu = time.perf_counter(), time.process_time()
            if source == "shipped":
                parameters = shipped_parameters(fp32.model_path)
                if parameters is None:
                    raise SystemExit(f"no shipped parameters for {fp32.model_path.name}")
                path = quantize_model(
                    fp32.model_path, work / "int8.onnx", name, parameters=parameters
                )
            else:
                blobs = calibration_blobs(fp32, images)
                path = quantize_model(fp32.model_path, work / "int8.onnx", name, blobs)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if arguments.write_parameters:
                description = (
                    f"{source}: {len(images)} frames ({SOURCE_NAMES.get(source.split('-')[0])})"
                )
                write_parameters(
                    path, arguments.write_parameters, fp32.model_path.stem, description
                )
            int8 = open_detector(path, family=fp32.family, inference_threads=1)
            recall, precision = on_mot(int8, thresholds)
            c = kept_share(fp32, int8, thresholds, holdout)
            print(
                f"| {source} | {len(images)} | {recall:.3f} / {precision:.3f} "
                f"| {c['kept']} of {c['found']} ({c['kept'] / max(c['found'], 1):.0%}) "
                f"| {c['strong_kept']} of {c['strong']} "
                f"({c['strong_kept'] / max(c['strong'], 1):.0%}) | {wall:.1f} / {cpu:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
