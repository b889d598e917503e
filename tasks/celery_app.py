"""The Celery application (``celery -A tasks worker|beat|flower``)."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import celeryd_init, worker_process_init
from celery.utils.log import get_logger

from config.celery import RENDER_QUEUE, celery_config
from config.settings import get_settings
from tasks.deliveries import DeliveryCountedTask

logger = get_logger(__name__)

# tasks.scan and tasks.trigger are the service's entry points (beat, Flower's HTTP API);
# tasks.progress reports job stages as task states for Flower.
# Every task counts its deliveries: one that kills its worker process every time fails after
# VTRACK_TASK_MAX_DELIVERIES instead of coming back forever (tasks/deliveries.py).
app = Celery(
    "vtrack",
    include=["tasks.jobs", "tasks.scan", "tasks.trigger", "tasks.progress"],
    task_cls=DeliveryCountedTask,
)
app.conf.update(celery_config(get_settings()))


@celeryd_init.connect
def limit_render_worker_children(conf: Any = None, options: Any = None, **_: Any) -> None:
    """Render workers replace their processes every N tasks: video decoders can leak."""
    queues = (options or {}).get("queues") or ""
    names = [n for n in (queues if isinstance(queues, list | tuple) else queues.split(",")) if n]
    consumes_render = not names or RENDER_QUEUE in names  # no -Q: every queue
    if conf is not None and consumes_render and not conf.worker_max_tasks_per_child:
        conf.worker_max_tasks_per_child = get_settings().render_max_tasks_per_child


@worker_process_init.connect
def build_process_clients(**_: Any) -> None:
    """Build this process's storage, Redis and backend clients once, after the fork."""
    from tasks import runtime
    from workers.errors import VtrackError

    runtime.configure(None)
    rt = runtime.current()
    try:
        rt.annotator(rt.settings.backend)  # a missing credential shows at start, not mid-job
    except VtrackError as exc:
        logger.error("the %s backend is not usable: %s", rt.settings.backend, exc)
