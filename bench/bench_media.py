"""Inputs for the scale benchmarks: long videos made by looping a clip, and API-shaped tracks.

* :func:`loop_video` remuxes a clip (no re-encoding) end to end until it lasts the wanted
  time: a long real H.264 video without an encoder on the machine.
* :func:`api_shaped_annotation` makes N tracked objects the way the Video Intelligence API
  reports a busy video: tracks of 1 to 10 s (median 2.5 s) annotated at about 8 Hz with
  irregular gaps, spread over the whole video, boxes that drift to and along the frame's
  edges (clipped there), entity names and confidences of a real output's kind. Seeded:
  reproducible.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import av

from workers.annotations.model import (
    Entity,
    NormalizedBox,
    ObjectTrack,
    Segment,
    TrackedFrame,
    VideoAnnotation,
)

ENTITIES = (
    ("/m/01g317", "person"),
    ("/m/0k4j", "car"),
    ("/m/0bt9lr", "dog"),
    ("/m/0199g", "bicycle"),
    ("/m/01mzpv", "chair"),
    ("/m/04bcr3", "table"),
    ("/m/03bt1vf", "woman"),
    ("/m/01yrx", "cat"),
    ("/m/0h9mv", "tire"),
    ("/m/07r04", "truck"),
)


def loop_video(clip: Path, out: Path, seconds: float) -> Path:
    """``clip`` repeated (packets copied, timestamps shifted) to about ``seconds`` long.

    It ends at the first keyframe at or after ``seconds`` (a cut there decodes cleanly).
    """
    with av.open(str(clip)) as source:
        stream = source.streams.video[0]
        packets = [p for p in source.demux(stream) if p.size and p.pts is not None]
        first = min(p.pts for p in packets)
        last = max(p.pts + (p.duration or 0) for p in packets)
        span = last - first
        loops = math.ceil(seconds / float(span * stream.time_base))
        with av.open(str(out), "w") as target:
            video = target.add_stream_from_template(stream)
            for loop in range(loops):
                for packet in packets:
                    shift = loop * span - first
                    if packet.is_keyframe and (packet.pts + shift) * stream.time_base >= seconds:
                        return out
                    packet.pts += shift
                    packet.dts = None if packet.dts is None else packet.dts + shift
                    packet.stream = video
                    target.mux(packet)
                    packet.pts -= shift
                    packet.dts = None if packet.dts is None else packet.dts - shift
    return out


def api_shaped_annotation(
    video_uri: str, duration: float, count: int, seed: int = 197
) -> VideoAnnotation:
    rng = random.Random(seed)
    objects = []
    for _ in range(count):
        length = min(10.0, max(1.0, rng.lognormvariate(math.log(2.5), 0.6)))
        start = rng.uniform(0.0, max(0.0, duration - length - 0.2))
        entity_id, name = rng.choice(ENTITIES)
        width, height = rng.uniform(0.05, 0.45), rng.uniform(0.08, 0.6)
        x, y = rng.uniform(-0.1, 0.9 - width * 0.5), rng.uniform(-0.05, 0.9 - height * 0.5)
        vx, vy = rng.uniform(-0.08, 0.08), rng.uniform(-0.04, 0.04)
        frames = []
        t = start
        while t <= start + length:
            frames.append(
                TrackedFrame(
                    time=round(t, 6),
                    # Clipped to the frame: the JSON reader refuses boxes past it (issue 8).
                    box=NormalizedBox(
                        max(0.0, x), max(0.0, y), min(1.0, x + width), min(1.0, y + height)
                    ),
                )
            )
            step = 0.125 * rng.choice((1, 1, 1, 1, 2)) + rng.uniform(-0.02, 0.02)
            t += step
            x += vx * step + rng.uniform(-0.005, 0.005)
            y += vy * step + rng.uniform(-0.005, 0.005)
            # Bounce off the edges: at most a fifth of the box ever leaves the frame.
            if x < -0.2 * width or x + width > 1.0 + 0.2 * width:
                vx, x = -vx, min(max(x, -0.2 * width), 1.0 - 0.8 * width)
            if y < -0.2 * height or y + height > 1.0 + 0.2 * height:
                vy, y = -vy, min(max(y, -0.2 * height), 1.0 - 0.8 * height)
        objects.append(
            ObjectTrack(
                entity=Entity(entity_id, name),
                confidence=round(rng.uniform(0.5, 0.99), 6),
                segment=Segment(frames[0].time, frames[-1].time),
                frames=tuple(frames),
            )
        )
    return VideoAnnotation(input_uri=video_uri, objects=tuple(objects))
