"""Many machines, no shared disk: one ``gs://`` job across three hosts made with network namespaces.

The test makes three network namespaces (``ip netns``) joined by a bridge in the first, a
veth pair each, private addresses in 10.209.0.0/24 that exist only inside them:

* ``hub`` (10.209.0.1): Redis and gcp-storage-emulator (the bucket);
* ``w1`` (10.209.0.2) and ``w2`` (10.209.0.3): a Celery worker each, with a folder of its
  own for temporary files and the video cache, and nothing else of the other's.

A worker's namespace has no route to the machine's own Redis or to the other worker: all
it can reach is the hub. The job's video, its annotations and every output are in the
bucket. The test checks that the job completes, both workers ran part of it, each
downloaded the video into its own cache, and every output is in the bucket. (The hosts
share this machine's code and virtualenv, as machines of one deployment share an image.)

Skipped, with the reason, where namespaces cannot be made (not root, no ``ip``, no bridge
support). Everything made is removed at the end: processes by pid, then the namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support.annotations import standard_annotation
from tests.support.processes import stop_group
from tests.support.videos import write_test_video
from tests.support.waiting import wait_for
from workers.annotations.vi_json import dump_annotation_json

pytestmark = pytest.mark.integration

SUBNET = "10.209.0"
HUB_ADDRESS = f"{SUBNET}.1"
REDIS_PORT, STORAGE_PORT = 6379, 9023
FRAMES, FPS, WIDTH, HEIGHT = 60, 10, 320, 180
JOB_TIMEOUT_S = 180


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@dataclass
class Hosts:
    hub: str
    workers: tuple[str, str]
    processes: list[subprocess.Popen[bytes]]

    def start(self, namespace: str, command: list[str], log: Path, env: dict[str, str]) -> None:
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["ip", "netns", "exec", namespace, *command],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)

    def run(self, namespace: str, command: list[str], env: dict[str, str]) -> str:
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, *command],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=JOB_TIMEOUT_S + 30,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


def make_namespaces(tag: str) -> Hosts:
    hub, w1, w2 = (f"vt-{tag}-{name}" for name in ("hub", "w1", "w2"))
    hosts = Hosts(hub=hub, workers=(w1, w2), processes=[])
    made: list[str] = []
    try:
        for namespace in (hub, w1, w2):
            ip("netns", "add", namespace)
            made.append(namespace)
            ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", hub, "link", "add", "br0", "type", "bridge")
        ip("-n", hub, "addr", "add", f"{HUB_ADDRESS}/24", "dev", "br0")
        ip("-n", hub, "link", "set", "br0", "up")
        for number, worker in enumerate((w1, w2), 2):
            end = f"h{number}"
            ip(
                "-n",
                hub,
                "link",
                "add",
                end,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                worker,
            )
            ip("-n", hub, "link", "set", end, "master", "br0")
            ip("-n", hub, "link", "set", end, "up")
            ip("-n", worker, "addr", "add", f"{SUBNET}.{number}/24", "dev", "eth0")
            ip("-n", worker, "link", "set", "eth0", "up")
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        remove_namespaces(made)
        detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else exc
        pytest.skip(f"cannot make network namespaces here: {detail}")
    return hosts


def remove_namespaces(namespaces: list[str]) -> None:
    for namespace in namespaces:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CAP_NET_ADMIN)")
    if shutil.which("ip") is None or shutil.which("redis-server") is None:
        pytest.skip("needs the ip command (iproute2) and redis-server")
    made = make_namespaces(uuid.uuid4().hex[:6])
    try:
        yield made
    finally:
        for process in reversed(made.processes):
            stop_group(process)
        remove_namespaces([made.hub, *made.workers])


def test_a_bucket_job_runs_across_two_worker_hosts_without_a_shared_disk(
    hosts: Hosts, tmp_path: Path
) -> None:
    bucket = f"vt-hosts-{uuid.uuid4().hex[:8]}"
    storage_host = f"http://{HUB_ADDRESS}:{STORAGE_PORT}"
    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VTRACK_", "STORAGE_EMULATOR_HOST"))
    }
    env = {
        **base_env,
        "VTRACK_BROKER_URL": f"redis://{HUB_ADDRESS}:{REDIS_PORT}/0",
        "VTRACK_RESULT_BACKEND": f"redis://{HUB_ADDRESS}:{REDIS_PORT}/1",
        "STORAGE_EMULATOR_HOST": storage_host,
        "VTRACK_OUTPUT_ROOT": f"gs://{bucket}/out",
        "VTRACK_ANNOTATION_ROOT": f"gs://{bucket}/annotations",
        "VTRACK_INPUT_ROOTS": "",
        "VTRACK_RENDER_BATCH_SIZE": "1",
        "VTRACK_POLL_INITIAL_DELAY": "0.2",
        "VTRACK_POLL_MAX_DELAY": "1",
    }
    redis_command = ["redis-server", "--bind", HUB_ADDRESS, "--port", str(REDIS_PORT)]
    redis_command += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
    hosts.start(hosts.hub, redis_command, tmp_path / "redis.log", env)
    emulator = [sys.executable, "-m", "gcp_storage_emulator", "start"]
    emulator += [f"--host={HUB_ADDRESS}", f"--port={STORAGE_PORT}", "--in-memory"]
    hosts.start(hosts.hub, emulator, tmp_path / "emulator.log", env)
    probe = (
        "import sys, urllib.request; "
        f"sys.exit(0 if urllib.request.urlopen('{storage_host}/', timeout=1).read() == b'OK' "
        "else 1)"
    )
    wait_for(
        lambda: (
            subprocess.run(
                ["ip", "netns", "exec", hosts.hub, sys.executable, "-c", probe],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        ),
        60,
        "the storage emulator",
    )

    # The video and its annotations go into the bucket from the hub.
    video = write_test_video(
        tmp_path / "clip.mp4", frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT
    )
    video_uri = f"gs://{bucket}/videos/clip.mp4"
    annotations = tmp_path / "clip.json"
    annotations.write_text(
        dump_annotation_json(standard_annotation(video_uri, FRAMES, FPS, WIDTH, HEIGHT))
    )
    upload = (
        "import sys; from tests.support.gcs_emulator import create_bucket; "
        "from workers.storage import open_storage; "
        f"create_bucket('{storage_host}', '{bucket}'); s = open_storage([]); "
        f"s.upload_file(sys.argv[1], '{video_uri}', 'video/mp4'); "
        f"s.upload_file(sys.argv[2], '{video_uri}.json', 'application/json')"
    )
    hosts.run(hosts.hub, [sys.executable, "-c", upload, str(video), str(annotations)], env)
    video.unlink()  # nothing of it left on any disk a worker could read
    annotations.unlink()

    worker_dirs = []
    for number, namespace in enumerate(hosts.workers, 1):
        own = tmp_path / f"host-{number}"
        (own / "tmp").mkdir(parents=True)
        worker_dirs.append(own)
        worker_env = {
            **env,
            "TMPDIR": str(own / "tmp"),
            "VTRACK_VIDEO_CACHE_DIR": str(own / "video-cache"),
        }
        command = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=prefork"]
        command += ["--concurrency=1", "--queues=annotate,render", f"--hostname=host{number}@%h"]
        command += ["--loglevel=INFO", "--without-gossip", "--without-mingle"]
        hosts.start(namespace, command, own / "worker.log", worker_env)
    for own in worker_dirs:
        wait_for(lambda own=own: b"ready." in (own / "worker.log").read_bytes(), 120, "a worker")

    # Submitted from the hub, the way an operator's machine would.
    submitted = hosts.run(
        hosts.hub,
        [
            sys.executable,
            "-m",
            "entrypoints.cli",
            "submit",
            video_uri,
            "--annotations",
            f"{video_uri}.json",
            "--min-confidence",
            "0.2",
            "--min-frames",
            "2",
        ],
        env,
    )
    job_id = submitted.split()[-1]
    waited = hosts.run(
        hosts.hub,
        [sys.executable, "-m", "entrypoints.cli", "wait", job_id, "--timeout", str(JOB_TIMEOUT_S)],
        env,
    )
    manifest_uri = waited.split()[-1]
    assert manifest_uri == f"gs://{bucket}/out/{bucket}/videos/clip.mp4.manifest.json"

    read_manifest = (
        "import sys; from workers.storage import open_storage; "
        "sys.stdout.write(open_storage([]).read_bytes(sys.argv[1]).decode())"
    )
    manifest = json.loads(
        hosts.run(hosts.hub, [sys.executable, "-c", read_manifest, manifest_uri], env)
    )
    assert manifest["status"] == "completed"
    assert len(manifest["objects"]) == 4
    outputs = [manifest["summary_uri"], *(o["animation_uri"] for o in manifest["objects"])]
    assert all(uri.startswith(f"gs://{bucket}/out/") for uri in outputs)

    worked = []
    for own in worker_dirs:
        log = (own / "worker.log").read_text(errors="replace")
        worked.append(log.count("succeeded in"))
        if "vtrack.render_batch[" in log:
            # A host that rendered read the video from its own cache, filled from the bucket.
            assert list((own / "video-cache").glob("*.mp4")), f"{own.name}: no cached video"
    assert all(count > 0 for count in worked), f"tasks per host: {worked}"
