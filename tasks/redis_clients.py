"""Every Redis client vtrack makes, built in one place from the settings.

URLs: ``redis://`` and ``rediss://`` name one server; Celery's ``sentinel://host:port/db``
(several joined with ``;``) name Sentinels, asked for the current primary of
``VTRACK_SENTINEL_MASTER_NAME``, again whenever a command finds the old primary gone (or
demoted to a replica).

Outages (docs/faults.md, "Redis outages"): each client's connections carry an
:class:`OutageRetry`, which waits for Redis up to ``VTRACK_BROKER_OUTAGE_SECONDS`` in a
worker process (:func:`ride_out_outages`) and about a second in the front ends. Celery's
own result backend gets the same retry (:func:`prepare_celery_backend`), so a task that
cannot store its result waits too instead of recording the connection error as its failure.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlparse

import redis
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

SENTINEL_SCHEME = "sentinel://"
# Front ends retry a dropped connection this long: a stale socket after Redis restarted
# costs one reconnection, not an error; a Redis that is down answers within a second.
FRONT_END_PATIENCE_SECONDS = 1.0
BACKOFF_BASE_SECONDS = 0.1
BACKOFF_CAP_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 5.0
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    socket.timeout,
)


class _Outages:
    """This process's patience with Redis, and the outage it is in (if any)."""

    def __init__(self) -> None:
        self.patience = FRONT_END_PATIENCE_SECONDS
        self.announce = False
        self.lost_at: float | None = None
        self.lock = threading.Lock()

    def lost(self, error: BaseException) -> None:
        with self.lock:
            if self.lost_at is not None:
                return
            self.lost_at = time.monotonic()
        if self.announce:
            log.warning(
                "lost Redis: %s; waiting for it up to %.0fs (VTRACK_BROKER_OUTAGE_SECONDS)",
                describe(error),
                self.patience,
            )
        else:
            log.debug("lost Redis: %s", describe(error))

    def back(self) -> None:
        with self.lock:
            if self.lost_at is None:
                return
            down = time.monotonic() - self.lost_at
            self.lost_at = None
        (log.warning if self.announce else log.debug)("Redis is back after %.0fs", down)


_outages = _Outages()


def ride_out_outages(seconds: float, announce: bool = False) -> None:
    """Make this process's Redis commands wait up to ``seconds`` for an unreachable Redis.

    Called in worker processes. ``announce``: say in the log (one line each) when Redis
    was lost and when it is back; other processes note it at debug level only.
    """
    _outages.patience = seconds
    _outages.announce = announce


def outage_seconds() -> float:
    """How long this process's Redis commands wait for an unreachable Redis."""
    return _outages.patience


def describe(error: BaseException) -> str:
    """One line for a connection error: what it says, without trailing dots."""
    return (" ".join(str(error).split()) or type(error).__name__).rstrip(".")


class OutageRetry(Retry):
    """redis-py's retry, bounded by time instead of by count.

    A command that fails with a connection error or a timeout is tried again after a
    jittered backoff until it succeeds or this process's patience is spent
    (:func:`ride_out_outages`); then the last error is raised. The patience is read when
    the command fails, so clients built before a worker's setup wait too.
    """

    def __init__(self) -> None:
        super().__init__(
            ExponentialWithJitterBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS),
            retries=1_000_000,  # bounded by time below, never by this count
            supported_errors=OUTAGE_ERRORS,
        )

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        started: float | None = None
        failures = 0
        while True:
            try:
                result = do()
            except self._supported_errors as error:
                if is_retryable is not None and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                now = time.monotonic()
                started = now if started is None else started
                if now - started >= _outages.patience:
                    raise
                _outages.lost(error)
                pause = self._backoff.compute(failures)
                time.sleep(min(pause, max(0.0, started + _outages.patience - now)))
                continue
            if started is not None or _outages.lost_at is not None:
                _outages.back()
            return result


def wait_for_redis(command: Callable[[], T]) -> T:
    """Run ``command`` (Redis calls through a client without :class:`OutageRetry`), trying
    again as :class:`OutageRetry` does while Redis cannot be reached."""
    return OutageRetry().call_with_retry(command, lambda error: None)


def is_sentinel_url(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME)


def sentinel_addresses(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The Sentinels of a ``sentinel://`` URL (``;`` between several, as Celery's) and the
    primary's connection options it carries: ``db``, ``password``, ``username``."""
    addresses: list[tuple[str, int]] = []
    options: dict[str, Any] = {}
    for chunk in filter(None, (part.strip() for part in url.split(";"))):
        parsed = urlparse(chunk)
        addresses.append((parsed.hostname or "localhost", parsed.port or 26379))
        path = parsed.path.strip("/")
        if path and "db" not in options:
            options["db"] = int(path)
        if parsed.password and "password" not in options:
            options["password"] = unquote(parsed.password)
        if parsed.username and "username" not in options:
            options["username"] = unquote(parsed.username)
    return addresses, options


def sentinel_kwargs(settings: Settings) -> dict[str, Any]:
    """Options of the connections to the Sentinels themselves (not to the primary)."""
    options: dict[str, Any] = {"socket_connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if settings.sentinel_password:
        options["password"] = settings.sentinel_password
    return options


def redis_client(url: str, settings: Settings) -> redis.Redis:
    """A client of the Redis at ``url`` (``redis://``, ``rediss://`` or ``sentinel://``)."""
    options: dict[str, Any] = {
        "retry": OutageRetry(),
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_keepalive": True,
    }
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    addresses, primary = sentinel_addresses(url)
    sentinels = redis.sentinel.Sentinel(
        addresses, sentinel_kwargs=sentinel_kwargs(settings), **options
    )
    return sentinels.master_for(settings.sentinel_master_name, **primary)


def celery_transport_options(settings: Settings, url: str) -> dict[str, Any]:
    """What Celery's broker or result backend needs besides ``url`` to reach Sentinels."""
    if not is_sentinel_url(url):
        return {}
    return {
        "master_name": settings.sentinel_master_name,
        "sentinel_kwargs": sentinel_kwargs(settings),
    }


def prepare_celery_backend(backend: Any) -> Any:
    """Put :class:`OutageRetry` on the connections of Celery's Redis result backend."""
    connparams = getattr(backend, "connparams", None)
    if isinstance(connparams, dict) and "retry" not in connparams:
        connparams["retry"] = OutageRetry()
    return backend


def publish_retry_policy(seconds: float) -> dict[str, float]:
    """Celery's ``task_publish_retry_policy`` that keeps trying to send a message for about
    ``seconds`` (waits of 0, 0.5, 1, 1.5, then 2 s each)."""
    step, cap = 0.5, 2.0
    waited, retries = 0.0, 0
    while waited < seconds:
        waited += min(step * retries, cap)
        retries += 1
    return {
        "max_retries": max(3, retries),
        "interval_start": 0,
        "interval_step": step,
        "interval_max": cap,
    }
