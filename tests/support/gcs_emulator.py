"""A real Cloud Storage HTTP server for tests: gcp-storage-emulator on 127.0.0.1.

How the suites use it (a session fixture in ``tests/conftest.py``)::

    from tests.support.gcs_emulator import running_gcs_emulator, using_gcs_emulator

    @pytest.fixture(scope="session")
    def gcs_emulator() -> Iterator[str]:
        with running_gcs_emulator() as host, using_gcs_emulator(host):
            yield host

    def test_something(gcs_emulator: str) -> None:
        bucket = create_bucket(gcs_emulator)        # a fresh, uniquely named bucket
        storage = open_storage([])
        storage.write_bytes(f"gs://{bucket}/a.json", b"{}", "application/json")

:func:`using_gcs_emulator` sets ``STORAGE_EMULATOR_HOST`` in ``os.environ`` (so worker
processes started afterwards inherit it) and resets vtrack's cached Cloud Storage client;
both are restored on exit. The emulator keeps everything in memory and lives until the
context exits; give each test its own bucket rather than wiping it.

Emulator quirks found while writing the storage tests (gcp-storage-emulator 2026.7):
none that the storage tests need to work around. Generations are nanosecond timestamps
(they change on every overwrite), content types, ``updated``, prefix listing, multipart and
resumable uploads and 404s for missing objects and buckets all behave as in Cloud Storage.
It serves one request at a time, and it does not enforce permissions.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workers.storage import reset_gcs_client
from workers.storage.gcs import EMULATOR_HOST_VARIABLE

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
_START_ATTEMPTS = 3  # a free port can be taken by someone else before the emulator binds it


class EmulatorError(RuntimeError):
    """The emulator could not be started; the message includes the end of its log."""


@contextmanager
def running_gcs_emulator(request_log: Path | None = None) -> Iterator[str]:
    """Start gcp-storage-emulator on a free 127.0.0.1 port; yield ``http://127.0.0.1:PORT``.

    With ``request_log``, the emulator writes a line per HTTP request there (see
    :func:`count_downloads`). The process is stopped (SIGTERM, then SIGKILL) by its pid
    when the context exits.
    """
    with tempfile.TemporaryDirectory(prefix="vtrack-gcs-emulator-") as log_dir:
        log_path = request_log or Path(log_dir, "emulator.log")
        process, host = _start(log_path, quiet=request_log is None)
        try:
            yield host
        finally:
            _stop(process)


@contextmanager
def using_gcs_emulator(host: str) -> Iterator[None]:
    """Point vtrack's Cloud Storage client (and child processes) at the emulator ``host``."""
    previous = os.environ.get(EMULATOR_HOST_VARIABLE)
    os.environ[EMULATOR_HOST_VARIABLE] = host
    reset_gcs_client()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(EMULATOR_HOST_VARIABLE, None)
        else:
            os.environ[EMULATOR_HOST_VARIABLE] = previous
        reset_gcs_client()


def create_bucket(host: str, name: str | None = None) -> str:
    """Create a bucket in the emulator at ``host`` and return its name (unique if not given).

    Talks plain HTTP rather than through vtrack's client, so it works whatever
    ``STORAGE_EMULATOR_HOST`` says.
    """
    bucket = name or f"vtrack-test-{uuid.uuid4().hex[:12]}"
    request = urllib.request.Request(
        f"{host}/storage/v1/b",
        data=json.dumps({"name": bucket}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise EmulatorError(f"creating bucket {bucket!r} answered HTTP {response.status}")
    return bucket


def count_downloads(request_log: Path, bucket: str, name: str) -> int:
    """How many times the object's content was downloaded, from the emulator's request log."""
    quoted = urllib.parse.quote(name, safe="")
    marker = f"GET /download/storage/v1/b/{bucket}/o/{quoted}?"
    return sum(1 for line in request_log.read_text(errors="replace").splitlines() if marker in line)


def _start(log_path: Path, quiet: bool = True) -> tuple[subprocess.Popen[bytes], str]:
    failures: list[str] = []
    for _ in range(_START_ATTEMPTS):
        port = _free_port()
        host = f"http://127.0.0.1:{port}"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gcp_storage_emulator",
                    "start",
                    "--host=127.0.0.1",
                    f"--port={port}",
                    "--in-memory",
                    *(["--quiet"] if quiet else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if _wait_until_answering(process, host):
            return process, host
        _stop(process)
        failures.append(f"port {port}: exit code {process.returncode}")
    log_tail = log_path.read_text(errors="replace")[-2000:]
    raise EmulatorError(
        f"gcp-storage-emulator did not start ({'; '.join(failures)}); its log ends:\n{log_tail}"
    )


def _wait_until_answering(process: subprocess.Popen[bytes], host: str) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            # "/" is the emulator's health check; it answers "OK".
            with urllib.request.urlopen(f"{host}/", timeout=1) as response:
                answer = response.read()
            # Another server that took the port first would not say "OK" (or would
            # make ours exit).
            if answer == b"OK" and process.poll() is None:
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
