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

from workers.annotations.model import VideoAnnotation
from workers.geometry import box_iou
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
    # (time, x, y) corners to pass through instead of the straight path; off-frame
    # corners make the object leave and come back.
    waypoints: tuple[tuple[float, float, float], ...] = ()

    def position(self, time: float) -> tuple[int, int] | None:
        if not self.appear <= time <= self.disappear:
            return None
        if self.waypoints:
            times = [point[0] for point in self.waypoints]
            x = float(np.interp(time, times, [point[1] for point in self.waypoints]))
            y = float(np.interp(time, times, [point[2] for point in self.waypoints]))
            return round(x), round(y)
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


# A second person (indoors, from the one-by-one clip; detector score 1.0).
OTHER_PERSON_SOURCE = ("intel_one-by-one-person-detection.mp4", 84.0, (0.467, 0.064, 0.655, 0.904))


def _sprite_from(shared_videos: Path, source: tuple[str, float, tuple], height: int) -> np.ndarray:
    clip, time, box = source
    frame = extract_frames(shared_videos / clip, [time])[0]
    return _scaled_to_height(_crop(np.asarray(frame.image), box), height)


def _background(shared_videos: Path, width: int, height: int) -> np.ndarray:
    frame = extract_frames(shared_videos / "intel_car-detection.mp4", [BACKGROUND_SOURCE])[0]
    return cv2.resize(np.asarray(frame.image), (width, height), interpolation=cv2.INTER_LINEAR)


def crossing_scene(
    shared_videos: Path, width: int = 1280, height: int = 720
) -> tuple[np.ndarray, list[Sprite]]:
    """Two different people crossing (one passes behind the other) and a dog that walks out
    of the frame at about 3 s and comes back 2 s later; 8 s long."""
    background = _background(shared_videos, width, height)
    dog_clip = shared_videos / "sam2_01_dog.mp4"
    person_frame, dog_frame = extract_frames(dog_clip, [PERSON_SOURCE[0], DOG_SOURCE[0]])
    woman = _scaled_to_height(_crop(np.asarray(person_frame.image), PERSON_SOURCE[1]), 400)
    man = _sprite_from(shared_videos, OTHER_PERSON_SOURCE, 380)
    dog = _scaled_to_height(_crop(np.asarray(dog_frame.image), DOG_SOURCE[1]), 200)
    w, h = width, height
    return background, [
        Sprite(1, "person", woman, (0.05 * w, 0.22 * h), (0.72 * w, 0.22 * h), 0, 8, 2),
        Sprite(2, "person", man, (0.78 * w, 0.26 * h), (0.08 * w, 0.26 * h), 0, 8, 1),
        Sprite(
            3,
            "dog",
            dog,
            (0, 0),
            (0, 0),
            0.5,
            8,
            3,
            waypoints=(
                (0.5, 0.35 * w, 0.68 * h),
                (3.0, 1.02 * w, 0.68 * h),
                (5.0, 1.02 * w, 0.66 * h),
                (8.0, 0.45 * w, 0.66 * h),
            ),
        ),
    ]


def fast_object_scene(
    shared_videos: Path, width: int = 1280, height: int = 720, *, pass_seconds: float = 0.6
) -> tuple[np.ndarray, list[Sprite]]:
    """A small person (140 px tall, 56 wide) running back and forth across the frame, one
    pass every ``pass_seconds``: at the default 0.6 s about 165 px between two frames
    processed at 10 a second, more than the box's own height (and 3 times its width), so
    consecutive boxes never overlap. 6 s long.

    (No ball, bird or bottle from the shared clips is found by YOLOv3-tiny when small over
    this background; this runner is, in 30 of 30 frames.)
    """
    background = _background(shared_videos, width, height)
    runner = _sprite_from(shared_videos, OTHER_PERSON_SOURCE, 140)
    left, right = 0.08 * width, 0.85 * width
    points = []
    time, going_right = 0.0, True
    while time <= 6.0 + 1e-9:
        points.append(
            (time, left if going_right else right, (0.3 if going_right else 0.45) * height)
        )
        time += pass_seconds
        going_right = not going_right
    return background, [Sprite(1, "person", runner, (0, 0), (0, 0), 0, 6, 1, tuple(points))]


@dataclass(frozen=True, slots=True)
class Camera:
    """A camera that sees a ``size`` (width, height) window of a larger background (the
    world), its top-left corner moving through ``waypoints`` ``(time, x, y)`` in world
    pixels: a pan. Sprites' positions are in world pixels too. ``grey``: the video is
    black and white."""

    size: tuple[int, int]
    waypoints: tuple[tuple[float, float, float], ...] = ((0.0, 0.0, 0.0),)
    grey: bool = False

    def origin(self, time: float) -> tuple[int, int]:
        times = [point[0] for point in self.waypoints]
        x = float(np.interp(time, times, [point[1] for point in self.waypoints]))
        y = float(np.interp(time, times, [point[2] for point in self.waypoints]))
        return round(x), round(y)


def render_frame(
    background: np.ndarray,
    sprites: list[Sprite],
    time: float,
    frame: int,
    camera: Camera | None = None,
) -> tuple[np.ndarray, list[TruthRow]]:
    """The scene at ``time`` (seen by ``camera``: the whole background when None) and the
    true box of every object in it."""
    world_x, world_y = camera.origin(time) if camera else (0, 0)
    if camera:
        view_width, view_height = camera.size
        canvas = background[world_y : world_y + view_height, world_x : world_x + view_width].copy()
    else:
        canvas = background.copy()
    height, width = canvas.shape[:2]
    coverage = np.zeros((height, width), dtype=np.int32)  # which object shows at each pixel
    placed: list[tuple[Sprite, tuple[int, int, int, int]]] = []
    for sprite in sorted(sprites, key=lambda s: s.depth):
        position = sprite.position(time)
        if position is None:
            continue
        x, y = position[0] - world_x, position[1] - world_y
        sprite_height, sprite_width = sprite.image.shape[:2]
        left, top = max(0, x), max(0, y)
        right, bottom = min(width, x + sprite_width), min(height, y + sprite_height)
        if right <= left or bottom <= top:
            continue
        canvas[top:bottom, left:right] = sprite.image[top - y : bottom - y, left - x : right - x]
        coverage[top:bottom, left:right] = sprite.object_id
        placed.append((sprite, (left, top, right, bottom)))
    if camera and camera.grey:
        canvas = cv2.cvtColor(cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
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
    camera: Camera | None = None,
) -> list[TruthRow]:
    """Encode the scene (as ``camera`` sees it) as H.264 at ``fps`` and return the ground
    truth of every frame."""
    width, height = camera.size if camera else (background.shape[1], background.shape[0])
    truth: list[TruthRow] = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast", "g": str(fps * 2)}
        for index in range(round(duration * fps)):
            time = index / fps
            pixels, rows = render_frame(background, sprites, time, index, camera)
            truth.extend(rows)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return truth


def write_mot_ground_truth(
    truth: list[TruthRow],
    folder: Path,
    *,
    name: str,
    fps: float,
    size: tuple[int, int],
    frame_count: int,
    classes: dict[str, int],
) -> Path:
    """Write ``truth`` as a MOTChallenge sequence folder (``gt/gt.txt`` and ``seqinfo.ini``):
    frames from 1, pixel boxes, flag 1, the class numbers ``classes`` gives, visibility."""
    (folder / "gt").mkdir(parents=True, exist_ok=True)
    lines = [
        f"{row.frame + 1},{row.object_id},{row.box[0]},{row.box[1]},{row.box[2] - row.box[0]},"
        f"{row.box[3] - row.box[1]},1,{classes[row.class_name]},{row.visibility:.3f}"
        for row in sorted(truth, key=lambda row: (row.frame, row.object_id))
    ]
    (folder / "gt" / "gt.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nframeRate={fps}\nseqLength={frame_count}\n"
        f"imWidth={size[0]}\nimHeight={size[1]}\n",
        encoding="utf-8",
    )
    return folder


def _people_and_dog(shared_videos: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The woman and the dog of the dog clip and the man of the one-by-one clip, full size."""
    person_frame, dog_frame = extract_frames(
        shared_videos / "sam2_01_dog.mp4", [PERSON_SOURCE[0], DOG_SOURCE[0]]
    )
    woman = _crop(np.asarray(person_frame.image), PERSON_SOURCE[1])
    dog = _crop(np.asarray(dog_frame.image), DOG_SOURCE[1])
    clip, time, box = OTHER_PERSON_SOURCE
    man = _crop(np.asarray(extract_frames(shared_videos / clip, [time])[0].image), box)
    return woman, man, dog


def grey_exit_entry_scene(
    shared_videos: Path, width: int = 1280, height: int = 720
) -> tuple[np.ndarray, list[Sprite], Camera]:
    """Black and white, still camera, 10 s: a man walks down and out of the frame at the
    bottom (gone at 3 s); a different person (the woman) walks in from the right edge 3 s
    later (from 6 s), far from where he left. In grey, colour histograms of the two are
    alike; only the layout and texture of the boxes, and where they left and came in,
    tell them apart. 2 real objects."""
    background = _background(shared_videos, width, height)
    woman, man, _ = _people_and_dog(shared_videos)
    man = _scaled_to_height(man, 380)
    woman = _scaled_to_height(woman, 400)
    w, h = width, height
    return (
        background,
        [
            Sprite(
                1,
                "person",
                man,
                (0, 0),
                (0, 0),
                0,
                3.2,
                1,
                waypoints=((0.0, 0.28 * w, 0.05 * h), (3.2, 0.34 * w, 1.02 * h)),
            ),
            Sprite(
                2,
                "person",
                woman,
                (0, 0),
                (0, 0),
                6.0,
                10,
                2,
                waypoints=((6.0, 1.0 * w, 0.22 * h), (10.0, 0.55 * w, 0.22 * h)),
            ),
        ],
        Camera((width, height), grey=True),
    )


def panning_scene(
    shared_videos: Path, width: int = 1280, height: int = 720, *, grey: bool = True
) -> tuple[np.ndarray, list[Sprite], Camera]:
    """A camera panning right at 192 px/s over a world three frames wide, 10 s (black and
    white by default). A man walking left leaves the frame by its left side (out at about
    2.6 s); a different person (the woman), walking slowly right in the world, comes in by
    the right side 3 s later (5.6 s); a dog walks along with the camera the whole time,
    in front of them. 3 real objects, none ever seen as two."""
    frame = _background(shared_videos, width, height)
    world = np.ascontiguousarray(np.concatenate([frame, frame[:, ::-1], frame], axis=1))
    woman, man, dog = _people_and_dog(shared_videos)
    man = _scaled_to_height(man, 360)
    woman = _scaled_to_height(woman, 380)
    dog = _scaled_to_height(dog, 190)
    h = height
    return (
        world,
        [
            Sprite(
                1,
                "person",
                man,
                (0, 0),
                (0, 0),
                0,
                3.0,
                1,
                waypoints=((0.0, 450.0, 0.12 * h), (3.0, 330.0, 0.12 * h)),
            ),
            Sprite(
                2,
                "person",
                woman,
                (0, 0),
                (0, 0),
                5.0,
                10,
                1,
                waypoints=((5.0, 2337.0, 0.14 * h), (10.0, 2487.0, 0.14 * h)),
            ),
            Sprite(
                3,
                "dog",
                dog,
                (0, 0),
                (0, 0),
                0.0,
                10,
                3,
                waypoints=((0.0, 180.0, 0.66 * h), (10.0, 2180.0, 0.66 * h)),
            ),
        ],
        Camera((width, height), ((0.0, 0.0, 0.0), (10.0, 1920.0, 0.0)), grey=grey),
    )


def shaky_scene(
    shared_videos: Path, width: int = 1280, height: int = 720, *, seed: int = 3
) -> tuple[np.ndarray, list[Sprite], Camera]:
    """A handheld camera shaking (its view jumps up to 90 px sideways and 70 px up or
    down every 0.2 s), 10 s: two people standing close (85 px apart), slowly drifting
    right, and a dog walking in front of them. 3 real objects."""
    frame = _background(shared_videos, width, height)
    row = np.concatenate([frame, frame[:, ::-1]], axis=1)
    world = np.ascontiguousarray(np.concatenate([row, row[::-1]], axis=0))
    woman, man, dog = _people_and_dog(shared_videos)
    man = _scaled_to_height(man, 340)
    woman = _scaled_to_height(woman, 360)
    dog = _scaled_to_height(dog, 180)
    rng = np.random.default_rng(seed)
    shake = tuple(
        (float(t), 300 + rng.uniform(-90, 90), 200 + rng.uniform(-70, 70))
        for t in np.arange(0.0, 10.01, 0.2)
    )
    return (
        world,
        [
            Sprite(
                1,
                "person",
                man,
                (0, 0),
                (0, 0),
                0,
                10,
                1,
                waypoints=((0.0, 820.0, 330.0), (10.0, 880.0, 330.0)),
            ),
            Sprite(
                2,
                "person",
                woman,
                (0, 0),
                (0, 0),
                0,
                10,
                2,
                waypoints=((0.0, 1040.0, 320.0), (10.0, 1080.0, 320.0)),
            ),
            Sprite(
                3,
                "dog",
                dog,
                (0, 0),
                (0, 0),
                0,
                10,
                3,
                waypoints=((0.0, 700.0, 600.0), (10.0, 1300.0, 600.0)),
            ),
        ],
        Camera((width, height), shake),
    )


def objects_each_track_covers(
    annotation: VideoAnnotation, truth: list[TruthRow], size: tuple[int, int], fps: int = 30
) -> dict[int, set[int]]:
    """For each reported track, the real objects its boxes lie on: in each frame, the
    mostly visible object (half of it or more) whose true box the track's box overlaps
    best, at IoU 0.5 or more. A track of one object covers one. (While one person is
    hidden behind another, a box on the one in front also overlaps the hidden one's true
    box: hidden objects are not counted.)"""
    by_frame: dict[int, list[TruthRow]] = {}
    for row in truth:
        by_frame.setdefault(row.frame, []).append(row)
    covered: dict[int, set[int]] = {}
    for track in annotation.objects:
        found = covered.setdefault(track.track_id or 0, set())
        for frame in track.frames:
            box = frame.box.to_pixels(*size)
            scored = [
                (box_iou(box, row.box), row.object_id)
                for row in by_frame.get(round(frame.time * fps), [])
                if row.visibility >= 0.5
            ]
            best = max(scored, default=(0.0, 0))
            if best[0] >= 0.5:
                found.add(best[1])
    return covered


def still_scene(
    shared_videos: Path, width: int = 1280, height: int = 720
) -> tuple[np.ndarray, list[Sprite], Camera]:
    """A still camera, 10 s: a woman and a dog stand still the whole time; a man walks in
    from the right edge at 4 s, stops at 6 s and stands still from then on. Where things
    move: the man, 4 to 6 s. 3 real objects."""
    background = _background(shared_videos, width, height)
    woman, man, dog = _people_and_dog(shared_videos)
    woman = _scaled_to_height(woman, 400)
    man = _scaled_to_height(man, 380)
    dog = _scaled_to_height(dog, 190)
    w, h = width, height
    return (
        background,
        [
            Sprite(1, "person", woman, (0.12 * w, 0.2 * h), (0.12 * w, 0.2 * h), 0, 10, 1),
            Sprite(2, "dog", dog, (0.32 * w, 0.66 * h), (0.32 * w, 0.66 * h), 0, 10, 2),
            Sprite(
                3,
                "person",
                man,
                (0, 0),
                (0, 0),
                4.0,
                10,
                1,
                waypoints=(
                    (4.0, 1.0 * w, 0.24 * h),
                    (6.0, 0.64 * w, 0.24 * h),
                    (10.0, 0.64 * w, 0.24 * h),
                ),
            ),
        ],
        Camera((width, height)),
    )
