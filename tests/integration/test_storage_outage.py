"""Cloud Storage unavailable for a few seconds in the middle of a job (docs/faults.md).

gcp-storage-emulator keeps its objects on disk here (not in memory), so it can be stopped
and started again on the same port with its buckets intact, as a real outage would look to
the client: connections refused, then the same service back. The job writes every output
to the emulator; a real worker takes it while the emulator is down.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tasks.api import make_spec, start_job
from tests.conftest import WorkerProcess
from tests.support.annotations import standard_annotation, write_annotation
from tests.support.gcs_emulator import create_bucket, using_gcs_emulator
from tests.support.videos import write_test_video
from tests.support.waiting import wait_for
from workers.storage import GCSStorage

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DiskEmulator:
    """gcp-storage-emulator on a fixed 127.0.0.1 port, storing under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.data_dir / "emulator.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gcp_storage_emulator",
                "start",
                "--host=127.0.0.1",
                f"--port={self.port}",
                "--quiet",
            ],
            env={**os.environ, "STORAGE_BASE": str(self.data_dir)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self.answers, 30, "the emulator answering", interval=0.05)

    def answers(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "the emulator exited"
        try:
            with urllib.request.urlopen(f"{self.host}/", timeout=1) as answer:
                return answer.read() == b"OK"
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[DiskEmulator]:
    server = DiskEmulator(tmp_path)
    server.start()
    try:
        with using_gcs_emulator(server.host):
            yield server
    finally:
        server.stop()


def test_a_job_rides_out_a_storage_outage_and_leaves_only_whole_objects(
    redis_server: None, emulator: DiskEmulator, session_dirs: dict[str, Path], tmp_path: Path
) -> None:
    bucket = create_bucket(emulator.host)
    video = write_test_video(
        session_dirs["input"] / f"outage-{uuid.uuid4().hex[:6]}.mp4", frames=40
    )
    annotations = write_annotation(
        Path(f"{video}.json"), standard_annotation(str(video), 40, 10, 160, 96)
    )
    env = {
        "STORAGE_EMULATOR_HOST": emulator.host,
        "VTRACK_OUTPUT_ROOT": f"gs://{bucket}/out",
        "VTRACK_ANNOTATION_ROOT": f"gs://{bucket}/annotations",
    }
    worker = WorkerProcess(
        "annotate,render", 2, f"outage-{uuid.uuid4().hex[:6]}", tmp_path / "w.log", env
    )
    try:
        worker.wait_ready()
        emulator.stop()
        # The roots travel in the job's spec: the submitter's say where outputs go.
        spec = make_spec(str(video), annotations_uri=str(annotations)).model_copy(
            update={
                "output_root": env["VTRACK_OUTPUT_ROOT"],
                "annotation_root": env["VTRACK_ANNOTATION_ROOT"],
            }
        )
        job = start_job(spec)
        time.sleep(OUTAGE_SECONDS)
        emulator.start()
        manifest = job.wait(timeout=240)
    finally:
        worker.stop()

    assert manifest["status"] == "completed", manifest["errors"]
    storage = GCSStorage()
    stored = {item.uri: item for item in storage.list(f"gs://{bucket}")}
    expected = {
        manifest["manifest_uri"],
        manifest["summary_uri"],
        manifest["annotation_uri"],
        *(obj["cell_uri"] for obj in manifest["objects"]),
        *(obj["animation_uri"] for obj in manifest["objects"]),
    }
    assert expected <= set(stored), sorted(expected - set(stored))
    # Every object is whole: images decode to the end, JSON parses, the manifest is the job's.
    for uri in stored:
        data = storage.read_bytes(uri)
        assert len(data) == stored[uri].size
        if uri.endswith(".json"):
            json.loads(data)
        elif uri.endswith((".gif", ".jpeg", ".webp")):
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                if uri.endswith(".gif"):
                    assert image.n_frames == 12
    assert json.loads(storage.read_bytes(manifest["manifest_uri"])) == manifest
    log = worker.log()
    assert "Traceback" not in log, log[-3000:]
    assert "delivered again" not in log, "no worker died: nothing was redelivered"
