"""A cheap appearance cue: the colour histogram of an object's box.

The offline merge (:mod:`workers.local.merge`) compares fragments by where their boxes
are; when an object is hidden for a while (a person passing behind another) or leaves the
frame and comes back, geometry alone cannot tell whether the new track is the same object.
A hue-saturation histogram of the box's inner part is a weak but nearly free cue: it
changes little with pose and lighting, and differs between most different objects.

Cost: one crop of the frame the detector already scaled (at most 416 px wide), sampled
to at most about 32x32 pixels, converted to HSV and counted into 16x4 bins, for one
detection in ``SAMPLE_EVERY`` of each track (a track's appearance is the mean, so a
sample is enough): see docs/local-backend.md for the measured cost.
"""

from __future__ import annotations

import cv2
import numpy as np

HUE_BINS = 16
SATURATION_BINS = 4
INNER_SHARE = 0.6  # of the box's width and height, centred: less background, same object
SAMPLE_SIDE = 32
SAMPLE_EVERY = 3  # a track's histogram is taken on its 1st, 4th, 7th... detection


def box_histogram(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Normalized hue-saturation histogram (``HUE_BINS * SATURATION_BINS`` values summing
    to 1) of the inner part of ``box`` (normalized xyxy) in the RGB ``image``."""
    height, width = image.shape[:2]
    left, top, right, bottom = (float(v) for v in box)
    margin_x = (right - left) * (1 - INNER_SHARE) / 2
    margin_y = (bottom - top) * (1 - INNER_SHARE) / 2
    x0 = int(np.clip((left + margin_x) * width, 0, width - 1))
    x1 = int(np.clip(np.ceil((right - margin_x) * width), x0 + 1, width))
    y0 = int(np.clip((top + margin_y) * height, 0, height - 1))
    y1 = int(np.clip(np.ceil((bottom - margin_y) * height), y0 + 1, height))
    step_y = max(1, (y1 - y0) // SAMPLE_SIDE)
    step_x = max(1, (x1 - x0) // SAMPLE_SIDE)
    crop = np.ascontiguousarray(image[y0:y1:step_y, x0:x1:step_x])
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist(
        [hsv], [0, 1], None, [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256]
    ).ravel()
    total = float(histogram.sum())
    return (histogram / total if total > 0 else histogram).astype(np.float32)


def similarity(
    first: tuple[float, ...] | np.ndarray, second: tuple[float, ...] | np.ndarray
) -> float:
    """Bhattacharyya coefficient of two normalized histograms: 1 identical, 0 disjoint."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or not a.size:
        return 0.0
    return float(np.sum(np.sqrt(np.clip(a, 0, None) * np.clip(b, 0, None))))
