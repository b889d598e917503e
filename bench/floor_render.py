"""The floor: the least work that renders every object of a job, as one plain script.

One forward decode of the video (PyAV, threaded), stopping after the last frame anyone
needs; each decoded frame that some object wants is scaled to 480 px and handed to those
objects; then each object's 12-frame GIF (FASTOCTREE palette, no dither) and its cell (a
JPEG of its middle frame with its box), and a summary grid of the cells. No storage, no
tasks, no validation: what vtrack's rendering is measured against.

Usage::

    python -m bench.floor_render VIDEO ANNOTATIONS.json OUT_DIR
"""

from __future__ import annotations

import bisect
import io
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import av
from PIL import Image, ImageDraw

from workers.annotations.vi_json import read_annotation_file

WIDTH = 480
FRAMES_PER_OBJECT = 12


def spread(count: int, wanted: int) -> list[int]:
    if count <= wanted:
        return list(range(count))
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def main(video: Path, annotations: Path, out: Path) -> float:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    annotation = read_annotation_file(str(annotations))
    objects = [obj for obj in annotation.objects if obj.frames]
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        base = stream.start_time or 0
        tb = stream.time_base
        times = sorted(
            float((p.pts - base) * tb) for p in container.demux(stream) if p.pts is not None
        )
        # Which video frame each wanted annotation time lands on.
        wants: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for number, obj in enumerate(objects):
            for slot, position in enumerate(spread(len(obj.frames), FRAMES_PER_OBJECT)):
                at = obj.frames[position].time
                i = min(bisect.bisect_left(times, at), len(times) - 1)
                if i > 0 and at - times[i - 1] <= times[i] - at:
                    i -= 1
                wants[i].append((number, slot))
        last = max(wants)
        picked: dict[int, dict[int, Image.Image]] = defaultdict(dict)
        container.seek(0)
        for index, frame in enumerate(container.decode(stream)):
            if index in wants:
                height = round(frame.height * WIDTH / frame.width)
                image = frame.to_image().resize((WIDTH, height), Image.Resampling.BILINEAR)
                for number, slot in wants[index]:
                    picked[number][slot] = image
            if index >= last:
                break
    cells = []
    for number, obj in enumerate(objects):
        positions = spread(len(obj.frames), FRAMES_PER_OBJECT)
        frames = []
        for slot, position in enumerate(positions):
            image = picked[number][slot].copy()
            box = obj.frames[position].box
            w, h = image.size
            ImageDraw.Draw(image).rectangle(
                (box.left * w, box.top * h, box.right * w, box.bottom * h),
                outline=(255, 200, 0),
                width=3,
            )
            frames.append(image)
        palette = frames[0].quantize(256, method=Image.Quantize.FASTOCTREE)
        indexed = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
        buffer = io.BytesIO()
        indexed[0].save(
            buffer, "GIF", save_all=True, append_images=indexed[1:], duration=250, loop=0
        )
        (out / f"{number:03d}.gif").write_bytes(buffer.getvalue())
        cell = frames[len(frames) // 2]
        buffer = io.BytesIO()
        cell.save(buffer, "JPEG", quality=85)
        (out / f"{number:03d}.jpeg").write_bytes(buffer.getvalue())
        cells.append(cell)
    if cells:
        columns = math.ceil(math.sqrt(len(cells)))
        rows = math.ceil(len(cells) / columns)
        cw, ch = cells[0].size
        scale = min(1920 / (columns * cw), 1080 / (rows * ch), 1.0)
        tw, th = max(1, int(cw * scale)), max(1, int(ch * scale))
        grid = Image.new("RGB", (columns * tw, rows * th))
        for i, cell in enumerate(cells):
            grid.paste(cell.resize((tw, th)), ((i % columns) * tw, (i // columns) * th))
        grid.save(out / "summary.jpeg", quality=85)
    return time.perf_counter() - started


if __name__ == "__main__":
    seconds = main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
    print(f"{seconds:.2f}")
