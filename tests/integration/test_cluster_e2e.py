"""The local cluster from the README: a video dropped into a scanned folder is processed."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from entrypoints.cluster import Cluster, _alive
from tests.conftest import REPO_ROOT
from tests.integration.conftest import drop_video
from tests.support.cli import vtrack
from tests.support.private_redis import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

AUTH = "operator:s3cret"


def flower_tasks(port: int) -> dict[str, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/tasks")
    request.add_header("Authorization", "Basic " + base64.b64encode(AUTH.encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_broker_the_cluster_cannot_start_is_refused_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "VTRACK_BROKER_URL": f"redis://:pw@127.0.0.2:{port}/0"}
    started = vtrack("cluster", "start", "--dir", str(tmp_path / "cluster"), env=env)
    assert started.returncode != 0
    [line] = started.stderr.strip().splitlines()
    assert f"127.0.0.2:{port}" in line and "VTRACK_BROKER_URL" in line and "pw@" not in line
    assert Cluster(tmp_path / "cluster").running() == {}


def test_a_dropped_video_is_processed_by_the_cluster(tmp_path: Path) -> None:
    incoming, output, run_dir = tmp_path / "incoming", tmp_path / "output", tmp_path / "cluster"
    incoming.mkdir()
    redis_port, flower_port = free_port(), free_port()
    env = {
        **os.environ,
        "VTRACK_SCAN_SOURCES": str(incoming),
        "VTRACK_SCAN_SCHEDULE": "1",
        "VTRACK_SCAN_MIN_AGE": "0.5",
        "VTRACK_SCAN_SIDECAR_ANNOTATIONS": "true",
        "VTRACK_BACKEND": "file",
        "VTRACK_INPUT_ROOTS": str(incoming),
        "VTRACK_OUTPUT_ROOT": str(output),
        "VTRACK_ANNOTATION_ROOT": str(output),
        "VTRACK_POLL_INITIAL_DELAY": "0.2",
        "FLOWER_BASIC_AUTH": AUTH,
        # The shell's broker and result backend: nothing answers there yet, so the
        # cluster starts its Redis on that port, and a vtrack submit from here reaches it.
        "VTRACK_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "VTRACK_RESULT_BACKEND": f"redis://127.0.0.1:{redis_port}/1",
    }
    start = [
        sys.executable, "-m", "entrypoints.cli", "cluster", "start", "--dir", str(run_dir),
        "--flower-port", str(flower_port),
    ]  # fmt: skip
    cluster = Cluster(run_dir)
    try:
        started = subprocess.run(
            start, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert started.returncode == 0, started.stderr
        assert set(cluster.running()) == {
            "redis", "worker-annotate", "worker-render", "beat", "flower",
        }  # fmt: skip

        video = drop_video(incoming)  # nobody submits it
        manifest_path = output / f"{video.name}.manifest.json"
        wait_for(
            manifest_path.is_file, 90, lambda: (run_dir / "logs" / "beat.log").read_text(), 0.5
        )
        manifest = json.loads(manifest_path.read_text())
        assert manifest["status"] == "completed" and len(manifest["objects"]) == 2
        job_id = manifest["job_id"]

        def of_job(tasks: list[dict]) -> set[tuple[str, str]]:
            return {
                (task["name"], task["state"])
                for task in tasks
                if task["uuid"] == job_id or job_id in f"{task.get('args')}{task.get('kwargs')}"
            }

        expected = {  # each task as itself, under its own id
            ("vtrack.annotate", "SUCCESS"),
            ("vtrack.poll", "SUCCESS"),
            ("vtrack.render_batch", "SUCCESS"),
            ("vtrack.assemble_summary", "SUCCESS"),
        }
        # The last task events reach Flower a moment after the manifest is written.
        with contextlib.suppress(TimeoutError):
            wait_for(
                lambda: of_job(list(flower_tasks(flower_port).values())) == expected,
                30,
                "the job's last task events in Flower",
            )
        tasks = list(flower_tasks(flower_port).values())
        assert of_job(tasks) == expected
        scans = [t for t in tasks if t["name"] == "vtrack.scan_source"]
        assert any(job_id in str(t["result"]) for t in scans), "the job came from a beat scan"
        renders = [t for t in tasks if t["name"] == "vtrack.render_batch"]
        assert {t["worker"] for t in renders} == {next(iter(renders))["worker"]}
        assert next(iter(renders))["worker"].startswith("render@")

        # Submitted from the same shell, a job reaches the cluster's workers.
        submitted = vtrack("submit", str(video), "--annotations", f"{video}.json", env=env)
        assert submitted.returncode == 0, submitted.stderr
        waited = vtrack("wait", submitted.stdout.split()[-1], "--timeout", "60", env=env)
        assert waited.returncode == 0, waited.stderr
    finally:
        pids = cluster.pids()
        stopped = subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", "cluster", "stop", "--dir", str(run_dir)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert stopped.returncode == 0, stopped.stderr
    assert pids and not any(_alive(pid) for pid in pids.values())
