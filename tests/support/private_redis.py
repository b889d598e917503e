"""A redis-server of a test's own, on a free 127.0.0.1 port, stopped by its pid.

Tests that flush or restart Redis, or whose workers must not meet another test session's
workers, use one: the shared Redis on 6379 has only 16 databases for every session on the
machine.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from pathlib import Path

import redis

from tests.support.waiting import wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class PrivateRedis:
    """``redis-server`` keeping nothing on disk; :meth:`restart` loses every key, as a crash
    of a Redis without persistence does.

    ``appendonly=True`` runs it as docker-compose.yml does (append-only file, fsync every
    second, in ``folder``): :meth:`kill` then :meth:`start` is a crash and a restart on the
    same port and data folder, as an orchestrator would do it. ``password``: it wants one
    (``--requirepass``), as do its clients. ``extra`` adds arguments (``--replicaof``, ...).
    """

    def __init__(
        self,
        folder: Path,
        appendonly: bool = False,
        port: int | None = None,
        extra: tuple[str, ...] = (),
        password: str | None = None,
    ) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra = extra + (("--requirepass", password) if password else ())
        self.password = password
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=self.password)

    def wait_written_to_aof(self, timeout: float = 30) -> None:
        """Until every write so far is in the append-only file, as far as a SIGKILL goes (in
        the kernel's copy; fsync matters only to a lost machine). With ``appendfsync
        everysec`` Redis may hold writes back while an fsync is slow, which a loaded machine
        makes likely; Redis 7.0 has no WAITAOF, so the test polls INFO for it."""
        client = self.client()
        wait_for(
            lambda: client.info("persistence")["aof_buffer_length"] == 0,
            timeout,
            "the writes to reach the append-only file",
        )

    def start(self) -> PrivateRedis:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError(
                "redis-server is not installed (scripts/ensure-redis.sh installs it)"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / f"redis-{self.port}.log").open("ab")
        self._process = subprocess.Popen(
            [
                server,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "everysec",
                "--dir",
                str(self.folder),
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: answers(self.client()), 10, f"redis-server on port {self.port}", 0.05)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a lost machine would stop it."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
            self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()


class PrivateSentinel:
    """A Redis Sentinel (``redis-server CONF --sentinel``) on a free 127.0.0.1 port,
    watching ``master_name`` at ``primary_port``; it rewrites its own file in ``folder``."""

    def __init__(self, folder: Path, master_name: str, primary_port: int, quorum: int = 2) -> None:
        self.folder = folder
        self.port = free_port()
        self.master_name = master_name
        self.primary_port = primary_port
        self.quorum = quorum
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateSentinel:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError(
                "redis-server is not installed (scripts/ensure-redis.sh installs it)"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / f"sentinel-{self.port}.conf"
        name = self.master_name
        conf.write_text(
            f"bind 127.0.0.1\nport {self.port}\ndir {self.folder}\n"
            f"sentinel monitor {name} 127.0.0.1 {self.primary_port} {self.quorum}\n"
            # Fast failover for tests: down after 1 s, a new election after 3 s.
            f"sentinel down-after-milliseconds {name} 1000\n"
            f"sentinel failover-timeout {name} 3000\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        log = (self.folder / f"sentinel-{self.port}.log").open("ab")
        self._process = subprocess.Popen(
            [server, str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
        )
        sentinel = redis.Redis(host="127.0.0.1", port=self.port)
        wait_for(lambda: answers(sentinel), 10, f"redis-sentinel on port {self.port}", 0.05)
        return self

    def primary(self) -> tuple[str, int] | None:
        """The primary this Sentinel names now."""
        answer = redis.Redis(host="127.0.0.1", port=self.port).sentinel_get_master_addr_by_name(
            self.master_name
        )
        if answer is None:
            return None
        host = answer[0].decode() if isinstance(answer[0], bytes) else answer[0]
        return host, int(answer[1])

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
