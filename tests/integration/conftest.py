"""The service side on real Redis: a redis-server of its own, workers, and the vtrack CLI.

The pipeline tests share databases 11/12 and one worker that is always running; the scan
tests need to start and stop workers (a job "in flight" with no worker to take it, a
queue lost with Redis), so they get a Redis and workers of their own: a redis-server on a
free port, which no other test session on the machine can reach.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import WorkerProcess
from tests.support.annotations import standard_annotation, write_annotation
from tests.support.cli import vtrack
from tests.support.private_redis import PrivateRedis
from tests.support.videos import write_test_video
from workers.naming import folder_key

SERVICE_BROKER_DB, SERVICE_RESULTS_DB = 0, 1
FRAMES, FPS, WIDTH, HEIGHT = 40, 10, 160, 96


@dataclass
class Service:
    """Settings of a vtrack service under ``root``, and ways to drive it as a user would."""

    root: Path
    env: dict[str, str]
    redis: PrivateRedis

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def output(self) -> Path:
        return self.root / "output"

    def vtrack(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return vtrack(*args, env=self.env, timeout=timeout)

    def scan(self, *extra: str) -> list[str]:
        """``vtrack scan`` of the incoming folder; the job ids it printed."""
        result = self.vtrack("scan", str(self.incoming), *extra)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    def manifest_path(self, video: Path) -> Path:
        """Where the video's manifest goes: its path below the input root (the README's
        "Where the outputs go"), or its folder's key for a video outside it."""
        if video.is_relative_to(self.incoming):
            return self.output / f"{video.relative_to(self.incoming)}.manifest.json"
        return self.output / folder_key(str(video.parent)) / f"{video.name}.manifest.json"

    def flush(self) -> None:
        for db in (SERVICE_BROKER_DB, SERVICE_RESULTS_DB):
            self.redis.client(db).flushdb()


def drop_video(folder: Path, name: str | None = None, frames: int = FRAMES) -> Path:
    """A new test video with its annotations beside it as ``VIDEO.json`` (annotations first,
    as an operator dropping both would copy them)."""
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / (name or f"clip-{uuid.uuid4().hex[:8]}.mp4")
    staging = folder.parent / "staging"
    staging.mkdir(exist_ok=True)
    staged = write_test_video(
        staging / video.name, frames=frames, fps=FPS, width=WIDTH, height=HEIGHT
    )
    annotation = standard_annotation(str(video), FRAMES, FPS, WIDTH, HEIGHT)
    write_annotation(Path(f"{video}.json"), annotation)
    staged.replace(video)
    return video


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("service")
    for folder in ("incoming", "output"):
        (root / folder).mkdir()
    private_redis = PrivateRedis(root / "redis").start()
    base = private_redis.url
    env = {
        **os.environ,
        "VTRACK_BROKER_URL": f"{base}/{SERVICE_BROKER_DB}",
        "VTRACK_RESULT_BACKEND": f"{base}/{SERVICE_RESULTS_DB}",
        "VTRACK_OUTPUT_ROOT": str(root / "output"),
        "VTRACK_ANNOTATION_ROOT": str(root / "output"),
        "VTRACK_INPUT_ROOTS": str(root / "incoming"),
        "VTRACK_BACKEND": "file",
        "VTRACK_SCAN_MIN_AGE": "0",
        "VTRACK_SCAN_SIDECAR_ANNOTATIONS": "true",
        "VTRACK_POLL_INITIAL_DELAY": "0.2",
        "VTRACK_POLL_MAX_DELAY": "1",
    }
    svc = Service(root=root, env=env, redis=private_redis)
    try:
        yield svc
    finally:
        private_redis.stop()


class ServiceWorker(WorkerProcess):
    """A real ``celery worker`` (prefork, 2 processes) with the service's settings."""

    def __init__(self, service: Service, queues: str = "annotate,render") -> None:
        name = f"svc-{uuid.uuid4().hex[:6]}"
        super().__init__(queues, 2, name, service.root / f"worker-{name}.log", env=service.env)


@pytest.fixture
def start_worker(service: Service) -> Iterator[Callable[[], ServiceWorker]]:
    """Start workers inside a test (``start_worker()``); all are stopped after it."""
    started: list[ServiceWorker] = []

    def start() -> ServiceWorker:
        worker = ServiceWorker(service)
        started.append(worker)
        return worker.wait_ready()

    yield start
    for worker in started:
        worker.stop()
