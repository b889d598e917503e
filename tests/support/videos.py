"""Small real test videos, written with PyAV, whose every frame says which frame it is.

Each frame shows a textured background (so the encoder has real detail to code), a red
rectangle that moves along a known path (:func:`box_at`), and the frame's index written in
binary as a row of black/white cells along the top (:func:`read_frame_index` reads it
back). Cells are large and pure black or white, so lossy H.264 keeps them readable.

By default the encoder makes B-frames (some of which no other frame refers to) and a
keyframe every ``gop`` frames, like real footage, so seeking and frame skipping are
exercised.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

INDEX_BITS = 8
INDEX_CELL = 16  # pixels: the side of one index cell
BOX_SIZE = (32, 24)  # width, height of the moving rectangle
BOX_COLOUR = (220, 30, 30)


def box_at(index: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box (left, top, right, bottom) of the moving rectangle in frame ``index``.

    It moves right 3 px a frame and down 1 px a frame below the index row, wrapping around.
    """
    box_w, box_h = BOX_SIZE
    span_x = max(1, width - box_w)
    span_y = max(1, height - box_h - INDEX_CELL * 2)
    left = (index * 3) % span_x
    top = INDEX_CELL * 2 + (index % span_y)
    return left, top, left + box_w, top + box_h


def frame_pixels(index: int, width: int, height: int) -> np.ndarray:
    """The RGB pixels of frame ``index``."""
    ys, xs = np.mgrid[0:height, 0:width]
    texture = ((xs // 8 + ys // 8) % 2) * 60 + 60 + (xs * 40 // max(1, width))
    pixels = np.repeat(texture[:, :, None], 3, axis=2).astype(np.uint8)
    pixels[:, :, 2] = np.clip(texture + 40, 0, 255)
    for bit in range(INDEX_BITS):
        value = 255 if (index >> bit) & 1 else 0
        x0 = bit * INDEX_CELL
        pixels[0:INDEX_CELL, x0 : x0 + INDEX_CELL] = value
    left, top, right, bottom = box_at(index, width, height)
    pixels[top:bottom, left:right] = BOX_COLOUR
    return pixels


def read_frame_index(image: Image.Image | np.ndarray) -> int:
    """The index a full-size frame made by :func:`frame_pixels` carries (its top row)."""
    pixels = np.asarray(image.convert("L") if isinstance(image, Image.Image) else image)
    if pixels.ndim == 3:
        pixels = pixels.mean(axis=2)
    return _read_bits(pixels, scale=1.0)


def read_scaled_frame_index(image: Image.Image, original_width: int) -> int:
    """Like :func:`read_frame_index` for a frame scaled from ``original_width`` wide."""
    pixels = np.asarray(image.convert("L"), dtype=float)
    return _read_bits(pixels, scale=image.width / original_width)


def _read_bits(pixels: np.ndarray, scale: float) -> int:
    index = 0
    middle = int(INDEX_CELL * scale / 2)
    for bit in range(INDEX_BITS):
        x = int((bit * INDEX_CELL + INDEX_CELL / 2) * scale)
        if pixels[middle, x] > 128:
            index |= 1 << bit
    return index


def write_test_video(
    path: Path,
    *,
    frames: int = 30,
    fps: int = 10,
    width: int = 160,
    height: int = 96,
    gop: int = 10,
    bframes: int = 2,
    times: Sequence[float] | None = None,
    faststart: bool = True,
) -> Path:
    """Write an H.264 MP4 of ``frames`` frames to ``path`` and return the path.

    ``times`` (seconds, increasing) gives each frame its own timestamp, for a variable frame
    rate video; otherwise frame ``i`` is at ``i / fps``. ``faststart`` puts the MP4 index at
    the front (as streaming files do), so cutting the file short leaves a readable index that
    promises frames no longer there.
    """
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "preset": "veryfast",
            "crf": "16",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}",
        }
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)

        def pictures() -> Iterator[av.VideoFrame]:
            for index in range(frames):
                pixels = frame_pixels(index, width, height)
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                if times is not None:
                    frame.pts = round(times[index] * 1000)
                    frame.time_base = Fraction(1, 1000)
                else:
                    frame.pts = index
                    frame.time_base = Fraction(1, fps)
                yield frame

        _encode_all(container, stream, pictures())
    return path


def _encode_all(container: Any, stream: Any, frames: Iterable[av.VideoFrame]) -> None:
    """Encode ``frames`` into ``stream`` and mux them, then flush the encoder."""
    for frame in frames:
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def truncate_file(path: Path, fraction: float = 0.5) -> Path:
    """Cut ``path`` to ``fraction`` of its size, in place, and return it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def write_displayed_video(
    path: Path,
    *,
    rotation: int = 0,
    rotate_tag: bool = False,
    sample_aspect: Fraction = Fraction(1),
    frames: int = 6,
    fps: int = 10,
    width: int = 160,
    height: int = 96,
) -> Path:
    """A video that a player shows as :func:`frame_pixels` frames of ``width`` x ``height``.

    The frames are stored as a phone or a broadcast camera stores them: turned by
    ``rotation`` degrees (counterclockwise, as a display matrix says) the other way, with
    the turn recorded in the container, and squeezed to ``width / sample_aspect`` stored
    pixels across when anamorphic. ``rotate_tag`` records the turn the old way instead: a
    ``rotate`` tag (clockwise degrees) in a Matroska file, as older FFmpeg wrote it.
    """
    quarter_turns = (rotation // 90) % 4
    upright_width = round(width / sample_aspect)
    stored_width, stored_height = (
        (height, upright_width) if quarter_turns % 2 else (upright_width, height)
    )
    with av.open(str(path), mode="w", format="matroska" if rotate_tag else "mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = stored_width, stored_height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "12"}
        if sample_aspect != 1:
            stream.codec_context.sample_aspect_ratio = sample_aspect
        if rotate_tag:
            stream.metadata["rotate"] = str((-rotation) % 360)
        elif rotation:
            stream.set_display_rotation(rotation)

        def pictures() -> Iterator[av.VideoFrame]:
            for index in range(frames):
                upright = Image.fromarray(frame_pixels(index, width, height))
                upright = upright.resize((upright_width, height), Image.Resampling.LANCZOS)
                stored = np.ascontiguousarray(np.rot90(np.asarray(upright), -quarter_turns))
                frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                yield frame

        _encode_all(container, stream, pictures())
    return path


def write_camera_copy(
    source: Path, path: Path, *, seconds: float, rotation: int = 0, interlace: bool = False
) -> Path:
    """The first ``seconds`` of an upright progressive video, stored as a camera would.

    ``rotation`` stores the frames sideways with a display matrix that turns them upright
    again (what a phone held upright writes: -90). ``interlace`` weaves each pair of frames
    into one, the top field from the first and the bottom field from the second, as FFmpeg's
    ``interlace`` filter does (half the frame rate), coded as interlaced H.264 (top field
    first), as a camcorder records. Decoded with plain PyAV, not with vtrack's reader.
    """
    quarter_turns = (rotation // 90) % 4
    with av.open(str(source)) as reader, av.open(str(path), mode="w", format="mp4") as writer:
        video = reader.streams.video[0]
        rate = video.average_rate / 2 if interlace else video.average_rate
        stream = writer.add_stream("libx264", rate=rate)
        width, height = video.codec_context.width, video.codec_context.height
        stream.width, stream.height = (height, width) if quarter_turns % 2 else (width, height)
        stream.pix_fmt = "yuv420p"
        options = {"preset": "veryfast", "crf": "18"}
        if interlace:
            options["x264-params"] = "interlaced=1:tff=1"
        stream.options = options
        if rotation:
            stream.set_display_rotation(rotation)
        time_base = 1 / stream.codec_context.framerate

        def pictures() -> Iterator[av.VideoFrame]:
            written = 0
            first_field: np.ndarray | None = None
            for frame in reader.decode(video):
                if frame.time is not None and frame.time >= seconds:
                    return
                pixels = frame.to_ndarray(format="rgb24")
                if interlace:
                    if first_field is None:
                        first_field = pixels
                        continue
                    first_field[1::2] = pixels[1::2]
                    pixels, first_field = first_field, None
                stored = np.ascontiguousarray(np.rot90(pixels, -quarter_turns))
                out = av.VideoFrame.from_ndarray(stored, format="rgb24")
                out.pts, out.time_base = written, time_base
                written += 1
                yield out

        _encode_all(writer, stream, pictures())
    return path


def corrupt_middle(path: Path, start: float = 0.4, end: float = 0.6, seed: int = 1) -> Path:
    """Overwrite the bytes between ``start`` and ``end`` (fractions of the size) with noise.

    The container's index (at the front, with ``faststart``) stays intact, so the file
    probes whole, but the frames coded in that stretch cannot be decoded.
    """
    data = bytearray(path.read_bytes())
    first, last = int(len(data) * start), int(len(data) * end)
    data[first:last] = (
        np.random.default_rng(seed).integers(0, 256, last - first, np.uint8).tobytes()
    )
    path.write_bytes(bytes(data))
    return path


def damage_spots(
    path: Path, at: Sequence[float] = (0.3, 0.5, 0.7), size: int = 400, seed: int = 1
) -> Path:
    """Overwrite ``size`` bytes with noise at each fraction ``at`` of the file: a few damaged
    packets spread over a video, as a flaky disk or a broken upload leaves them."""
    data = bytearray(path.read_bytes())
    noise = np.random.default_rng(seed)
    for fraction in at:
        first = int(len(data) * fraction)
        data[first : first + size] = noise.integers(0, 256, size, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def stream_copy(
    source: Path, path: Path, *, format: str | None = None, start: float | None = None
) -> Path:
    """Copy the video stream of ``source`` into ``path`` without re-encoding, as
    ``ffmpeg [-ss START] -i SOURCE -c copy PATH`` does (same FFmpeg libraries, via PyAV).

    ``format`` is FFmpeg's muxer name (``mpegts``, ``mp4``); None guesses from the name.
    ``start`` cuts the copy there as FFmpeg does: every packet from the keyframe at or
    before ``start`` is kept (the frames after it need it) and timestamps are shifted so
    that ``start`` is time 0; in an MP4 the frames before it get negative times, which the
    muxer hides with an edit list.
    """
    with av.open(str(source)) as reader, av.open(str(path), mode="w", format=format) as writer:
        video = reader.streams.video[0]
        copy = writer.add_stream_from_template(video)
        shift = round(start / video.time_base) if start else 0
        if start:
            reader.seek(shift, stream=video, backward=True, any_frame=False)
        for packet in reader.demux(video):
            if packet.dts is None:
                continue  # the demuxer's flush packet
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = copy
            writer.mux(packet)
    return path


def write_two_stream_video(
    path: Path,
    first: Path,
    second: Path,
    *,
    default: int = 1,
    first_as_cover: bool = False,
    format: str = "mp4",
) -> Path:
    """An MP4 with the video streams of ``first`` then ``second`` (stream copies), only
    stream ``default`` (0 or 1) marked default, as a camera with a preview or a second
    angle writes.

    ``first_as_cover`` stores ``first`` (a one-frame MJPEG or PNG file) as a cover image
    instead: in an MP4 an iTunes-style ``covr`` tag, with the tags written before the
    tracks as tagging tools write them, so FFmpeg reads the cover as the file's first
    stream; in Matroska (``format="matroska"``) a one-frame track, not marked default, as
    ``ffmpeg -i cover.jpg -i video.mp4 -map 0 -map 1:v -c copy -disposition:0 attached_pic
    out.mkv`` writes it (FFmpeg 5.1).
    """
    with (
        av.open(str(first)) as one,
        av.open(str(second)) as two,
        av.open(str(path), mode="w", format=format) as writer,
    ):
        sources = [one.streams.video[0], two.streams.video[0]]
        copies = [writer.add_stream_from_template(source) for source in sources]
        for number, copy in enumerate(copies):
            copy.disposition = av.stream.Disposition.default if number == default else 0
        if first_as_cover and format == "mp4":
            copies[0].disposition = av.stream.Disposition.attached_pic
        for reader, source, copy in ((one, sources[0], copies[0]), (two, sources[1], copies[1])):
            for packet in reader.demux(source):
                if packet.dts is None:
                    continue
                packet.stream = copy
                writer.mux(packet)
    if first_as_cover and format == "mp4":
        _move_tags_before_tracks(path)
    return path


def write_cover_image(path: Path, width: int = 320, height: int = 320) -> Path:
    """A one-frame MJPEG file: a cover image (a flat grey square)."""
    with av.open(str(path), mode="w", format="mjpeg") as container:
        stream = container.add_stream("mjpeg", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        picture = np.full((height, width, 3), 180, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuvj420p")
        frame.pts = 0
        _encode_all(container, stream, [frame])
    return path


def _boxes(data: bytes | bytearray, start: int, end: int) -> list[tuple[int, int, bytes]]:
    """The ISO-BMFF boxes laid end to end in ``data[start:end]``: (offset, size, type)."""
    boxes = []
    offset = start
    while offset + 8 <= end:
        size = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append((offset, size, bytes(data[offset + 4 : offset + 8])))
        offset += size
    return boxes


def _move_tags_before_tracks(path: Path) -> None:
    """Put the ``udta`` box (tags, the cover) first in ``moov``. Sizes and the media's
    offsets do not change: only the order of ``moov``'s children does."""
    data = bytearray(path.read_bytes())
    moov = next(box for box in _boxes(data, 0, len(data)) if box[2] == b"moov")
    children = _boxes(data, moov[0] + 8, moov[0] + moov[1])
    ordered = sorted(children, key=lambda box: (box[2] != b"mvhd", box[2] != b"udta"))
    body = b"".join(bytes(data[offset : offset + size]) for offset, size, _ in ordered)
    data[moov[0] + 8 : moov[0] + moov[1]] = body
    path.write_bytes(bytes(data))
