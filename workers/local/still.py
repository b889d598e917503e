"""Detect less often where the scene is still (``VTRACK_STILL_DETECT_EVERY``).

Once the detections of :data:`CALM_DETECTIONS` detected frames in a row each matched those
N processed frames before (one to one, same class, IoU at least :data:`STILL_IOU`), the
detector skips N - 1 processed frames and runs on the next one (the *key* frame). If the
key frame still matches, the skipped frames get boxes and scores interpolated between the
two; if not, they are detected after all (their pixels were kept) and every processed
frame is detected until the scene is still again. docs/local-backend.md ("Detecting less
where the scene is still") says what it gains and what it can miss.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
from scipy.optimize import linear_sum_assignment

from workers.geometry import box_iou_matrix
from workers.local.detector import Detections

# Two detections of one class overlapping at least this much (IoU) are one object that did
# not move: a box shifted by 5% of its width scores 0.90, by 10% 0.82, by 20% 0.67. Lower
# skips more frames of slowly moving scenes (their skipped boxes interpolated over a
# longer move); higher skips fewer, and detector jitter on a still object (IoU 0.85 to
# 0.98 between frames on the shared clips) then counts as motion.
STILL_IOU = 0.8
# Detected frames in a row whose detections matched those ``every`` processed frames
# before, needed before frames are skipped ("no motion, no new object for a while"). More
# waits longer after a change (fewer skipped frames); fewer starts skipping at once after
# a change, when it is likeliest to go on.
CALM_DETECTIONS = 3


class _HasImage(Protocol):
    @property
    def image(self) -> np.ndarray: ...


FrameT = TypeVar("FrameT", bound=_HasImage)


def still_pairs(
    before: Detections, after: Detections, min_iou: float = STILL_IOU
) -> np.ndarray | None:
    """For each of ``before``'s detections, the index of the one of ``after`` it is, when the
    two frames show the same objects in the same places (one to one, same class, IoU at
    least ``min_iou``); None when anything moved, appeared or left."""
    if len(before) != len(after):
        return None
    if not len(before):
        return np.zeros(0, dtype=int)
    similarity = box_iou_matrix(before.boxes, after.boxes)
    similarity[before.class_ids[:, None] != after.class_ids[None, :]] = 0.0
    rows, columns = linear_sum_assignment(similarity, maximize=True)
    if not bool((similarity[rows, columns] >= min_iou).all()):
        return None
    pairs = np.empty(len(before), dtype=int)
    pairs[rows] = columns
    return pairs


def interpolated(
    before: Detections, after: Detections, pairs: np.ndarray, share: float
) -> Detections:
    """The detections ``share`` (0 to 1) of the way from ``before`` to ``after`` (paired by
    :func:`still_pairs`): boxes and scores linear, classes ``before``'s."""
    if not len(before):
        return Detections.empty()
    boxes = before.boxes + (after.boxes[pairs] - before.boxes) * share
    scores = before.scores + (after.scores[pairs] - before.scores) * share
    return Detections(
        boxes=boxes.astype(before.boxes.dtype),
        scores=scores.astype(before.scores.dtype),
        class_ids=before.class_ids.copy(),
    )


@dataclass
class StillSceneCounts:
    """What :class:`StillSceneDetection` did: processed frames, detector runs, frames given
    interpolated detections, and skipped frames detected after all (a change at the key)."""

    frames: int = 0
    detected: int = 0
    interpolated: int = 0
    backfilled: int = 0


class StillSceneDetection:
    """Runs ``detect`` on processed frames, one in ``every`` where the scene is still (see the
    module doc); ``every`` 1 runs it on every frame."""

    def __init__(
        self,
        detect: Callable[[np.ndarray], Detections],
        every: int = 1,
        *,
        still_iou: float = STILL_IOU,
        calm_detections: int = CALM_DETECTIONS,
    ) -> None:
        self.detect = detect
        self.every = max(1, int(every))
        self.still_iou = still_iou
        self.calm_detections = calm_detections
        self.counts = StillSceneCounts()

    def _detected(self, frame: _HasImage) -> Detections:
        self.counts.detected += 1
        return self.detect(frame.image)

    def __call__(self, frames: Iterable[FrameT]) -> Iterator[tuple[FrameT, Detections]]:
        """Each of ``frames`` with its detections, in order (frames skipped while the scene
        looks still are yielded once the next detected frame has confirmed it)."""
        counts, every = self.counts, self.every
        # The last ``every`` processed frames' detections, oldest first.
        recent: deque[Detections] = deque(maxlen=every)
        calm = 0  # detected frames in a row that matched the frame ``every`` before them
        skipped: list[FrameT] = []
        for frame in frames:
            counts.frames += 1
            if every > 1 and calm >= self.calm_detections and len(skipped) < every - 1:
                skipped.append(frame)
                continue
            found = self._detected(frame)
            if skipped:
                before = recent[-1]
                pairs = still_pairs(before, found, self.still_iou)
                if pairs is not None:
                    for position, waiting in enumerate(skipped, start=1):
                        share = position / (len(skipped) + 1)
                        between = interpolated(before, found, pairs, share)
                        counts.interpolated += 1
                        recent.append(between)
                        yield waiting, between
                    calm += 1
                else:
                    for waiting in skipped:
                        counts.backfilled += 1
                        detections = self._detected(waiting)
                        recent.append(detections)
                        yield waiting, detections
                    calm = 0
                skipped = []
            elif every > 1:
                earlier = recent[0] if len(recent) == every else None
                still = (
                    earlier is not None and still_pairs(earlier, found, self.still_iou) is not None
                )
                calm = calm + 1 if still else 0
            recent.append(found)
            yield frame, found
        for waiting in skipped:  # the video ended before a key frame: detect them
            counts.backfilled += 1
            yield waiting, self._detected(waiting)
