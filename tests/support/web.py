"""The web app as users run it: ``vtrack web`` in its own process, workers, PostgreSQL.

:class:`WebApp` starts ``python -m entrypoints.cli web`` on a free loopback port and stops it by
its pid. :func:`postgres_database` creates a uniquely named database on the PostgreSQL
that runs on this machine (``VTRACK_TEST_PG_URL``, default the ``postgres`` superuser on
127.0.0.1:5432) and drops it afterwards. :func:`running_stack` is a worker and the app
with one set of settings, as an operator runs them; :func:`make_clip` a real video with its
annotation JSON beside it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import (
    BROKER_DB,
    REDIS_HOST,
    REDIS_PORT,
    REPO_ROOT,
    RESULTS_DB,
    SHARED_DATA,
    TEST_ENV,
    WorkerProcess,
)
from tests.support.annotations import track, write_annotation
from tests.support.processes import stop_group
from tests.support.videos import write_test_video
from tests.support.waiting import wait_for
from workers.annotations.model import VideoAnnotation

PG_SERVER_URL = os.environ.get(
    "VTRACK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# Test databases are named PREFIX + random hex, so parallel sessions never share one.
PG_DATABASE_PREFIX = os.environ.get("VTRACK_TEST_PG_PREFIX", "vtrack_test_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebApp:
    """``vtrack web`` on 127.0.0.1:PORT with ``env``; ``restart()`` keeps the port."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.env = env
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> WebApp:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "web", "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"vtrack web exited early:\n{self.log()}")
            try:
                httpx.get(self.url + "/openapi.json", timeout=2, auth=self.auth)
                return True
            except httpx.TransportError:
                return False

        wait_for(answers, timeout, lambda: f"vtrack web answering:\n{self.log()}", 0.2)
        return self

    @property
    def auth(self) -> tuple[str, str] | None:
        user, _, password = self.env.get("VTRACK_WEB_AUTH", "").partition(":")
        return (user, password) if user else None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, timeout=20)
        self.process = None

    def restart(self) -> WebApp:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def postgres_answers() -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_SERVER_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database; yields its SQLAlchemy URL and drops it afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{PG_DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


FPS, WIDTH, HEIGHT = 10, 160, 96
FINISHED = {"completed", "completed_with_errors", "failed", "cancelled"}


@dataclass
class Stack:
    """A worker and ``vtrack web`` sharing settings; ``kind`` is the catalog's database."""

    kind: str
    root: Path
    env: dict[str, str]
    catalog_url: str
    worker: WorkerProcess
    web: WebApp

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def incoming(self) -> Path:
        return self.root / "input"

    def client(self) -> httpx.Client:
        return self.web.client()

    def vtrack(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start_worker(self, env: dict[str, str] | None = None) -> WorkerProcess:
        name = f"web-{uuid.uuid4().hex[:6]}"
        worker = WorkerProcess(
            "annotate,render", 2, name, self.root / f"{name}.log", env=env or self.env
        )
        return worker.wait_ready()


@contextmanager
def running_stack(kind: str, root: Path) -> Iterator[Stack]:
    """A stack under ``root`` with its catalog on ``kind`` (sqlite: the default file)."""
    from workers.catalog import default_catalog_url

    for folder in ("input", "output"):
        (root / folder).mkdir(exist_ok=True)
    env = {
        **os.environ,
        **TEST_ENV,
        "VTRACK_OUTPUT_ROOT": str(root / "output"),
        "VTRACK_ANNOTATION_ROOT": str(root / "output"),
        "VTRACK_INPUT_ROOTS": f"{root / 'input'},{SHARED_DATA}",
    }
    env.pop("VTRACK_CATALOG_URL", None)
    env.pop("VTRACK_WEB_AUTH", None)
    with _catalog_database(kind) as url:
        catalog_url = url or default_catalog_url(str(root / "output"))
        if url:
            env["VTRACK_CATALOG_URL"] = url
        worker = WorkerProcess("annotate,render", 2, "web-stack", root / "worker.log", env=env)
        web = WebApp(env, root / "web.log")
        stack = Stack(kind, root, env, catalog_url, worker, web)
        try:
            worker.wait_ready()
            web.start()
            yield stack
        finally:
            stack.web.stop()
            stack.worker.stop()  # the one running now: a test may have replaced it


@contextmanager
def _catalog_database(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    if not postgres_answers():
        pytest.skip("no PostgreSQL answers at VTRACK_TEST_PG_URL (127.0.0.1:5432 by default)")
    with postgres_database() as url:
        yield url


def flush_redis() -> None:
    """Empty the test session's broker and results databases: every job record is gone."""
    for db in (BROKER_DB, RESULTS_DB):
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()


def make_clip(
    folder: Path,
    labels: dict[str, tuple[float, range]],
    frames: int = 40,
    name: str | None = None,
) -> Path:
    """A real test video and its annotation JSON beside it: label -> (confidence, frames).

    The first label follows the video's moving box; the others are static boxes. ``name``:
    the video's file name (a new unique one by default).
    """
    folder.mkdir(parents=True, exist_ok=True)
    video = write_test_video(
        folder / (name or f"clip-{uuid.uuid4().hex[:8]}.mp4"),
        frames=frames,
        fps=FPS,
        width=WIDTH,
        height=HEIGHT,
    )
    static = (0.1, 0.3, 0.4, 0.8)
    annotation = VideoAnnotation(
        input_uri=str(video),
        objects=tuple(
            track(label, confidence, span, FPS, WIDTH, HEIGHT, static=static if n else None)
            for n, (label, (confidence, span)) in enumerate(labels.items())
        ),
    )
    write_annotation(Path(f"{video}.json"), annotation)
    return video


def submit(client: httpx.Client, video: Path, **extra: Any) -> str:
    """POST /api/jobs for ``video`` (with its annotation JSON unless told otherwise)."""
    body: dict[str, Any] = {"video_uri": str(video), **extra}
    body.setdefault("annotations_uri", f"{video}.json")
    if body["annotations_uri"] is None:
        del body["annotations_uri"]
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def wait_finished(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] in FINISHED else None

    return wait_for(finished, timeout, f"job {job_id} finished", interval=0.3)
