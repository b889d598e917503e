"""The similarity the tracker matches predicted track boxes and detections with.

Box overlap (IoU) alone fails for small fast objects: a ball, or a small far-away person
running, moves more than its own size between two processed frames, so its boxes never
overlap and every frame starts a new track (which the library drops before it gets an id).
:class:`ReachSimilarity` is the IoU where the boxes overlap, and otherwise a score that
falls with the distance between the centres measured in box sizes: boxes of similar size
whose centres are near still match, more weakly than a good overlap (with the defaults and
the tracker's 0.2 threshold: up to 1.8 box sizes apart). The tracker's Kalman filter then
learns the object's velocity from the first matches, and its predicted boxes overlap the
next detections again.

Reaching is only for pairs that overlap nothing else well: a track that overlaps a
detection by ``followed_iou`` is followed by overlap, and a detection overlapping a track
that well is that track's; otherwise the matching, which maximizes the sum of the pairs'
scores, can prefer two middling pairs to one good one (docs/local-backend.md, "Why one
object comes out as one object", 8.).

What it costs: nothing measurable in time (a few array operations per frame, against
20 ms or more for the detector). In quality, a lost track may take a detection of another
object of similar size up to ``reach`` sizes away instead of starting a new track, when
neither has a better overlap elsewhere.
"""

from __future__ import annotations

import numpy as np
from trackers.utils.iou import BaseIoU


class ReachSimilarity(BaseIoU):
    """``max(IoU, weight * (1 - distance / (reach * size)))`` for boxes of similar size.

    ``size`` is the larger side of the two boxes (averaged), ``distance`` the distance
    between their centres. ``weight`` caps what a non-overlapping pair can score, below a
    good overlap; pairs whose areas differ more than ``max_area_ratio`` score their IoU, and
    so do pairs where the track or the detection overlaps another box of the other side by
    ``followed_iou`` or more. A lower ``followed_iou`` keeps tracks more to the objects they
    overlap; a higher one lets more of them reach past a neighbour.
    """

    def __init__(
        self,
        reach: float = 3.0,
        weight: float = 0.5,
        max_area_ratio: float = 3.0,
        followed_iou: float = 0.5,
    ):
        if reach <= 0 or not 0 < weight <= 1 or max_area_ratio < 1 or not 0 < followed_iou <= 1:
            raise ValueError(
                "reach > 0, 0 < weight <= 1, max_area_ratio >= 1 and 0 < followed_iou <= 1 "
                "are required"
            )
        self.reach = reach
        self.weight = weight
        self.max_area_ratio = max_area_ratio
        self.followed_iou = followed_iou

    def _compute(self, boxes_1: np.ndarray, boxes_2: np.ndarray) -> np.ndarray:
        a = boxes_1.astype(np.float64)[:, None, :]
        b = boxes_2.astype(np.float64)[None, :, :]
        width_a, height_a = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
        width_b, height_b = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
        inter = np.clip(
            np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None
        )
        inter = inter * np.clip(
            np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None
        )
        area_a, area_b = width_a * height_a, width_b * height_b
        union = area_a + area_b - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        size = (np.maximum(width_a, height_a) + np.maximum(width_b, height_b)) / 2
        distance = np.hypot(
            (a[..., 0] + a[..., 2] - b[..., 0] - b[..., 2]) / 2,
            (a[..., 1] + a[..., 3] - b[..., 1] - b[..., 3]) / 2,
        )
        near = self.weight * np.clip(1 - distance / np.maximum(self.reach * size, 1e-9), 0, None)
        ratio = np.maximum(area_a, area_b) / np.maximum(np.minimum(area_a, area_b), 1e-12)
        near = np.where(ratio <= self.max_area_ratio, near, 0.0)
        followed = iou.max(axis=1, keepdims=True) >= self.followed_iou  # the track's row
        taken = iou.max(axis=0, keepdims=True) >= self.followed_iou  # the detection's column
        near = np.where(followed | taken, 0.0, near)
        return np.maximum(iou, near)
