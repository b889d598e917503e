"""A bound on redeliveries: a task whose worker process dies every time it runs fails, once.

Tasks are acknowledged late and re-queued when their worker process is lost, so a message
that itself kills the process would be delivered again forever, and Redis keeps no count
(docs/faults.md, "Delivery"). So every task counts the deliveries of its message in Redis
before it runs; past ``VTRACK_TASK_MAX_DELIVERIES`` it fails with
:class:`PoisonMessageError` instead of running, which acknowledges the message and runs the
job's error callback like any other failure.

A message is (task name, task id, times replaced, retry number): ``self.retry`` and a wait
(``Task.replace`` with the task itself, see ``tasks.jobs._wait``; Celery's
``replaced_task_nesting``) are new attempts, not redeliveries. Each run that ends (a
result, a failure, a retry or a replacement sent) marks ``vtrack:ran:<task>:<message>``; a
later delivery that finds the mark (its acknowledgement was lost with Redis) is
acknowledged without running. A process that dies never marks its run, so its task runs
again.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import Ignore

from tasks.keys import deliveries_key, ran_key
from tasks.redis_clients import OUTAGE_ERRORS, describe
from workers.errors import VtrackError

log = logging.getLogger(__name__)


class PoisonMessageError(VtrackError):
    """A task whose worker process died each time it ran; it is not run again."""


class DeliveryCountedTask(Task):  # type: ignore[misc]
    """The base of vtrack's tasks: counts deliveries, refuses to run past the limit."""

    # Its one-line reason is the news: the traceback would only show this class's __call__.
    throws = (PoisonMessageError,)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if not request.id or request.delivery_info is None:
            return super().__call__(*args, **kwargs)
        hops = int(getattr(request, "replaced_task_nesting", 0) or 0)
        message = f"{request.id}:{hops}:{int(request.retries or 0)}"
        self._count_delivery(message)
        try:
            result = super().__call__(*args, **kwargs)
        except Exception:  # a failure, a retry or a replacement sent: the run ended too
            self._mark_ran(message)
            raise
        self._mark_ran(message)
        return result

    def _mark_ran(self, message: str) -> None:
        from config.celery import results_ttl
        from tasks import runtime

        rt = runtime.current()
        if rt.redis_client is None:
            return
        try:
            rt.redis_client.set(ran_key(self.name, message), 1, ex=results_ttl(rt.settings))
        except OUTAGE_ERRORS as error:  # Redis gone for longer than the outage setting
            log.warning(
                "%s[%s]: could not note that it ran: %s",
                self.name,
                self.request.id,
                describe(error),
            )

    def _count_delivery(self, message: str) -> None:
        from config.celery import results_ttl
        from tasks import runtime

        rt = runtime.current()
        client = rt.redis_client
        if client is None:
            return
        key = deliveries_key(self.name, message)
        with client.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, results_ttl(rt.settings))
            pipe.exists(ran_key(self.name, message))
            replies = pipe.execute()
        count, ran = int(replies[0]), bool(replies[2])
        if ran:
            log.info(
                "%s[%s] delivered again after its run ended (its acknowledgement was lost "
                "with Redis): not run again",
                self.name,
                self.request.id,
            )
            raise Ignore()
        limit = rt.settings.task_max_deliveries
        if count > limit:
            raise PoisonMessageError(
                f"{self.name} was given up after its worker process died {count - 1} times "
                f"running it (killed, out of memory or crashed); VTRACK_TASK_MAX_DELIVERIES "
                f"is {limit}"
            )
        if count > 1:
            log.warning(
                "%s[%s] delivered again (delivery %d of at most %d): its worker process died",
                self.name,
                self.request.id,
                count,
                limit,
            )
