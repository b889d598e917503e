"""The Google Cloud backend end to end: real workers, real Redis, real protocol servers.

A fake Video Intelligence server (real gRPC on 127.0.0.1, the client library's own
messages) and gcp-storage-emulator stand in for Google. Jobs go through ``celery -A tasks
worker`` processes started with ``VTRACK_BACKEND=gcp``: annotate submits the video, poll
re-queues itself until the operation is done, the fake writes the annotation JSON to the
request's ``output_uri`` in the emulator, and the render chord writes the animations, the
summary and the manifest to the output bucket.

The fake runs inside the test process so each test can script it (``set_scenario``) and
count the calls it received; the workers reach it over gRPC like any remote API. One
emulator, one fake and one worker serve the whole module; only the restart test runs its
own workers, since it kills them.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from PIL import Image

from tasks.api import Job, JobFailed, make_spec, start_job
from tasks.celery_app import app
from tests.conftest import REPO_ROOT, SHARED_VIDEOS, WorkerProcess
from tests.support.annotations import standard_annotation
from tests.support.api_output import api_output
from tests.support.fake_videointelligence import (
    INVALID_ARGUMENT,
    PERMISSION_DENIED,
    POLL_TIMEOUT,
    QUOTA_EXCEEDED,
    STREAM_REMOVED,
    UNDECODABLE_VIDEO,
    FakeVideoIntelligence,
    Scenario,
    running_fake_videointelligence,
    sample_annotation,
)
from tests.support.gcs_emulator import create_bucket, running_gcs_emulator, using_gcs_emulator
from tests.support.videos import write_test_video
from tests.support.waiting import stays, wait_for
from workers.storage import Storage, open_storage

pytestmark = pytest.mark.integration

FRAMES, FPS, WIDTH, HEIGHT = 40, 10, 160, 96
JOB_TIMEOUT_S = 90.0
INTERNAL_ERROR = (grpc.StatusCode.INTERNAL, "Internal error encountered.")


@dataclass
class GcpStack:
    """The servers of the module and the buckets the workers are configured with."""

    emulator: str
    fake: FakeVideoIntelligence
    videos: str  # the bucket in VTRACK_ALLOWED_BUCKETS
    annotations: str
    outputs: str
    logs: Path

    @property
    def output_root(self) -> str:
        return f"gs://{self.outputs}/results"

    @property
    def annotation_root(self) -> str:
        return f"gs://{self.annotations}"

    def env(self, **overrides: str) -> dict[str, str]:
        """What a worker or the CLI of this deployment is started with."""
        return {
            "VTRACK_BACKEND": "gcp",
            "VTRACK_VI_ENDPOINT": self.fake.endpoint,
            "STORAGE_EMULATOR_HOST": self.emulator,
            "VTRACK_OUTPUT_ROOT": self.output_root,
            "VTRACK_ANNOTATION_ROOT": self.annotation_root,
            "VTRACK_ALLOWED_BUCKETS": f"gs://{self.videos}",
            "VTRACK_GCP_CALL_TIMEOUT": "10",
            # The module's jobs must never wait for the real quota.
            "VTRACK_GCP_REQUESTS_PER_MINUTE": "1000",
            "VTRACK_GCP_MAX_IN_FLIGHT": "20",
            "VTRACK_POLL_INITIAL_DELAY": "0.2",
            "VTRACK_POLL_MAX_DELAY": "0.5",
            **overrides,
        }

    def start_worker(self, name: str, **overrides: str) -> WorkerProcess:
        worker = WorkerProcess(
            "annotate,render",
            2,
            f"{name}-{uuid.uuid4().hex[:6]}",
            self.logs / f"{name}-{uuid.uuid4().hex[:6]}.log",
            extra_env=self.env(**overrides),
        )
        try:
            worker.wait_ready()
        except Exception:
            worker.stop(signal.SIGKILL)
            raise
        return worker


@pytest.fixture(scope="module")
def stack(redis_server: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcpStack]:
    _refuse_foreign_workers()
    with (
        running_gcs_emulator() as emulator,
        using_gcs_emulator(emulator),
        running_fake_videointelligence() as fake,
    ):
        yield GcpStack(
            emulator=emulator,
            fake=fake,
            videos=create_bucket(emulator),
            annotations=create_bucket(emulator),
            outputs=create_bucket(emulator),
            logs=tmp_path_factory.mktemp("gcp-worker-logs"),
        )


class ModuleWorker:
    """The module's worker: started on first use, stopped by tests that run their own."""

    def __init__(self, stack: GcpStack) -> None:
        self._stack = stack
        self._worker: WorkerProcess | None = None

    def running(self) -> WorkerProcess:
        if self._worker is None or self._worker.process.poll() is not None:
            self._worker = self._stack.start_worker("gcp")
        return self._worker

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None


@pytest.fixture(scope="module")
def module_worker(stack: GcpStack) -> Iterator[ModuleWorker]:
    holder = ModuleWorker(stack)
    try:
        yield holder
    finally:
        holder.stop()


@pytest.fixture
def gcp_worker(module_worker: ModuleWorker) -> WorkerProcess:
    return module_worker.running()


@pytest.fixture
def storage(stack: GcpStack) -> Storage:
    return open_storage([])


@pytest.fixture
def clip(stack: GcpStack, storage: Storage, tmp_path: Path) -> str:
    """A fresh test video in the videos bucket; the fake will "find" its standard objects."""
    name = f"clip-{uuid.uuid4().hex[:8]}.mp4"
    video = write_test_video(tmp_path / name, frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT)
    uri = f"gs://{stack.videos}/cameras/north/{name}"
    storage.upload_file(video, uri, "video/mp4")
    stack.fake.annotation = standard_annotation(uri, FRAMES, FPS, WIDTH, HEIGHT)
    stack.fake.response_json = None
    stack.fake.set_scenario(Scenario(polls_until_done=4))
    return uri


def _refuse_foreign_workers() -> None:
    """Another worker on the same queues (e.g. the session's local one) would take our tasks."""
    replies = app.control.ping(timeout=0.5) or []
    if replies:
        names = sorted(name for reply in replies for name in reply)
        pytest.fail(
            f"workers {names} already consume the test broker; they lack the gcp settings "
            "and would take this module's tasks"
        )


def submit_gcp(stack: GcpStack, video_uri: str) -> Job:
    """Submit as ``vtrack submit`` would with this deployment's settings (Python API)."""
    spec = make_spec(video_uri, backend="gcp")
    return start_job(
        spec.model_copy(
            update={"output_root": stack.output_root, "annotation_root": stack.annotation_root}
        )
    )


def vtrack(
    stack: GcpStack, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, configured like the workers."""
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **stack.env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def watch_until_finished(job: Job, timeout: float = JOB_TIMEOUT_S) -> list[tuple[str, float]]:
    """Every distinct (stage, percent) the job record showed until it finished."""
    seen: list[tuple[str, float]] = []

    def finished() -> bool:
        record = job.status()
        if not seen or seen[-1] != (record.stage, record.percent):
            seen.append((record.stage, record.percent))
        return record.finished

    wait_for(finished, timeout, lambda: f"job {job.id} finishing; stages seen: {seen}", 0.05)
    return seen


def expected_outputs(stack: GcpStack, video_uri: str) -> dict[str, str]:
    stem = video_uri.removeprefix("gs://")
    return {
        "annotation": f"gs://{stack.annotations}/{stem}.json",
        "manifest": f"{stack.output_root}/{stem}.manifest.json",
        "summary": f"{stack.output_root}/{stem}.summary_pct70_fr10.jpeg",
        "red box": f"{stack.output_root}/{stem}.001_red_box_pct92_fr40.gif",
        "left panel": f"{stack.output_root}/{stem}.002_left_panel_pct81_fr20.gif",
    }


def assert_standard_objects(manifest: dict[str, object]) -> None:
    """The two objects of ``standard_annotation`` that pass the thresholds, read correctly."""
    objects = manifest["objects"]
    assert isinstance(objects, list)
    found = {
        o["entity"]: (o["status"], o["frame_count"], o["first_time"], o["last_time"])
        for o in objects
    }
    assert found == {
        "red box": ("ok", 40, 0.0, pytest.approx(3.9)),
        "left panel": ("ok", 20, pytest.approx(2.0), pytest.approx(3.9)),
    }
    assert manifest["objects_total"] == 4


# --- 1. vtrack submit on a running worker ---------------------------------------------


def test_vtrack_submit_produces_every_output_in_the_buckets(
    stack: GcpStack, gcp_worker: WorkerProcess, clip: str, storage: Storage, tmp_path: Path
) -> None:
    # Enough polls (about 5 s) that the operation still runs once the submitting process
    # has exited, even on a loaded machine: the test watches the progress a user would see.
    stack.fake.set_scenario(Scenario(polls_until_done=12))
    submitted = vtrack(stack, "submit", clip)
    assert submitted.returncode == 0, submitted.stderr
    job = Job(submitted.stdout.strip().splitlines()[-1])
    stages = watch_until_finished(job)

    waited = vtrack(stack, "wait", job.id, "--timeout", "60")
    assert waited.returncode == 0, waited.stderr + gcp_worker.log()[-3000:]
    outputs = expected_outputs(stack, clip)
    assert waited.stdout.strip().splitlines()[-1] == outputs["manifest"]

    # Progress came from the operation's metadata while it ran.
    polling = [percent for stage, percent in stages if stage.startswith("annotating (")]
    assert any(0 < percent < 100 for percent in polling), stages

    # The fake API wrote the annotation JSON itself, in the API's snake_case form.
    annotation_text = storage.read_bytes(outputs["annotation"]).decode()
    assert '"time_offset"' in annotation_text and '"nanos"' in annotation_text
    request = stack.fake.requests[-1]
    assert request.input_uri == clip and request.output_uri == outputs["annotation"]
    assert stack.fake.calls["AnnotateVideo"] == 1
    assert stack.fake.calls["GetOperation"] == 12

    manifest = json.loads(storage.read_bytes(outputs["manifest"]))
    assert manifest["status"] == "completed" and manifest["backend"] == "gcp"
    assert manifest["video_uri"] == clip
    assert manifest["annotation_uri"] == outputs["annotation"]
    assert manifest["summary_uri"] == outputs["summary"]
    assert_standard_objects(manifest)
    for obj in manifest["objects"]:
        assert obj["animation_uri"] == outputs[obj["entity"]]
        for kind, uri in (("animation", obj["animation_uri"]), ("cell", obj["cell_uri"])):
            assert uri.startswith(f"{stack.output_root}/")
            stat = storage.stat(uri)
            assert stat.generation is not None and obj["generations"][kind] == stat.generation
    assert storage.stat(outputs["summary"]).content_type == "image/jpeg"
    assert manifest["generations"] == {
        "summary": storage.stat(outputs["summary"]).generation,
        "annotation": storage.stat(outputs["annotation"]).generation,
    }
    assert None not in manifest["generations"].values()
    gif_path = tmp_path / "red_box.gif"
    gif_path.write_bytes(storage.read_bytes(outputs["red box"]))
    with Image.open(gif_path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 12

    status = vtrack(stack, "status", job.id, "--json")
    record = json.loads(status.stdout)
    assert record["status"] == "completed" and record["manifest_uri"] == outputs["manifest"]
    assert set(outputs.values()) - {outputs["annotation"]} <= set(record["outputs"])


# --- 2. transient errors, then success -------------------------------------------------


def test_transient_errors_on_submit_and_on_poll_are_retried_until_success(
    stack: GcpStack, gcp_worker: WorkerProcess, clip: str
) -> None:
    stack.fake.set_scenario(
        Scenario(
            polls_until_done=2,
            submit_errors=(STREAM_REMOVED, QUOTA_EXCEEDED),
            poll_errors=(POLL_TIMEOUT, INTERNAL_ERROR),
        )
    )
    manifest = submit_gcp(stack, clip).wait(timeout=JOB_TIMEOUT_S)

    assert manifest["status"] == "completed"
    assert_standard_objects(manifest)
    # Two failed submissions and one accepted: one operation, never a second one.
    assert stack.fake.calls["AnnotateVideo"] == 3
    # Two failed reads of the operation, then the two that took it to done.
    assert stack.fake.calls["GetOperation"] == 4
    log = gcp_worker.log()
    for code, message in (STREAM_REMOVED, QUOTA_EXCEEDED, POLL_TIMEOUT, INTERNAL_ERROR):
        assert f"{code.name}: {message}" in log


# --- 3. permanent errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "error", [INVALID_ARGUMENT, PERMISSION_DENIED], ids=["invalid-argument", "permission-denied"]
)
def test_a_permanent_api_error_fails_the_job_at_once_with_the_api_message(
    stack: GcpStack, gcp_worker: WorkerProcess, clip: str, error: tuple[grpc.StatusCode, str]
) -> None:
    code, message = error
    stack.fake.set_scenario(Scenario(always_submit_error=error))
    job = submit_gcp(stack, clip)
    with pytest.raises(JobFailed, match=re.escape(f"{code.name}: {message}")):
        job.wait(timeout=30)
    assert stack.fake.calls["AnnotateVideo"] == 1, "a permanent error must not be retried"
    assert stack.fake.calls["GetOperation"] == 0

    status = vtrack(stack, "status", job.id, env={"COLUMNS": "400"})
    assert status.returncode == 1, status.stderr  # a failed job (README: exit codes)
    assert "failed" in status.stdout
    assert f"submission of {clip} failed: {code.name}: {message}" in status.stdout
    waited = vtrack(stack, "wait", job.id, "--timeout", "10", env={"COLUMNS": "400"})
    assert waited.returncode == 1
    assert message in waited.stderr and "Traceback" not in waited.stderr


# --- 4. an operation that ends in error ------------------------------------------------


def test_an_operation_that_ends_in_error_fails_the_job_with_its_message(
    stack: GcpStack, gcp_worker: WorkerProcess, clip: str, storage: Storage
) -> None:
    stack.fake.set_scenario(Scenario(polls_until_done=2, operation_error=UNDECODABLE_VIDEO))
    job = submit_gcp(stack, clip)
    code, message = UNDECODABLE_VIDEO
    with pytest.raises(JobFailed, match=re.escape(f"{code.name}: {message}")) as failed:
        job.wait(timeout=JOB_TIMEOUT_S)
    assert clip in str(failed.value)
    assert stack.fake.calls["GetOperation"] == 2
    assert job.status().status == "failed"
    stem = clip.removeprefix("gs://")
    assert not list(storage.list(f"{stack.output_root}/{stem}"))


# --- 5. a worker stopped while polling ---------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_a_worker_stopped_while_polling_is_replaced_and_the_job_completes(
    stack: GcpStack,
    module_worker: ModuleWorker,
    clip: str,
    storage: Storage,
    stop_signal: signal.Signals,
) -> None:
    module_worker.stop()  # only the workers of this test may take the job
    polls = 6
    stack.fake.set_scenario(Scenario(polls_until_done=polls))
    # A killed worker never gives its reserved poll message back; Redis hands it to another
    # worker once the visibility timeout has passed, so this deployment keeps it short.
    fast_redelivery = {"VTRACK_BROKER_VISIBILITY_TIMEOUT": "3"}
    doomed = stack.start_worker("doomed", **fast_redelivery)
    try:
        job = submit_gcp(stack, clip)
        wait_for(lambda: 0 < job.status().percent < 100, 30, "the first progress report", 0.05)
    finally:
        doomed.stop(stop_signal)
    polls_before = stack.fake.calls["GetOperation"]
    assert polls_before < polls

    successor = stack.start_worker("successor", **fast_redelivery)
    try:
        manifest = job.wait(timeout=JOB_TIMEOUT_S)
    finally:
        successor.stop()
    assert manifest["status"] == "completed"
    assert_standard_objects(manifest)
    # The successor went on polling the stored operation: nothing was submitted twice.
    assert stack.fake.calls["AnnotateVideo"] == 1
    assert stack.fake.calls["GetOperation"] >= polls
    log = successor.log()
    assert "Task vtrack.poll[" in log and "Task vtrack.annotate[" not in log


# --- 5b. waits longer than the visibility timeout; transient errors between polls -------


def test_a_poll_wait_longer_than_the_visibility_timeout_never_runs_a_step_twice(
    stack: GcpStack, module_worker: ModuleWorker, clip: str
) -> None:
    module_worker.stop()
    polls = 4
    stack.fake.set_scenario(Scenario(polls_until_done=polls))
    # Polls asked to wait 6 s on a broker that hands a message held 2 s to another worker:
    # a worker holds a re-queued poll until its countdown ends, so uncapped, each wait
    # would start a second poll of the job, and the first two would both fan out renders.
    worker = stack.start_worker(
        "visibility",
        VTRACK_BROKER_VISIBILITY_TIMEOUT="2",
        VTRACK_POLL_INITIAL_DELAY="6",
        VTRACK_POLL_MAX_DELAY="6",
    )
    try:
        job = submit_gcp(stack, clip)
        manifest = job.wait(timeout=JOB_TIMEOUT_S)
        stays(  # a duplicate would surface within two more visibility timeouts
            lambda: (
                stack.fake.calls["AnnotateVideo"] == 1 and stack.fake.calls["GetOperation"] == polls
            ),
            4,
            "one AnnotateVideo and one GetOperation per poll",
        )
    finally:
        worker.stop()
    assert manifest["status"] == "completed"
    assert_standard_objects(manifest)
    assert stack.fake.calls["AnnotateVideo"] == 1
    assert stack.fake.calls["GetOperation"] == polls
    record = job.status()
    assert record.objects_done == record.objects_total == 2
    log = worker.log()
    assert len(re.findall(r"Task vtrack\.annotate\[[^\]]+\] succeeded", log)) == 1
    # The two objects render in one batch (VTRACK_RENDER_BATCH_SIZE is 8): one render task.
    assert len(re.findall(r"Task vtrack\.render_batch\[[^\]]+\] succeeded", log)) == 1
    assert len(re.findall(r"Task vtrack\.assemble_summary\[[^\]]+\] succeeded", log)) == 1


def test_transient_errors_do_not_lengthen_the_later_waits_between_polls(
    stack: GcpStack, module_worker: ModuleWorker, clip: str
) -> None:
    module_worker.stop()
    stack.fake.set_scenario(Scenario(polls_until_done=3, poll_errors=(INTERNAL_ERROR,) * 3))
    worker = stack.start_worker(
        "intervals", VTRACK_POLL_INITIAL_DELAY="1", VTRACK_POLL_MAX_DELAY="16"
    )
    try:
        manifest = submit_gcp(stack, clip).wait(timeout=JOB_TIMEOUT_S)
    finally:
        worker.stop()
    assert manifest["status"] == "completed"
    assert stack.fake.calls["GetOperation"] == 6  # three failures, three answers
    answered = stack.fake.answered_polls
    gaps = [later - earlier for earlier, later in itertools.pairwise(answered)]
    # After the first and second answers the schedule waits 1 s, then 2 s. Had the three
    # failures before them counted as polls, it would have waited 8 s, then 16 s.
    assert len(gaps) == 2 and 0.9 <= gaps[0] < 4 and 1.9 <= gaps[1] < 6, gaps


# --- 6. a bucket outside the allowlist -------------------------------------------------


def test_a_video_outside_the_allowed_buckets_is_refused_before_any_api_call(
    stack: GcpStack, gcp_worker: WorkerProcess, storage: Storage, tmp_path: Path
) -> None:
    elsewhere = create_bucket(stack.emulator)
    video = write_test_video(
        tmp_path / "clip.mp4", frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT
    )
    uri = f"gs://{elsewhere}/clip.mp4"
    storage.upload_file(video, uri, "video/mp4")
    stack.fake.set_scenario(Scenario())

    job = submit_gcp(stack, uri)
    with pytest.raises(JobFailed) as failed:
        job.wait(timeout=30)
    message = str(failed.value)
    assert f"bucket {elsewhere!r} is not in VTRACK_ALLOWED_BUCKETS ({stack.videos})" in message
    assert stack.fake.calls["AnnotateVideo"] == 0
    assert stack.fake.calls["GetOperation"] == 0


# --- 7. every JSON form the API writes -------------------------------------------------


# The second frame of the first object (0.1 s) in each form; the first frame (0 s) is
# written as an empty duration, which must read as 0.
SECOND_FRAME_TIME = {
    "snake": ("annotation_results", "object_annotations", "time_offset", {"nanos": 100_000_000}),
    "camel": ("annotationResults", "objectAnnotations", "timeOffset", {"nanos": 100_000_000}),
    "proto3": ("annotationResults", "objectAnnotations", "timeOffset", "0.100s"),
}


@pytest.mark.parametrize("style", list(SECOND_FRAME_TIME))
def test_each_json_form_of_the_api_is_read_through_the_whole_pipeline(
    stack: GcpStack, gcp_worker: WorkerProcess, clip: str, storage: Storage, style: str
) -> None:
    stack.fake.set_scenario(Scenario(polls_until_done=1, json_style=style))
    manifest = submit_gcp(stack, clip).wait(timeout=JOB_TIMEOUT_S)

    results_key, objects_key, time_key, second_time = SECOND_FRAME_TIME[style]
    written = json.loads(storage.read_bytes(expected_outputs(stack, clip)["annotation"]))
    first_object = written[results_key][0][objects_key][0]
    assert first_object["frames"][1][time_key] == second_time
    assert manifest["status"] == "completed"
    assert_standard_objects(manifest)


# --- real API output: boxes past the frame ----------------------------------------------


def test_api_output_with_boxes_outside_the_frame_is_clipped_counted_and_rendered(
    stack: GcpStack, gcp_worker: WorkerProcess, clip: str, storage: Storage
) -> None:
    """What the API wrote is read whole: boxes past every edge, wholly outside, inverted."""
    output = api_output(13, objects=30, duration=3.9)
    stack.fake.response_json = output.text("camel")  # the client library carries it as is
    stack.fake.set_scenario(Scenario(polls_until_done=2))

    job = submit_gcp(stack, clip)
    manifest = job.wait(timeout=JOB_TIMEOUT_S)

    # The file the API wrote still holds the coordinates outside the frame.
    written = storage.read_bytes(expected_outputs(stack, clip)["annotation"]).decode()
    boxes = [
        frame["normalized_bounding_box"]
        for obj in json.loads(written)["annotation_results"][0]["object_annotations"]
        for frame in obj["frames"]
    ]
    assert min(min(box.values()) for box in boxes) < -0.1
    assert max(max(box.values()) for box in boxes) > 1.1
    assert manifest["status"] == "completed"
    assert manifest["objects_total"] == 30
    assert manifest["boxes_clipped"] == output.boxes_clipped > 0
    assert manifest["boxes_dropped"] == output.boxes_dropped > 0
    line = (
        f"job {job.id}: {output.boxes_clipped} boxes clipped into the frame, "
        f"{output.boxes_dropped} empty frames dropped"
    )
    assert gcp_worker.log().count(line) == 1
    assert manifest["objects"] and all(obj["status"] == "ok" for obj in manifest["objects"])


# --- missing credentials ---------------------------------------------------------------


def test_missing_credentials_are_named_at_worker_start_and_fail_the_job(
    stack: GcpStack, module_worker: ModuleWorker, clip: str, tmp_path: Path
) -> None:
    module_worker.stop()  # only the misconfigured worker may take the job
    # Google's endpoint, and a key file that is not there: found out without any network.
    misconfigured = stack.start_worker(
        "no-credentials",
        VTRACK_VI_ENDPOINT="",
        GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "missing-key.json"),
    )
    try:
        job = submit_gcp(stack, clip)
        with pytest.raises(JobFailed, match="set GOOGLE_APPLICATION_CREDENTIALS") as failed:
            job.wait(timeout=30)
    finally:
        misconfigured.stop()
    assert "gcloud auth application-default login" in str(failed.value)
    assert "the gcp backend is not usable: no Google Cloud credentials" in misconfigured.log()
    assert stack.fake.calls["AnnotateVideo"] == 0


# --- real footage ----------------------------------------------------------------------


def test_real_footage_from_a_bucket(
    stack: GcpStack, gcp_worker: WorkerProcess, storage: Storage, tmp_path: Path
) -> None:
    source = SHARED_VIDEOS / "sam2_01_dog.mp4"
    if not source.is_file():
        pytest.skip(f"shared test video not found at {source}")
    uri = f"gs://{stack.videos}/sam2/{uuid.uuid4().hex[:8]}/dog.mp4"
    storage.upload_file(source, uri, "video/mp4")
    stack.fake.annotation = sample_annotation()  # a dog over 9 s, and a brief ball
    stack.fake.set_scenario(Scenario(polls_until_done=2))

    manifest = submit_gcp(stack, uri).wait(timeout=JOB_TIMEOUT_S)
    assert manifest["status"] == "completed"
    assert manifest["video"]["width"] == 1280 and manifest["video"]["height"] == 720
    assert [(o["entity"], o["status"]) for o in manifest["objects"]] == [("dog", "ok")]
    gif_path = tmp_path / "dog.gif"
    gif_path.write_bytes(storage.read_bytes(manifest["objects"][0]["animation_uri"]))
    with Image.open(gif_path) as gif:
        # Scaled to VTRACK_ANIMATION_MAX_WIDTH; one frame per annotated frame (fewer than 12).
        assert gif.size == (480, 270) and gif.n_frames == 10
