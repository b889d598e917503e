"""The seed project's way of rendering objects, rebuilt as a benchmark baseline.

For each object, for each of up to 12 annotated frames spread over its track: seek with
OpenCV (``CAP_PROP_POS_MSEC``) and read one frame, draw the box, convert to PIL; then save
the animation with Pillow's default GIF save at full video size, and a summary cell (the
middle frame, captioned) as a full-size JPEG. Outputs go to memory, not disk, so the
baseline's time is all decoding and encoding.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from workers.annotations.model import ObjectTrack, TrackedFrame

SEED_FRAMES = 12
SEED_FRAME_MS = 250


def seed_render_object(video_path: Path, obj: ObjectTrack) -> tuple[bytes, bytes]:
    """(GIF, JPEG cell) for ``obj``, made the seed's way."""
    capture = cv2.VideoCapture(str(video_path))
    try:
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        frames: list[Image.Image] = []
        for tracked in _spread(obj.frames, SEED_FRAMES):
            capture.set(cv2.CAP_PROP_POS_MSEC, tracked.time * 1000)
            ok, bgr = capture.read()
            if not ok:
                continue
            box = tracked.box
            top_left = (int(box.left * width), int(box.top * height))
            bottom_right = (int(box.right * width), int(box.bottom * height))
            cv2.rectangle(bgr, top_left, bottom_right, (0, 255, 0), 2)
            frames.append(Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    finally:
        capture.release()
    gif = io.BytesIO()
    frames[0].save(
        gif, format="GIF", save_all=True, append_images=frames[1:], duration=SEED_FRAME_MS, loop=0
    )
    return gif.getvalue(), _seed_cell(frames[len(frames) // 2], obj)


def _seed_cell(frame: Image.Image, obj: ObjectTrack) -> bytes:
    bgr = cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR)
    caption = f"{obj.entity.description} {obj.confidence:.2f}"
    cv2.putText(bgr, caption, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    ok, jpeg = cv2.imencode(".jpg", bgr)
    return jpeg.tobytes() if ok else b""


def _spread(frames: tuple[TrackedFrame, ...], count: int) -> list[TrackedFrame]:
    if len(frames) <= count:
        return list(frames)
    step = (len(frames) - 1) / (count - 1)
    return [frames[round(i * step)] for i in range(count)]
