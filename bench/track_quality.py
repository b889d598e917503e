"""Tracking quality before/after, as Markdown for docs/local-backend.md.

    python -m bench.track_quality [--shared ../shared/data] [--tree DIR ...]

Makes the generated ground-truth scenes (tests/support/sprite_video.py: two people crossing
and a dog that leaves and comes back; a small person running back and forth faster than
its size per processed frame; in black and white, a man who leaves and a different person
who comes in 3 s later elsewhere; a panning camera, in colour and in black and white,
a man leaving by one side, a different person coming in by the other 3 s later and a dog
along the whole time; a handheld camera shaking, two people standing close; a still
camera, a woman and a dog standing, a man who walks in and stands), tracks them and
MOT17-04 frames 1-8 with the local backend of each code tree given (``--tree``: a checkout
of vtrack; default this one), each in its own process, and scores every result
with ``workers.evaluation`` (this tree's) at IoU 0.5, class-aware, on every ground-truth
frame (tracks interpolated over gaps up to 1 s); counts the tracks whose boxes lie on two
real objects (``objects_each_track_covers``).
Also times each tracking run (wall seconds, default settings, 1 inference thread).
``--variant NAME:FIELD=VALUE,...`` (repeatable) adds, for each tree, a row per sequence
tracked with those ``LocalTrackingOptions`` fields changed (e.g.
``--variant still3:still_detect_every=3``), beside the default row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.sprite_video import (
    TruthRow,
    crossing_scene,
    fast_object_scene,
    grey_exit_entry_scene,
    objects_each_track_covers,
    panning_scene,
    shaky_scene,
    still_scene,
    write_mot_ground_truth,
    write_sprite_video,
)
from workers.annotations.model import VideoAnnotation
from workers.evaluation import evaluate_annotation, parse_class_map, read_ground_truth

TRACK_SNIPPET = """
import json, sys, time
from pathlib import Path
from workers.local.backend import LocalTrackingOptions, track_video, warm_up
# Trees before the messages became pydantic models read options with from_dict.
read = getattr(LocalTrackingOptions, "model_validate", None) or LocalTrackingOptions.from_dict
options = read({"inference_threads": 1, **json.loads(sys.argv[2])})
warm_up(options)
started = time.perf_counter()
result = track_video(Path(sys.argv[1]), options)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "annotation": result.to_dict()}))
"""


def track_in(
    tree: Path, video: Path, fields: dict[str, object] | None = None
) -> tuple[VideoAnnotation, float]:
    output = subprocess.run(
        [sys.executable, "-c", TRACK_SNIPPET, str(video), json.dumps(fields or {})],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(output.strip().splitlines()[-1])
    return VideoAnnotation.from_dict(data["annotation"]), data["seconds"]


Scene = tuple[str, Path, Path, str, float | None, list[TruthRow] | None, tuple[int, int]]


def scenes(shared: Path, folder: Path) -> list[Scene]:
    """(name, video, ground-truth folder, class map, fps override, true boxes, frame size)
    of every sequence."""
    made = []
    videos = shared / "videos"
    for name, scene, duration in (
        ("crossing", (*crossing_scene(videos), None), 8.0),
        ("fast runner", (*fast_object_scene(videos), None), 6.0),
        ("grey exit and entry", grey_exit_entry_scene(videos), 10.0),
        ("panning", panning_scene(videos, grey=False), 10.0),
        ("panning, black and white", panning_scene(videos), 10.0),
        ("handheld shake", shaky_scene(videos), 10.0),
        ("still, one walks in", still_scene(videos), 10.0),
    ):
        background, sprites, camera = scene
        video = folder / f"{name.replace(' ', '_').replace(',', '')}.mp4"
        truth = write_sprite_video(
            video, background, sprites, fps=30, duration=duration, camera=camera
        )
        classes = {sprite.class_name: 0 for sprite in sprites}
        numbers = {label: number for number, label in enumerate(sorted(classes), start=1)}
        width, height = camera.size if camera else (background.shape[1], background.shape[0])
        gt = write_mot_ground_truth(
            truth,
            folder / name.replace(" ", "_").replace(",", ""),
            name=name,
            fps=30,
            size=(width, height),
            frame_count=round(duration * 30),
            classes=numbers,
        )
        class_map = ",".join(f"{number}={label}" for label, number in numbers.items())
        made.append((name, video, gt, class_map, None, truth, (width, height)))
    mot = shared / "mot" / "MOT17-04_frames1-8"
    made.append(("MOT17-04 frames 1-8", mot / "video_frames1-8.mp4", mot, "", 3.0, None, (0, 0)))
    return made


def _pairs(text: str) -> list[tuple[str, str]]:
    return [
        (k.strip(), v.strip())
        for k, _, v in (part.partition("=") for part in text.split(",") if part)
    ]


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--tree", type=Path, action="append", default=None)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:FIELD=VALUE,...")
    arguments = parser.parse_args()
    trees = arguments.tree or [Path.cwd()]
    variants: list[tuple[str, dict[str, object]]] = [("", {})]
    for text in arguments.variant:
        name, _, assignments = text.partition(":")
        variants.append((name, {k: _value(v) for k, v in _pairs(assignments)}))
    print(f"load average before {os.getloadavg()[0]:.2f}\n")
    print(
        "| sequence | code | objects (real) | tracks on 2+ real objects | MOTA | IDF1 | HOTA "
        "| ID switches | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        made = scenes(arguments.shared.resolve(), Path(folder))
        for name, video, gt_folder, class_map, fps, rows, size in made:
            truth = read_ground_truth(
                gt_folder,
                class_names=parse_class_map(class_map) if class_map else None,
                frame_rate=fps,
            )
            for tree, (variant, fields) in ((t, v) for t in trees for v in variants):
                annotation, seconds = track_in(tree.resolve(), video, fields)
                figures = evaluate_annotation(annotation, truth).metrics
                real = len(set(truth.ids[truth.flags != 0])) if class_map else "-"
                joined = (
                    sum(
                        len(objects) > 1
                        for objects in objects_each_track_covers(annotation, rows, size).values()
                    )
                    if rows
                    else "-"
                )
                print(
                    f"| {name} | {tree.resolve().name}{f' {variant}' if variant else ''} "
                    f"| {len(annotation.objects)} ({real}) "
                    f"| {joined} "
                    f"| {figures['MOTA']:.3f} | {figures['IDF1']:.3f} | {figures['HOTA']:.3f} "
                    f"| {figures['IDSW']:.0f} | {seconds:.2f} |"
                )
    print(f"\nload average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
