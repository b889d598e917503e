"""The local tracking backend: detect, track, stitch and merge, with no network and no GPU.

The Celery layer calls, in order:

1. :func:`plan_segments` (re-exported) to cut a video into time segments;
2. :func:`track_segment` once per segment, in parallel across workers;
3. :func:`stitch_segments` to join the segments' tracks into the final annotation.

:func:`track_video` does all three in one process. Each worker process loads its detector
once (:func:`load_detector`, or :func:`warm_up` from a process-init hook) and reuses it.

The result uses the same model as the Google backend: one :class:`ObjectTrack` per object,
its entity description the COCO class the detector gave most often over the track, its
confidence the mean detection score over the track, one frame per processed frame in
which the object was seen, times from the container's timestamps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from workers.annotations.model import (
    Entity,
    NormalizedBox,
    ObjectTrack,
    Segment,
    TrackedFrame,
    VideoAnnotation,
)
from workers.errors import ConfigurationError
from workers.local.darknet_onnx import INPUT_NAME, convert_darknet, save_model_atomically
from workers.local.detector import DetectionThresholds
from workers.local.detectors import ObjectDetector, open_detector
from workers.local.detectors.tiles import TiledDetector, TileSetting
from workers.local.detectors.yolo_export import FAMILY as YOLO_EXPORT_FAMILY
from workers.local.model_catalogue import (
    DEFAULT_DETECTOR,
    resolve_detector_name,
    resolve_reid_name,
)
from workers.local.model_files import (
    HOW_TO_PROVIDE_A_MODEL,
    PACKAGE_WITH_WEIGHTS,
    YOLOV3_TINY_WEIGHTS_SHA256,
    cached_or_downloaded_darknet_files,
    cfg_url_beside,
    default_cache_dir,
    official_tiny_cfg,
    packaged_darknet_files,
    verify_sha256,
)
from workers.local.options import LocalTrackingOptions
from workers.local.quantization import (
    MIN_CALIBRATION_FRAMES,
    calibration_blobs,
    check_precision,
    exclusive_lock,
    int8_path,
    quantize_model,
    sample_frames,
    shipped_parameters,
    usable_for_calibration,
)
from workers.local.reid import load_reid_model
from workers.local.segments import plan_segments, stitch_segments
from workers.local.still import StillSceneDetection
from workers.local.tracking import (
    ULTRALYTICS_THRESHOLDS,
    YOLOV3_TINY_THRESHOLDS,
    RawTrack,
    TrackCollector,
    TrackerThresholds,
    make_tracker,
)
from workers.media.video import iter_frames, probe_video, read_ahead

__all__ = [
    "LocalTrackingOptions",
    "default_model_to_convert",
    "default_model_to_quantize",
    "ensure_default_model",
    "load_detector",
    "plan_segments",
    "stitch_segments",
    "track_segment",
    "track_video",
    "warm_up",
]

log = logging.getLogger(__name__)

# Families whose int8 copy keeps the fp32 model's detections (bench/precision_quality.py,
# MOT17-mini): YOLOv3-tiny. YOLOX-Nano lost 40% of its recall and ran slower; PicoDet
# found nothing.
INT8_FAMILIES = frozenset({YOLO_EXPORT_FAMILY})

# Bump when the converter's output changes, so cached conversions are redone.
# 3: free input height and width (a 16:9 frame runs at 416x288).
CONVERTER_VERSION = 3
DEFAULT_MODEL_STEM = "yolov3-tiny"


# --- the detector model ---------------------------------------------------------------


def ensure_default_model(
    cache_dir: Path, *, weights_url: str | None, package: str | None = PACKAGE_WITH_WEIGHTS
) -> Path:
    """The converted default model in ``cache_dir``, converting (and downloading) if needed."""
    target = default_model_path(cache_dir)
    if target.is_file():
        return target
    files = packaged_darknet_files(package) if package else None
    if files is not None:
        verify_sha256(files.weights, YOLOV3_TINY_WEIGHTS_SHA256)
    else:
        files = cached_or_downloaded_darknet_files(
            cache_dir, weights_url=weights_url or None, cfg_url=cfg_url_beside(weights_url)
        )
    cfg_text = official_tiny_cfg(files.cfg.read_text(encoding="utf-8"))
    return save_model_atomically(convert_darknet(files, cfg_text), target)


def default_model_path(cache_dir: Path) -> Path:
    """Where the converted default model is cached in ``cache_dir``."""
    return (
        cache_dir
        / f"{DEFAULT_MODEL_STEM}-v{CONVERTER_VERSION}-{YOLOV3_TINY_WEIGHTS_SHA256[:12]}.onnx"
    )


def _uses_default_model(options: LocalTrackingOptions) -> bool:
    """Whether ``options`` select the default YOLOv3-tiny (see :func:`resolve_model_path`)."""
    if options.detector:
        return options.detector.strip().lower() == DEFAULT_DETECTOR
    return not options.detector_model


def default_model_to_convert(options: LocalTrackingOptions) -> Path | None:
    """Where the default model will be cached, when ``options`` need it and it is not yet
    converted (the first use converts it: a few seconds); None otherwise."""
    if not _uses_default_model(options):
        return None
    target = default_model_path(default_cache_dir(options.model_cache_dir))
    return None if target.is_file() else target


def _looks_like_a_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.lower().endswith(".onnx")


def resolve_model_path(options: LocalTrackingOptions) -> Path:
    """The ONNX file ``options`` select, made ready for use.

    ``VTRACK_DETECTOR`` (a catalogue name or a path) wins over the older
    ``VTRACK_DETECTOR_MODEL`` (a path); with neither, the default YOLOv3-tiny.
    """
    if options.detector and options.detector.strip().lower() != DEFAULT_DETECTOR:
        choice = options.detector.strip()
        path = Path(choice).expanduser()
        if path.is_file():
            return path
        if _looks_like_a_path(choice):
            raise ConfigurationError(f"VTRACK_DETECTOR: {path} does not exist")
        return resolve_detector_name(
            choice, default_cache_dir(options.model_dir or options.model_cache_dir)
        )
    if options.detector_model and not options.detector:
        path = Path(options.detector_model).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"VTRACK_DETECTOR_MODEL: {path} does not exist; {HOW_TO_PROVIDE_A_MODEL}"
            )
        return path
    return ensure_default_model(
        default_cache_dir(options.model_cache_dir), weights_url=options.model_url
    )


def resolve_reid_path(options: LocalTrackingOptions) -> str | None:
    """``VTRACK_REID_MODEL``: the path of an ONNX file, or a catalogue name (``vtrack models``)
    of a fetched re-identification model; None when unset."""
    choice = (options.reid_model or "").strip()
    if not choice or Path(choice).expanduser().is_file() or _looks_like_a_path(choice):
        return choice or None
    folder = default_cache_dir(options.model_dir or options.model_cache_dir)
    return str(resolve_reid_name(choice, folder))


_detectors: dict[tuple[str, str | None, int | None], ObjectDetector] = {}
_detectors_lock = threading.Lock()


def _open_once(path: Path, family: str | None, options: LocalTrackingOptions) -> ObjectDetector:
    key = (str(path.resolve()), family, options.inference_threads)
    with _detectors_lock:
        if key not in _detectors:
            _detectors[key] = open_detector(
                path, family=family, inference_threads=options.inference_threads
            )
        return _detectors[key]


def load_model(options: LocalTrackingOptions, video_path: Path | None = None) -> ObjectDetector:
    """This process's detector network for ``options``, untiled (loaded once, then reused).

    Precision ``auto`` is int8 for a model whose int8 activation parameters ship with
    vtrack (the default YOLOv3-tiny) and fp32 for any other. The int8 copy of
    the model (:mod:`.quantization`) is made on first use: from the shipped parameters
    when there are some (no video needed), else by calibrating on frames of
    ``video_path``; without a video to calibrate on, or one too uniform to calibrate on,
    and no copy made yet, the fp32 model.
    """
    path = resolve_model_path(options)
    family = options.detector_family or None
    if family is None and path.name.startswith(f"{DEFAULT_MODEL_STEM}-v{CONVERTER_VERSION}-"):
        family = YOLO_EXPORT_FAMILY  # our own conversion: no need to read its shapes
    precision = check_precision(options.detector_precision)
    parameters = shipped_parameters(path) if precision != "fp32" else None
    if precision == "fp32" or (precision == "auto" and parameters is None):
        return _open_once(path, family, options)
    quantized = int8_path(path, default_cache_dir(options.model_cache_dir))
    if quantized.is_file():
        detector = _open_once(quantized, family, options)
        _refuse_int8_of(detector.family, path)
        return detector
    if parameters is not None:
        with exclusive_lock(quantized.with_suffix(".lock")):
            if not quantized.is_file():
                log.info(
                    "quantizing %s to int8 with its shipped parameters (first use, a few "
                    "seconds; cached as %s)",
                    path.name,
                    quantized,
                )
                quantize_model(path, quantized, INPUT_NAME, parameters=parameters)
        return _open_once(quantized, family, options)
    fp32 = _open_once(path, family, options)
    _refuse_int8_of(fp32.family, path)
    if video_path is None:
        return fp32
    # One process quantizes; the others (a pool's, a machine's workers) wait for it.
    with exclusive_lock(quantized.with_suffix(".lock")):
        if not quantized.is_file():
            info = probe_video(video_path)
            width = _decode_width(options, fp32, info.width, info.height)
            images = usable_for_calibration(sample_frames(video_path, width))
            if len(images) < MIN_CALIBRATION_FRAMES:
                log.warning(
                    "int8: %s has %d textured frames, too few to calibrate %s on; fp32 "
                    "for this video",
                    video_path,
                    len(images),
                    path.name,
                )
                return fp32
            log.info(
                "quantizing %s to int8, calibrated on %d frames of %s (first use; cached as %s)",
                path.name,
                len(images),
                video_path,
                quantized,
            )
            blobs = calibration_blobs(fp32, images)
            quantize_model(path, quantized, fp32.session.get_inputs()[0].name, blobs)
    with _detectors_lock:  # the fp32 session is not used again: free its memory
        _detectors.pop((str(path.resolve()), family, options.inference_threads), None)
    return _open_once(quantized, family or fp32.family, options)


def default_model_to_quantize(options: LocalTrackingOptions) -> Path | None:
    """Where the int8 copy of the default detector will be cached, when ``options`` need it
    and it is not made yet (the first process to load the detector makes it: a few
    seconds); None otherwise. Reads no model: for a notice before the work starts."""
    if check_precision(options.detector_precision) == "fp32" or not _uses_default_model(options):
        return None
    cache = default_cache_dir(options.model_cache_dir)
    source = default_model_path(cache)
    if not source.is_file() or shipped_parameters(source) is None:
        return None
    target = int8_path(source, cache)
    return None if target.is_file() else target


def _refuse_int8_of(family: str, path: Path) -> None:
    if family not in INT8_FAMILIES:
        raise ConfigurationError(
            f"VTRACK_DETECTOR_PRECISION=int8: the {family} family loses detections in "
            f"int8 ({path.name}: measured in docs/benchmarks.md); use fp32 for this detector"
        )


def load_detector(options: LocalTrackingOptions, video_path: Path | None = None) -> ObjectDetector:
    """This process's detector for ``options``: the network, on tiles if they are asked for."""
    model = load_model(options, video_path)
    setting = TileSetting.parse(options.detect_tiles)
    return model if setting.mode == "off" else TiledDetector(model, setting)


def warm_up(options: LocalTrackingOptions) -> ObjectDetector:
    """Load the detector and run it once, so a worker's first task pays no start-up cost."""
    detector = load_detector(options)
    blank = np.zeros((detector.input_height, detector.input_width, 3), dtype=np.uint8)
    detector.detect(blank, detection_thresholds(options, detector))
    return detector


def _is_default_model(detector: ObjectDetector) -> bool:
    session = getattr(detector, "session", None)
    if session is None:
        return False
    source = session.get_modelmeta().custom_metadata_map.get("source", "")
    return source.startswith("darknet")


def detection_thresholds(
    options: LocalTrackingOptions, detector: ObjectDetector
) -> DetectionThresholds:
    default_confidence = 0.15 if _is_default_model(detector) else detector.default_confidence
    return DetectionThresholds(
        confidence=options.confidence_threshold
        if options.confidence_threshold is not None
        else default_confidence,
        nms_iou=options.nms_iou,
        containment=options.containment,
        cross_class_iou=options.cross_class_iou,
    )


def tracker_thresholds(
    options: LocalTrackingOptions, detector: ObjectDetector
) -> TrackerThresholds:
    base = YOLOV3_TINY_THRESHOLDS if _is_default_model(detector) else ULTRALYTICS_THRESHOLDS
    if options.track_activation_threshold is None:
        return base
    threshold = options.track_activation_threshold
    return replace(base, activation=threshold, high_confidence=threshold)


# --- tracking -------------------------------------------------------------------------


def object_track(track: RawTrack, class_names: Sequence[str]) -> ObjectTrack:
    """The annotation model's track for a tracker's raw track (label: the score-weighted vote)."""
    class_id = track.voted_class()
    appearance = track.appearance()
    frames = tuple(
        TrackedFrame(time=time, box=NormalizedBox(*(float(v) for v in box)).clipped())
        for time, box in zip(track.times, track.boxes, strict=True)
    )
    return ObjectTrack(
        entity=Entity(entity_id=str(class_id), description=class_names[class_id]),
        confidence=track.mean_score,
        segment=Segment(track.times[0], track.times[-1]),
        frames=frames,
        track_id=track.track_id,
        label_scores=tuple(
            (class_names[class_id], round(score, 4))
            for class_id, score in sorted(track.class_scores().items())
        ),
        appearance=() if appearance is None else tuple(round(float(v), 5) for v in appearance),
        label_frames=tuple(
            (class_names[class_id], count)
            for class_id, count in sorted(track.class_counts().items())
        ),
    )


def track_segment(
    video_path: Path,
    segment: Segment,
    options: LocalTrackingOptions,
    *,
    input_uri: str | None = None,
    progress: Callable[[float], None] | None = None,
) -> VideoAnnotation:
    """Detect and track the objects in one time segment of a video.

    Objects carry the tracker's ids (unique within this segment only); times are absolute
    in the video. ``progress`` is called before each processed frame with the share of
    the segment done (0 to 1), and with 1 once the segment is tracked. Raises
    :class:`workers.errors.VideoError` for an unreadable video and
    :class:`ConfigurationError` for a model problem.
    """
    video_path = Path(video_path)
    info = probe_video(video_path)
    detector = load_detector(options, video_path)
    rate = options.processing_rate(info)
    tracker = make_tracker(
        options.tracker, tracker_thresholds(options, detector), rate or info.fps or 30.0
    )
    thresholds = detection_thresholds(options, detector)
    collector = TrackCollector(
        tracker,
        appearance=options.appearance,
        class_names=detector.class_names,
        camera_motion=options.camera_motion,
        reid=load_reid_model(resolve_reid_path(options), options.inference_threads),
    )
    frames = iter_frames(
        video_path,
        start=segment.start,
        end=segment.end,
        every=1.0 / rate if rate else None,
        max_width=_decode_width(options, detector, info.width, info.height),
        threads=options.decode_threads,
    )
    detection = StillSceneDetection(
        lambda image: detector.detect(image, thresholds), options.still_detect_every
    )
    for frame, detections in detection(read_ahead(frames, options.decode_ahead)):
        if progress is not None:
            progress((frame.time - segment.start) / segment.duration if segment.duration else 0.0)
        height, width = frame.image.shape[:2]
        collector.update(frame.time, detections, (width, height), frame.image)
    if progress is not None:
        progress(1.0)  # the last processed frame is seldom exactly at the segment's end
    if detection.every > 1:
        counts = detection.counts
        log.info(
            "%s %.1f-%.1f s: detector run on %d of %d processed frames "
            "(%d interpolated in still scenes, %d detected after a change)",
            video_path.name,
            segment.start,
            segment.end,
            counts.detected,
            counts.frames,
            counts.interpolated,
            counts.backfilled,
        )
    objects = tuple(
        object_track(track, detector.class_names) for track in collector.finished_tracks()
    )
    return VideoAnnotation(
        input_uri=input_uri if input_uri is not None else str(video_path),
        objects=objects,
        segment=segment,
    )


def _decode_width(
    options: LocalTrackingOptions, detector: ObjectDetector, width: int, height: int
) -> int | None:
    """How wide frames are decoded: the network input's size, or in full when tiled."""
    input_size = (detector.input_height, detector.input_width)
    grid = TileSetting.parse(options.detect_tiles).grid_for((height or 1, width or 1), input_size)
    return max(input_size) if grid == (1, 1) else None


def track_video(
    video_path: Path,
    options: LocalTrackingOptions | None = None,
    *,
    segment_seconds: float | None = None,
    overlap_seconds: float = 2.0,
    input_uri: str | None = None,
) -> VideoAnnotation:
    """Track a whole video in this process: plan, track each segment, stitch.

    With ``segment_seconds`` None the video is one segment (one tracker pass).
    """
    options = options or LocalTrackingOptions()
    video_path = Path(video_path)
    info = probe_video(video_path)
    segments = (
        [Segment(0.0, info.duration)]
        if segment_seconds is None
        else plan_segments(info, segment_seconds, overlap_seconds)
    )
    parts = [
        (segment, track_segment(video_path, segment, options, input_uri=input_uri))
        for segment in segments
    ]
    return stitch_segments(
        parts, overlap_seconds, options=options, input_uri=input_uri, video_frames=info.frame_count
    )
