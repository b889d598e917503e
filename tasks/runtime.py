"""The clients a process uses, built once per process and shared by all its tasks.

Worker processes build them in Celery's ``worker_process_init`` (see ``tasks.celery_app``),
after the fork, so no connection is shared between processes. ``vtrack run`` replaces
them with in-process ones through :func:`configure`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from config.celery import results_ttl
from config.settings import Settings, get_settings
from tasks import redis_clients
from tasks.claims import Claims
from tasks.jobstore import JobStore, RedisJobStore
from tasks.quotas import QuotaLimits, SubmissionLimiter
from workers.storage import Storage, VideoCache, open_storage
from workers.storage.cache import default_cache_dir

if TYPE_CHECKING:
    from workers.annotators.base import Annotator

# Backends whose API has a request quota that all workers share.
QUOTA_LIMITED_BACKENDS = frozenset({"gcp"})


@dataclass
class Runtime:
    settings: Settings
    storage: Storage
    jobs: JobStore
    redis_client: redis.Redis | None = None
    annotators: dict[str, Annotator] = field(default_factory=dict)
    limiters: dict[str, SubmissionLimiter | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _claims: Claims | None = None

    def annotator(self, name: str) -> Annotator:
        from tasks.backends import build_annotator

        with self.lock:
            if name not in self.annotators:
                self.annotators[name] = build_annotator(name, self.settings, self.storage)
            return self.annotators[name]

    def limiter(self, backend: str) -> SubmissionLimiter | None:
        """The quota limiter shared through Redis by every worker, for backends with a quota."""
        if backend not in QUOTA_LIMITED_BACKENDS or self.redis_client is None:
            return None
        with self.lock:
            if backend not in self.limiters:
                self.limiters[backend] = SubmissionLimiter(
                    self.redis_client, QuotaLimits.from_settings(self.settings)
                )
            return self.limiters[backend]

    def claims(self) -> Claims | None:
        """Claims on videos, shared through Redis by every process of the service.

        None in ``vtrack run`` (one process, no Redis): nothing to share, nothing stamped.
        """
        if self.redis_client is None:
            return None
        with self.lock:
            if self._claims is None:
                self._claims = Claims(
                    self.redis_client,
                    self.storage,
                    ttl_seconds=claim_ttl(self.settings),
                    job_ended=self._job_ended,
                    retry_failed_after=self.settings.scan_retry_failed_after,
                )
            return self._claims

    def _job_ended(self, job_id: str) -> bool | None:
        """Whether the job holding a claim has ended; a running job that stalled (its work
        lost with Redis) is failed here, so the scan that asks starts its video again."""
        from tasks import lost

        record = self.jobs.get(job_id)
        if record is None:
            return None
        return lost.fail_if_stalled(self.jobs, record, self.settings, None).finished


def claim_ttl(settings: Settings) -> int:
    """Longer than a job can take: waiting for annotations, then the tasks after it."""
    return settings.job_timeout + 4 * settings.task_time_limit


_current: Runtime | None = None
_build_lock = threading.Lock()


def local_roots(settings: Settings) -> list[str]:
    """Local folders this process may read and write: inputs, annotations and outputs.

    The folders of ``VTRACK_SCAN_SOURCES`` are inputs too: the operator named them.
    """
    return [
        *settings.input_root_list(),
        *settings.scan_source_list(),
        settings.output_root,
        settings.annotation_root,
    ]


def video_cache(settings: Settings) -> VideoCache | None:
    """The machine's cache of downloaded videos (None when ``VTRACK_VIDEO_CACHE_BYTES`` is 0)."""
    if settings.video_cache_bytes <= 0:
        return None
    folder = settings.video_cache_dir or default_cache_dir()
    return VideoCache(folder, settings.video_cache_bytes)


def build_runtime(settings: Settings) -> Runtime:
    client = redis_clients.redis_client(settings.result_backend, settings)
    return Runtime(
        settings=settings,
        storage=open_storage(local_roots(settings), video_cache(settings)),
        jobs=RedisJobStore(client, ttl_seconds=results_ttl(settings)),
        redis_client=client,
    )


def current() -> Runtime:
    """This process's runtime, built from the settings on first use."""
    global _current
    with _build_lock:
        if _current is None:
            _current = build_runtime(get_settings())
        return _current


def configure(runtime: Runtime | None) -> None:
    """Use ``runtime`` from now on in this process (None: rebuild from settings when needed)."""
    global _current
    with _build_lock:
        _current = runtime
