"""Reading videos: probing, decoding forward, and pulling out the frames nearest given times.

Everything here uses PyAV because it exposes what matching annotations to frames needs and
OpenCV's ``VideoCapture`` hides: each packet's presentation timestamp and keyframe flag.

Before decoding, every function demuxes the video stream once (packets only, no decoding:
about 10 microseconds a packet) into a :class:`_FrameIndex`: the exact presentation time of
every frame and where the keyframes are. With it,

* frame times come from the container's timestamps, never from ``index / fps`` (variable
  frame rate videos exist, and so do videos that do not start at timestamp 0);
* a truncated file is told apart from a whole one (packets actually there vs. frames the
  container declares);
* :func:`extract_frames` knows in advance exactly which frames it needs, seeks only to skip
  a stretch that holds a keyframe, and lets the decoder drop the frames nothing depends on.

Times are seconds from the video's first frame (the stream's start time is time 0).

Frames come out as a player shows them, not as they are stored (:class:`_Display`): turned
upright when the container says the camera was held sideways (a display matrix, or the
older ``rotate`` tag), stretched to square pixels when the stream is anamorphic (a sample
aspect ratio other than 1:1), and deinterlaced when the stream is interlaced. Sizes in
:class:`VideoInfo`, ``max_width`` and every decoded image are in that displayed geometry,
so normalized boxes mean the same thing to the detector, the renderer and a viewer.
"""

from __future__ import annotations

import bisect
import logging
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from PIL import Image

from workers.errors import NotFoundError, VideoError
from workers.messages import Message

log = logging.getLogger(__name__)

# Demuxers that open single images or text as a one-frame "video": not videos to vtrack.
_IMAGE_OR_TEXT_FORMATS = frozenset({"tty", "image2", "apng", "gif", "webp_pipe"})

# Slack for float comparisons of times computed from integer timestamps.
_TIME_EPSILON = 1e-6

# Rescaling filter for frames scaled down: "AREA" averages the source pixels each output
# pixel covers, so downscaled frames do not shimmer; it costs no more than BILINEAR here.
_SCALE_INTERPOLATION = "AREA"

# FFmpeg's deinterlacer for interlaced streams. bwdif (motion-adaptive, Bob Weaver) keeps
# more vertical detail on moving edges than yadif and, measured, costs less CPU a frame
# (docs/benchmarks.md); "send_frame" makes one frame per frame, so every frame keeps its
# timestamp and the frame index stays true; "deint=all" because a stream flagged
# interlaced only in its container does not flag its frames.
_DEINTERLACER = "bwdif"
_DEINTERLACE_OPTIONS = "mode=send_frame:deint=all"

# AVFieldOrder values (libavcodec/defs.h) and the field a player shows first for each: TT,
# BB, then TB and BT (coded in one order, displayed in the other).
_FIELD_UNKNOWN, _FIELD_PROGRESSIVE = 0, 1
_FIRST_FIELD = {2: "tff", 3: "bff", 4: "bff", 5: "tff"}


class VideoInfo(Message):
    """What a video is, as measured from its packets (not only as its header claims).

    A message: it travels in the local backend's operation and the render plan as JSON."""

    duration: float  # last frame's time + one frame interval, in seconds
    fps: float  # average frame rate
    width: int  # as displayed: after rotation and the sample aspect ratio
    height: int
    frame_count: int  # frames actually present in the file
    rotation: int = 0  # degrees counterclockwise the stored frames are turned for display
    sample_aspect_ratio: float = 1.0  # stored pixel width / height (anamorphic when not 1)
    interlaced: bool = False  # deinterlaced when decoded
    stream_index: int = 0  # the stream read, numbered in the file as FFmpeg numbers it (0:N)
    video_streams: int = 1  # video streams in the file, cover images included
    hidden_frames: int = 0  # frames an edit list hides: not counted, never shown

    @property
    def frame_interval(self) -> float:
        """Nominal time between two frames, in seconds."""
        return 1.0 / self.fps if self.fps > 0 else 0.0


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One decoded frame: its time (seconds), its index in presentation order, its pixels."""

    time: float
    index: int
    image: np.ndarray


@dataclass(frozen=True, slots=True)
class ExtractedFrame:
    """The frame found for a requested time: the time asked for, the frame's own time, the image."""

    requested: float
    time: float
    image: Image.Image


@dataclass(frozen=True, slots=True)
class _FrameIndex:
    """Every frame's timestamp in presentation order, and which frames are keyframes."""

    pts: tuple[int, ...]  # sorted presentation timestamps, one per frame
    times: tuple[float, ...]  # the same, in seconds from the first frame
    keyframe_positions: tuple[int, ...]  # sorted positions (into ``pts``) of keyframes
    frame_interval: float  # seconds
    duration: float  # seconds
    declared_frames: int  # what the container claims (0 when it does not say)
    demux_error: str | None  # why demuxing stopped early, if it did
    # The presentation and decoding timestamps of the keyframe packet that decoding starts
    # at for each position of ``keyframe_positions`` (see :meth:`seek_targets`).
    keyframe_packets: tuple[tuple[int, int], ...] = ()
    rewind_target: int = 0  # a timestamp at or before every packet: the file's start
    hidden_frames: int = 0  # frames an edit list hides (decoded for others, never shown)

    @property
    def frame_count(self) -> int:
        return len(self.pts)

    def position_of(self, pts: int) -> int:
        return bisect.bisect_left(self.pts, pts)

    def nearest_position(self, time: float) -> int:
        """Position of the frame whose time is nearest ``time``; ties go to the earlier frame."""
        after = bisect.bisect_left(self.times, time)
        if after == 0:
            return 0
        if after == len(self.times):
            return after - 1
        before = after - 1
        if time - self.times[before] <= self.times[after] - time:
            return before
        return after

    def keyframe_before(self, position: int) -> int:
        """Position of the last keyframe at or before ``position`` (the first frame if none)."""
        i = bisect.bisect_right(self.keyframe_positions, position) - 1
        return self.keyframe_positions[i] if i >= 0 else 0

    def keyframe_packet(self, keyframe: int) -> tuple[int, int] | None:
        """(pts, dts) of the keyframe packet that makes the frame at position ``keyframe``
        decodable, when the index knows one there."""
        i = bisect.bisect_left(self.keyframe_positions, keyframe)
        if i < len(self.keyframe_packets) and self.keyframe_positions[i] == keyframe:
            return self.keyframe_packets[i]
        return None

    def seek_targets(self, keyframe: int) -> tuple[int, ...]:
        """Timestamps to seek to (backward), in the order to try them, so that decoding
        starts at the keyframe that makes the frame at position ``keyframe`` decodable.

        First the keyframe's presentation time, which containers with an index (MP4,
        Matroska) find at once; then its decoding time, for containers searched by their
        decoding timestamps (MPEG-TS, where the presentation time of a keyframe followed by
        B-frames lands on the keyframe after); last the file's start, which always works.
        For the first frame of a file whose edit list hides its start, the keyframe is the
        hidden one the shown frames need.
        """
        packet = self.keyframe_packet(keyframe)
        if packet is not None:
            targets = [*packet, self.rewind_target]
        elif keyframe > 0:
            targets = [self.pts[keyframe], self.rewind_target]
        else:
            targets = [self.rewind_target]
        return tuple(dict.fromkeys(targets))  # in order, each once


@dataclass(frozen=True, slots=True)
class _Display:
    """How a player shows a stream's stored frames: the geometry every decoded frame is given.

    Phones store frames as the sensor reads them and record how to turn them for display;
    anamorphic streams store pixels that are wider (or narrower) than tall; interlaced
    streams store two half-height fields taken at different instants in one frame.
    """

    stored_width: int
    stored_height: int
    sample_aspect: Fraction  # stored pixel width / height
    quarter_turns: int  # counterclockwise quarter turns for display, 0 to 3 (np.rot90's k)
    deinterlace: str | None  # the deinterlacer's options; None for a progressive stream

    @property
    def rotation(self) -> int:
        """Degrees counterclockwise, 0, 90, 180 or 270."""
        return self.quarter_turns * 90

    @property
    def upright_size(self) -> tuple[int, int]:
        """Width and height with square pixels, before turning (the width is stretched)."""
        width = max(1, round(self.stored_width * self.sample_aspect))
        return width, self.stored_height

    @property
    def size(self) -> tuple[int, int]:
        """Width and height as displayed."""
        width, height = self.upright_size
        return (height, width) if self.quarter_turns % 2 else (width, height)

    def output_size(self, max_width: int | None) -> tuple[int, int]:
        """The displayed size scaled down to at most ``max_width`` wide."""
        return _scaled_size(*self.size, max_width)


def _display_of(stream: Any, frame: Any) -> _Display:
    """How ``stream`` is displayed, read from its first decoded ``frame`` and its headers.

    The rotation is the frame's display matrix (FFmpeg hands the container's matrix to every
    decoded frame), or else the stream's legacy ``rotate`` tag (clockwise degrees, as older
    FFmpeg wrote it). Angles that are not a quarter turn are rounded to the nearest one.
    """
    if any(data.type.name == "DISPLAYMATRIX" for data in frame.side_data):
        counterclockwise = float(frame.rotation)
    else:
        counterclockwise = -_legacy_rotate_tag(stream)
    sample_aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if not sample_aspect or sample_aspect <= 0:
        sample_aspect = Fraction(1, 1)
    return _Display(
        stored_width=frame.width,
        stored_height=frame.height,
        sample_aspect=Fraction(sample_aspect),
        quarter_turns=round(counterclockwise / 90) % 4,
        deinterlace=_deinterlace_options(stream, frame),
    )


def _legacy_rotate_tag(stream: Any) -> float:
    """The stream's ``rotate`` metadata tag in degrees clockwise (0 when absent or garbled)."""
    for key, value in stream.metadata.items():
        if key.lower() == "rotate":
            try:
                degrees = float(value)
            except ValueError:
                return 0.0
            return degrees if math.isfinite(degrees) else 0.0
    return 0.0


def _deinterlace_options(stream: Any, frame: Any) -> str | None:
    """The deinterlacer's options when the stream or its frames say they are interlaced."""
    field_order = stream.codec_context.field_order
    flagged = field_order not in (_FIELD_UNKNOWN, _FIELD_PROGRESSIVE)
    if not (flagged or frame.interlaced_frame):
        return None
    # The stream's field order first: an H.264 stream coded as MBAFF without picture timing
    # leaves its frames' top-field-first flag unset, which "auto" would take as bottom first.
    parity = _FIRST_FIELD.get(field_order, "auto")
    return f"{_DEINTERLACE_OPTIONS}:parity={parity}"


class _Deinterlacer:
    """FFmpeg's deinterlacer in a PyAV filter graph, fed frames in presentation order.

    It looks at the frames before and after each one, so a frame comes out after the next one
    goes in (or at :meth:`flush`), with its timestamp in the stream's time base again (the
    filter halves the time base, to make room for one frame per field). One per decoding
    pass: after a seek the frames are no longer neighbours, so a new one is needed.
    """

    def __init__(self, first: Any, time_base: Fraction, options: str) -> None:
        self._time_base = time_base
        self._graph = av.filter.Graph()
        source = self._graph.add_buffer(
            width=first.width, height=first.height, format=first.format, time_base=time_base
        )
        deinterlacer = self._graph.add(_DEINTERLACER, options)
        sink = self._graph.add("buffersink")
        source.link_to(deinterlacer)
        deinterlacer.link_to(sink)
        self._graph.configure()

    def push(self, frame: Any) -> list[Any]:
        self._graph.push(frame)
        return self._pull()

    def flush(self) -> list[Any]:
        self._graph.push(None)
        return self._pull()

    def _pull(self) -> list[Any]:
        frames = []
        while True:
            try:
                frame = self._graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return frames
            if frame.pts is not None and frame.time_base and frame.time_base != self._time_base:
                frame.pts = round(frame.pts * frame.time_base / self._time_base)
                frame.time_base = self._time_base
            frames.append(frame)


def _as_displayed(frame: Any, display: _Display, max_width: int | None, fmt: str) -> np.ndarray:
    """The frame's pixels as a player shows them, at most ``max_width`` wide, in ``fmt``.

    One swscale pass converts the pixel format and scales straight to the displayed size
    (square pixels: the sample aspect ratio is applied here), then numpy turns the small
    result upright: turning after scaling moves the fewest pixels (docs/benchmarks.md).
    """
    width, height = display.output_size(max_width)
    if display.quarter_turns % 2:
        width, height = height, width
    pixels = frame.reformat(
        width=width, height=height, format=fmt, interpolation=_SCALE_INTERPOLATION
    ).to_ndarray()
    if display.quarter_turns:
        pixels = np.ascontiguousarray(np.rot90(pixels, display.quarter_turns))
    return pixels


def probe_video(path: Path) -> VideoInfo:
    """Measure a video: duration, frame rate, size and the number of frames really present.

    Raises :class:`VideoError` (one line naming the file) when the file is not a video, has
    no video stream, or is truncated (fewer frames than its container declares, or a read
    error part way), and :class:`NotFoundError` when it does not exist.
    """
    with _open_video(path) as (container, stream, index):
        if index.demux_error is not None:
            raise VideoError(
                f"{path}: truncated or corrupt: read stopped after {index.frame_count} frames "
                f"({index.demux_error})"
            )
        if index.declared_frames and index.frame_count < index.declared_frames:
            raise VideoError(
                f"{path}: truncated: {index.frame_count} of {index.declared_frames} frames"
            )
        display = _read_display(container, stream, index, path)
        width, height = display.size
        return VideoInfo(
            duration=index.duration,
            fps=_average_fps(stream, index),
            width=width,
            height=height,
            frame_count=index.frame_count,
            rotation=display.rotation,
            sample_aspect_ratio=float(display.sample_aspect),
            interlaced=display.deinterlace is not None,
            stream_index=stream.index,
            video_streams=len(container.streams.video),
            hidden_frames=index.hidden_frames,
        )


@dataclass(frozen=True, slots=True)
class VideoLimits:
    """The largest video a job accepts (``VTRACK_MAX_VIDEO_PIXELS``, ``VTRACK_MAX_VIDEO_SECONDS``).

    Checked on the probe's measurements (the probe decodes only the first frame, to learn
    the displayed size), before any frame is converted: a frame of ``pixels`` costs 3 bytes
    a pixel in every decoding process, and a video's length is what the tracking time grows
    with. ``None`` is no limit. Sizes are as displayed (after rotation and the sample aspect
    ratio).
    """

    max_pixels: int | None = None
    max_seconds: float | None = None

    def check(self, info: VideoInfo, source: str) -> None:
        """Raise :class:`VideoError` (one line naming the setting) when ``info`` is over a limit."""
        pixels = info.width * info.height
        if self.max_pixels and pixels > self.max_pixels:
            raise VideoError(
                f"{source}: {info.width}x{info.height} frames ({pixels:,} pixels) are over the "
                f"limit of {self.max_pixels:,} pixels (VTRACK_MAX_VIDEO_PIXELS)"
            )
        if self.max_seconds and info.duration > self.max_seconds:
            raise VideoError(
                f"{source}: {_describe_seconds(info.duration)} long, over the limit of "
                f"{_describe_seconds(self.max_seconds)} (VTRACK_MAX_VIDEO_SECONDS)"
            )


def _describe_seconds(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def frame_times(path: Path) -> tuple[float, ...]:
    """Every frame's time in seconds, in presentation order, from the packets (no decoding)."""
    with _open_video(path) as (_, _, index):
        return index.times


def iter_frames(
    path: Path,
    start: float = 0.0,
    end: float | None = None,
    every: float | None = None,
    max_width: int | None = None,
    fmt: str = "rgb24",
    threads: int | None = None,
) -> Iterator[DecodedFrame]:
    """Decode forward once and yield the frames whose time lies in ``[start, end]``.

    Decoding starts at the keyframe before ``start``. ``every`` (seconds; ``None``: every
    frame) cuts the video's whole timeline, from time 0, into slots of that length and
    yields the first frame of each slot: the rate is ``1 / every`` on average, and two
    overlapping calls (segments of one video) yield the very same frames where they
    overlap. Frames not yielded are never converted. Frames are as a player shows them
    (upright, square pixels, deinterlaced); wider than ``max_width``, they are scaled down
    keeping their aspect ratio. ``fmt`` is an FFmpeg pixel format (``rgb24``,
    ``bgr24``, ``gray``). ``threads``: FFmpeg's decoding threads; None lets FFmpeg choose
    (frame and slice threads, one more than the cores), which speeds a process that has
    the machine to itself but slows processes that already keep every core busy.
    """
    with _open_video(path, threads) as (container, stream, index):
        first = bisect.bisect_left(index.times, start - _TIME_EPSILON)
        if first == index.frame_count:
            return
        position = index.keyframe_before(first)

        def yielded(at: int) -> bool:
            time = index.times[min(at, index.frame_count - 1)]
            if time < start - _TIME_EPSILON:
                return False
            if end is not None and time > end + _TIME_EPSILON:
                return False
            return every is None or _first_of_slot(index, at, every)

        def wanted(pts: int) -> bool:
            return yielded(index.position_of(pts))

        # Frames between the keyframe and ``start``, and those between two slots, are only
        # decoded when later frames refer to them (the decoder leaves the others).
        skipping = every is not None or position < first
        frames = _frames_from(
            container, stream, index, path, position, first, wanted if skipping else None
        )
        with closing(frames):
            for frame, display in frames:
                # A frame without a timestamp (rare, some AVI files) follows the previous one.
                position = index.position_of(frame.pts) if frame.pts is not None else position + 1
                time = index.times[min(position, index.frame_count - 1)]
                if end is not None and time > end + _TIME_EPSILON:
                    break
                if not yielded(position):
                    continue
                image = _as_displayed(frame, display, max_width, fmt)
                yield DecodedFrame(time=time, index=position, image=image)


def read_ahead(frames: Iterator[DecodedFrame], depth: int) -> Iterator[DecodedFrame]:
    """``frames``, produced by a thread of their own up to ``depth`` frames ahead.

    Decoding and scaling (FFmpeg) and inference (onnxruntime) both release the GIL, so
    with the decoder in a thread the tracking loop seldom waits for its next frame while
    the decoder works during inference. The queue is small: ``depth`` frames at the
    detector's size are a few hundred kilobytes. ``depth`` 0 decodes in the caller's
    thread. An error of the decoder is raised in the caller, where the frame would have
    been; a caller that stops early stops the thread.
    """
    if depth <= 0:
        yield from frames
        return
    ahead: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in frames:
                if not offer(("frame", frame)):
                    return
        except BaseException as error:  # handed to the caller, raised there
            offer(("error", error))
            return
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()
        offer(("end", None))

    thread = threading.Thread(target=produce, name="vtrack-decode-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = ahead.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _first_of_slot(index: _FrameIndex, position: int, every: float) -> bool:
    """Whether the frame at ``position`` is the first of its ``every``-second slot of the video."""
    if position == 0 or position >= index.frame_count:
        return True

    def slot(time: float) -> int:
        return math.floor(time / every + _TIME_EPSILON)

    return slot(index.times[position - 1]) != slot(index.times[position])


def extract_frames(
    path: Path, times: Sequence[float], max_width: int | None = None
) -> list[ExtractedFrame]:
    """For each requested time, the frame whose timestamp is nearest (ties: the earlier one).

    Results are in the order of ``times`` (repeated times get separate copies, so drawing on
    one does not mark another); images are as a player shows them (see :func:`iter_frames`).
    The needed frames are decoded in one forward pass per stretch:
    it seeks only when a keyframe lies between two needed frames, and lets the decoder skip
    frames that no other frame refers to, which gives the same pixels for less work.

    A time up to one frame interval past the end gets the last frame; further than that, or
    more than one frame interval before the start, raises :class:`VideoError` (callers should
    validate times against :func:`probe_video` first).
    """
    if not times:
        return []
    with _open_video(path) as (container, stream, index):
        positions = [_checked_nearest(index, time, path) for time in times]
        images = _decode_positions(
            container, stream, index, sorted(set(positions)), max_width, path
        )
    results: list[ExtractedFrame] = []
    handed_out: set[int] = set()
    for requested, position in zip(times, positions, strict=True):
        image = images[position]
        if position in handed_out:
            image = image.copy()
        handed_out.add(position)
        results.append(
            ExtractedFrame(requested=float(requested), time=index.times[position], image=image)
        )
    return results


# --- opening and indexing --------------------------------------------------------------


@contextmanager
def _open_video(path: Path, threads: int | None = None) -> Iterator[tuple[Any, Any, _FrameIndex]]:
    """Open ``path`` with PyAV: the container, its video stream (see :func:`_chosen_stream`)
    ready to decode on ``threads`` threads (None: the process's setting), and the stream's
    frame index. FFmpeg's errors become one-line VtrackErrors."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: not a video (empty file)")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: not a video ({_reason(error)})") from error
    try:
        if container.format.name in _IMAGE_OR_TEXT_FORMATS or container.format.name.endswith(
            "_pipe"
        ):
            raise VideoError(f"{path}: not a video (looks like {container.format.long_name})")
        stream = _chosen_stream(container, path)
        # Frame and slice threads: decoding is the bulk of the work and scales with cores.
        stream.thread_type = "AUTO"
        if threads := threads or _process_decode_threads:
            stream.codec_context.thread_count = threads
        yield container, stream, _read_index(container, stream, path)
    finally:
        container.close()


# Decoding threads of this process when a call does not say (see set_decode_threads).
_process_decode_threads: int | None = None


def set_decode_threads(threads: int | None) -> None:
    """Decode on ``threads`` threads in this process when a call does not say; None lets
    FFmpeg choose (frame and slice threads, one more than the cores). A worker process sets
    1 when every core has a worker process of its own: FFmpeg's threads then only take turns
    with the other processes (about 4% of a render, 5% of tracking, measured on 2 cores)."""
    global _process_decode_threads
    _process_decode_threads = threads or None


@contextmanager
def decode_threads(threads: int | None) -> Iterator[None]:
    """Decode on ``threads`` threads in this process for the duration (None: leave as is),
    then go back to the process's setting (see :func:`set_decode_threads`)."""
    previous = _process_decode_threads
    if threads:
        set_decode_threads(threads)
    try:
        yield
    finally:
        set_decode_threads(previous)


# Streams that are pictures, not video: a cover image (attached picture) or a stream of
# still images (thumbnails). FFmpeg's own choice of stream passes them over.
_NOT_MOTION = av.stream.Disposition.attached_pic | av.stream.Disposition.timed_thumbnails


def _chosen_stream(container: Any, path: Path) -> Any:
    """The video stream FFmpeg would choose when told nothing: the main picture.

    A file can hold several video streams: a cover image (an attached picture, one frame),
    a small preview or a second camera angle. As the ``ffmpeg`` command does, cover images
    and thumbnail streams are never chosen; among the rest a stream marked default wins,
    then the one with the most pixels a frame, then the first. Every reader of a video
    (probing, tracking, rendering) chooses through here, so all of them read one stream.
    """
    candidates = [
        stream
        for stream in container.streams.video
        if not stream.disposition & _NOT_MOTION
        and stream.codec_context.width
        and stream.codec_context.height
    ]
    if not candidates:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        if all(stream.disposition & _NOT_MOTION for stream in container.streams.video):
            raise VideoError(f"{path}: no video stream (only a cover image)")
        raise VideoError(f"{path}: video stream has no frame size")

    def rank(stream: Any) -> tuple[bool, int, int]:
        default = bool(stream.disposition & av.stream.Disposition.default)
        pixels = stream.codec_context.width * stream.codec_context.height
        return default, pixels, -stream.index

    return max(candidates, key=rank)


def _read_index(container: Any, stream: Any, path: Path) -> _FrameIndex:
    """Demux (no decoding) the video stream's packets into a frame index.

    Packets an edit list hides (an MP4 cut by stream copy keeps the frames from the
    keyframe before the cut, flagged to be decoded and discarded) are not frames of the
    video: the index holds only the frames a player shows, so times, the duration and the
    frame count are on the player's timeline. Their keyframes are kept as places to start
    decoding from. Nor are frames before the first keyframe, in a file that starts
    mid-stream: nothing can decode them.
    """
    pts_list: list[int] = []
    keyframes: list[tuple[int, int]] = []  # (presentation, decoding) timestamps
    earliest: int | None = None
    hidden = 0
    last_duration = 0
    demux_error: str | None = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_corrupt:
                continue
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                continue
            decode_at = packet.dts if packet.dts is not None else pts
            earliest = decode_at if earliest is None else min(earliest, decode_at)
            if packet.is_keyframe:
                keyframes.append((pts, decode_at))
            if packet.is_discard:
                hidden += 1
                continue
            pts_list.append(pts)
            last_duration = packet.duration or last_duration
    except av.error.FFmpegError as error:
        demux_error = _reason(error)
    if not pts_list:
        raise VideoError(f"{path}: no video frames")
    pts_list.sort()
    time_base = stream.time_base or Fraction(1, 1)
    start_pts = stream.start_time if stream.start_time is not None else pts_list[0]
    start_pts = pts_list[0] if hidden else min(start_pts, pts_list[0])
    # A capture that starts mid-stream (a broadcast or a camera's TS cut anywhere) begins
    # with frames that refer to a keyframe it does not hold: decoders drop them, players
    # never show them. They keep their place on the timeline but are not frames of it.
    undecodable = 0
    if keyframes:
        first_key = min(key_pts for key_pts, _ in keyframes)
        undecodable = bisect.bisect_left(pts_list, first_key)
        if undecodable == len(pts_list):
            raise VideoError(f"{path}: no frame can be decoded (none follows a keyframe)")
        del pts_list[:undecodable]
    times = tuple(float((pts - start_pts) * time_base) for pts in pts_list)
    interval = _frame_interval(stream, times, last_duration * time_base)
    # Each keyframe makes decodable the first shown frame at or after it; of several for
    # one frame (hidden ones before the first shown frame), the latest is the cheapest.
    starts: dict[int, tuple[int, int]] = {}
    for key_pts, decode_at in sorted(keyframes):
        position = bisect.bisect_left(pts_list, key_pts)
        if position < len(pts_list):
            starts[position] = (key_pts, decode_at)
    positions = tuple(sorted(starts)) or (0,)
    rewind = (earliest if earliest is not None else pts_list[0]) - 1
    return _FrameIndex(
        pts=tuple(pts_list),
        times=times,
        keyframe_positions=positions,
        frame_interval=interval,
        duration=times[-1] + interval,
        declared_frames=max(0, int(stream.frames or 0) - hidden - undecodable),
        demux_error=demux_error,
        keyframe_packets=tuple(starts[position] for position in positions) if starts else (),
        rewind_target=rewind,
        hidden_frames=hidden,
    )


def _frame_interval(stream: Any, times: Sequence[float], last_packet_duration: Fraction) -> float:
    """The video's frame interval: the last packet's own duration when the container says it."""
    if last_packet_duration > 0:
        return float(last_packet_duration)
    rate = stream.average_rate or stream.guessed_rate
    if rate:
        return float(1 / rate)
    if len(times) > 1:
        return float(np.median(np.diff(times)))
    return 0.0


def _average_fps(stream: Any, index: _FrameIndex) -> float:
    rate = stream.average_rate or stream.guessed_rate
    if rate:
        return float(rate)
    return index.frame_count / index.duration if index.duration > 0 else 0.0


def _reason(error: av.error.FFmpegError) -> str:
    return (getattr(error, "strerror", None) or str(error)).strip().lower()


# --- decoding ---------------------------------------------------------------------------


def _seek(container: Any, stream: Any, index: _FrameIndex, keyframe: int | None) -> None:
    """Seek so that decoding starts at the keyframe that makes the frame at position
    ``keyframe`` decodable, or at the file's start (None); flushes the decoder.

    Each of :meth:`_FrameIndex.seek_targets` is tried in turn until one lands on a keyframe
    no later than that one: a look at the first packet tells, then the same seek again
    puts the demuxer back before it (seeking twice costs less than a GOP decoded for
    nothing, or one lost).
    """
    if keyframe is None:
        container.seek(index.rewind_target, stream=stream, backward=True, any_frame=False)
        return
    targets = index.seek_targets(keyframe)
    packet = index.keyframe_packet(keyframe)
    latest = packet[0] if packet is not None else index.pts[keyframe]
    for target in targets[:-1]:
        container.seek(target, stream=stream, backward=True, any_frame=False)
        if _lands_on_keyframe(container, stream, latest):
            container.seek(target, stream=stream, backward=True, any_frame=False)
            return
    container.seek(targets[-1], stream=stream, backward=True, any_frame=False)


def _lands_on_keyframe(container: Any, stream: Any, latest: int) -> bool:
    """Whether the next packet of ``stream`` is a keyframe shown no later than ``latest``."""
    try:
        for packet in container.demux(stream):
            pts = packet.pts if packet.pts is not None else packet.dts
            if packet.size == 0 or pts is None:
                continue
            return bool(packet.is_keyframe) and pts <= latest
    except av.error.FFmpegError:
        return False
    return False


def _read_display(container: Any, stream: Any, index: _FrameIndex, path: Path) -> _Display:
    """How the stream is displayed, from its first frame (decodes that one frame)."""
    try:
        for keyframe in (0, None):
            _seek(container, stream, index, keyframe)
            for packet in container.demux(stream):
                for frame in stream.decode(packet):
                    return _display_of(stream, frame)
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: cannot decode: {_reason(error)}") from error
    raise VideoError(f"{path}: cannot decode its first frame")


def _frames_from(
    container: Any,
    stream: Any,
    index: _FrameIndex,
    path: Path,
    keyframe: int,
    first: int,
    wanted: Callable[[int], bool] | None,
) -> Iterator[tuple[Any, _Display]]:
    """Frames (see :func:`_displayed_frames`) decoded from the keyframe at position
    ``keyframe`` on, such that the frame at position ``first`` is among them.

    Should the seek still land late (the first frame decoded comes after ``first``), the
    frames before would silently be lost: decoding starts again from the file's start.
    """
    for start in (keyframe, None):
        _seek(container, stream, index, start)
        frames = _displayed_frames(container, stream, path, wanted)
        with closing(frames):
            for count, (frame, display) in enumerate(frames):
                if (
                    count == 0
                    and start is not None
                    and frame.pts is not None
                    and index.position_of(frame.pts) > first
                ):
                    log.debug(
                        "%s: a seek landed after %.3fs: decoding from the start",
                        path,
                        index.times[first],
                    )
                    break
                yield frame, display
            else:
                return


def _displayed_frames(
    container: Any,
    stream: Any,
    path: Path,
    wanted: Callable[[int], bool] | None = None,
) -> Iterator[tuple[Any, _Display]]:
    """Frames of ``stream`` from the current position, in presentation order, with its display.

    Interlaced streams go through the deinterlacer here, so every caller gets whole frames.
    ``wanted`` (a packet's timestamp: is its frame needed?) lets the decoder leave a frame
    that no other frame refers to undecoded when nobody wants it, which changes no other
    frame's pixels; never on interlaced streams, whose deinterlacer needs every neighbour.
    """
    codec = stream.codec_context
    display: _Display | None = None
    deinterlacer: _Deinterlacer | None = None
    may_skip = codec.field_order in (_FIELD_UNKNOWN, _FIELD_PROGRESSIVE)
    damage = _Damage(path, stream)
    try:
        for packet in container.demux(stream):
            needed = True
            if wanted is not None:
                needed = not may_skip or packet.pts is None or wanted(packet.pts)
                codec.skip_frame = "DEFAULT" if needed else "NONREF"
            try:
                frames = stream.decode(packet)
            except av.error.FFmpegError as error:
                damage.skip(packet, error)  # raises once the video is more damage than video
                continue
            # A packet left undecoded on purpose counts as sound video, not as nothing.
            damage.decoded(len(frames) if needed else max(1, len(frames)))
            for frame in frames:
                if display is None:
                    display = _display_of(stream, frame)
                    if display.deinterlace is not None:
                        may_skip = False
                        deinterlacer = _Deinterlacer(
                            frame, stream.time_base or Fraction(1, 1), display.deinterlace
                        )
                if deinterlacer is None:
                    yield frame, display
                else:
                    for whole in deinterlacer.push(frame):
                        yield whole, display
        if deinterlacer is not None and display is not None:
            for whole in deinterlacer.flush():
                yield whole, display
        damage.check()
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: cannot decode: {_reason(error)}") from error
    finally:
        codec.skip_frame = "DEFAULT"
        damage.report()


class _Damage:
    """Packets the decoder refused, in one pass over a video.

    Real files have damaged stretches (a broken upload, a bad sector, a camera that lost
    power): the frames of a refused packet are skipped and decoding goes on, so a damaged
    second costs that second's frames, not the job. A pass that has refused more packets
    than it decoded frames is more damage than video and raises :class:`VideoError`: as
    soon as that is true past the first ``TOLERATED`` refusals (a pass that stops early,
    at a segment's end, is judged too), or at the end of the stream. The skipped count is
    logged once per pass, with the first refusal's time and reason.
    """

    # Refusals a pass may meet before it is judged (about a second of video at 30 fps).
    TOLERATED = 30

    def __init__(self, path: Path, stream: Any) -> None:
        self.path = path
        self.time_base = stream.time_base
        self.skipped = 0
        self.frames = 0
        self.first = ""

    def skip(self, packet: Any, error: av.error.FFmpegError) -> None:
        self.skipped += 1
        if not self.first:
            at = packet.pts if packet.pts is not None else packet.dts
            known = at is not None and self.time_base
            when = f" at {float(at * self.time_base):.2f}s" if known else ""
            self.first = f"{when}: {_reason(error)}"
        if self.skipped > self.TOLERATED:
            self.check()

    def decoded(self, frames: int) -> None:
        self.frames += frames

    def check(self) -> None:
        if self.skipped > self.frames:
            skipped, self.skipped = self.skipped, 0  # said by the error, not logged again
            raise VideoError(
                f"{self.path}: cannot decode: {skipped} damaged packet(s) and "
                f"{self.frames} frame(s) (first damage{self.first})"
            )

    def report(self) -> None:
        if self.skipped:
            log.warning(
                "%s: skipped %d damaged packet(s) the decoder refused (first%s)",
                self.path,
                self.skipped,
                self.first,
            )


class _Missed(Exception):
    """Decoding went past a wanted frame (a seek landed late) or the stream ended before it."""

    def __init__(self, time: float) -> None:
        super().__init__(time)
        self.time = time


def _decode_positions(
    container: Any,
    stream: Any,
    index: _FrameIndex,
    positions: Sequence[int],
    max_width: int | None,
    path: Path,
) -> dict[int, Image.Image]:
    """Decode the frames at the given sorted ``positions``, as displayed RGB images."""
    images: dict[int, Image.Image] = {}
    for stretch in _plan_stretches(index, positions):
        keyframe = index.keyframe_before(stretch[0])
        # Some containers seek imprecisely; decoding from the file's start always works.
        starts = (keyframe,) if len(index.seek_targets(keyframe)) == 1 else (keyframe, None)
        for start in starts:
            try:
                images.update(
                    _decode_stretch(container, stream, index, stretch, start, max_width, path)
                )
                break
            except _Missed as missed:
                missed_time = missed.time
        else:
            raise VideoError(f"{path}: could not decode the frame at {missed_time:.3f}s")
    return images


def _plan_stretches(index: _FrameIndex, positions: Sequence[int]) -> list[list[int]]:
    """Group sorted positions into stretches decoded without seeking.

    A new stretch (a seek) starts only when a keyframe lies after the previous needed frame
    and at or before the next one: only then can a seek skip frames that would otherwise
    have to be decoded.
    """
    stretches: list[list[int]] = []
    for position in positions:
        if stretches and index.keyframe_before(position) <= stretches[-1][-1]:
            stretches[-1].append(position)
        else:
            stretches.append([position])
    return stretches


def _decode_stretch(
    container: Any,
    stream: Any,
    index: _FrameIndex,
    stretch: Sequence[int],
    keyframe: int | None,
    max_width: int | None,
    path: Path,
) -> dict[int, Image.Image]:
    """Seek to the keyframe for position ``keyframe`` (None: the file's start) and decode
    forward to ``stretch``.

    Only the wanted frames are converted (the costly step); the others are skipped by the
    decoder where they can be.
    """
    wanted = [index.pts[position] for position in stretch]  # sorted, as positions are
    wanted_set = frozenset(wanted)
    images: dict[int, Image.Image] = {}
    _seek(container, stream, index, keyframe)
    with closing(_displayed_frames(container, stream, path, wanted_set.__contains__)) as frames:
        for frame, display in frames:
            next_wanted = wanted[len(images)]
            if frame.pts == next_wanted:
                pixels = _as_displayed(frame, display, max_width, "rgb24")
                images[stretch[len(images)]] = Image.fromarray(pixels)
            elif frame.pts is not None and frame.pts > next_wanted:
                raise _Missed(index.times[stretch[len(images)]])
            if len(images) == len(wanted):
                return images
    raise _Missed(index.times[stretch[len(images)]])


def _scaled_size(width: int, height: int, max_width: int | None) -> tuple[int, int]:
    """The frame size scaled down to at most ``max_width`` wide, keeping the aspect ratio."""
    if max_width is None or width <= max_width:
        return width, height
    return max_width, max(1, round(height * max_width / width))


def _checked_nearest(index: _FrameIndex, time: float, path: Path) -> int:
    slack = index.frame_interval + _TIME_EPSILON
    if time < -slack or time > index.duration + slack:
        raise VideoError(
            f"{path}: no frame at {time:.3f}s (the video runs from 0 to {index.duration:.3f}s)"
        )
    return index.nearest_position(time)
