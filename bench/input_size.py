"""The default detector at a smaller network input: speed against quality, as Markdown.

    python -m bench.input_size [--sizes 416,352,320] [--precisions fp32,auto]

YOLOv3-tiny's converted model takes any input that is a multiple of its stride (32); the
detector letterboxes a frame to the size it was trained at (416, a 16:9 frame running at
416x288). For each size (the longest side of the letterbox, as
:meth:`workers.local.detector.Letterbox.fitted` places the frame) and precision, on one
thread:

- pedestrians on MOT17-mini at IoU 0.5 (recall / precision, as
  :mod:`bench.detector_quality` scores them);
- ``416 boxes kept``: the share of the 416-input fp32 boxes scoring 0.3 or more on 50
  frames of the five shared clips (10 a clip) found again at IoU 0.5 with the same class;
- CPU ms of ``detect`` per shared-clip frame (median; 16:9 and 4:3 frames decoded at the
  size's width, as the tracking loop decodes them).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from bench.calibration_quality import STRONG, VIDEOS, spread
from bench.detector_quality import CLIPS, rate, score_persons, sequences
from bench.precision_quality import SHARED
from workers.geometry import box_iou_matrix


def main() -> None:
    from workers.local.backend import LocalTrackingOptions, detection_thresholds, load_model

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="416,352,320")
    parser.add_argument("--precisions", default="fp32,auto")
    arguments = parser.parse_args()
    sizes = [int(s) for s in arguments.sizes.split(",")]
    reference_options = LocalTrackingOptions(detector_precision="fp32", inference_threads=1)
    reference = load_model(reference_options)
    thresholds = detection_thresholds(reference_options, reference)
    frames = {
        size: [image for clip in CLIPS for image in spread(VIDEOS / clip, 10, size, 0.5)]
        for size in sizes
    }
    truth = [reference.detect(image, thresholds) for image in frames[416]]
    print("| precision | input (longest side) | MOT17-mini recall / precision ", end="")
    print(f"| 416 fp32 boxes scoring {STRONG} or more kept | CPU ms per clip frame |")
    print("|---|---|---|---|---|")
    for precision in arguments.precisions.split(","):
        detector = load_model(
            LocalTrackingOptions(detector_precision=precision, inference_threads=1)
        )
        for size in sizes:
            detector.input_height = detector.input_width = size  # what letterbox_for reads
            total: Counter[str] = Counter()
            for _name, images, gt, _det in sequences(SHARED):
                counts, _times = score_persons(detector, thresholds, images, gt)
                total.update(counts)
            recall, precision_ = rate(total["tp"], total["fp"], total["positives"])
            kept = strong = 0
            cpu = []
            for image, wanted in zip(frames[size], truth, strict=True):
                used = time.process_time()
                found = detector.detect(image, thresholds)
                cpu.append(time.process_time() - used)
                keep = wanted.scores >= STRONG
                strong += int(keep.sum())
                if keep.any() and len(found):
                    iou = box_iou_matrix(
                        wanted.boxes[keep].astype(np.float64), found.boxes.astype(np.float64)
                    )
                    same = wanted.class_ids[keep][:, None] == found.class_ids[None, :]
                    kept += int(((iou * same).max(axis=1) >= 0.5).sum())
            print(
                f"| {precision} ({detector.model_path.name}) | {size} | {recall:.3f} / "
                f"{precision_:.3f} | {kept} of {strong} ({kept / max(strong, 1):.0%}) "
                f"| {1000 * float(np.median(cpu)):.1f} |",
                flush=True,
            )
        detector.input_height = detector.input_width = 416


if __name__ == "__main__":
    main()
