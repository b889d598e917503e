"""No job is left stuck, and every message says what to do (issue 8, section 2).

Each test runs its own redis-server (no persistence) on a free port: a broker that is not
there, a Redis restarted in the middle of a job. Workers are real ``celery worker``
processes; the user's side is the real ``vtrack`` command line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, WorkerProcess
from tests.support.annotations import standard_annotation, write_annotation
from tests.support.cli import vtrack
from tests.support.private_redis import PrivateRedis, free_port
from tests.support.videos import write_test_video
from tests.support.waiting import wait_for
from workers.naming import folder_key

pytestmark = pytest.mark.integration

FRAMES, FPS, WIDTH, HEIGHT = 40, 10, 160, 96


def service_env(server: PrivateRedis, root: Path, **extra: str) -> dict[str, str]:
    """A service on ``server``: scans ``root/incoming``, which is NOT in VTRACK_INPUT_ROOTS
    (a folder the operator names as a scan source is allowed by that alone)."""
    (root / "elsewhere").mkdir(exist_ok=True)
    return {
        **os.environ,
        "VTRACK_BROKER_URL": f"{server.url}/0",
        "VTRACK_RESULT_BACKEND": f"{server.url}/1",
        "VTRACK_OUTPUT_ROOT": str(root / "output"),
        "VTRACK_ANNOTATION_ROOT": str(root / "output"),
        "VTRACK_INPUT_ROOTS": str(root / "elsewhere"),
        "VTRACK_SCAN_SOURCES": str(root / "incoming"),
        "VTRACK_BACKEND": "file",
        "VTRACK_SCAN_MIN_AGE": "0",
        "VTRACK_SCAN_SIDECAR_ANNOTATIONS": "true",
        "VTRACK_POLL_INITIAL_DELAY": "0.2",
        "VTRACK_POLL_MAX_DELAY": "1",
        # Every object of the standard annotation is rendered: four renders per job.
        "VTRACK_MIN_CONFIDENCE": "0",
        "VTRACK_MIN_FRAMES": "1",
        **extra,
    }


@contextmanager
def running_redis(folder: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(folder).start()
    try:
        yield server
    finally:
        server.stop()


def drop_video(folder: Path) -> Path:
    """A test video with its annotations beside it as ``VIDEO.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    video = write_test_video(
        folder / "street cam.mp4", frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT
    )
    write_annotation(
        Path(f"{video}.json"), standard_annotation(str(video), FRAMES, FPS, WIDTH, HEIGHT)
    )
    old = time.time() - 60
    os.utime(video, (old, old))
    return video


def outputs_of(output: Path, video: Path) -> Path:
    """The folder of ``video``'s outputs: scanned from outside VTRACK_INPUT_ROOTS, it is
    named after the video's folder and its key."""
    return output / folder_key(str(video.parent))


def rendered_files(output: Path, video: Path) -> set[Path]:
    """The cells, animations and summaries of ``video`` in its output folder."""
    pattern = re.compile(rf"{re.escape(video.name)}\.(\d{{3}}_.+|summary_.+)\.(gif|webp|jpeg)")
    folder = outputs_of(output, video)
    if not folder.is_dir():
        return set()
    return {path for path in folder.iterdir() if pattern.fullmatch(path.name)}


def status_of(env: dict[str, str], job_id: str) -> str:
    shown = vtrack("status", job_id, "--json", env=env)
    return json.loads(shown.stdout)["status"] if shown.returncode == 0 else ""


def start_workers(env: dict[str, str], logs: Path, tag: str) -> list[WorkerProcess]:
    workers = [
        WorkerProcess("annotate", 1, f"{tag}-annotate", logs / f"{tag}-annotate.log", env=env),
        WorkerProcess("render", 1, f"{tag}-render", logs / f"{tag}-render.log", env=env),
    ]
    for worker in workers:
        worker.wait_ready()
    return workers


# --- No broker ---------------------------------------------------------------------------


def queued_tasks(server: PrivateRedis, queue: str) -> list[str]:
    """The names of the tasks whose messages wait in ``queue`` of the service's broker."""
    raws = server.client(0).lrange(queue, 0, -1)
    return [json.loads(raw)["headers"]["task"] for raw in raws]


def job_records(server: PrivateRedis) -> list[dict[str, str]]:
    client = server.client(1)
    return [
        {k.decode(): json.loads(v) for k, v in client.hgetall(key).items()}
        for key in client.scan_iter("vtrack:job:*")
    ]


def test_submit_with_no_broker_names_it_without_its_password_and_queues_nothing(
    tmp_path: Path,
) -> None:
    video = drop_video(tmp_path / "incoming")
    dead_port = free_port()
    with running_redis(tmp_path / "redis") as results:
        env = {
            **service_env(results, tmp_path),
            "VTRACK_INPUT_ROOTS": str(tmp_path / "incoming"),
            "VTRACK_BROKER_URL": f"redis://:hunter2@127.0.0.1:{dead_port}/0",
        }
        submitted = vtrack("submit", str(video), "--annotations", f"{video}.json", env=env)

        assert submitted.returncode == 2, submitted.stderr  # nothing ran
        lines = submitted.stderr.strip().splitlines()
        assert len(lines) == 1, submitted.stderr
        assert f"127.0.0.1:{dead_port}" in lines[0] and "VTRACK_BROKER_URL" in lines[0]
        assert "hunter2" not in submitted.stderr + submitted.stdout
        assert submitted.stdout == ""
        # The record written before the broker was tried says the job failed, not "queued".
        records = job_records(results)
        assert [(r["status"], "VTRACK_BROKER_URL" in r["error"]) for r in records] in (
            [],
            [("failed", True)],
        )

        # The Python API raises vtrack's own error, not kombu's.
        code = (
            "from tasks.api import submit\n"
            "from workers.errors import ServiceUnavailableError\n"
            "try:\n"
            f"    submit({str(video)!r}, annotations_uri={str(video) + '.json'!r})\n"
            "except ServiceUnavailableError as exc:\n"
            "    print(type(exc).__module__, type(exc).__name__, exc)\n"
        )
        api = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
        )
        assert api.stdout.startswith("workers.errors ServiceUnavailableError"), api.stderr
        assert "hunter2" not in api.stdout + api.stderr

    # Results unreachable too (Redis is down): nothing is written anywhere, one line.
    submitted = vtrack("submit", str(video), "--annotations", f"{video}.json", env=env)
    assert submitted.returncode == 2, submitted.stderr
    [line] = submitted.stderr.strip().splitlines()
    assert "VTRACK_RESULT_BACKEND" in line and "nothing was started" in line


# --- Redis restarted without persistence in the middle of a job ---------------------------


def test_a_job_lost_with_redis_is_reported_as_lost_and_the_next_scan_restarts_it(
    tmp_path: Path,
) -> None:
    incoming, output = tmp_path / "incoming", tmp_path / "output"
    video = drop_video(incoming)
    with running_redis(tmp_path / "redis") as server:
        # The first run renders WebP animations; the operator switches to GIF before the
        # rescan, so the lost job's partial files cannot be mistaken for the new job's.
        env = service_env(server, tmp_path, VTRACK_ANIMATION_FORMAT="webp")
        # No render worker yet: the job stops with its renders queued.
        annotator = WorkerProcess("annotate", 1, "first-annotate", tmp_path / "a1.log", env=env)
        workers = [annotator.wait_ready()]
        try:
            scanned = vtrack("scan", str(incoming), env=env)
            assert scanned.returncode == 0, scanned.stderr
            [job_id] = scanned.stdout.split()
            wait_for(lambda: status_of(env, job_id) == "rendering", 60, "the renders queued")
            # Every object is rendered, and the summary's task waits in the annotate queue,
            # where no worker listens now, when Redis crashes and comes back empty.
            annotator.stop()
            renderer = WorkerProcess("render", 1, "first-render", tmp_path / "r1.log", env=env)
            workers.append(renderer.wait_ready())
            wait_for(lambda: len(rendered_files(output, video)) == 8, 60, "every render")
            # The last render sends the summary's task once it has written its files: a
            # Redis restarted before that would get the message (the publish waits for it)
            # and the lost job would complete after all.
            wait_for(
                lambda: "vtrack.assemble_summary" in queued_tasks(server, "annotate"),
                60,
                "the summary's task queued",
            )
            server.restart()
            assert not (outputs_of(output, video) / f"{video.name}.manifest.json").exists()
            assert {path.suffix for path in rendered_files(output, video)} == {".webp", ".jpeg"}

            for command in (("wait", job_id, "--timeout", "30"), ("status", job_id)):
                answer = vtrack(*command, env=env)
                assert answer.returncode == 1, answer.stderr
                [line] = answer.stderr.strip().splitlines()
                assert f"job {job_id} was lost" in line
                assert "Redis was restarted without persistence or flushed" in line
                assert "submit the video again" in line and "next scan" in line
                assert "unknown id" not in line and "expired" not in line
            # An id that was never a job is told apart from a lost one.
            unknown = vtrack("status", "not-a-job", env=env)
            assert unknown.returncode == 2 and "unknown id" in unknown.stderr
        finally:
            for worker in workers:
                worker.stop(signal.SIGKILL)

        env = {**env, "VTRACK_ANIMATION_FORMAT": "gif"}
        workers = start_workers(env, tmp_path, "second")
        try:
            rescanned = vtrack("scan", str(incoming), env=env)
            assert rescanned.returncode == 0, rescanned.stderr
            [new_job] = rescanned.stdout.split()
            assert new_job != job_id
            waited = vtrack("wait", new_job, "--timeout", "90", env=env)
            assert waited.returncode == 0, waited.stderr + workers[0].log()[-3000:]
        finally:
            for worker in workers:
                worker.stop()

    manifest = json.loads((outputs_of(output, video) / f"{video.name}.manifest.json").read_text())
    assert manifest["job_id"] == new_job and len(manifest["objects"]) == 4
    listed = {Path(manifest["summary_uri"])} | {
        Path(obj[key]) for obj in manifest["objects"] for key in ("cell_uri", "animation_uri")
    }
    # The partial outputs of the lost job were removed by the job that replaced it: every
    # rendered file of the video is one its manifest lists.
    assert rendered_files(output, video) == listed
    assert "left without a manifest" in workers[0].log() + workers[1].log()
