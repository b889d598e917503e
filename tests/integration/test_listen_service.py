"""``vtrack listen`` against Google's Pub/Sub emulator, gcp-storage-emulator and real workers.

A video is uploaded to the storage emulator, then the notification Cloud Storage would
publish for it goes to the Pub/Sub emulator; the listener (the real ``vtrack listen``
process) starts the job and a worker makes the manifest. Messages that need nothing are
acknowledged: after the listener stops, the subscription delivers nothing again (its ack
deadline is 10 s, so an unacknowledged message would come back within the pull's wait).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import WorkerProcess
from tests.integration.conftest import FPS, FRAMES, HEIGHT, WIDTH
from tests.support.annotations import standard_annotation
from tests.support.cli import vtrack
from tests.support.cli_process import VtrackProcess
from tests.support.gcs_emulator import create_bucket, running_gcs_emulator, using_gcs_emulator
from tests.support.private_redis import PrivateRedis
from tests.support.pubsub_emulator import (
    create_topic_and_subscription,
    finalize_notification,
    find_emulator,
    publish,
    pull_now,
    running_pubsub_emulator,
    using_pubsub_emulator,
)
from tests.support.videos import write_test_video
from tests.support.waiting import stays, wait_for
from workers import naming
from workers.annotations.vi_json import dump_annotation_json
from workers.storage import ObjectStat, open_storage

pytestmark = pytest.mark.integration

ACK_DEADLINE_S = 10
LISTENING = "listening on"
JOB_TIMEOUT_S = 90.0
RETRY_PAUSE_S = (
    2.0  # entrypoints.listen.RETRY_PAUSE_SECONDS: a message not acknowledged waits so long
)


@dataclass
class Stack:
    videos: str  # the allowed bucket
    outputs: str
    env: dict[str, str]
    root: Path
    redis: PrivateRedis  # the broker and result backend: a test may stop and start it

    @property
    def output_root(self) -> str:
        return f"gs://{self.outputs}/results"

    def manifest_uri(self, video_uri: str) -> str:
        return naming.manifest_uri(self.output_root, naming.video_stem(video_uri))


@pytest.fixture(scope="module")
def pubsub_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    launcher, why = find_emulator()
    if launcher is None:
        pytest.skip(why)
    log = tmp_path_factory.mktemp("pubsub") / "emulator.log"
    with running_pubsub_emulator(launcher, log) as host, using_pubsub_emulator(host):
        yield host


@pytest.fixture(scope="module")
def stack(pubsub_host: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("listen")
    private_redis = PrivateRedis(root / "redis").start()
    try:
        with running_gcs_emulator() as gcs, using_gcs_emulator(gcs):
            videos, outputs = create_bucket(gcs), create_bucket(gcs)
            env = {
                **os.environ,
                "VTRACK_BROKER_URL": f"{private_redis.url}/0",
                "VTRACK_RESULT_BACKEND": f"{private_redis.url}/1",
                "VTRACK_OUTPUT_ROOT": f"gs://{outputs}/results",
                "VTRACK_ANNOTATION_ROOT": f"gs://{outputs}/annotations",
                "VTRACK_INPUT_ROOTS": str(root),
                "VTRACK_BACKEND": "file",
                "VTRACK_SCAN_SIDECAR_ANNOTATIONS": "true",
                "VTRACK_ALLOWED_BUCKETS": videos,
                "VTRACK_LISTEN_PREFIXES": "uploads/",
            }
            worker = WorkerProcess("annotate,render", 2, "listen-worker", root / "worker.log",
                                   env=env)  # fmt: skip
            try:
                worker.wait_ready()
                yield Stack(videos=videos, outputs=outputs, env=env, root=root, redis=private_redis)
            finally:
                worker.stop()
    finally:
        private_redis.stop()


def upload_video(stack: Stack, name: str) -> tuple[ObjectStat, ObjectStat]:
    """A short test video and its sidecar annotation (uploaded first) in the videos bucket."""
    storage = open_storage([stack.root])
    local = write_test_video(
        stack.root / f"{uuid.uuid4().hex[:8]}.mp4",
        frames=FRAMES,
        fps=FPS,
        width=WIDTH,
        height=HEIGHT,
    )
    uri = f"gs://{stack.videos}/{name}"
    annotation = standard_annotation(uri, FRAMES, FPS, WIDTH, HEIGHT)
    sidecar = storage.write_bytes(
        f"{uri}.json", dump_annotation_json(annotation).encode(), "application/json"
    )
    return storage.upload_file(local, uri, "video/mp4"), sidecar


def wait_for_manifest(stack: Stack, video_uri: str) -> dict:
    storage, manifest = open_storage([]), stack.manifest_uri(video_uri)
    wait_for(lambda: storage.exists(manifest), JOB_TIMEOUT_S, f"the manifest of {video_uri}", 0.5)
    return json.loads(storage.read_bytes(manifest))


def notify(topic: str, video: ObjectStat, **options: object) -> None:
    bucket, name = video.uri.removeprefix("gs://").split("/", 1)
    assert video.generation is not None
    data, attributes = finalize_notification(
        bucket, name, video.generation, video.size, video.content_type or "", **options
    )
    publish(topic, data, attributes)


def test_an_upload_notification_makes_one_job_and_the_rest_are_acknowledged(
    stack: Stack, tmp_path: Path
) -> None:
    topic, subscription = create_topic_and_subscription(f"uploads-{uuid.uuid4().hex[:8]}")
    listener = VtrackProcess(
        ["listen", subscription], stack.env, tmp_path / "listener.log", LISTENING
    )
    try:
        video, sidecar = upload_video(stack, "uploads/street.mp4")
        notify(topic, sidecar)  # the annotation uploaded first: not a video
        notify(topic, video)
        notify(topic, video)  # redelivered while the job is in flight
        listener.wait_for("started job")
        manifest = wait_for_manifest(stack, video.uri)
        assert manifest["status"] == "completed" and manifest["video_uri"] == video.uri

        notify(topic, video)  # a generation already processed
        notify(topic, video, payload=False)  # the same, as a NONE-payload notification
        publish(topic, b"", {"eventType": "OBJECT_FINALIZE", "bucketId": stack.videos})
        _, attributes = finalize_notification(stack.videos, "uploads/x.mp4", "1", 1, "video/mp4")
        publish(topic, b"{not json", attributes)
        notify(topic, video, event_type="OBJECT_DELETE")
        elsewhere, _ = upload_video(stack, "other/street.mp4")  # outside VTRACK_LISTEN_PREFIXES
        notify(topic, elsewhere)
        listener.wait_for("duplicate:", count=3)
        listener.wait_for("malformed:", count=2)
        listener.wait_for("ignored:", count=3)
    finally:
        code = listener.stop()
    log = listener.log()
    assert code == 0, log
    assert log.count("started job") == 1
    assert f"started job {manifest['job_id']} for {video.uri}" in log
    assert "in_flight" in log and "processed" in log
    assert "no objectId, objectGeneration, payloadFormat attribute" in log
    assert "not a video (application/json)" in log and "not under VTRACK_LISTEN_PREFIXES" in log
    assert "Traceback" not in log
    assert "stopped; messages: 3 duplicate, 3 ignored, 2 malformed, 1 started" in log
    # Everything was acknowledged: nothing comes back once the ack deadline has passed.
    assert pull_now(subscription, ACK_DEADLINE_S + 2) == []
    # A scan finds the video done: the listener's job left the same stamp scans read.
    storage = open_storage([])
    assert not storage.exists(stack.manifest_uri(elsewhere.uri))
    scan = vtrack("scan", f"gs://{stack.videos}/uploads", env=stack.env)
    assert scan.returncode == 0 and scan.stdout.split() == [], scan.stderr
    assert "1 processed" in scan.stderr


def test_a_notification_without_size_is_one_malformed_line_and_acknowledged(
    stack: Stack, tmp_path: Path
) -> None:
    """A JSON_API_V1 payload whose resource lacks ``size`` (issue 17): one warning line, the
    message acknowledged (it does not come back), no traceback, no job."""
    topic, subscription = create_topic_and_subscription(f"nosize-{uuid.uuid4().hex[:8]}")
    listener = VtrackProcess(["listen", subscription], stack.env, tmp_path / "listen.log",
                             LISTENING)  # fmt: skip
    try:
        video, _ = upload_video(stack, f"uploads/no-size-{uuid.uuid4().hex[:6]}.mp4")
        bucket, name = video.uri.removeprefix("gs://").split("/", 1)
        assert video.generation is not None
        data, attributes = finalize_notification(
            bucket, name, video.generation, video.size, "video/mp4"
        )
        resource = json.loads(data)
        del resource["size"]
        publish(topic, json.dumps(resource).encode(), attributes)
        listener.wait_for("malformed:")
        stays(  # long enough for a message not acknowledged to return
            lambda: listener.log().count("malformed:") == 1,
            RETRY_PAUSE_S + 1,
            "the malformed message acknowledged, not delivered again",
        )
    finally:
        code = listener.stop()
    log = listener.log()
    assert code == 0, log
    [line] = [line for line in log.splitlines() if "malformed:" in line]
    assert "WARNING" in line
    assert line.endswith(
        f"malformed: {video.uri}#{video.generation}: the JSON_API_V1 payload has no size"
    )
    assert "Traceback" not in log and "unexpected" not in log and "not acknowledged" not in log
    assert "started job" not in log
    assert "stopped; messages: 1 malformed" in log
    assert pull_now(subscription, ACK_DEADLINE_S + 2) == []


def test_a_message_that_meets_a_broker_down_is_delivered_again(
    stack: Stack, tmp_path: Path
) -> None:
    """Redis stops under a running listener: the notification is not acknowledged and comes
    back until Redis answers again; then the same listener starts the job, and the worker
    (which reconnects on its own) completes it."""
    topic, subscription = create_topic_and_subscription(f"outage-{uuid.uuid4().hex[:8]}")
    listener = VtrackProcess(["listen", subscription], stack.env, tmp_path / "listen.log",
                             LISTENING)  # fmt: skip
    try:
        stack.redis.stop()
        try:
            video, _ = upload_video(stack, "uploads/during-outage.mp4")
            notify(topic, video)
            listener.wait_for("not acknowledged, will be delivered again", count=2)
            assert "started job" not in listener.log()
        finally:
            stack.redis.start()  # the same port, and every key lost: a crash, not a pause
        listener.wait_for("started job", timeout=60)
        manifest = wait_for_manifest(stack, video.uri)
    finally:
        code = listener.stop()
    log = listener.log()
    assert code == 0, log
    assert manifest["status"] == "completed"
    assert f"started job {manifest['job_id']} for {video.uri}" in log
    assert "ConnectionError" in log and "Traceback" not in log
    assert log.count("started job") == 1


def test_a_subscription_that_does_not_exist_is_one_line_and_exit_code_1(stack: Stack) -> None:
    missing = f"projects/vtrack-test/subscriptions/missing-{uuid.uuid4().hex[:8]}"
    result = vtrack("listen", missing, env=stack.env)
    assert result.returncode == 1, result.stderr
    assert f"error: {missing}: " in result.stderr
    assert "Traceback" not in result.stderr
