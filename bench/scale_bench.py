"""Scale benchmarks (issue 9): cost that grows with the video, not with videos x objects.

Every case runs real processes side by side in one run, alternating the compared sides, and
prints a Markdown table (with the load average before and after) for docs/benchmarks.md:

* ``floor``: ``vtrack run --annotations`` with 197 API-shaped objects on a ~254 s 720p video
  (the dog clip looped) vs :mod:`bench.floor_render` (goal: within 1.25x).
* ``seed``: ``vtrack run`` (whole process) on the dog clip with its 12 benchmark objects vs
  the seed's seek-per-frame renderer (:mod:`bench.seed_renderer`) (goal: 20x faster).
* ``workers``: the 197-object job through the service (own Redis, a real worker) with 1
  then 2 worker processes (goal: 2 at least 1.7x faster).
* ``cores``: ``vtrack run`` local tracking of a 60 s video (the first minute of the shared
  people-walking clip), ``--processes 1`` vs 2 on both cores, and the default (one process
  per usable core) on one core (``taskset -c 0``) vs on both (goal: 1.7x).
* ``overhead``: local-backend jobs through the service (worker with 2 processes) on a 10 s
  (the dog clip) and a 66 s video (the dog clip looped, cut at a keyframe): the job's
  wall time (submission to manifest, the manifest's ``total_seconds``) minus the time
  some task of the job was running, from the worker's task start/end times
  (:mod:`bench.task_timing`) (goal: under 5%).
* ``startup``: ``vtrack --help``, ``vtrack status`` (unknown id, own Redis), ``vtrack submit``
  (own Redis; the job is left queued): CPU time (user + system) and wall time, median of 5
  (goal: under 0.4 s). On a loaded machine the wall time is mostly waiting for a core.

Usage (from the repository root)::

    python -m bench.scale_bench [--work /tmp/vtrack-bench] [--cases floor,seed,...] [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.celery_worker import worker_command

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VTRACK_SHARED_DATA", REPO.parent / "shared" / "data"))
DOG = SHARED / "videos" / "sam2_01_dog.mp4"
# People walking, 768x432, 10 fps, a keyframe every second: cuts at exactly 60 s.
PEOPLE = SHARED / "videos" / "intel_one-by-one-person-detection.mp4"
CASES = ("floor", "seed", "workers", "cores", "overhead", "startup")
ALL_OBJECTS = ("--min-confidence", "0", "--min-frames", "1")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``command``; its CPU seconds (user + system) go to :func:`cpu_of`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    shown = " ".join(part for part in command if part not in (sys.executable, "-m"))[:90]
    print(f"  {shown}: {seconds:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)
    LAST_CPU.append(cpu)
    return seconds


LAST_CPU: list[float] = []


def vtrack(*args: str) -> list[str]:
    return [sys.executable, "-m", "entrypoints.cli", *args]


# --- inputs -------------------------------------------------------------------------------


def prepare(work: Path) -> dict[str, Path]:
    from bench.bench_media import api_shaped_annotation, loop_video
    from bench.make_bench_annotations import bench_annotation
    from workers.annotations.vi_json import dump_annotation_json
    from workers.media.video import probe_video

    work.mkdir(parents=True, exist_ok=True)
    files = {
        "long": work / "long254.mp4",
        "long_json": work / "long254.json",
        "v60": work / "v60.mp4",
        "people60": work / "people60.mp4",
        "v10": work / "v10.mp4",
        "dog": work / "dog.mp4",
        "dog_json": work / "dog12.json",
    }
    if not files["long"].exists():
        loop_video(DOG, files["long"], 254)
    if not files["long_json"].exists():
        info = probe_video(files["long"])
        annotation = api_shaped_annotation(str(files["long"]), info.duration, 197)
        files["long_json"].write_text(dump_annotation_json(annotation))
    if not files["v60"].exists():
        loop_video(DOG, files["v60"], 60)
    if not files["people60"].exists():
        loop_video(PEOPLE, files["people60"], 60)
    for name in ("v10", "dog"):
        if not files[name].exists():
            files[name].write_bytes(DOG.read_bytes())
    if not files["dog_json"].exists():
        files["dog_json"].write_text(dump_annotation_json(bench_annotation(files["dog"])))
    return files


# --- a service of our own: Redis and workers on free ports, stopped by pid -----------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def own_redis() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def service_env(redis_url: str, work: Path, out: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "VTRACK_BROKER_URL": f"{redis_url}/0",
        "VTRACK_RESULT_BACKEND": f"{redis_url}/1",
        "VTRACK_INPUT_ROOTS": str(work),
        "VTRACK_OUTPUT_ROOT": str(out),
        "VTRACK_ANNOTATION_ROOT": str(out),
        **extra,
    }


@contextmanager
def worker(env: dict[str, str], processes: int, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            worker_command(
                "annotate,render",
                processes,
                f"bench-{uuid.uuid4().hex[:6]}",
                "--include=bench.task_timing",
            ),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while b"ready." not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)


def service_job(env: dict[str, str], *args: str) -> float:
    """Wall time of ``vtrack submit ARGS`` until ``vtrack wait`` returns."""
    started = time.perf_counter()
    submitted = subprocess.run(
        vtrack("submit", *args), cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    job_id = submitted.stdout.split()[-1]
    waited = subprocess.run(
        vtrack("wait", job_id, "--timeout", "1800"),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if waited.returncode not in (0, 3):
        raise RuntimeError(f"job {job_id} failed: {waited.stderr[-2000:]}")
    return time.perf_counter() - started


def busy_seconds(timing_file: Path) -> float:
    """Seconds during which at least one task was running (union of task intervals)."""
    spans = sorted(
        (row["start"], row["end"]) for row in map(json.loads, timing_file.read_text().splitlines())
    )
    total, current_start, current_end = 0.0, None, None
    for start, end in spans:
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


# --- the cases ----------------------------------------------------------------------------


def run_vs_reference(
    video: Path,
    notes: Path,
    out_prefix: str,
    reference: Callable[[int], list[str]],
    work: Path,
    runs: int,
) -> tuple[float, float, float, float]:
    """``vtrack run --annotations`` (every object drawn) on ``video`` with ``notes``, then
    the command ``reference(run)`` returns, ``runs`` times in turn; the medians of their
    wall and CPU seconds: ``(ours, reference, ours CPU, reference CPU)``."""
    ours, theirs, ours_cpu, theirs_cpu = [], [], [], []
    for run in range(runs):
        out = work / f"{out_prefix}-{run}"
        command = vtrack("run", str(video), "--annotations", str(notes), "--out", str(out))
        ours.append(timed([*command, *ALL_OBJECTS]))
        ours_cpu.append(LAST_CPU[-1])
        theirs.append(timed(reference(run)))
        theirs_cpu.append(LAST_CPU[-1])
    return (
        statistics.median(ours),
        statistics.median(theirs),
        statistics.median(ours_cpu),
        statistics.median(theirs_cpu),
    )


def case_floor(files: dict[str, Path], work: Path, runs: int) -> list[list[str]]:
    def floor_script(run: int) -> list[str]:
        notes, out = str(files["long_json"]), str(work / f"floor-{run}")
        return [sys.executable, "-m", "bench.floor_render", str(files["long"]), notes, out]

    o, f, oc, fc = run_vs_reference(
        files["long"], files["long_json"], "run", floor_script, work, runs
    )
    return [
        [
            "197 objects, 259 s 720p, `vtrack run` vs floor script (wall)",
            f"{o:.1f} s",
            f"{f:.1f} s",
            f"{o / f:.2f}x",
            "<= 1.25x",
        ],
        ["same, CPU time (user + system)", f"{oc:.1f} s", f"{fc:.1f} s", f"{oc / fc:.2f}x", ""],
    ]


def case_seed(files: dict[str, Path], work: Path, runs: int) -> list[list[str]]:
    seed_code = (
        "import sys; from pathlib import Path; from bench.render_bench import run_seed; "
        "from workers.annotations.vi_json import read_annotation_file; "
        "run_seed(Path(sys.argv[1]), read_annotation_file(sys.argv[2]))"
    )
    seed = [sys.executable, "-c", seed_code, str(files["dog"]), str(files["dog_json"])]
    o, s, oc, sc = run_vs_reference(
        files["dog"], files["dog_json"], "dog", lambda _run: seed, work, runs
    )
    return [
        [
            "12 objects, dog clip, whole `vtrack run` vs seed method (wall)",
            f"{o:.1f} s",
            f"{s:.1f} s",
            f"{s / o:.1f}x faster",
            ">= 20x",
        ],
        ["same, CPU time (user + system)", f"{oc:.1f} s", f"{sc:.1f} s", f"{sc / oc:.1f}x", ""],
    ]


def case_workers(files: dict[str, Path], work: Path, runs: int) -> list[list[str]]:
    times: dict[int, list[float]] = {1: [], 2: []}
    with own_redis() as redis_url:
        for run in range(runs):
            for processes in (1, 2):
                out = work / f"svc-{processes}-{run}"
                env = service_env(redis_url, work, out)
                with worker(env, processes, work / f"worker-{processes}-{run}.log"):
                    times[processes].append(
                        service_job(
                            env,
                            str(files["long"]),
                            "--annotations",
                            str(files["long_json"]),
                            *ALL_OBJECTS,
                        )
                    )
    one, two = statistics.median(times[1]), statistics.median(times[2])
    return [
        [
            "197-object job via the service: 1 vs 2 worker processes",
            f"{two:.1f} s (2)",
            f"{one:.1f} s (1)",
            f"{one / two:.2f}x",
            ">= 1.7x",
        ]
    ]


def case_cores(files: dict[str, Path], work: Path, runs: int) -> list[list[str]]:
    """``--processes 1`` vs 2 on both cores, and the default on one core (``taskset``) vs two."""
    sides = {
        "1 process": ["--processes", "1"],
        "2 processes": ["--processes", "2"],
        "one core": [],  # under taskset -c 0: the default uses the one core it may run on
        "two cores": [],
    }
    walls: dict[str, list[float]] = {side: [] for side in sides}
    tracking: dict[str, list[float]] = {side: [] for side in sides}
    for run in range(runs):
        for side, extra in sides.items():
            out = work / f"cores-{side.replace(' ', '-')}-{run}"
            command = vtrack("run", str(files["people60"]), "--out", str(out), *extra)
            if side == "one core":
                command = ["taskset", "-c", "0", *command]
            walls[side].append(timed(command))
            # Below the output root at the video's place (README: "Where the outputs go").
            manifest = json.loads(next(out.rglob("people60.mp4.manifest.json")).read_text())
            tracking[side].append(manifest["timings"]["annotate_seconds"])

    def row(
        label: str, fast: str, slow: str, values: dict[str, list[float]], goal: str
    ) -> list[str]:
        quick, slow_ = statistics.median(values[fast]), statistics.median(values[slow])
        return [label, f"{quick:.1f} s", f"{slow_:.1f} s", f"{slow_ / quick:.2f}x", goal]

    video = "60 s 768x432 (people walking)"
    return [
        row(
            f"local tracking stage of `vtrack run`, {video}: 2 vs 1 processes",
            "2 processes",
            "1 process",
            tracking,
            ">= 1.7x",
        ),
        row(
            "whole `vtrack run` (tracking + rendering), same video, 2 vs 1 processes",
            "2 processes",
            "1 process",
            walls,
            "",
        ),
        row(
            f"local tracking stage of `vtrack run` (default processes), {video}: "
            "two cores vs one (`taskset -c 0`)",
            "two cores",
            "one core",
            tracking,
            ">= 1.7x",
        ),
        row(
            "whole `vtrack run`, same video: two cores vs one",
            "two cores",
            "one core",
            walls,
            "",
        ),
    ]


def case_overhead(files: dict[str, Path], work: Path, runs: int) -> list[list[str]]:
    rows = []
    with own_redis() as redis_url:
        for name, label in (("v10", "10 s"), ("v60", "66 s")):
            walls, overheads = [], []
            for run in range(runs):
                out = work / f"overhead-{name}-{run}"
                timing = work / f"timing-{name}-{run}.jsonl"
                timing.unlink(missing_ok=True)
                env = service_env(redis_url, work, out, VTRACK_BENCH_TIMING_FILE=str(timing))
                with worker(env, 2, work / f"worker-overhead-{name}-{run}.log"):
                    service_job(env, str(files[name]), "--backend", "local")
                # The job's own wall time, from submission to the manifest written (not the
                # start-up of the vtrack commands that sent it and waited for it).
                manifest_path = next(out.rglob(f"{files[name].name}.manifest.json"))
                manifest = json.loads(manifest_path.read_text())
                wall = manifest["timings"]["total_seconds"]
                walls.append(wall)
                overheads.append(wall - busy_seconds(timing))
            wall, overhead = statistics.median(walls), statistics.median(overheads)
            rows.append(
                [
                    f"orchestration overhead, local backend, {label} video, 2 processes",
                    f"{overhead:.2f} s",
                    f"{wall:.1f} s job",
                    f"{100 * overhead / wall:.1f}%",
                    "< 5%",
                ]
            )
    return rows


def case_startup(files: dict[str, Path], work: Path, runs: int) -> list[list[str]]:
    rows = []
    with own_redis() as redis_url:
        env = service_env(redis_url, work, work / "startup-out")
        script = str(Path(sys.executable).with_name("vtrack"))
        submitted: list[str] = []
        for label, args in (
            ("`vtrack --help`", lambda: ["--help"]),
            ("`vtrack status` (unknown job)", lambda: ["status", "no-such-job"]),
            (
                "`vtrack submit` (sends the job)",
                lambda: ["submit", str(files["dog"]), "--annotations", str(files["dog_json"])],
            ),
            ("`vtrack status` (the job just sent)", lambda: ["status", submitted[-1]]),
        ):
            walls, cpus = [], []
            for _ in range(5):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                done = subprocess.run(
                    [script, *args()], cwd=REPO, env=env, capture_output=True, text=True
                )
                walls.append(time.perf_counter() - started)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
                if args()[0] == "submit" and done.returncode == 0:
                    submitted.append(done.stdout.split()[-1])
            rows.append(
                [
                    f"start-up: {label}",
                    f"{statistics.median(cpus):.2f} s CPU",
                    f"{statistics.median(walls):.2f} s wall",
                    "",
                    "< 0.4 s",
                ]
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/vtrack-bench"))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    if not DOG.is_file():
        print(f"the shared dog clip is missing: {DOG}", file=sys.stderr)
        return 2
    files = prepare(args.work)
    print(f"load average before: {load()}", flush=True)
    print("| case | vtrack | reference | ratio | goal |\n| --- | --- | --- | --- | --- |")
    for case in args.cases.split(","):
        rows = globals()[f"case_{case}"](files, args.work, args.runs)
        for row in rows:
            print("| " + " | ".join(row) + " |", flush=True)
    print(f"load average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
