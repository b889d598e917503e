"""The local backend's settings, as they travel in task messages.

Kept apart from the detector and the trackers (onnxruntime, ``trackers``, supervision and
SciPy take most of a second to import), so that what only plans or stitches a job (the
control queue's tasks, ``vtrack run``'s own process) never loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers.local.model_files import DEFAULT_WEIGHTS_URL
from workers.messages import Message

if TYPE_CHECKING:
    from workers.media.video import VideoInfo

DEFAULT_TRACKER = "bytetrack"

# Videos shorter than this are processed at every frame, whatever ``process_fps`` says: a
# clip of a second at 10 frames a second is too few frames for a tracker to confirm
# objects and for them to pass a frame minimum, and every frame of it costs little.
SHORT_CLIP_SECONDS = 2.0


class LocalTrackingOptions(Message):
    """Settings of the local backend; a message, so they travel in tasks as JSON.

    Most fields are the ``VTRACK_`` setting of the same or a like name (config/settings.py
    says what each does and trades off; ``tasks.local_backend.local_tracking_options`` maps
    them), with None where the setting's empty or 0 means "the default" or "let the library
    choose": ``detector_model``, ``detector``, ``detector_family``, ``detector_precision``,
    ``model_dir``, ``model_cache_dir``, ``model_url``, ``detect_tiles``, ``tracker``,
    ``process_fps`` (None: every frame; clips under :data:`SHORT_CLIP_SECONDS` are processed
    at every frame whatever it says), ``confidence_threshold`` (``VTRACK_DETECTION_CONFIDENCE``)
    and ``track_activation_threshold`` (``VTRACK_TRACK_ACTIVATION``; None for both: the
    detector model's own values), ``inference_threads``, ``decode_threads``,
    ``decode_ahead``, ``still_detect_every``, ``camera_motion``, ``reid_model``.

    The others have no setting:
    ``cross_class_iou``: boxes of different classes overlapping more than this are one
    object (:func:`workers.local.detector.merge_across_classes`); 1 turns that off.
    ``nms_iou`` / ``containment``: the detector's duplicate suppression
    (:class:`workers.local.detector.DetectionThresholds`).
    ``merge_max_gap_seconds``: the fragment merge's ``max_gap_seconds``
    (:class:`workers.local.merge.MergeRules`).
    ``min_track_frames``: tracks seen in fewer processed frames are not reported (on a
    clip of fewer than twice as many frames, half its frames: see
    :func:`workers.annotations.selection.frame_minimum`).
    ``appearance``: keep appearance cues of one tracked box in three and use them in the
    merge (see :mod:`workers.local.appearance`); off saves their cost (docs/local-backend.md).
    """

    detector_model: str | None = None
    detector: str | None = None
    detector_family: str | None = None
    detector_precision: str = "fp32"
    model_dir: str | None = None
    detect_tiles: str = "off"
    cross_class_iou: float = 0.6
    model_cache_dir: str | None = None
    model_url: str | None = DEFAULT_WEIGHTS_URL
    tracker: str = DEFAULT_TRACKER
    process_fps: float | None = 10.0
    confidence_threshold: float | None = None
    track_activation_threshold: float | None = None
    nms_iou: float = 0.45
    containment: float = 0.8
    inference_threads: int | None = None
    decode_threads: int | None = None
    decode_ahead: int = 0
    still_detect_every: int = 3
    merge_max_gap_seconds: float = 2.0
    min_track_frames: int = 3
    appearance: bool = True
    camera_motion: str = "auto"
    reid_model: str | None = None

    def processing_rate(self, info: VideoInfo) -> float | None:
        """Frames processed per second of ``info``'s video; None for every frame (no rate
        set, a rate at or above the video's, or a clip under :data:`SHORT_CLIP_SECONDS`)."""
        rate = self.process_fps
        if not rate or rate >= info.fps or info.duration < SHORT_CLIP_SECONDS:
            return None
        return rate
