"""Sliced inference for small objects in large frames (``VTRACK_DETECT_TILES``).

A person 100 px tall in a 1080p frame is 40 px at a 416 px network input, and far ones
vanish. Tiles that overlap are each run at the network's input size (so each sees its part
of the frame enlarged), plus the whole frame for objects too large for a tile; the boxes
are then merged so that one object gives one box, as SAHI does: a box cut at a tile's inner
edge is joined with the box it overlaps by more than ``overlap_of_smaller`` of the smaller
box's area (intersection over the smaller box), the union kept; uncut boxes of one class
are suppressed by IoU as usual.

Cost: one network run per tile plus one for the frame (``RxC`` costs ``R*C + 1`` runs).
``auto`` tiles a frame 2x2 when it is at least :data:`AUTO_MIN_ZOOM` times the network's
input on its longer side (1920x1080 and larger at 416 px), else runs it whole (see
docs/local-backend.md: on 1080p street frames 2x2 tiles doubled pedestrian recall; on the
1280x720 dog clip they split YOLOv3-tiny's woman and dog into two tracks each).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.errors import ConfigurationError
from workers.geometry import box_overlaps
from workers.local.detector import (
    Detections,
    DetectionThresholds,
    keep_one_box_per_object,
)
from workers.local.detectors.base import ObjectDetector

TILE_OVERLAP = 0.2  # share of a tile's width (height) shared with its neighbour
AUTO_MIN_ZOOM = 3.5  # a frame this many times the input's size (its longer side) gets tiles
AUTO_GRID = (2, 2)
CUT_MARGIN = 0.03  # a box edge this close (share of the tile) to an inner tile edge is cut
OVERLAP_OF_SMALLER = 0.5
PART_SPAN = 0.8  # a tile box spanning this much of a whole box along the tile edge is its part

_GRID = re.compile(r"^\s*(\d+)\s*[x×]\s*(\d+)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TileSetting:
    """``off``, ``auto`` or a fixed ``rows`` x ``columns`` grid."""

    mode: str  # "off", "auto" or "grid"
    rows: int = 1
    columns: int = 1

    @classmethod
    def parse(cls, text: str | None) -> TileSetting:
        value = (text or "off").strip().lower()
        if value in ("off", "", "0", "none", "1x1"):
            return cls("off")
        if value == "auto":
            return cls("auto")
        match = _GRID.match(value)
        if not match or not (1 <= int(match[1]) <= 8 and 1 <= int(match[2]) <= 8):
            raise ConfigurationError(
                f"VTRACK_DETECT_TILES: {text!r} is not off, auto or RxC (rows x columns, "
                "1 to 8 each, e.g. 2x2)"
            )
        return cls("grid", int(match[1]), int(match[2]))

    def grid_for(self, frame_size: tuple[int, int], input_size: tuple[int, int]) -> tuple[int, int]:
        """``(rows, columns)`` for a ``(height, width)`` frame; ``(1, 1)``: no tiles."""
        if self.mode == "grid":
            return self.rows, self.columns
        if self.mode == "auto":
            zoom = max(frame_size[0] / input_size[0], frame_size[1] / input_size[1])
            return AUTO_GRID if zoom >= AUTO_MIN_ZOOM else (1, 1)
        return 1, 1


def tile_rectangles(
    frame_size: tuple[int, int], rows: int, columns: int, overlap: float = TILE_OVERLAP
) -> list[tuple[int, int, int, int]]:
    """``(left, top, right, bottom)`` pixel rectangles of overlapping tiles covering the frame."""
    height, width = frame_size

    def spans(length: int, count: int) -> list[tuple[int, int]]:
        if count == 1:
            return [(0, length)]
        size = length / (count - (count - 1) * overlap)
        step = size * (1 - overlap)
        return [(round(i * step), min(length, round(i * step + size))) for i in range(count)]

    return [
        (left, top, right, bottom)
        for top, bottom in spans(height, rows)
        for left, right in spans(width, columns)
    ]


class TiledDetector:
    """Any :class:`ObjectDetector` run on tiles plus the whole frame (module doc)."""

    def __init__(self, inner: ObjectDetector, setting: TileSetting) -> None:
        self.inner = inner
        self.setting = setting
        self.family = inner.family
        self.default_confidence = inner.default_confidence
        self.model_path: Path = inner.model_path
        self.class_names = inner.class_names
        self.input_height, self.input_width = inner.input_height, inner.input_width

    def __getattr__(self, name: str) -> object:  # session, stride...: the inner detector's
        return getattr(self.inner, name)

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    def detect(self, image: np.ndarray, thresholds: DetectionThresholds) -> Detections:
        height, width = image.shape[:2]
        rows, columns = self.setting.grid_for(
            (height, width), (self.input_height, self.input_width)
        )
        whole = self.inner.detect(image, thresholds)
        if rows * columns == 1:
            return whole
        parts = [(whole, np.zeros(len(whole), dtype=bool))]
        for left, top, right, bottom in tile_rectangles((height, width), rows, columns):
            found = self.inner.detect(image[top:bottom, left:right], thresholds)
            if not len(found):
                continue
            scale = np.array([right - left, bottom - top] * 2, dtype=np.float32)
            offset = np.array([left, top] * 2, dtype=np.float32)
            frame_pixels = found.boxes * scale
            inner_edges = np.array([left > 0, top > 0, right < width, bottom < height])
            near = np.concatenate(
                [
                    frame_pixels[:, :2] <= CUT_MARGIN * scale[:2],
                    frame_pixels[:, 2:] >= (1 - CUT_MARGIN) * scale[:2],
                ],
                axis=1,
            )
            cut = (near & inner_edges).any(axis=1)
            boxes = (frame_pixels + offset) / np.array([width, height] * 2, dtype=np.float32)
            tile = np.array([left / width, top / height, right / width, bottom / height])
            cut |= parts_of_whole_boxes(boxes, found.class_ids, whole, tile, inner_edges)
            parts.append((Detections(boxes, found.scores, found.class_ids), cut))
        merged = merge_tiled(
            Detections(
                np.concatenate([p.boxes for p, _ in parts]),
                np.concatenate([p.scores for p, _ in parts]),
                np.concatenate([p.class_ids for p, _ in parts]),
            ),
            np.concatenate([cut for _, cut in parts]),
            thresholds.nms_iou,
        )
        return keep_one_box_per_object(merged, thresholds)


def parts_of_whole_boxes(
    boxes: np.ndarray,
    class_ids: np.ndarray,
    whole: Detections,
    tile: np.ndarray,
    inner_edges: np.ndarray,
    span: float = PART_SPAN,
) -> np.ndarray:
    """Which of a tile's ``boxes`` are the tile's part of an object the whole frame saw
    crossing the tile's inner edge: a whole-frame box of the class that crosses the edge,
    holds the tile box (half of it or more) and is spanned by it along the edge (``span``
    of its width for a top or bottom edge, of its height for a side edge).

    The detector does not always box such a part up to the tile's edge (YOLOv3-tiny boxed
    the woman of the dog clip from 23 px below it: her legs, not cut by the margin test),
    and the part may score higher than the whole."""
    part = np.zeros(len(boxes), dtype=bool)
    if not len(whole) or not len(boxes):
        return part
    _, smaller = box_overlaps(np.vstack([boxes, whole.boxes]).astype(np.float64))
    inside = smaller[: len(boxes), len(boxes) :] > OVERLAP_OF_SMALLER
    same_class = class_ids[:, None] == whole.class_ids[None, :]
    w = whole.boxes.astype(np.float64)
    across = np.zeros((len(boxes), len(w)), dtype=bool)
    width_overlap = np.clip(
        np.minimum(boxes[:, None, 2], w[None, :, 2]) - np.maximum(boxes[:, None, 0], w[None, :, 0]),
        0,
        None,
    )
    height_overlap = np.clip(
        np.minimum(boxes[:, None, 3], w[None, :, 3]) - np.maximum(boxes[:, None, 1], w[None, :, 1]),
        0,
        None,
    )
    wide = width_overlap >= span * (w[None, :, 2] - w[None, :, 0])
    tall = height_overlap >= span * (w[None, :, 3] - w[None, :, 1])
    for edge, (position, low, high, spanned) in enumerate(
        [(tile[0], 0, 2, tall), (tile[1], 1, 3, wide), (tile[2], 0, 2, tall), (tile[3], 1, 3, wide)]
    ):
        if not inner_edges[edge]:
            continue
        crosses = (w[:, low] < position) & (w[:, high] > position)
        across |= crosses[None, :] & spanned
    part = (inside & same_class & across).any(axis=1)
    return part


def merge_tiled(
    detections: Detections,
    cut: np.ndarray,
    nms_iou: float,
    overlap_of_smaller: float = OVERLAP_OF_SMALLER,
) -> Detections:
    """One box per object from whole-frame and tile boxes (module doc); ``cut`` marks boxes
    that touch an inner tile edge. Lower ``overlap_of_smaller`` joins more cut boxes (and
    may join a cut box to a neighbour of its class)."""
    if len(detections) <= 1:
        return detections
    order = np.argsort(-detections.scores, kind="stable")
    ranked, cut = detections.select(order), cut[order].copy()
    boxes = ranked.boxes.astype(np.float64).copy()
    iou, smaller = box_overlaps(boxes)
    same_class = ranked.class_ids[:, None] == ranked.class_ids[None, :]
    keep = np.ones(len(ranked), dtype=bool)
    for index in range(len(ranked)):
        if not keep[index]:
            continue
        either_cut = cut[index] | cut
        duplicate = (
            same_class[index]
            & keep
            & ((iou[index] > nms_iou) | (either_cut & (smaller[index] > overlap_of_smaller)))
        )
        duplicate[: index + 1] = False
        if not duplicate.any():
            continue
        joined = duplicate & either_cut
        if joined.any():
            members = boxes[np.flatnonzero(joined)]
            boxes[index, :2] = np.minimum(boxes[index, :2], members[:, :2].min(axis=0))
            boxes[index, 2:] = np.maximum(boxes[index, 2:], members[:, 2:].max(axis=0))
        keep &= ~duplicate
    result = Detections(boxes.astype(np.float32), ranked.scores, ranked.class_ids)
    return result.select(keep)
