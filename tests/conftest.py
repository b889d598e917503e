"""Shared fixtures: settings for the test session, real Redis, real Celery worker processes.

The environment is set here, before any test imports ``tasks``, so the test process and
the workers it starts read the same settings: broker and results in their own Redis
databases (flushed at the start), outputs under one temporary folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.celery_worker import worker_command
from tests.support.processes import stop_group
from tests.support.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the clone (as in CI); VTRACK_TEST_SHARED_DATA points elsewhere (a
# git worktree whose parent folder has no shared/).
SHARED_DATA = Path(
    os.environ.get("VTRACK_TEST_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data"
)
SHARED_VIDEOS = SHARED_DATA / "videos"
SHARED_MODELS = SHARED_DATA.parent / "models"  # ONNX detectors and re-id (read-only)

REDIS_HOST = os.environ.get("VTRACK_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("VTRACK_TEST_REDIS_PORT", "6379"))
# Two Redis databases of their own per test process; another test session running at the
# same time on this machine must pick others (VTRACK_TEST_REDIS_DBS=5,6,7,8), or its workers
# take these tasks. The list gives a pair to each test process in turn (scripts/test.sh runs
# two under pytest-xdist: gw0 11,12 and gw1 13,14).
_TEST_PROCESS = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
_TEST_DBS = [int(db) for db in os.environ.get("VTRACK_TEST_REDIS_DBS", "11,12,13,14").split(",")]
if len(_TEST_DBS) < 2 * (_TEST_PROCESS + 1):
    raise RuntimeError(
        f"VTRACK_TEST_REDIS_DBS={','.join(map(str, _TEST_DBS))} has no pair of databases for "
        f"test process {_TEST_PROCESS + 1}: give two per test process (e.g. 5,6,7,8), or run "
        "one test process (VTRACK_TEST_PROCESSES=0 bash scripts/test.sh)"
    )
BROKER_DB, RESULTS_DB = _TEST_DBS[2 * _TEST_PROCESS : 2 * _TEST_PROCESS + 2]

SESSION_DIR = Path(tempfile.mkdtemp(prefix="vtrack-tests-"))
TEST_ENV = {
    "VTRACK_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
    "VTRACK_RESULT_BACKEND": f"redis://{REDIS_HOST}:{REDIS_PORT}/{RESULTS_DB}",
    "VTRACK_OUTPUT_ROOT": str(SESSION_DIR / "output"),
    "VTRACK_ANNOTATION_ROOT": str(SESSION_DIR / "annotations"),
    "VTRACK_INPUT_ROOTS": f"{SESSION_DIR / 'input'},{SHARED_DATA}",
    # One catalog for the session (the default would be the working directory when a test's
    # outputs are in a bucket); the web tests that check the default remove it.
    "VTRACK_CATALOG_URL": f"sqlite:///{SESSION_DIR / 'catalog.sqlite3'}",
    "VTRACK_POLL_INITIAL_DELAY": "0.2",
    "VTRACK_POLL_MAX_DELAY": "1",
    # Local backend: short segments, so a few seconds of video span several workers.
    "VTRACK_SEGMENT_SECONDS": "3",
    "VTRACK_SEGMENT_OVERLAP": "1",
    "VTRACK_PROCESS_FPS": "5",
    "VTRACK_INFERENCE_THREADS": "1",
}
os.environ.update(TEST_ENV)
for folder in ("output", "annotations", "input"):
    (SESSION_DIR / folder).mkdir(parents=True, exist_ok=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def session_dirs() -> dict[str, Path]:
    return {name: SESSION_DIR / name for name in ("output", "annotations", "input")}


@pytest.fixture(scope="session")
def shared_videos() -> Path:
    if not SHARED_VIDEOS.is_dir():
        pytest.skip(f"shared test videos not found at {SHARED_VIDEOS}")
    return SHARED_VIDEOS


def _redis_answers() -> bool:
    import redis

    try:
        return bool(redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=1).ping())
    except redis.exceptions.ConnectionError:
        return False


@pytest.fixture(scope="session")
def redis_server() -> Iterator[None]:
    """The real Redis the tests use; its test databases are emptied first."""
    import redis

    if not _redis_answers():
        if os.environ.get("CI"):
            pytest.fail(f"no Redis at {REDIS_HOST}:{REDIS_PORT} (.ci/run should have started one)")
        pytest.skip(f"no Redis at {REDIS_HOST}:{REDIS_PORT}")
    for db in (BROKER_DB, RESULTS_DB):
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
    yield


class WorkerProcess:
    """A real ``celery worker`` in its own process group, stopped by its pid."""

    def __init__(
        self,
        queues: str,
        concurrency: int,
        name: str,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        """``env`` replaces the test session's environment; ``extra_env`` adds to it;
        ``extra_args`` are added to the ``celery worker`` command line."""
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = worker_command(queues, concurrency, name, *extra_args)
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**(env if env is not None else {**os.environ, **TEST_ENV}), **(extra_env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> WorkerProcess:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            return b"ready." in self.log_path.read_bytes()

        wait_for(ready, timeout, lambda: f"worker ready:\n{self.log()}", interval=0.2)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        stop_group(self.process, sig, timeout)
        self._log.close()


@pytest.fixture(scope="module")
def celery_worker(
    redis_server: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One real worker, prefork with 2 processes, consuming both queues.

    Module-scoped: a module that needs workers configured otherwise (tests of the gcp
    backend) must not find this one still taking tasks from the test broker.
    """
    log_dir = tmp_path_factory.mktemp("worker-logs")
    worker = WorkerProcess("annotate,render", 2, "test-worker", log_dir / "worker.log")
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()
