"""Camera motion compensation: a pan or a handheld shake must not move the tracks.

When the camera pans, every object moves in the image at the pan's speed, and a track lost
for a moment is predicted where its object no longer is, on a neighbour. As BoT-SORT's
global motion compensation does, the motion of the whole picture between two processed
frames is estimated (corners followed by sparse optical flow, then a similarity transform
fitted with RANSAC so moving objects are outliers), and the tracks' predicted boxes,
velocities included, are moved by it before the frame's detections are matched.
``VTRACK_CAMERA_MOTION``'s modes, the measurements and the blind spots:
docs/local-backend.md ("Why one object comes out as one object", 11.).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
from trackers.core.base import BaseTracker
from trackers.utils.cmc import CMC

from workers.errors import ConfigurationError

CAMERA_MOTION_MODES = ("auto", "on", "off")
STILL_PIXELS = 1.0  # the largest corner displacement of an estimate treated as no motion
DOWNSCALE = 2
MAX_CORNERS = 200
MIN_DISTANCE = 5  # pixels between corners (of the halved frame): spread over the picture
MIN_POINTS = 8


def check_mode(mode: str) -> str:
    mode = (mode or "auto").lower()
    if mode not in CAMERA_MOTION_MODES:
        raise ConfigurationError(
            f"VTRACK_CAMERA_MOTION: unknown mode '{mode}' (choose {', '.join(CAMERA_MOTION_MODES)})"
        )
    return mode


def _displacement(affine: np.ndarray, size: tuple[int, int]) -> float:
    """The largest distance a corner of a ``size`` frame moves under ``affine``."""
    width, height = size
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], dtype=np.float64)
    moved = corners @ affine[:, :2].T + affine[:, 2]
    return float(np.max(np.hypot(*(moved - corners).T)))


class CameraMotion:
    """Estimates the camera's motion between processed frames and moves tracks with it.

    Corners are taken outside the frame's detection boxes (the objects move on their own;
    a dog followed by the camera would otherwise make the pan look still), on the frame
    halved (``DOWNSCALE``), followed into the next frame by pyramidal Lucas-Kanade, and a
    similarity transform is fitted with RANSAC (OpenCV). Fewer than ``MIN_POINTS``
    followed corners (a blank or blurred frame) give no estimate.
    """

    def __init__(self, mode: str, tracker: BaseTracker) -> None:
        self.mode = check_mode(mode)
        own = getattr(tracker, "enable_cmc", False) is True
        self.active = self.mode == "on" or (self.mode == "auto" and not own)
        self.seconds = 0.0  # time spent estimating and applying, for benchmarks
        self.frames = 0
        self.applied = 0
        self._previous: np.ndarray | None = None
        self._points: np.ndarray | None = None

    def estimate(self, image: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray | None:
        """The 2x3 affine moving the previous processed frame onto ``image`` (RGB, boxes in
        normalized xyxy: the frame's detections), or None when off, on the first frame,
        when too few corners were followed, or (``auto``) when the picture did not move."""
        if not self.active:
            return None
        started = time.perf_counter()
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        height, width = grey.shape
        grey = cv2.resize(grey, (max(1, width // DOWNSCALE), max(1, height // DOWNSCALE)))
        affine = None
        if (
            self._previous is not None
            and self._points is not None
            and self._previous.shape == grey.shape
        ):
            affine = self._fit(grey)
        self._previous = grey
        self._points = cv2.goodFeaturesToTrack(
            grey,
            maxCorners=MAX_CORNERS,
            qualityLevel=0.01,
            minDistance=MIN_DISTANCE,
            mask=_outside(boxes, grey.shape),
        )
        self.frames += 1
        self.seconds += time.perf_counter() - started
        if affine is None:
            return None
        affine[:, 2] *= DOWNSCALE
        moved = _displacement(affine, (width, height))
        if moved == 0.0 or (self.mode == "auto" and moved <= STILL_PIXELS):
            return None
        self.applied += 1
        return affine

    def _fit(self, grey: np.ndarray) -> np.ndarray | None:
        followed, status, _ = cv2.calcOpticalFlowPyrLK(self._previous, grey, self._points, None)
        if followed is None or status is None:
            return None
        good = status.reshape(-1) == 1
        if int(good.sum()) < MIN_POINTS:
            return None
        affine, inliers = cv2.estimateAffinePartial2D(
            self._points[good], followed[good], method=cv2.RANSAC, ransacReprojThreshold=1.0
        )
        if affine is None or inliers is None or int(inliers.sum()) < MIN_POINTS:
            return None
        return affine.astype(np.float64)

    def apply(self, affine: np.ndarray | None, tracker: BaseTracker) -> None:
        """Move ``tracker``'s tracks (their state and velocity) by ``affine``."""
        if affine is None:
            return
        started = time.perf_counter()
        tracks = [
            track
            for track in getattr(tracker, "tracks", ())
            if hasattr(getattr(track, "state_estimator", None), "kf")
        ]
        if tracks:
            CMC.apply_batch(affine.astype(np.float32), tracks)
        self.seconds += time.perf_counter() - started


def _outside(boxes: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """A mask of the frame outside ``boxes`` (normalized xyxy), None when there are none."""
    if boxes is None or not len(boxes):
        return None
    height, width = shape
    mask = np.full((height, width), 255, dtype=np.uint8)
    for left, top, right, bottom in np.clip(boxes, 0, 1):
        mask[
            int(top * height) : int(np.ceil(bottom * height)),
            int(left * width) : int(np.ceil(right * width)),
        ] = 0
    return mask if mask.any() else None


def move_boxes(affine: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Pixel xyxy ``boxes`` (N x 4) moved by ``affine``: the box around the moved corners."""
    x1, y1, x2, y2 = CMC.warp_xyxy_corners(
        boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], affine[:, :2], affine[:, 2]
    )
    return np.stack([x1, y1, x2, y2], axis=1)
