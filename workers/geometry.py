"""Overlap of axis-aligned boxes, for every part of vtrack that compares boxes.

Boxes are ``[x1, y1, x2, y2]`` (any unit, the same for both sides). The arithmetic is
supervision's ``box_iou_batch`` (the library the tracker's detections already come in);
these functions only give it the shapes and types vtrack uses: float64 matrices, one pair,
the MOTChallenge ``[x, y, w, h]`` layout. A box of no area overlaps nothing (0, never NaN).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import supervision as sv


def box_iou_matrix(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """IoU of every pair of ``[n, 4]`` and ``[m, 4]`` boxes, ``[n, m]``; empty sides give an
    empty matrix."""
    first = np.asarray(first, dtype=np.float64).reshape(-1, 4)
    second = np.asarray(second, dtype=np.float64).reshape(-1, 4)
    if not len(first) or not len(second):
        return np.zeros((len(first), len(second)))
    return sv.box_iou_batch(first, second).astype(np.float64)


def box_overlaps(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersection over the smaller box of every pair of ``[n, 4]`` boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.zeros((0, 0)), np.zeros((0, 0))
    iou = sv.box_iou_batch(boxes, boxes).astype(np.float64)
    smaller = sv.box_iou_batch(boxes, boxes, overlap_metric="IOS").astype(np.float64)
    return iou, smaller


def box_iou(first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray) -> float:
    """IoU of two boxes: the matrix's arithmetic for one pair, in plain floats (the
    tracker calls it for single pairs on every frame, where an array call costs 40 times
    as much)."""
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    intersection = max(0.0, float(width)) * max(0.0, float(height))
    union = (
        float(first[2] - first[0]) * float(first[3] - first[1])
        + float(second[2] - second[0]) * float(second[3] - second[1])
        - intersection
    )
    return intersection / union if union > 0 else 0.0


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``[n, 4]`` boxes as left, top, width, height (MOTChallenge files) to corners."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]])
