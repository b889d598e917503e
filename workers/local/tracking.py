"""Turn per-frame detections into tracks with Roboflow's ``trackers`` library.

Trackers are chosen by name from :data:`TRACKERS` (ByteTrack by default). Their thresholds
come from :class:`TrackerThresholds`, set per detector model: the library's defaults suit
strong detectors (ByteTrack starts tracks only at score 0.7), while YOLOv3-tiny scores a
clearly visible dog 0.2 to 0.7, so with the defaults some real objects never get a track.
"""

from __future__ import annotations

import inspect
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import supervision as sv
from trackers import BoTSORTTracker, ByteTrackTracker, OCSORTTracker, SORTTracker
from trackers.core.base import BaseTracker

from workers.errors import ConfigurationError
from workers.geometry import box_iou
from workers.local.appearance import SAMPLE_EVERY, describe
from workers.local.association import ReachSimilarity
from workers.local.camera import CameraMotion, move_boxes
from workers.local.detector import Detections
from workers.local.labels import compatible_labels
from workers.local.reid import REID_LABELS, ReidModel

TRACKERS: dict[str, type[BaseTracker]] = {
    "bytetrack": ByteTrackTracker,
    "ocsort": OCSORTTracker,
    "botsort": BoTSORTTracker,
    "sort": SORTTracker,
}

# The library counts its lost-track buffer in frames of a 30 fps video.
_LIBRARY_BUFFER_FPS = 30.0
_FIRST_DETECTION_MIN_IOU = 0.3
# A fast object's first detection does not overlap its second: near enough also counts.
_FIRST_DETECTION_REACH = ReachSimilarity()
_FIRST_DETECTION_MIN_NEAR = 0.25
# Ids of tracks split off a library track (see TrackCollector), far above the library's own
# (1, 2, ... per segment); every id is renumbered when segments are stitched.
_SPLIT_ID_BASE = 1_000_000
# A re-acquired track's new box overlapping its last one at least this much is the same
# object whatever its new label. Lower keeps more re-acquisitions (the child lost mid-jump,
# found again on the bed below: IoU 0.26); higher splits more mislabelled objects that
# moved during the gap (a car 0.3 s unseen, then under another label: IoU 0.65 to 0.70).
_SAME_PLACE_MIN_IOU = 0.5
# The gate: a track's next box lies at most _GATE_SIZES box sizes (the smaller of the two
# boxes' larger sides) from where its last box is now (moved with the camera), plus the
# distance the track covers at its recent speed times _GATE_SPEED_SLACK; a track seen in
# fewer than 3 frames, whose speed is not known yet, gets _NEW_TRACK_GATE_SIZES. Lower
# splits more tracks that hop to a neighbour (a bus to a car across the road in 0.17 s;
# a man leaving the frame to the dog 1.4 sizes away); higher keeps more tracks of objects
# that speed up between processed frames (the generated runner: 1.2 sizes a frame).
_GATE_SIZES = 1.0
_NEW_TRACK_GATE_SIZES = 2.0
_GATE_SPEED_SLACK = 1.5
_SPEED_WINDOW_SECONDS = 0.5
# A person track found again after a gap whose new box's re-identification embedding is
# less alike than this (cosine) to the track's mean is someone else: a new track. Lower
# keeps more re-acquisitions of one person seen from another side; higher splits more.
_REID_SAME_PERSON = 0.5


@dataclass(frozen=True, slots=True)
class TrackerThresholds:
    """How the tracker treats detections of one detector model.

    ``activation``: the lowest score that starts a new track. Lower finds objects the
    detector is unsure of; higher keeps false detections from becoming tracks.
    ``high_confidence``: detections at or above it are matched first (and may start tracks);
    those below only extend existing tracks (ByteTrack's second stage).
    ``match_iou``: the least IoU between a track's predicted box and a detection to match
    them. Lower follows fast motion at low processing rates; higher avoids swaps.
    ``lost_seconds``: how long an unseen track is kept for re-identification. Longer bridges
    occlusions; shorter avoids a stale track grabbing a new object.
    ``confirm_frames``: processed frames in a row before a track gets an id. More drops
    flickering false detections; fewer keeps short appearances.
    ``reach``: non-overlapping boxes of similar size whose centres are within this many
    box sizes may still match (:class:`workers.local.association.ReachSimilarity`), so a
    small object moving more than its size between processed frames is followed; 0 matches
    by IoU alone.
    """

    activation: float
    high_confidence: float
    match_iou: float = 0.2
    lost_seconds: float = 2.0
    confirm_frames: int = 1
    reach: float = 3.0


# Measured on the shared clips (see docs/local-backend.md).
YOLOV3_TINY_THRESHOLDS = TrackerThresholds(activation=0.35, high_confidence=0.35)
ULTRALYTICS_THRESHOLDS = TrackerThresholds(activation=0.45, high_confidence=0.45)


@dataclass
class RawTrack:
    """Everything one tracker id was matched to, in processing order."""

    track_id: int
    times: list[float] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)  # normalized left, top, right, bottom
    scores: list[float] = field(default_factory=list)
    class_ids: list[int] = field(default_factory=list)
    histograms: list[np.ndarray] = field(default_factory=list)
    # Re-identification embeddings of sampled person boxes (with VTRACK_REID_MODEL).
    embeddings: list[np.ndarray] = field(default_factory=list)
    # The last box in pixels, moved with the camera since it was seen (for the gate).
    anchor: np.ndarray | None = None

    def class_scores(self) -> dict[int, float]:
        """The summed detection score of each class the detector gave this track."""
        sums: Counter[int] = Counter()
        for class_id, score in zip(self.class_ids, self.scores, strict=True):
            sums[class_id] += score
        return dict(sums)

    def class_counts(self) -> dict[int, int]:
        """How many of the track's boxes the detector gave each class."""
        return dict(Counter(self.class_ids))

    def voted_class(self) -> int:
        """The class of the most boxes (ties: the larger summed detection score)."""
        sums = self.class_scores()
        counts = Counter(self.class_ids)
        return max(sums, key=lambda class_id: (counts[class_id], sums[class_id]))

    def appearance(self) -> np.ndarray | None:
        """The mean appearance cues of the track's sampled boxes (None when none was taken:
        see :func:`workers.local.appearance.describe`)."""
        if not self.histograms:
            return None
        hand_made = np.mean(self.histograms, axis=0)
        if not self.embeddings:
            return hand_made
        return np.concatenate([hand_made, self.mean_embedding()])

    def mean_embedding(self) -> np.ndarray:
        mean = np.mean(self.embeddings, axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)

    @property
    def mean_score(self) -> float:
        return float(np.mean(self.scores)) if self.scores else 0.0


def make_tracker(name: str, thresholds: TrackerThresholds, frame_rate: float) -> BaseTracker:
    """A fresh tracker ``name`` set up with ``thresholds`` for frames ``frame_rate`` per second."""
    tracker_class = TRACKERS.get(name.lower())
    if tracker_class is None:
        raise ConfigurationError(
            f"VTRACK_TRACKER: unknown tracker '{name}' (choose one of {', '.join(TRACKERS)})"
        )
    wanted: dict[str, object] = {
        "frame_rate": frame_rate,
        "lost_track_buffer": max(1, round(thresholds.lost_seconds * _LIBRARY_BUFFER_FPS)),
        "track_activation_threshold": thresholds.activation,
        "high_conf_det_threshold": thresholds.high_confidence,
        "minimum_iou_threshold": thresholds.match_iou,
        "minimum_iou_threshold_first_assoc": thresholds.match_iou,
        "minimum_consecutive_frames": thresholds.confirm_frames,
    }
    if thresholds.reach > 0:
        wanted["iou"] = ReachSimilarity(reach=thresholds.reach)
    accepted = inspect.signature(tracker_class.__init__).parameters
    return tracker_class(**{key: value for key, value in wanted.items() if key in accepted})


def tracker_wants_frames(tracker: BaseTracker) -> bool:
    """Whether the tracker uses the image itself (BoT-SORT's camera motion compensation)."""
    return getattr(tracker, "enable_cmc", False) is True


class TrackCollector:
    """Feeds one frame's detections at a time to a tracker and collects the tracks.

    With ``appearance`` true and frames given to :meth:`update`, appearance cues of
    tracked boxes are kept (see :func:`workers.local.appearance.describe`).

    The library matches boxes whatever their class, so a track it lost for a while may be
    re-acquired by another object passing there: a track re-acquired after a gap by a
    detection whose label cannot be the same object's (see :mod:`workers.local.labels`),
    away from the track's last box, is closed, and what follows is a new track
    (docs/local-backend.md, "Why one object comes out as one object", 7.).

    A track never takes a box far from where it was: beyond a gate scaled by the track's
    size and recent speed (``_GATE_SIZES``), what follows is a new track too. With images
    given, the camera's motion between processed frames is estimated and applied to the
    tracker's predictions and to the gate (``camera_motion``: see
    :mod:`workers.local.camera`).
    """

    def __init__(
        self,
        tracker: BaseTracker,
        *,
        appearance: bool = False,
        class_names: Sequence[str] = (),
        camera_motion: str = "auto",
        reid: ReidModel | None = None,
    ) -> None:
        self.tracker = tracker
        self.reid = reid
        self._reid_classes = {
            index for index, name in enumerate(class_names) if name in REID_LABELS
        }
        self.camera = CameraMotion(camera_motion, tracker)
        self.appearance = appearance
        self.class_names = tuple(class_names)
        self.tracks: dict[int, RawTrack] = {}
        # The library's track id -> the id of the track its boxes now go to (its own, or a
        # split-off one's).
        self._current: dict[int, int] = {}
        self._next_split_id = _SPLIT_ID_BASE
        self._previous_time: float | None = None
        self._wants_frames = tracker_wants_frames(tracker)
        # Detections of the previous frame that got no id: a track's first detection is
        # among them (the library gives an id only from a track's second frame).
        self._unconfirmed: list[tuple[float, np.ndarray, float, int, np.ndarray]] = []

    def update(
        self,
        time: float,
        detections: Detections,
        frame_size: tuple[int, int],
        image: np.ndarray | None = None,
    ) -> None:
        """Track one processed frame; ``frame_size`` is ``(width, height)`` in pixels."""
        width, height = frame_size
        scale = np.array([width, height, width, height], dtype=np.float32)
        affine = self.camera.estimate(image, detections.boxes) if image is not None else None
        if affine is not None:
            self.camera.apply(affine, self.tracker)
            self._move_anchors(affine)
            self._unconfirmed = [
                (*candidate[:4], move_boxes(affine, (candidate[4] * scale)[None])[0] / scale)
                for candidate in self._unconfirmed
            ]
        supervision_detections = sv.Detections(
            xyxy=(detections.boxes * scale).astype(np.float32).reshape(-1, 4),
            confidence=detections.scores.astype(np.float32),
            class_id=detections.class_ids.astype(int),
        )
        with warnings.catch_warnings():
            # The library warns about duplicate timestamps; the decoder never repeats one.
            warnings.simplefilter("ignore", UserWarning)
            tracked = self.tracker.update(
                supervision_detections,
                frame=image if self._wants_frames else None,
                timestamp=time,
            )
        track_ids = tracked.tracker_id if tracked.tracker_id is not None else ()
        embeddings = self._embeddings(tracked, track_ids, scale, time, image)
        unconfirmed: list[tuple[float, np.ndarray, float, int, np.ndarray]] = []
        for index, track_id in enumerate(track_ids):
            box = tracked.xyxy[index] / scale
            score, class_id = float(tracked.confidence[index]), int(tracked.class_id[index])
            if track_id < 0:
                unconfirmed.append((time, box, score, class_id, box))
                continue
            track = self.tracks.get(self._current.get(int(track_id), int(track_id)))
            embedding = embeddings.get(index)
            if track is not None and (
                self._reacquired_by_another_object(track, box, class_id)
                or self._jumped(track, box * scale, time, scale)
                or self._another_person(track, embedding)
            ):
                track = self.tracks[self._next_split_id] = RawTrack(track_id=self._next_split_id)
                self._current[int(track_id)] = self._next_split_id
                self._next_split_id += 1
            if track is None:
                track = self.tracks[int(track_id)] = RawTrack(track_id=int(track_id))
                self._claim_first_detection(track, box, class_id)
            track.times.append(time)
            track.boxes.append(box)
            track.scores.append(score)
            track.class_ids.append(class_id)
            track.anchor = box * scale
            sampled = len(track.times) % SAMPLE_EVERY == 1
            if self.appearance and image is not None and sampled:
                track.histograms.append(describe(image, box))
            if embedding is not None and (sampled or not track.embeddings):
                track.embeddings.append(embedding)
        self._unconfirmed = unconfirmed
        self._previous_time = time

    def _reacquired_by_another_object(
        self, track: RawTrack, box: np.ndarray, class_id: int
    ) -> bool:
        """Whether ``track``, unseen in the previous frame, is matched again to a detection
        of another object: one whose label cannot be the track's object's, away from the
        track's last box (a detection in that box's place and shape is the same object
        given another label, as cars seen from above are "cell phone" now, "car" next)."""
        if not track.times or self._previous_time is None:
            return False
        if track.times[-1] >= self._previous_time:  # followed without a gap
            return False
        voted = track.voted_class()
        if class_id == voted or self._compatible(class_id, voted):
            return False
        return box_iou(track.boxes[-1], box) < _SAME_PLACE_MIN_IOU

    def _after_gap(self, track: RawTrack) -> bool:
        return (
            bool(track.times)
            and self._previous_time is not None
            and (track.times[-1] < self._previous_time)
        )

    def _embeddings(
        self,
        tracked: sv.Detections,
        track_ids: Sequence[int],
        scale: np.ndarray,
        time: float,
        image: np.ndarray | None,
    ) -> dict[int, np.ndarray]:
        """Re-identification embeddings, in one batch, of this frame's person boxes that
        need one: a track's first box, a box its appearance is sampled on, a track found
        again after a gap, a box beyond the gate (the start of a new track)."""
        if self.reid is None or image is None or not self.appearance:
            return {}
        wanted = []
        for index, track_id in enumerate(track_ids):
            if track_id < 0 or int(tracked.class_id[index]) not in self._reid_classes:
                continue
            track = self.tracks.get(self._current.get(int(track_id), int(track_id)))
            if (
                track is None
                or (len(track.times) + 1) % SAMPLE_EVERY == 1
                or self._after_gap(track)
                or self._jumped(track, tracked.xyxy[index], time, scale)
            ):
                wanted.append(index)
        if not wanted:
            return {}
        vectors = self.reid.embed(image, tracked.xyxy[wanted] / scale)
        return dict(zip(wanted, vectors, strict=True))

    def _another_person(self, track: RawTrack, embedding: np.ndarray | None) -> bool:
        """Whether a person track found again after a gap is given someone else's box: the
        re-identification embeddings disagree (cosine below ``_REID_SAME_PERSON``)."""
        if embedding is None or not track.embeddings or not self._after_gap(track):
            return False
        return float(np.dot(track.mean_embedding(), embedding)) < _REID_SAME_PERSON

    def _move_anchors(self, affine: np.ndarray) -> None:
        live = [self.tracks[key] for key in set(self._current.values()) if key in self.tracks]
        live = [track for track in live if track.anchor is not None]
        if live:
            moved = move_boxes(affine, np.array([track.anchor for track in live]))
            for track, box in zip(live, moved, strict=True):
                track.anchor = box

    def _jumped(self, track: RawTrack, box: np.ndarray, time: float, scale: np.ndarray) -> bool:
        """Whether pixel ``box`` is beyond ``track``'s gate (see the class doc); ``scale``
        turns normalized boxes into pixels."""
        if track.anchor is None or not track.times:
            return False
        last = track.anchor
        size = min(max(last[2] - last[0], last[3] - last[1]), max(box[2] - box[0], box[3] - box[1]))
        distance = float(
            np.hypot(
                (box[0] + box[2] - last[0] - last[2]) / 2, (box[1] + box[3] - last[1] - last[3]) / 2
            )
        )
        sizes = _GATE_SIZES if len(track.times) >= 3 else _NEW_TRACK_GATE_SIZES
        slack = _GATE_SPEED_SLACK * self._speed(track, scale) * (time - track.times[-1])
        return distance > sizes * size + slack

    def _speed(self, track: RawTrack, scale: np.ndarray) -> float:
        """The track's recent speed in pixels a second (in the image: camera motion included)."""
        if track.anchor is None or len(track.times) < 2:
            return 0.0
        end = track.times[-1]
        start_index = next(i for i, t in enumerate(track.times) if t >= end - _SPEED_WINDOW_SECONDS)
        if start_index == len(track.times) - 1:
            start_index -= 1
        elapsed = end - track.times[start_index]
        if elapsed <= 0:
            return 0.0
        first, last = track.boxes[start_index] * scale, track.boxes[-1] * scale
        dx = (first[0] + first[2] - last[0] - last[2]) / 2
        dy = (first[1] + first[3] - last[1] - last[3]) / 2
        return float(np.hypot(dx, dy)) / elapsed

    def _claim_first_detection(self, track: RawTrack, box: np.ndarray, class_id: int) -> None:
        """Give a new track the previous frame's unclaimed detection it most likely grew from
        (of the same class or a confusable one: see :mod:`workers.local.labels`)."""
        best, best_score = None, 0.0
        for position, candidate in enumerate(self._unconfirmed):
            if candidate[3] != class_id and not self._compatible(candidate[3], class_id):
                continue
            moved = candidate[4]  # where the camera's motion since put that detection
            score = box_iou(moved, box)
            if score < _FIRST_DETECTION_MIN_IOU:
                near = float(_FIRST_DETECTION_REACH.compute(moved[None], box[None])[0, 0])
                score = near if near >= _FIRST_DETECTION_MIN_NEAR else 0.0
            if score > best_score:
                best, best_score = position, score
        if best is not None:
            best = self._unconfirmed.pop(best)
            track.times.append(best[0])
            track.boxes.append(best[1])
            track.scores.append(best[2])
            track.class_ids.append(best[3])

    def _compatible(self, first: int, second: int) -> bool:
        names = self.class_names
        if first >= len(names) or second >= len(names):
            return False
        return compatible_labels(names[first], names[second])

    def finished_tracks(self) -> list[RawTrack]:
        return sorted(self.tracks.values(), key=lambda track: (track.times[0], track.track_id))


def track_detections(
    frames: Iterable[tuple[float, Detections]],
    tracker: BaseTracker,
    frame_size: tuple[int, int],
    class_names: Sequence[str] = (),
) -> list[RawTrack]:
    """Track a sequence of ``(time, detections)`` (no images: for trackers that need none).

    ``class_names`` (indexed by class id) lets confusable labels claim one another's
    detections (see :mod:`workers.local.labels`)."""
    collector = TrackCollector(tracker, class_names=class_names)
    for time, detections in frames:
        collector.update(time, detections, frame_size)
    return collector.finished_tracks()
