"""The Celery application (``celery -A tasks worker|beat|flower``)."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup, celeryd_init, worker_process_init
from celery.utils.log import get_logger
from celery.worker.consumer import Consumer

from config.celery import RENDER_QUEUE, celery_config
from config.settings import Settings, get_settings, usable_cores
from tasks import broker_transport, redis_clients
from tasks.deliveries import DeliveryCountedTask

logger = get_logger(__name__)

# kombu's Redis transports, made to ride out Redis outages (tasks/broker_transport.py).
broker_transport.install()


class VtrackCelery(Celery):
    """Celery whose Redis result backend waits out Redis outages (tasks/redis_clients.py):
    a task that cannot store its result waits for Redis instead of failing."""

    def _get_backend(self) -> Any:
        return redis_clients.prepare_celery_backend(super()._get_backend())


# tasks.service_tasks holds the service's entry points (beat's scans, Flower's HTTP API);
# tasks.progress reports job stages as task states for Flower.
# Every task counts its deliveries: one that kills its worker process every time fails after
# VTRACK_TASK_MAX_DELIVERIES instead of coming back forever (tasks/deliveries.py).
app = VtrackCelery(
    "vtrack",
    include=["tasks.jobs", "tasks.service_tasks", "tasks.progress"],
    task_cls=DeliveryCountedTask,
)


def app_config(settings: Settings) -> dict[str, Any]:
    """:func:`config.celery.celery_config`, with the Redis client options of sentinel:// URLs
    (the master's name and the Sentinels' own options) in both transports' options."""
    conf = celery_config(settings)
    for options, url in (
        ("broker_transport_options", settings.broker_url),
        ("result_backend_transport_options", settings.result_backend),
    ):
        conf[options] |= redis_clients.celery_transport_options(settings, url)
    return conf


app.conf.update(app_config(get_settings()))


@celeryd_init.connect
def wait_out_redis_outages(conf: Any = None, **_: Any) -> None:
    """Worker processes wait for an unreachable Redis up to VTRACK_BROKER_OUTAGE_SECONDS:
    Redis commands (tasks/redis_clients.py) and the messages tasks send. Set in the main
    process before its pool forks, so every pool process inherits it."""
    seconds = get_settings().broker_outage_seconds
    redis_clients.ride_out_outages(seconds)
    if conf is not None:
        conf.task_publish_retry_policy = redis_clients.publish_retry_policy(seconds)


@celeryd_init.connect
def limit_render_worker_children(conf: Any = None, options: Any = None, **_: Any) -> None:
    """Render workers replace their processes every N tasks: video decoders can leak."""
    queues = (options or {}).get("queues") or ""
    names = [n for n in (queues if isinstance(queues, list | tuple) else queues.split(",")) if n]
    consumes_render = not names or RENDER_QUEUE in names  # no -Q: every queue
    if conf is not None and consumes_render and not conf.worker_max_tasks_per_child:
        conf.worker_max_tasks_per_child = get_settings().render_max_tasks_per_child


def worker_decode_threads(setting: int, processes: int | None, cores: int) -> int | None:
    """FFmpeg decoding threads for each process of a worker (None: FFmpeg's choice).

    ``setting`` is ``VTRACK_DECODE_THREADS`` (0: decide here). A worker with as many
    processes as the cores it may use keeps every core busy with a process of its own:
    each decodes on one thread, as more would only take turns with the other processes. A
    worker with fewer processes leaves cores that FFmpeg's threads can use.
    """
    if setting:
        return setting
    if processes is not None and processes >= cores:
        return 1
    return None


@celeryd_after_setup.connect
def choose_decode_threads(sender: Any = None, instance: Any = None, **_: Any) -> None:
    """Set the decoding threads in the worker's main process, before its pool forks."""
    from workers.media.video import set_decode_threads

    pool = getattr(instance, "pool_cls", "")
    pool_name = pool if isinstance(pool, str) else getattr(pool, "__module__", "")
    concurrency = getattr(instance, "concurrency", None)
    # Only a prefork pool's processes each decode on their own (threads, solo: one process).
    processes = concurrency if "prefork" in pool_name and isinstance(concurrency, int) else None
    cores = usable_cores()
    threads = worker_decode_threads(get_settings().decode_threads, processes, cores)
    set_decode_threads(threads)
    logger.info(
        "decoding on %s per process (%s pool, concurrency %s, %d cores)",
        "1 thread" if threads == 1 else f"{threads} threads" if threads else "FFmpeg's threads",
        pool_name or pool,
        concurrency,
        cores,
    )


class BrokerOutageLog(logging.Filter):
    """The worker's consumer says once that Redis was lost and once that it is back.

    Celery logs a warning when the broker's connection drops, then an error line for every
    attempt to connect again (one every few seconds), then "Connected to ..." when one
    works. Filtered on the consumer's loggers, those become one line each way.
    """

    def __init__(self, patience: float) -> None:
        super().__init__()
        self.patience = patience
        self.lost_at: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.msg if isinstance(record.msg, str) else ""
        args = record.args if isinstance(record.args, tuple) else ()
        if args and str(args[0]).startswith("consumer: Connection to broker lost"):
            if self.lost_at is not None:
                return False
            self.lost_at = time.monotonic()
            error = args[1] if len(args) > 1 else ""
            reason = redis_clients.describe(error) if isinstance(error, BaseException) else ""
            record.msg = "lost Redis (the broker): %s; tasks wait for it up to %.0fs (%s)"
            record.args = (reason, self.patience, "VTRACK_BROKER_OUTAGE_SECONDS")
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        if self.lost_at is None:
            return True
        if text.startswith("consumer: Cannot connect to"):
            return False
        if text.startswith("Connected to"):
            record.msg = "Redis is back after %.0fs"
            record.args = (time.monotonic() - self.lost_at,)
            self.lost_at = None
        return True


class VtrackConsumer(Consumer):
    """The worker's consumer, surviving kombu's second close of a lost Redis connection, and
    keeping the messages of the tasks it runs out of their queue when that connection is lost.

    When the broker connection drops, Celery collects the connection (closing its channel
    and transport), then closes it again; the second close tries once more to put the
    messages in hand back in the queue, through a transport already gone, and the
    AttributeError that follows stopped the whole worker ("Unrecoverable error"). The first
    close has put back what it could (tasks/broker_transport.py); whatever it could not stays
    in Redis's unacknowledged set and comes back after the visibility timeout if its task
    never finishes; the consumer reconnects.
    """

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        # The messages of tasks running now are not put back in their queue: they run on
        # and are acknowledged when Redis is back (tasks/broker_transport.py).
        with broker_transport.keeping_running(running_delivery_tags()):
            try:
                super().on_connection_error_after_connected(exc)
            except AttributeError as error:
                logger.debug("closing the lost broker connection: %r", error)


def running_delivery_tags() -> frozenset[Any]:
    """The delivery tags of the messages whose tasks this worker's pool has started."""
    from celery.worker.state import active_requests

    tags = set()
    for request in list(active_requests):
        message = getattr(request, "message", None)
        tag = getattr(message, "delivery_tag", None)
        if tag is not None:
            tags.add(tag)
    return frozenset(tags)


@celeryd_after_setup.connect
def quiet_broker_reconnections(**_: Any) -> None:
    """One line when the worker loses Redis and one when it is back (BrokerOutageLog)."""
    outage_log = BrokerOutageLog(get_settings().broker_outage_seconds)
    for name in ("celery.worker.consumer.consumer", "celery.worker.consumer.connection"):
        logging.getLogger(name).addFilter(outage_log)


@celeryd_after_setup.connect
@worker_process_init.connect
def quiet_the_chord_errback_notice(**_: Any) -> None:
    """Celery warns, for every job that becomes a chord, that its default for errbacks on
    chord headers may change some day; ours is chosen (config/celery.py), so the notice is
    noise in every job's log. Set after each logging setup of the worker (its main process,
    then each prefork process), since that setup turns Celery's own warnings back on."""
    warnings.filterwarnings(
        "ignore", message="task_allow_error_cb_on_chord_header=False", module="celery"
    )
    # Celery's notice, at every lost broker connection, that it may one day cancel running
    # tasks then: ours is chosen (config/celery.py); the outage has its own line.
    warnings.filterwarnings(
        "ignore", message=r"\s*In Celery 5.1 we introduced an optional breaking change"
    )


@worker_process_init.connect
def build_process_clients(**_: Any) -> None:
    """Build this process's storage, Redis and backend clients once, after the fork."""
    from tasks import runtime
    from tasks.catalog import prepare_catalog
    from tasks.progress import TaskProgressJobStore
    from workers.errors import VtrackError

    runtime.configure(None)
    prepare_catalog()  # SQLAlchemy and the schema now, not in the first job's last task
    rt = runtime.current()
    rt.jobs = TaskProgressJobStore(rt.jobs)  # stages also become task states (Flower)
    try:
        rt.annotator(rt.settings.backend)  # a missing credential shows at start, not mid-job
    except VtrackError as exc:
        logger.error("the %s backend is not usable: %s", rt.settings.backend, exc)
