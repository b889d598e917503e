"""How soon a job starts after a video lands: ``vtrack watch`` and ``vtrack listen`` vs scans.

Starts its own redis-server (127.0.0.1, a free port), gcp-storage-emulator and Google's
Pub/Sub emulator, then the real ``vtrack watch`` and ``vtrack listen`` processes, and for
each run measures the time from the end of the copy (watch) or of the upload (listen) to
the job's record being created (``created_at``: the claim is taken and the job is sent
right then). No worker runs: the start of a job is what is measured, not its length.

For ``listen`` the clock starts when the upload returns and the notification is published
at once: Cloud Storage's own delay between an object's finalization and the notification
(not reproducible here) comes on top.

Usage (from the repository root)::

    python -m bench.event_latency [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from tests.support.annotations import standard_annotation
from tests.support.gcs_emulator import create_bucket, running_gcs_emulator, using_gcs_emulator
from tests.support.pubsub_emulator import (
    create_topic_and_subscription,
    finalize_notification,
    find_emulator,
    publish,
    running_pubsub_emulator,
    using_pubsub_emulator,
)
from tests.support.videos import write_test_video
from workers.annotations.vi_json import dump_annotation_json
from workers.storage import open_storage

REPO_ROOT = Path(__file__).resolve().parents[1]
FRAMES, FPS, WIDTH, HEIGHT = 40, 10, 160, 96


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def job_created_at(client: redis.Redis, video_uri: str, timeout: float = 60) -> float:
    """When the job record of ``video_uri`` was created (waits for it)."""
    from tasks.jobstore import RedisJobStore
    from tasks.keys import JOB_PREFIX

    store = RedisJobStore(client, ttl_seconds=3600)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for key in client.scan_iter(f"{JOB_PREFIX}*"):
            record = store.get(key.decode().removeprefix(JOB_PREFIX))
            if record is not None and record.video_uri == video_uri:
                return record.created_at
        time.sleep(0.05)
    raise TimeoutError(f"no job for {video_uri} after {timeout}s")


def start(command: list[str], env: dict[str, str], log: Path, ready: str) -> subprocess.Popen:
    out = log.open("wb")
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while ready not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{command[3]} did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def describe(name: str, seconds: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(seconds):.2f} s, "
        f"min {min(seconds):.2f} s, max {max(seconds):.2f} s ({len(seconds)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    launcher, why = find_emulator()
    if launcher is None:
        sys.exit(f"cannot run the listen benchmark: {why}")
    work = Path(tempfile.mkdtemp(prefix="vtrack-event-bench-"))
    port = free_port()
    redis_server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        client = redis.Redis(port=port, db=1)
        with (
            running_pubsub_emulator(launcher, work / "pubsub.log") as pubsub,
            using_pubsub_emulator(pubsub),
            running_gcs_emulator() as gcs,
            using_gcs_emulator(gcs),
        ):
            run(args.runs, work, port, client, gcs)
    finally:
        redis_server.terminate()
        redis_server.wait()
        shutil.rmtree(work, ignore_errors=True)


def run(runs: int, work: Path, port: int, client: redis.Redis, gcs: str) -> None:
    videos, outputs = create_bucket(gcs), create_bucket(gcs)
    watched = work / "watched"
    watched.mkdir()
    env = {
        **os.environ,
        "VTRACK_BROKER_URL": f"redis://127.0.0.1:{port}/0",
        "VTRACK_RESULT_BACKEND": f"redis://127.0.0.1:{port}/1",
        "VTRACK_OUTPUT_ROOT": f"gs://{outputs}/results",
        "VTRACK_ANNOTATION_ROOT": f"gs://{outputs}/annotations",
        "VTRACK_INPUT_ROOTS": str(watched),
        "VTRACK_BACKEND": "file",
        "VTRACK_SCAN_SIDECAR_ANNOTATIONS": "true",
        "VTRACK_ALLOWED_BUCKETS": videos,
    }
    topic, subscription = create_topic_and_subscription(f"bench-{uuid.uuid4().hex[:8]}")
    source = write_test_video(work / "source.mp4", frames=FRAMES, fps=FPS, width=WIDTH,
                              height=HEIGHT)  # fmt: skip
    cli = [sys.executable, "-m", "entrypoints.cli"]
    watcher = start([*cli, "watch", str(watched)], env, work / "watch.log", "watching")
    listener = start([*cli, "listen", subscription], env, work / "listen.log", "listening on")
    storage = open_storage([work])
    watch_times: list[float] = []
    listen_times: list[float] = []
    try:
        for number in range(runs):
            copied = watched / f"copy-{number}.mp4"
            annotation = standard_annotation(str(copied), FRAMES, FPS, WIDTH, HEIGHT)
            Path(f"{copied}.json").write_text(dump_annotation_json(annotation))
            shutil.copyfile(source, copied)
            copied_at = time.time()
            watch_times.append(job_created_at(client, str(copied)) - copied_at)

            uri = f"gs://{videos}/uploads/upload-{number}.mp4"
            annotation = standard_annotation(uri, FRAMES, FPS, WIDTH, HEIGHT)
            storage.write_bytes(
                f"{uri}.json", dump_annotation_json(annotation).encode(), "application/json"
            )
            uploaded = storage.upload_file(source, uri, "video/mp4")
            uploaded_at = time.time()
            assert uploaded.generation is not None
            data, attributes = finalize_notification(
                videos, uri.split("/", 3)[3], uploaded.generation, uploaded.size, "video/mp4"
            )
            publish(topic, data, attributes)
            listen_times.append(job_created_at(client, uri) - uploaded_at)
    finally:
        stop(watcher)
        stop(listener)
    # A scan of the same folder, in this process as beat's worker runs it (no start-up).
    os.environ.update(env)
    from config.settings import get_settings
    from tasks import runtime
    from tasks.scan import scan_source

    get_settings.cache_clear()
    runtime.configure(None)
    began = time.monotonic()
    report = scan_source(str(watched))
    print(f"scan_source of the watched folder: {time.monotonic() - began:.2f} s "
          f"({report.describe()})")  # fmt: skip
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    print(describe("watch, copy closed -> job started", watch_times))
    print(describe("listen, upload done -> job started", listen_times))


if __name__ == "__main__":
    main()
