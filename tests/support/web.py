"""The web app as users run it: ``vtrack web`` in its own process, and PostgreSQL databases.

:class:`WebApp` starts ``python -m tasks.cli web`` on a free loopback port and stops it by
its pid. :func:`postgres_database` creates a uniquely named database on the PostgreSQL
that runs on this machine (``VTRACK_TEST_PG_URL``, default the ``postgres`` superuser on
127.0.0.1:5432) and drops it afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import REPO_ROOT

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
            [sys.executable, "-m", "tasks.cli", "web", "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vtrack web exited early:\n{self.log()}")
            try:
                httpx.get(self.url + "/openapi.json", timeout=2, auth=self.auth)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"vtrack web not answering after {timeout}s:\n{self.log()}")

    @property
    def auth(self) -> tuple[str, str] | None:
        user, _, password = self.env.get("VTRACK_WEB_AUTH", "").partition(":")
        return (user, password) if user else None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
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


def wait_for(
    check: Callable[[], Any], timeout: float, interval: float = 0.3, what: str = "condition"
) -> Any:
    """Call ``check`` until it returns something truthy; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached after {timeout}s")
        time.sleep(interval)
