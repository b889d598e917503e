"""The compose file's services as local processes: ``vtrack cluster start|status|stop``.

:data:`SERVICE_COMMANDS` is the one list of what each service runs; ``docker-compose.yml``
runs the same commands (tests/unit/test_compose.py checks they agree). docs/operations.md
("The local cluster") says which services run, which Redis they use, where pids and logs
go, and why ``celery multi`` is not used. Each service runs in its own process group;
``stop`` ends exactly those.
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
from urllib.parse import urlparse

from kombu.utils.url import maybe_sanitize_url

from config.settings import Settings
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


LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class ClusterPorts:
    """Where the cluster's services meet: its Redis (broker and results) and Flower's port.

    With ``broker_url`` and ``result_backend`` empty, the Redis is 127.0.0.1:``redis``
    (databases ``broker_db`` and ``results_db``); :func:`cluster_ports` takes them from
    ``VTRACK_BROKER_URL`` and ``VTRACK_RESULT_BACKEND`` instead.
    """

    redis: int = 6379
    flower: int = 5555
    broker_db: int = 0
    results_db: int = 1
    broker_url: str = ""
    result_backend: str = ""

    def urls(self) -> dict[str, str]:
        """The broker's and the result backend's URLs, by the setting that holds each."""
        base = f"redis://127.0.0.1:{self.redis}"
        return {
            "VTRACK_BROKER_URL": self.broker_url or f"{base}/{self.broker_db}",
            "VTRACK_RESULT_BACKEND": self.result_backend or f"{base}/{self.results_db}",
        }

    def describe(self, settings: Settings) -> list[str]:
        """Where the cluster's Redis is; a note where ``settings`` (this shell's) differ."""
        shell = {
            "VTRACK_BROKER_URL": settings.broker_url,
            "VTRACK_RESULT_BACKEND": settings.result_backend,
        }
        lines = []
        for setting, url in self.urls().items():
            line = f"{setting}={maybe_sanitize_url(url)}"
            if shell[setting] != url:
                line += "  (not this shell's: export it before vtrack submit)"
            lines.append(line)
        return lines


def cluster_ports(settings: Settings, redis_port: int | None, flower_port: int) -> ClusterPorts:
    """``--redis-port`` when given, else the settings' broker and result backend (a local
    Redis is started on the broker's port when nothing answers there)."""
    if redis_port is not None:
        return ClusterPorts(redis=redis_port, flower=flower_port)
    return ClusterPorts(
        redis=urlparse(settings.broker_url).port or 6379,
        flower=flower_port,
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
    )


def local_command(service: str, run_dir: Path, ports: ClusterPorts) -> list[str]:
    """The service's compose command, run with this Python, with the local-only options."""
    command = [sys.executable, "-m", *SERVICE_COMMANDS[service]]
    if service == "beat":
        command.append(f"--schedule={run_dir / 'celerybeat-schedule'}")
    if service == "flower":
        command += ["--address=127.0.0.1", f"--port={ports.flower}"]
    return command


def redis_answers(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a Redis answers there (one asking for a password answers too)."""
    try:
        with socket.create_connection((host, port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(64)
    except OSError:
        return False
    return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")


def redis_to_start(ports: ClusterPorts) -> int | None:
    """The local port to start a Redis on, if one of the cluster's URLs has none answering.

    Raises :class:`ConfigurationError` (one line) when a URL that does not answer cannot be
    served by a Redis the cluster starts: another host, another local port than the
    broker's, or a password.
    """
    start: int | None = None
    for setting, url in ports.urls().items():
        parts = urlparse(url)
        host, port = parts.hostname or "localhost", parts.port or 6379
        if redis_answers(port, host):
            continue
        shown = maybe_sanitize_url(url)
        if host not in LOCAL_HOSTS or port != ports.redis or parts.password:
            raise ConfigurationError(
                f"nothing answers at {shown} ({setting}) and the cluster can only start a "
                f"Redis without a password on 127.0.0.1:{ports.redis}: start that Redis "
                f"first, or change {setting}"
            )
        start = port
    return start


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
        # Every service uses the cluster's Redis.
        environment = {**(env if env is not None else os.environ), **self.ports.urls()}
        redis_port = redis_to_start(self.ports)
        pids: dict[str, int] = {}
        try:
            if redis_port is not None:
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
        stopped = [name for name in order if _stop_group(pids[name])]
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
