"""What every detector family shares: detections, thresholds, the letterbox, and the
suppression that leaves one box per object.

The families themselves (how a model's input is prepared and its output decoded) live in
:mod:`workers.local.detectors`, one module each.

After the network, boxes go through class-aware non-maximum suppression and then a
containment pass: YOLOv3-tiny's two heads often report one object twice, a large box and
a smaller one inside it, whose IoU is too low for NMS to catch, so a box mostly inside a
higher-scoring box of the same class is dropped too. Last, boxes of different classes on
one object are merged (:func:`merge_across_classes`): a detector unsure whether a bag is a
"sports ball" or a "frisbee" gives both, and both would become tracks.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np

from workers.errors import ConfigurationError
from workers.geometry import box_overlaps
from workers.local.coco import canonical_class_name

LETTERBOX_FILL = 114  # grey, as Ultralytics pads; darknet's 127 gives the same detections
DEFAULT_STRIDE = 32  # the largest downsampling of YOLOv3 to YOLO11 when a model does not say


@dataclass(frozen=True, slots=True)
class Detections:
    """One frame's detections; ``boxes`` is ``[n, 4]`` normalized left, top, right, bottom."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            boxes=np.zeros((0, 4), dtype=np.float32),
            scores=np.zeros(0, dtype=np.float32),
            class_ids=np.zeros(0, dtype=np.int64),
        )

    def select(self, keep: np.ndarray) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep])


@dataclass(frozen=True, slots=True)
class DetectionThresholds:
    """What the detector keeps.

    ``confidence``: the lowest class score kept. Lower finds more of the real objects (and
    lets the tracker's low-score stage keep tracks alive) at the price of more false boxes.
    ``nms_iou``: two boxes of one class overlapping more than this are one object; lower
    merges more (and may merge two people side by side).
    ``containment``: a box whose area lies this much inside a higher-scoring box of the same
    class is dropped; lower removes more nested duplicates (and may drop a small object held
    in front of a larger one of the same class).
    ``cross_class_iou``: boxes of different classes overlapping more than this are one
    object (see :func:`merge_across_classes`).
    """

    confidence: float = 0.15
    nms_iou: float = 0.45
    containment: float = 0.8
    cross_class_iou: float = 0.6


def read_class_names(metadata: dict[str, str]) -> tuple[str, ...]:
    """Class names from an Ultralytics-style ``names`` metadata entry (a dict literal)."""
    raw = metadata.get("names")
    if not raw:
        raise ConfigurationError("detector model: no 'names' metadata (class names) in the model")
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as error:
        raise ConfigurationError(f"detector model: unreadable 'names' metadata: {error}") from error
    if isinstance(parsed, dict):
        return tuple(canonical_class_name(str(parsed[key])) for key in sorted(parsed))
    if isinstance(parsed, list | tuple):
        return tuple(canonical_class_name(str(name)) for name in parsed)
    raise ConfigurationError("detector model: 'names' metadata is neither a dict nor a list")


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where an image goes on the network input: the input's size, the scale applied to
    the image and the offset of its top-left corner on the grey canvas."""

    height: int
    width: int
    scale: float
    top: int
    left: int

    @classmethod
    def centred(cls, image_size: tuple[int, int], height: int, width: int) -> Letterbox:
        """The image scaled to fit ``height`` x ``width`` and centred (the classic letterbox)."""
        image_height, image_width = image_size
        scale = min(height / image_height, width / image_width)
        content_height, content_width = _scaled(image_size, scale)
        return cls(
            height, width, scale, (height - content_height) // 2, (width - content_width) // 2
        )

    @classmethod
    def fitted(
        cls, image_size: tuple[int, int], model_size: tuple[int, int], stride: int
    ) -> Letterbox:
        """The centred letterbox to ``model_size`` with the padding cut to what the
        ``stride`` grid needs: a 720x1280 frame and a 416x416 model give a 288x416 input.

        The image keeps its position relative to the stride grid (its offset modulo
        ``stride``) so every cell of the network sees the same pixels as in the square
        letterbox. YOLOv3-tiny is not shift-invariant at that scale: measured on
        ``sam2_01_dog.mp4`` (97 frames), cutting to 256 rows with the picture at any other
        offset moved its boxes (median IoU 0.82 to 0.89 with the square's) and its mean dog
        score from 0.52 to between 0.41 and 0.52; aligned, the boxes are the square's
        (median IoU 0.99) and the dog's mean score stays 0.52. That costs less than one stride of
        extra rows (288 instead of 256 for 16:9: 31% fewer pixels than the square
        instead of 38%).
        """
        square = cls.centred(image_size, *model_size)
        content_height, content_width = _scaled(image_size, square.scale)
        top, left = square.top % stride, square.left % stride
        return cls(
            _round_up(top + content_height, stride),
            _round_up(left + content_width, stride),
            square.scale,
            top,
            left,
        )

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image`` scaled and placed on the grey ``[height, width, 3]`` canvas."""
        content_height, content_width = _scaled(image.shape[:2], self.scale)
        canvas = np.full((self.height, self.width, 3), LETTERBOX_FILL, dtype=np.uint8)
        resized = (
            image
            if (content_height, content_width) == image.shape[:2]
            else cv2.resize(image, (content_width, content_height), interpolation=cv2.INTER_LINEAR)
        )
        canvas[self.top : self.top + content_height, self.left : self.left + content_width] = (
            resized
        )
        return canvas


def _scaled(image_size: tuple[int, ...], scale: float) -> tuple[int, int]:
    return max(1, round(image_size[0] * scale)), max(1, round(image_size[1] * scale))


def _round_up(length: int, stride: int) -> int:
    return -(-length // stride) * stride


def suppress_duplicates(detections: Detections, nms_iou: float, containment: float) -> Detections:
    """Class-aware greedy suppression by IoU and by containment (see the module doc)."""
    if len(detections) <= 1:
        return detections
    order = np.argsort(-detections.scores, kind="stable")
    ranked = detections.select(order)
    iou, contained = box_overlaps(ranked.boxes.astype(np.float64))
    same_class = ranked.class_ids[:, None] == ranked.class_ids[None, :]
    duplicate = same_class & ((iou > nms_iou) | (contained > containment))
    keep = np.ones(len(ranked), dtype=bool)
    for index in range(len(ranked)):
        if keep[index]:
            later = duplicate[index].copy()
            later[: index + 1] = False
            keep &= ~later
    return ranked.select(keep)


def merge_across_classes(detections: Detections, iou_threshold: float) -> Detections:
    """One box per object whatever the classes: boxes of different classes overlapping by
    more than ``iou_threshold`` are one object, kept as the highest-scoring box.

    The label is a vote: the kept box takes the class with the highest summed score in its
    group, and the tracker's vote over frames does the rest. Lower merges more: a rider and
    the horse overlap by about 0.3 to 0.5 and must stay two, while a detector's two guesses
    on one bag overlap by 0.65 to 0.95. Higher leaves such double guesses as two boxes, hence
    two tracks; 1 or more turns the merge off.
    """
    if len(detections) <= 1 or iou_threshold >= 1.0:
        return detections
    order = np.argsort(-detections.scores, kind="stable")
    ranked = detections.select(order)
    iou, _ = box_overlaps(ranked.boxes.astype(np.float64))
    other_class = ranked.class_ids[:, None] != ranked.class_ids[None, :]
    same_object = other_class & (iou > iou_threshold)
    keep = np.ones(len(ranked), dtype=bool)
    class_ids = ranked.class_ids.copy()
    for index in range(len(ranked)):
        if not keep[index]:
            continue
        group = same_object[index] & keep
        group[: index + 1] = False
        if not group.any():
            continue
        keep &= ~group
        votes: dict[int, float] = defaultdict(float)
        for member in (index, *np.flatnonzero(group)):
            votes[int(ranked.class_ids[member])] += float(ranked.scores[member])
        class_ids[index] = max(votes, key=lambda c: (votes[c], c == ranked.class_ids[index]))
    merged = Detections(ranked.boxes, ranked.scores, class_ids)
    return merged.select(keep)


def keep_one_box_per_object(detections: Detections, thresholds: DetectionThresholds) -> Detections:
    """Every family's last step: class-aware suppression, then the merge across classes."""
    found = suppress_duplicates(detections, thresholds.nms_iou, thresholds.containment)
    return merge_across_classes(found, thresholds.cross_class_iou)
