"""Flower against real workers: basic auth, metrics, progress, and the HTTP trigger."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import Service, ServiceWorker, drop_video
from tests.support.private_redis import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

USER, PASSWORD = "operator", "s3cret"


class Flower:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def request(
        self, path: str, body: dict[str, Any] | None = None, auth: bool = True
    ) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method="POST" if data else "GET"
        )
        request.add_header("Content-Type", "application/json")
        if auth:
            token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except urllib.error.URLError:
            return 0, b""  # not listening (yet)

    def json(self, path: str, body: dict[str, Any] | None = None) -> Any:
        status, content = self.request(path, body)
        assert status == 200, content
        return json.loads(content)

    def task_result(self, task_id: str, timeout: float = 60) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            result = self.json(f"/api/task/result/{task_id}")
            return result if result["state"] in ("SUCCESS", "FAILURE") else None

        return wait_for(ended, timeout, f"task {task_id} to end", interval=0.3)


@pytest.fixture(scope="module")
def worker(service: Service) -> Iterator[ServiceWorker]:
    started = ServiceWorker(service)
    try:
        yield started.wait_ready()
    finally:
        started.stop()


@pytest.fixture(scope="module")
def flower(service: Service, worker: ServiceWorker) -> Iterator[Flower]:
    port = free_port()
    log = (service.root / "flower.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tasks",
            "flower",
            "--address=127.0.0.1",
            f"--port={port}",
        ],
        cwd=REPO_ROOT,
        env={**service.env, "FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = Flower(port)
    try:

        def answering() -> bool:
            assert process.poll() is None, (service.root / "flower.log").read_text()
            return client.request("/healthcheck", auth=False)[0] == 200

        wait_for(answering, 30, "Flower to start")
        yield client
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_the_api_needs_basic_auth_but_metrics_and_health_stay_open(flower: Flower) -> None:
    assert flower.request("/api/tasks", auth=False)[0] == 401
    assert flower.request("/api/task/async-apply/vtrack.submit_video", {}, auth=False)[0] == 401
    assert flower.request("/api/tasks")[0] == 200
    status, metrics = flower.request("/metrics", auth=False)
    assert status == 200 and b"flower_events_total" in metrics
    assert flower.request("/healthcheck", auth=False) == (200, b"OK")


def test_curl_through_flower_starts_a_whole_job(service: Service, flower: Flower) -> None:
    video = drop_video(service.incoming / "http")
    sent = flower.json(
        "/api/task/async-apply/vtrack.submit_video",
        {"kwargs": {"video_uri": str(video), "annotations_uri": f"{video}.json"}},
    )
    result = flower.task_result(sent["task-id"])
    assert result["state"] == "SUCCESS", result
    job_id = result["result"]["job_id"]
    assert result["result"]["reused"] is False

    waited = service.vtrack("wait", job_id, "--timeout", "90")
    assert waited.returncode == 0, waited.stderr
    manifest = json.loads(Path(waited.stdout.split()[-1]).read_text())
    assert manifest["job_id"] == job_id

    def of_job() -> dict[str, str]:
        return {
            task["name"]: task["state"]
            for task in flower.json("/api/tasks").values()
            if task["uuid"] == job_id or job_id in f"{task.get('args')}{task.get('kwargs')}"
        }

    expected = {  # each task as itself, under its own id
        "vtrack.annotate": "SUCCESS",
        "vtrack.poll": "SUCCESS",
        "vtrack.render_batch": "SUCCESS",
        "vtrack.assemble_summary": "SUCCESS",
    }
    # The last task events reach Flower a moment after the manifest is written.
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: of_job() == expected, 30, "the job's last task events in Flower")
    assert of_job() == expected
    # The tasks reported their job's stage as a custom PROGRESS state, seen by Flower.
    _status, metrics = flower.request("/metrics", auth=False)
    progress = re.findall(
        r'flower_events_total\{task="([^"]+)",type="task-progress"', metrics.decode()
    )
    assert {"vtrack.annotate", "vtrack.render_batch", "vtrack.assemble_summary"} <= set(progress)


def test_bad_input_fails_the_trigger_task_with_one_line(flower: Flower) -> None:
    sent = flower.json(
        "/api/task/async-apply/vtrack.submit_video", {"kwargs": {"video_uri": "ftp://x/y.mp4"}}
    )
    result = flower.task_result(sent["task-id"])
    assert result["state"] == "FAILURE"
    assert "unsupported URI scheme 'ftp'" in str(result["result"])
