"""The compose file's services as local processes: ``vtrack cluster start|status|stop``.

:data:`SERVICE_COMMANDS` is the one list of what each service runs; ``docker-compose.yml``
runs the same commands (tests/unit/test_compose.py checks they agree). Locally the
services are: a ``redis-server`` (started when nothing answers on the port and
``redis-server`` is installed; append-only persistence in the cluster's folder), the
annotate and render workers, beat and Flower, all bound to 127.0.0.1. Each runs in its own
process group; their pids are kept in ``DIR/pids.json`` and ``stop`` ends exactly those.
Logs go to ``DIR/logs/SERVICE.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workers.errors import ConfigurationError

# What each service runs, as in docker-compose.yml (the compose file may add options after
# these: where beat keeps its schedule, the address Flower listens on).
SERVICE_COMMANDS: dict[str, tuple[str, ...]] = {
    name: tuple(command.split())
    for name, command in {
        "worker-annotate": (
            "celery -A tasks worker --queues=annotate --concurrency=2 "
            "--hostname=annotate@%h --loglevel=INFO"
        ),
        "worker-render": (
            "celery -A tasks worker --queues=render --concurrency=2 "
            "--hostname=render@%h --loglevel=INFO"
        ),
        "beat": "celery -A tasks beat --loglevel=INFO",
        "flower": "celery -A tasks flower",
    }.items()
}
# How a service's log says it is ready (Flower is asked over HTTP instead).
READY_MARKERS = {"worker-annotate": "ready.", "worker-render": "ready.", "beat": "beat: Starting"}
PID_FILE = "pids.json"
STOP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class ClusterPorts:
    redis: int = 6379
    flower: int = 5555
    broker_db: int = 0
    results_db: int = 1

    def environment(self) -> dict[str, str]:
        """The settings every service gets so they all use the cluster's Redis."""
        base = f"redis://127.0.0.1:{self.redis}"
        return {
            "VTRACK_BROKER_URL": f"{base}/{self.broker_db}",
            "VTRACK_RESULT_BACKEND": f"{base}/{self.results_db}",
        }


def local_command(service: str, run_dir: Path, ports: ClusterPorts) -> list[str]:
    """The service's compose command, run with this Python, with the local-only options."""
    base = list(SERVICE_COMMANDS[service])
    command = [sys.executable, "-m", *base]
    if service == "beat":
        command.append(f"--schedule={run_dir / 'celerybeat-schedule'}")
    if service == "flower":
        command += ["--address=127.0.0.1", f"--port={ports.flower}"]
    return command


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Cluster:
    """The local services under ``run_dir``: started, inspected and stopped by pid."""

    def __init__(self, run_dir: Path, ports: ClusterPorts | None = None) -> None:
        self.run_dir = run_dir.absolute()
        self.ports = ports or ClusterPorts()
        self.log_dir = self.run_dir / "logs"

    # --- Starting -----------------------------------------------------------------------

    def start(self, env: Mapping[str, str] | None = None, timeout: float = 90.0) -> dict[str, int]:
        """Start every service and wait until each is ready; returns the pids started."""
        if self.running():
            raise ConfigurationError(
                f"a cluster is already running from {self.run_dir} (vtrack cluster stop first)"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        environment = {**(env if env is not None else os.environ), **self.ports.environment()}
        pids: dict[str, int] = {}
        try:
            if not redis_answers(self.ports.redis):
                pids["redis"] = self._start_redis()
                self._save(pids)
            for service in SERVICE_COMMANDS:
                pids[service] = self._spawn(
                    service, local_command(service, self.run_dir, self.ports), environment
                )
                self._save(pids)
            self._wait_ready(pids, timeout)
        except BaseException:
            self.stop()
            raise
        return pids

    def _start_redis(self) -> int:
        server = shutil.which("redis-server")
        if server is None:
            raise ConfigurationError(
                f"nothing answers on 127.0.0.1:{self.ports.redis} and redis-server is not "
                "installed (install it, or start a Redis and pass its port)"
            )
        data_dir = self.run_dir / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            server, "--bind", "127.0.0.1", "--port", str(self.ports.redis),
            "--appendonly", "yes", "--save", "", "--dir", str(data_dir),
        ]  # fmt: skip
        pid = self._spawn("redis", command, dict(os.environ))
        deadline = time.monotonic() + 10
        while not redis_answers(self.ports.redis):
            if time.monotonic() > deadline:
                raise ConfigurationError(f"redis-server did not answer; see {self._log('redis')}")
            time.sleep(0.1)
        return pid

    def _spawn(self, service: str, command: Sequence[str], env: Mapping[str, str]) -> int:
        with self._log(service).open("ab") as log:
            process = subprocess.Popen(
                list(command),
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped with its children
            )
        return process.pid

    def _wait_ready(self, pids: Mapping[str, int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = {service for service in pids if service != "redis"}
        while waiting:
            for service in sorted(waiting):
                if not _alive(pids[service]):
                    raise ConfigurationError(
                        f"{service} exited while starting; see {self._log(service)}"
                    )
                if self._ready(service):
                    waiting.discard(service)
            if waiting and time.monotonic() > deadline:
                raise ConfigurationError(
                    f"not ready after {timeout:g}s: {', '.join(sorted(waiting))} "
                    f"(logs in {self.log_dir})"
                )
            time.sleep(0.2)

    def _ready(self, service: str) -> bool:
        if service == "flower":
            try:
                url = f"http://127.0.0.1:{self.ports.flower}/healthcheck"
                with urllib.request.urlopen(url, timeout=2) as response:
                    return response.status == 200
            except (urllib.error.URLError, OSError):
                return False
        log = self._log(service)
        return log.is_file() and READY_MARKERS[service] in log.read_text(errors="replace")

    # --- Inspecting and stopping ------------------------------------------------------

    def pids(self) -> dict[str, int]:
        path = self.run_dir / PID_FILE
        if not path.is_file():
            return {}
        return {name: int(pid) for name, pid in json.loads(path.read_text()).items()}

    def running(self) -> dict[str, int]:
        return {name: pid for name, pid in self.pids().items() if _alive(pid)}

    def stop(self) -> list[str]:
        """Stop the services this cluster started (by their pids), Redis last."""
        pids = self.pids()
        order = [name for name in pids if name != "redis"] + (["redis"] if "redis" in pids else [])
        stopped = []
        for name in order:
            if _stop_group(pids[name]):
                stopped.append(name)
        (self.run_dir / PID_FILE).unlink(missing_ok=True)
        return stopped

    def _save(self, pids: Mapping[str, int]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / PID_FILE).write_text(json.dumps(dict(pids), indent=2))

    def _log(self, service: str) -> Path:
        return self.log_dir / f"{service}.log"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _stop_group(pid: int) -> bool:
    """SIGTERM the process group led by ``pid`` (a warm shutdown), SIGKILL if it lingers."""
    if not _alive(pid):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while _alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    """Collect the exit status when the service is our own child (started in this process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
