"""Google's Pub/Sub emulator on 127.0.0.1 for tests, and Cloud Storage notifications to send it.

The emulator (``cloud-pubsub-emulator``, Java) ships with the Google Cloud CLI, under the
SDK root's ``platform/pubsub-emulator/bin`` (``gcloud info`` shows the root; Debian's
package is ``google-cloud-cli-pubsub-emulator``). ``VTRACK_PUBSUB_EMULATOR`` names the
launcher when it lives elsewhere. :func:`find_emulator` says why it cannot be used, so
tests skip with that reason.

Clients find it through ``PUBSUB_EMULATOR_HOST``. gcp-storage-emulator does not publish
notifications, so tests upload an object to it and then publish what Cloud Storage would:
:func:`finalize_notification` builds the attributes and the ``JSON_API_V1`` payload with
the shape of real notifications (strings for numbers, RFC 3339 times, crc32c, etag...).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tests.support.waiting import wait_for

EMULATOR_HOST_VARIABLE = "PUBSUB_EMULATOR_HOST"
LAUNCHER_VARIABLE = "VTRACK_PUBSUB_EMULATOR"
SDK_ROOTS = (Path("/usr/lib/google-cloud-sdk"), Path("/usr/share/google-cloud-sdk"))
LAUNCHER = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
STARTUP_TIMEOUT_S = 60.0
PROJECT = "vtrack-test"


def find_emulator() -> tuple[Path | None, str]:
    """The emulator's launcher, or None and why it cannot run here."""
    if shutil.which("java") is None:
        return None, "no java on PATH (the Pub/Sub emulator is a Java program)"
    candidates: list[Path] = []
    if os.environ.get(LAUNCHER_VARIABLE):
        candidates.append(Path(os.environ[LAUNCHER_VARIABLE]))
    candidates += [root / LAUNCHER for root in SDK_ROOTS]
    on_path = shutil.which("cloud-pubsub-emulator")
    if on_path:
        candidates.append(Path(on_path))
    root = _gcloud_sdk_root()
    if root is not None:
        candidates.append(root / LAUNCHER)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate, ""
    return None, (
        "the Pub/Sub emulator is not installed (apt-get install "
        "google-cloud-cli-pubsub-emulator, or set VTRACK_PUBSUB_EMULATOR to its launcher)"
    )


def _gcloud_sdk_root() -> Path | None:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    try:
        result = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    root = result.stdout.strip()
    return Path(root) if result.returncode == 0 and root else None


@contextmanager
def running_pubsub_emulator(launcher: Path, log_path: Path) -> Iterator[str]:
    """Start the emulator on a free 127.0.0.1 port; yield ``127.0.0.1:PORT``; stop it by pid."""
    port = _free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(launcher), "--host=127.0.0.1", f"--port={port}", f"--projects={PROJECT}"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    host = f"127.0.0.1:{port}"
    try:
        _wait_until_listening(process, port, log_path)
        yield host
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def using_pubsub_emulator(host: str) -> Iterator[None]:
    """Point Pub/Sub clients (this process's and child processes') at the emulator."""
    previous = os.environ.get(EMULATOR_HOST_VARIABLE)
    os.environ[EMULATOR_HOST_VARIABLE] = host
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(EMULATOR_HOST_VARIABLE, None)
        else:
            os.environ[EMULATOR_HOST_VARIABLE] = previous


def create_topic_and_subscription(name: str, ack_deadline_seconds: int = 10) -> tuple[str, str]:
    """A topic and a pull subscription on it in the emulator; their full names."""
    from google.cloud import pubsub_v1

    topic = f"projects/{PROJECT}/topics/{name}"
    subscription = f"projects/{PROJECT}/subscriptions/{name}"
    with pubsub_v1.PublisherClient() as publisher:  # type: ignore[attr-defined]
        publisher.create_topic(name=topic)
    with pubsub_v1.SubscriberClient() as subscriber:
        subscriber.create_subscription(
            name=subscription, topic=topic, ack_deadline_seconds=ack_deadline_seconds
        )
    return topic, subscription


def publish(topic: str, data: bytes, attributes: dict[str, str]) -> str:
    """Publish one message and wait for its id."""
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    return str(publisher.publish(topic, data, **attributes).result(timeout=30))


def pull_now(subscription: str, wait_seconds: float) -> list[dict[str, str]]:
    """Messages the subscription delivers within ``wait_seconds`` (acknowledged, so each
    is seen once); the attributes of each."""
    from google.cloud import pubsub_v1

    seen: list[dict[str, str]] = []
    deadline = time.monotonic() + wait_seconds
    with pubsub_v1.SubscriberClient() as subscriber:
        while time.monotonic() < deadline:
            response = subscriber.pull(
                subscription=subscription, max_messages=10, return_immediately=True, timeout=10
            )
            if response.received_messages:
                seen += [dict(m.message.attributes) for m in response.received_messages]
                subscriber.acknowledge(
                    subscription=subscription,
                    ack_ids=[m.ack_id for m in response.received_messages],
                )
            time.sleep(0.5)
    return seen


def finalize_notification(
    bucket: str,
    name: str,
    generation: str,
    size: int,
    content_type: str,
    *,
    payload: bool = True,
    event_type: str = "OBJECT_FINALIZE",
) -> tuple[bytes, dict[str, str]]:
    """The data and attributes Cloud Storage publishes for an upload (or ``event_type``)."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    attributes = {
        "notificationConfig": f"projects/_/buckets/{bucket}/notificationConfigs/1",
        "eventType": event_type,
        "payloadFormat": "JSON_API_V1" if payload else "NONE",
        "bucketId": bucket,
        "objectId": name,
        "objectGeneration": generation,
        "eventTime": now,
    }
    if not payload:
        return b"", attributes
    resource = {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{generation}",
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{bucket}/o/{name}",
        "name": name,
        "bucket": bucket,
        "generation": generation,
        "metageneration": "1",
        "contentType": content_type,
        "timeCreated": now,
        "updated": now,
        "storageClass": "STANDARD",
        "timeStorageClassUpdated": now,
        "size": str(size),
        "md5Hash": base64.b64encode(os.urandom(16)).decode(),
        "mediaLink": f"https://storage.googleapis.com/download/storage/v1/b/{bucket}/o/{name}"
        f"?generation={generation}&alt=media",
        "crc32c": base64.b64encode(os.urandom(4)).decode(),
        "etag": base64.b64encode(os.urandom(6)).decode(),
    }
    return json.dumps(resource, indent=2).encode(), attributes


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the Pub/Sub emulator exited:\n{log_path.read_text()[-2000:]}")
        if b"Server started" not in log_path.read_bytes():
            return False
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_for(
        listening,
        STARTUP_TIMEOUT_S,
        lambda: f"the Pub/Sub emulator starting:\n{log_path.read_text()[-2000:]}",
        0.2,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
