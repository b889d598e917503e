"""Annotation reading benchmark: the hand-written reader before issue 8 vs the current one.

Both read the same ~3 MB files made by :mod:`tests.support.api_output` (a seeded
generator of outputs shaped like the Video Intelligence API's), in the two forms the API
hands out: the snake_case file it writes to ``output_uri`` (``{seconds, nanos}``
durations) and camelCase proto3 JSON (``"1.5s"`` durations). The files are clean (every
box inside the frame), since the reader before refused boxes outside it; the current
reader also reads the real-shaped file with boxes past the frame, for scale.

* ``before``: ``workers/annotations/vi_json.py`` as of commit ``--before`` (the 600-line
  hand-written reader), loaded from git history into a module of its own;
* ``after``: :func:`workers.annotations.vi_json.parse_annotation_json` (the client
  library's messages built from a descriptor-driven walk, converted in one place).

Runs alternate (before, after, before, after...) so both see the same machine load; the
best and median CPU time of ``--runs`` are printed with the load average (on a shared
machine wall time swings with the others' work; one read uses one core).

Usage (from the repository root, in a clone with history)::

    python -m bench.annotation_read_bench [--runs 7] [--before e6b9c1d]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from google.cloud import videointelligence_v1 as vi

from tests.support.api_output import api_output
from workers.annotations.vi_json import parse_annotation_json

ROOT = Path(__file__).resolve().parents[1]
BEFORE_COMMIT = "e6b9c1d"  # the last commit with the hand-written reader
CLEAN = (1.0, 0.0, 0.0, 0.0)


def load_reader_at(commit: str) -> ModuleType:
    """``workers/annotations/vi_json.py`` as it was at ``commit``, as a module of its own."""
    try:
        source = subprocess.run(
            ["git", "show", f"{commit}:workers/annotations/vi_json.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except subprocess.CalledProcessError as error:
        sys.exit(f"cannot read the reader at {commit} (a shallow clone?): {error.stderr.strip()}")
    path = Path(tempfile.mkdtemp(prefix="vtrack-bench-")) / f"vi_json_{commit}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"vi_json_{commit}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def timed(read: Callable[[], Any]) -> float:
    """CPU seconds of this process for one read: less swayed by a loaded machine than wall time.

    Each read starts after a full garbage collection, so neither pays for the other's
    leftovers (the collector's passes grow with the number of live objects).
    """
    gc.collect()
    started = time.process_time()
    read()
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--before", default=BEFORE_COMMIT, help="commit of the old reader")
    parser.add_argument("--objects", type=int, default=115, help="~3 MB in the snake form")
    args = parser.parse_args(argv)
    before = load_reader_at(args.before)
    clean = api_output(3, objects=args.objects, kind_weights=CLEAN)
    objects, frames = clean.objects, clean.frames
    files = {
        "snake_case (output_uri file)": clean.text("snake").encode(),
        "camelCase (proto3 JSON)": clean.text("camel").encode(),
    }
    real = api_output(3, objects=args.objects).text("snake").encode()
    del clean  # only the bytes stay alive while timing
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{objects} objects, {frames} frames; CPU s, best / median of {args.runs}")
    print("| form | size (MB) | before: best / median (s) | after: best / median (s) | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, data in files.items():
        old = before.parse_annotation_json(data, "bench")
        new = parse_annotation_json(data, "bench")
        assert old.objects == new.objects, "both readers must read the same annotation"
        del old, new
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.runs):
            times["before"].append(timed(lambda d=data: before.parse_annotation_json(d, "bench")))
            times["after"].append(timed(lambda d=data: parse_annotation_json(d, "bench")))
        best = {k: min(v) for k, v in times.items()}
        median = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"| {name} | {len(data) / 1e6:.2f} | {best['before']:.3f} / {median['before']:.3f} "
            f"| {best['after']:.3f} / {median['after']:.3f} "
            f"| {median['before'] / median['after']:.2f}x |"
        )
    # The client library alone, for scale: no envelope, checks, clipping or model.
    camel = files["camelCase (proto3 JSON)"]
    snake = files["snake_case (output_uri file)"]

    def from_json() -> Any:
        return vi.AnnotateVideoResponse.from_json(camel, ignore_unknown_fields=True)

    def from_mapping() -> Any:
        return vi.AnnotateVideoResponse(mapping=json.loads(snake))

    for name, read in (
        ("AnnotateVideoResponse.from_json (camelCase)", from_json),
        ("json.loads + AnnotateVideoResponse(mapping) (snake_case)", from_mapping),
    ):
        runs = sorted(timed(read) for _ in range(args.runs))
        print(f"library alone, {name}: {runs[0]:.3f} / {statistics.median(runs):.3f} s")
    after = sorted(timed(lambda: parse_annotation_json(real, "bench")) for _ in range(args.runs))
    parsed = parse_annotation_json(real, "bench")
    print(
        f"real-shaped snake_case file, {len(real) / 1e6:.2f} MB, {parsed.boxes_clipped} boxes "
        f"clipped, {parsed.boxes_dropped} frames dropped: after {after[0]:.3f} / "
        f"{statistics.median(after):.3f} s (before: refused)"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
