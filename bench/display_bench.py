"""What showing frames as a player does costs: turning, the sample aspect ratio, deinterlacing.

Two measurements on the first seconds of the dog clip (1280x720), re-stored as a phone
(sideways, -90 rotation) and as a camcorder (interlaced, half the frame rate) would:

* per step, on frames already decoded (so decoding is left out), the median CPU milliseconds
  a frame of: converting to RGB at the detector's 416 wide; turning that small image with
  ``np.rot90`` (what vtrack does) or OpenCV's ``cv2.rotate``; turning the full frame in
  FFmpeg's ``transpose`` filter before converting; ``yadif`` and ``bwdif`` (the
  deinterlacers vtrack could use) before converting;
* end to end, :func:`workers.media.video.iter_frames` at 416 wide over each copy, wall and
  CPU milliseconds a frame (decoding included), for the upright, sideways and interlaced
  copies, and the interlaced one again with yadif instead of bwdif.

CPU time (user + system, all threads) is the steady figure on a shared machine.

Usage (from the repository root)::

    python -m bench.display_bench [--video PATH] [--seconds 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from tests.support.videos import write_camera_copy
from workers.media import video as video_module
from workers.media.video import iter_frames

DEFAULT_VIDEO = Path(__file__).resolve().parents[1] / ".." / "shared/data/videos/sam2_01_dog.mp4"
DETECTOR_WIDTH = 416


def _filtered(frames: list[Any], time_base: Fraction, name: str, options: str) -> Callable:
    """A step that runs every frame through one FFmpeg filter, then converts it."""

    def step() -> None:
        graph = av.filter.Graph()
        first = frames[0]
        source = graph.add_buffer(
            width=first.width, height=first.height, format=first.format, time_base=time_base
        )
        node = graph.add(name, options)
        sink = graph.add("buffersink")
        source.link_to(node)
        node.link_to(sink)
        graph.configure()
        for frame in [*frames, None]:
            graph.push(frame)
            while True:
                try:
                    out = graph.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    break
                width = DETECTOR_WIDTH
                height = round(out.height * width / out.width)
                out.reformat(width=width, height=height, format="rgb24").to_ndarray()

    return step


def step_costs(path: Path, runs: int) -> dict[str, float]:
    """Median milliseconds a frame of each step, on the decoded frames of ``path``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        time_base = stream.time_base
    # The size the detector gets, in the stored orientation: 416 wide once turned upright.
    width, height = frames[0].width, frames[0].height
    if width < height:  # stored sideways
        size = (round(width * DETECTOR_WIDTH / height), DETECTOR_WIDTH)
    else:
        size = (DETECTOR_WIDTH, round(height * DETECTOR_WIDTH / width))
    small = [f.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray() for f in frames]

    def convert() -> None:
        for frame in frames:
            frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()

    def rot90_small() -> None:
        for pixels in small:
            np.ascontiguousarray(np.rot90(pixels, -1))

    def cv2_small() -> None:
        for pixels in small:
            cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE)

    steps: dict[str, Callable[[], None]] = {
        "convert to RGB, 416 wide": convert,
        "np.rot90 of the 416-wide RGB image": rot90_small,
        "cv2.rotate of the 416-wide RGB image": cv2_small,
        "transpose filter (full size) + convert": _filtered(
            frames, time_base, "transpose", "dir=clock"
        ),
        "yadif + convert": _filtered(frames, time_base, "yadif", "mode=send_frame:deint=all"),
        "bwdif + convert": _filtered(frames, time_base, "bwdif", "mode=send_frame:deint=all"),
    }
    costs = {}
    for name, step in steps.items():
        times = []
        for _ in range(runs):
            start = time.process_time()
            step()
            times.append(time.process_time() - start)
        costs[name] = statistics.median(times) * 1000 / len(frames)
    return costs


def pass_cost(path: Path, runs: int) -> str:
    """Median wall and CPU milliseconds a frame of iter_frames over ``path`` at 416 wide."""
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        count = sum(1 for _ in iter_frames(path, max_width=DETECTOR_WIDTH))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall_ms = statistics.median(walls) * 1000 / count
    cpu_ms = statistics.median(cpus) * 1000 / count
    return f"{wall_ms:.2f} | {cpu_ms:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        copies = {
            "upright": write_camera_copy(
                args.video, Path(folder) / "upright.mp4", seconds=args.seconds
            ),
            "sideways (-90)": write_camera_copy(
                args.video, Path(folder) / "sideways.mp4", seconds=args.seconds, rotation=-90
            ),
            "interlaced": write_camera_copy(
                args.video, Path(folder) / "interlaced.mp4", seconds=args.seconds, interlace=True
            ),
        }
        print("| step (CPU ms a frame, 1280x720 decoded frames) | sideways | interlaced |")
        print("| --- | ---: | ---: |")
        sideways = step_costs(copies["sideways (-90)"], args.runs)
        interlaced = step_costs(copies["interlaced"], args.runs)
        for name in sideways:
            print(f"| {name} | {sideways[name]:.2f} | {interlaced[name]:.2f} |")
        print()
        print("| iter_frames at 416 wide, decoding included | wall ms a frame | CPU ms a frame |")
        print("| --- | ---: | ---: |")
        for name, path in copies.items():
            print(f"| {name} | {pass_cost(path, args.runs)} |")
        deinterlacer = video_module._DEINTERLACER
        video_module._DEINTERLACER = "yadif"
        try:
            print(f"| interlaced, yadif | {pass_cost(copies['interlaced'], args.runs)} |")
        finally:
            video_module._DEINTERLACER = deinterlacer
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
