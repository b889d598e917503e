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

    ``detector``: ``VTRACK_DETECTOR``, a catalogue name (``yolov3-tiny``, ``yolox-nano``...,
    fetched into ``model_dir``) or the path of an ONNX file of any supported family; None
    falls back to ``detector_model``, then to the default YOLOv3-tiny.
    ``detector_family``: the family to decode the model with; None reads it from the
    model's input and output shapes (:mod:`workers.local.detectors`).
    ``detector_precision``: ``fp32`` (the default), ``int8`` for the model quantized to
    8-bit integers (made once and cached: :mod:`workers.local.quantization`; a model
    without shipped parameters is calibrated on the first video tracked, and its
    detections must be checked per model), or ``auto``: int8 where vtrack ships the
    model's int8 parameters (the default YOLOv3-tiny), fp32 for any other model.
    ``detector_model``: an ONNX file (the older ``VTRACK_DETECTOR_MODEL``); None uses the
    default YOLOv3-tiny (converted once and cached in ``model_cache_dir``).
    ``model_dir``: where ``vtrack models fetch`` puts models; None: ``model_cache_dir``.
    ``detect_tiles``: ``off``, ``auto`` or ``RxC`` (:mod:`workers.local.detectors.tiles`).
    ``cross_class_iou``: boxes of different classes overlapping more than this are one
    object (:func:`workers.local.detector.merge_across_classes`); 1 turns that off.
    ``model_url``: where the default weights may be downloaded from when no installed copy
    is found; empty disables downloading.
    ``tracker``: a name in :data:`workers.local.tracking.TRACKERS`.
    ``process_fps``: frames processed per second of video; None processes every frame.
    Lower is faster and coarser (10 on a 30 fps video is every third frame). Videos
    shorter than :data:`SHORT_CLIP_SECONDS` are processed at every frame.
    ``confidence_threshold`` / ``track_activation_threshold``: None picks the detector
    model's own values (see :mod:`workers.local.tracking`).
    ``inference_threads``: onnxruntime threads per process; None lets onnxruntime use
    every core (set 1 when several worker processes share a machine).
    ``decode_threads``: FFmpeg decoding threads per process; None lets FFmpeg choose, which
    is faster for a process alone on the machine (the decoder works beside the detector)
    and slower, by about 5%, when every core already tracks a segment of its own.
    ``decode_ahead``: frames a decoding thread may decode ahead of the detector (a small
    bounded queue: decoding then overlaps inference); 0 decodes in the tracking loop.
    ``still_detect_every``: where the scene is still (no detection moved more than a small
    share of its size, none appeared or left, over the last few detected frames), run the
    detector on one processed frame in this many and give the frames between boxes
    interpolated from the detected ones; a change at the next detected frame has the
    frames between detected after all (see :mod:`workers.local.still`). 1 detects every
    processed frame; 3 (the default) kept the objects, labels and frames of every shared
    clip and generated scene (docs/benchmarks.md). Higher saves more detector runs in still
    scenes and misses more of what happens only within the skipped frames (an object
    flickering in and out).
    ``min_track_frames``: tracks seen in fewer processed frames are not reported (on a
    clip of fewer than twice as many frames, half its frames: see
    :func:`workers.annotations.selection.frame_minimum`).
    ``appearance``: keep appearance cues (colour, grey levels, layout, gradients; with
    ``reid_model``, embeddings of people) of one tracked box in three and use them in the
    merge (see :mod:`workers.local.appearance`); off saves their cost (docs/local-backend.md).
    ``camera_motion``: ``auto``, ``on`` or ``off``: estimate the camera's motion between
    processed frames and move the tracks' predictions with it (see
    :mod:`workers.local.camera`).
    ``reid_model``: an ONNX re-identification model (OSNet) for people's appearance, in
    association after a gap and in the merge (see :mod:`workers.local.reid`); None: the
    hand-made cues only.
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
