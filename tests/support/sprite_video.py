"""A generated video with known ground truth: real photo sprites moving over a real background.

The sprites are cut from frames of the shared clip ``sam2_01_dog.mp4`` (a woman and a dog),
the background is a frame of ``intel_car-detection.mp4``. Sprites move on straight paths;
the two people cross (one passes behind the other) and the dog walks in front of them, so
a tracker meets crossings and occlusions. Every frame's true boxes are recorded as MOT rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from workers.media.video import extract_frames

# Where the sprites are in the shared clip: time (s) and normalized box, found by eye and
# checked with the default detector (person score 0.97, dog 0.68).
PERSON_SOURCE = (2.5, (0.17, 0.10, 0.33, 0.80))
DOG_SOURCE = (4.0, (0.69, 0.54, 0.94, 0.80))
BACKGROUND_SOURCE = 0.0


@dataclass(frozen=True, slots=True)
class Sprite:
    """One object of the scene: its pixels, class, and straight path while it is visible."""

    object_id: int
    class_name: str
    image: np.ndarray  # RGB, already at the size it is drawn
    start_xy: tuple[float, float]  # top-left corner at ``appear`` (pixels)
    end_xy: tuple[float, float]  # top-left corner at ``disappear``
    appear: float  # seconds
    disappear: float
    depth: int  # larger is drawn later (in front)

    def position(self, time: float) -> tuple[int, int] | None:
        if not self.appear <= time <= self.disappear:
            return None
        share = (time - self.appear) / max(self.disappear - self.appear, 1e-9)
        x = self.start_xy[0] + (self.end_xy[0] - self.start_xy[0]) * share
        y = self.start_xy[1] + (self.end_xy[1] - self.start_xy[1]) * share
        return round(x), round(y)


@dataclass(frozen=True, slots=True)
class TruthRow:
    """One object in one frame: MOT-style pixel box and the share of it that is visible."""

    frame: int
    time: float
    object_id: int
    class_name: str
    box: tuple[int, int, int, int]  # left, top, right, bottom (clipped to the frame)
    visibility: float


def _crop(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    height, width = image.shape[:2]
    left, top, right, bottom = box
    return image[
        round(top * height) : round(bottom * height), round(left * width) : round(right * width)
    ]


def _scaled_to_height(image: np.ndarray, height: int) -> np.ndarray:
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def real_scene(
    shared_videos: Path, width: int = 1280, height: int = 720
) -> tuple[np.ndarray, list[Sprite]]:
    """The background and sprites of the standard scene, cut from the shared clips."""
    dog_clip = shared_videos / "sam2_01_dog.mp4"
    person_frame, dog_frame = extract_frames(dog_clip, [PERSON_SOURCE[0], DOG_SOURCE[0]])
    person = np.asarray(person_frame.image)
    dog = np.asarray(dog_frame.image)
    background_frame = extract_frames(
        shared_videos / "intel_car-detection.mp4", [BACKGROUND_SOURCE]
    )[0]
    background = cv2.resize(
        np.asarray(background_frame.image), (width, height), interpolation=cv2.INTER_LINEAR
    )
    person_sprite = _scaled_to_height(_crop(person, PERSON_SOURCE[1]), round(height * 0.55))
    other_person = _scaled_to_height(
        np.ascontiguousarray(person_sprite[:, ::-1]), round(height * 0.48)
    )
    dog_sprite = _scaled_to_height(_crop(dog, DOG_SOURCE[1]), round(height * 0.28))
    w, h = width, height
    return background, [
        Sprite(1, "person", person_sprite, (0.05 * w, 0.25 * h), (0.70 * w, 0.25 * h), 0, 8, 2),
        Sprite(2, "person", other_person, (0.80 * w, 0.30 * h), (0.10 * w, 0.30 * h), 0.5, 7.5, 1),
        Sprite(3, "dog", dog_sprite, (0.15 * w, 0.68 * h), (0.70 * w, 0.62 * h), 1, 7, 3),
    ]


def render_frame(
    background: np.ndarray, sprites: list[Sprite], time: float, frame: int
) -> tuple[np.ndarray, list[TruthRow]]:
    """The scene at ``time`` and the true box of every object in it."""
    canvas = background.copy()
    height, width = canvas.shape[:2]
    coverage = np.zeros((height, width), dtype=np.int32)  # which object shows at each pixel
    placed: list[tuple[Sprite, tuple[int, int, int, int]]] = []
    for sprite in sorted(sprites, key=lambda s: s.depth):
        position = sprite.position(time)
        if position is None:
            continue
        x, y = position
        sprite_height, sprite_width = sprite.image.shape[:2]
        left, top = max(0, x), max(0, y)
        right, bottom = min(width, x + sprite_width), min(height, y + sprite_height)
        if right <= left or bottom <= top:
            continue
        canvas[top:bottom, left:right] = sprite.image[top - y : bottom - y, left - x : right - x]
        coverage[top:bottom, left:right] = sprite.object_id
        placed.append((sprite, (left, top, right, bottom)))
    rows = []
    for sprite, (left, top, right, bottom) in placed:
        area = (right - left) * (bottom - top)
        visible = int(np.count_nonzero(coverage[top:bottom, left:right] == sprite.object_id))
        rows.append(
            TruthRow(
                frame,
                time,
                sprite.object_id,
                sprite.class_name,
                (left, top, right, bottom),
                visible / area,
            )
        )
    return canvas, rows


def write_sprite_video(
    path: Path,
    background: np.ndarray,
    sprites: list[Sprite],
    *,
    fps: int = 30,
    duration: float = 8.0,
) -> list[TruthRow]:
    """Encode the scene as H.264 at ``fps`` and return the ground truth of every frame."""
    height, width = background.shape[:2]
    truth: list[TruthRow] = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast", "g": str(fps * 2)}
        for index in range(round(duration * fps)):
            time = index / fps
            pixels, rows = render_frame(background, sprites, time, index)
            truth.extend(rows)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return truth
