"""``vtrack vi-server`` driven by the real Video Intelligence client, as existing code would.

The server runs as its own process (``python -m entrypoints.cli vi-server``), jobs run on a real
Celery worker with the local backend, on a redis-server of the module's own, with
gcp-storage-emulator for ``gs://``. The client is Google's
``VideoIntelligenceServiceClient``, changed only in where it connects.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as api_exceptions
from google.cloud import videointelligence_v1 as vi
from google.cloud.videointelligence_v1.services.video_intelligence_service.transports import (
    VideoIntelligenceServiceGrpcTransport,
)

from tests.conftest import REPO_ROOT, SESSION_DIR, SHARED_VIDEOS, TEST_ENV, WorkerProcess
from tests.support.cli import vtrack
from tests.support.gcs_emulator import create_bucket, running_gcs_emulator, using_gcs_emulator
from tests.support.private_redis import PrivateRedis
from tests.support.videos import write_test_video
from tests.support.waiting import wait_for
from workers.annotations.vi_json import parse_annotation_json
from workers.storage import open_storage

pytestmark = pytest.mark.integration

OPERATION_TIMEOUT_S = 400.0
OBJECT_TRACKING = vi.Feature.OBJECT_TRACKING


@dataclass
class ViServer:
    process: subprocess.Popen[str]
    endpoint: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_vi_server(env: dict[str, str], log_path: Path) -> ViServer:
    """``vtrack vi-server --port 0``; the endpoint is read from its first line."""
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "vi-server", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if "listening on" not in first:
        process.kill()
        raise RuntimeError(f"vi-server did not start: {first!r}\n{log_path.read_text()}")
    endpoint = first.split("listening on ", 1)[1].split()[0]
    return ViServer(process=process, endpoint=endpoint, log_path=log_path)


@dataclass
class Stack:
    env: dict[str, str]
    emulator: str
    videos: str
    outputs: str
    server: ViServer
    logs: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("vi-server")
    redis_server = PrivateRedis(logs / "redis").start()
    worker: WorkerProcess | None = None
    server: ViServer | None = None
    try:
        with running_gcs_emulator() as emulator, using_gcs_emulator(emulator):
            videos, outputs = create_bucket(emulator), create_bucket(emulator)
            env = {
                **os.environ,
                **TEST_ENV,
                "VTRACK_BROKER_URL": f"{redis_server.url}/0",
                "VTRACK_RESULT_BACKEND": f"{redis_server.url}/1",
                "VTRACK_OUTPUT_ROOT": f"gs://{outputs}/results",
                "VTRACK_ANNOTATION_ROOT": f"gs://{outputs}/annotations",
                "STORAGE_EMULATOR_HOST": emulator,
            }
            worker = WorkerProcess("annotate,render", 2, "vi-worker", logs / "worker.log", env=env)
            worker.wait_ready()
            server = start_vi_server(env, logs / "vi-server.log")
            yield Stack(env, emulator, videos, outputs, server, logs)
    finally:
        if server is not None:
            server.stop()
        if worker is not None:
            worker.stop()
        redis_server.stop()


def plain_client(endpoint: str) -> vi.VideoIntelligenceServiceClient:
    """The client over a plain channel to 127.0.0.1 (a TLS test below uses the API key path)."""
    channel = grpc.insecure_channel(endpoint)
    return vi.VideoIntelligenceServiceClient(
        transport=VideoIntelligenceServiceGrpcTransport(channel=channel)
    )


def progress_of(operation: object) -> int:
    return operation.metadata.annotation_progress[0].progress_percent  # type: ignore[attr-defined]


@pytest.mark.shared_data
def test_annotate_video_finds_the_person_and_the_dog_and_writes_output_uri(stack: Stack) -> None:
    dog = SHARED_VIDEOS / "sam2_01_dog.mp4"
    if not dog.is_file():
        pytest.skip(f"{dog} not found (../shared/data is absent)")
    storage = open_storage([])
    video_uri = f"gs://{stack.videos}/phone/{uuid.uuid4().hex[:6]}/sam2_01_dog.mp4"
    storage.upload_file(dog, video_uri, "video/mp4")
    output_uri = f"gs://{stack.outputs}/api-output/dog.json"
    client = plain_client(stack.server.endpoint)

    operation = client.annotate_video(
        request={"features": [OBJECT_TRACKING], "input_uri": video_uri, "output_uri": output_uri}
    )
    assert operation.operation.name.startswith("projects/vtrack/locations/")

    seen: list[int] = []
    wait_for(  # the progress of each check while running (append returns None: not done)
        lambda: operation.done() or seen.append(progress_of(operation)),
        OPERATION_TIMEOUT_S,
        lambda: f"the operation ending; seen progress {seen}",
        interval=0.3,
    )
    seen.append(progress_of(operation))
    assert seen == sorted(seen), f"progress went back: {seen}"
    assert seen[-1] == 100
    assert any(0 < percent < 100 for percent in seen), f"no progress while running: {seen}"

    response = operation.result(timeout=10)
    # With an output_uri the API names the video in the response and puts results in the file.
    assert response.annotation_results[0].input_uri == video_uri.removeprefix("gs:/")
    written = json.loads(storage.read_bytes(output_uri))
    assert "annotation_results" in written  # the API's file form: proto field names
    from_file = vi.AnnotateVideoResponse(written)
    objects = from_file.annotation_results[0].object_annotations
    labels = sorted({obj.entity.description for obj in objects if obj.confidence >= 0.3})
    assert labels == ["dog", "person"], labels
    for obj in objects:
        assert obj.frames, obj.entity.description
        assert isinstance(obj.frames[0].time_offset, datetime.timedelta)
        # As the batch API writes it: the segment (one oneof with the streaming-only
        # track_id) runs from the object's first frame to its last.
        assert vi.ObjectTrackingAnnotation.pb(obj).WhichOneof("track_info") == "segment"
        times = [frame.time_offset for frame in obj.frames]
        assert obj.segment.start_time_offset == min(times), obj.entity.description
        assert obj.segment.end_time_offset == max(times), obj.entity.description
    # vtrack's own reader reads the same file back (scripts that fed it to vtrack keep working)
    ours = parse_annotation_json(storage.read_bytes(output_uri), output_uri)
    assert len(ours.objects) == len(objects)


def annotate_test_video(stack: Stack, frames: int) -> tuple[Path, Any, Any]:
    """A test pattern video of ``frames`` at 10 fps sent for OBJECT_TRACKING, without an
    output_uri: the video, the client, the operation."""
    video = write_test_video(
        SESSION_DIR / "input" / f"vi-{uuid.uuid4().hex[:6]}.mp4",
        frames=frames,
        fps=10,
        width=160,
        height=96,
    )
    client = plain_client(stack.server.endpoint)
    operation = client.annotate_video(
        request={"features": [OBJECT_TRACKING], "input_uri": str(video)}
    )
    return video, client, operation


def test_results_are_in_the_response_without_output_uri(stack: Stack) -> None:
    video, client, operation = annotate_test_video(stack, frames=20)
    response = operation.result(timeout=OPERATION_TIMEOUT_S)
    result = response.annotation_results[0]
    assert result.input_uri == str(video)
    # A plain test pattern has no real object: an answer with none, not an error.
    assert list(result.object_annotations) == []
    listed = client.transport.operations_client.list_operations(
        "projects/vtrack/locations/global/operations", ""
    )
    assert operation.operation.name in [op.name for op in listed]


def test_unsupported_feature_fails_at_once_naming_what_is_supported(stack: Stack) -> None:
    client = plain_client(stack.server.endpoint)
    started = time.monotonic()
    with pytest.raises(api_exceptions.InvalidArgument) as refused:
        client.annotate_video(
            request={
                "features": [vi.Feature.LABEL_DETECTION],
                "input_uri": f"gs://{stack.videos}/any.mp4",
            },
            timeout=10,
        )
    assert time.monotonic() - started < 5
    assert "LABEL_DETECTION" in str(refused.value)
    assert "OBJECT_TRACKING" in str(refused.value)
    with pytest.raises(api_exceptions.InvalidArgument, match="no feature"):
        client.annotate_video(request={"input_uri": f"gs://{stack.videos}/any.mp4"}, timeout=10)


def test_a_file_that_is_not_a_video_ends_the_operation_with_an_error(stack: Stack) -> None:
    fake = SESSION_DIR / "input" / f"notes-{uuid.uuid4().hex[:6]}.mp4"
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text("these are meeting notes, not a video\n" * 50)
    client = plain_client(stack.server.endpoint)
    operation = client.annotate_video(
        request={"features": [OBJECT_TRACKING], "input_uri": str(fake)}
    )
    with pytest.raises(api_exceptions.GoogleAPICallError) as failed:
        operation.result(timeout=OPERATION_TIMEOUT_S)
    assert failed.value.grpc_status_code == grpc.StatusCode.INVALID_ARGUMENT
    assert fake.name in str(failed.value)
    assert "Traceback" not in stack.server.log()


def test_cancel_ends_the_operation_and_the_job_behind_it(stack: Stack) -> None:
    # Five minutes of video: still tracking when the cancel arrives, even on an idle machine.
    _, _, operation = annotate_test_video(stack, frames=3000)
    # Until the job is tracking (there are tasks to stop); done() refreshes the operation.
    wait_for(lambda: operation.done() or progress_of(operation) != 0, 60, "progress", 0.2)
    assert not operation.done(), "the operation ended before it could be cancelled"
    operation.cancel()
    assert operation.cancelled()
    with pytest.raises(api_exceptions.GoogleAPICallError) as ended:
        operation.result(timeout=30)
    assert ended.value.grpc_status_code == grpc.StatusCode.CANCELLED
    job_id = operation.operation.name.rsplit("/", 1)[-1]
    status = vtrack("status", job_id, "--json", env=stack.env, timeout=60)
    assert status.returncode == 1, status.stderr  # cancelled: as vtrack wait exits
    assert json.loads(status.stdout)["status"] == "cancelled"
    # Cancelling an operation that is over is accepted and changes nothing, as the API does.
    operation.cancel()
    assert operation.cancelled()
    assert "Traceback" not in stack.server.log()


def test_a_missing_input_is_refused_at_once(stack: Stack) -> None:
    client = plain_client(stack.server.endpoint)
    with pytest.raises(api_exceptions.InvalidArgument, match="no-such-video"):
        client.annotate_video(
            request={
                "features": [OBJECT_TRACKING],
                "input_uri": str(SESSION_DIR / "input" / "no-such-video.mp4"),
            },
            timeout=10,
        )


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vtrack test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# The seed's way of calling the API, with the one changed line: client_options.
CLIENT_SCRIPT = textwrap.dedent(
    """
    import sys
    from google.api_core import exceptions
    from google.cloud import videointelligence

    endpoint, key, video = sys.argv[1:4]
    client = videointelligence.VideoIntelligenceServiceClient(
        client_options={"api_endpoint": endpoint, "api_key": key}
    )
    try:
        client.annotate_video(
            request={"features": [videointelligence.Feature.LABEL_DETECTION], "input_uri": video},
            timeout=20,
        )
    except exceptions.GoogleAPICallError as error:
        print(type(error).__name__, error.message)
    """
)


def test_api_key_over_tls(stack: Stack, tmp_path: Path) -> None:
    cert, key = _self_signed_certificate(tmp_path)
    env = {
        **stack.env,
        "VTRACK_VI_SERVER_API_KEY": "right-key",
        "VTRACK_VI_SERVER_TLS_CERT": str(cert),
        "VTRACK_VI_SERVER_TLS_KEY": str(key),
    }
    server = start_vi_server(env, tmp_path / "tls-server.log")
    try:
        client_env = {**stack.env, "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(cert)}

        def call_with(api_key: str) -> str:
            result = subprocess.run(
                [sys.executable, "-c", CLIENT_SCRIPT, server.endpoint, api_key, "gs://b/v.mp4"],
                env=client_env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, result.stderr
            return result.stdout.strip()

        assert call_with("wrong-key").startswith("Unauthenticated")
        # The right key gets through to the request's own check.
        accepted = call_with("right-key")
        assert accepted.startswith("InvalidArgument"), accepted
        assert "OBJECT_TRACKING" in accepted
        assert "right-key" not in server.log()
    finally:
        server.stop()


def test_refuses_to_serve_beyond_loopback_without_a_key(stack: Stack) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "vi-server", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO_ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "VTRACK_VI_SERVER_API_KEY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
