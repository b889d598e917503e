"""kombu's Redis transports (``redis://``, ``sentinel://``), made to ride out Redis outages.

Three changes, all to what happens to a message a worker had taken when the connection it
came on was lost (Redis restarted or failed over while its task ran):

* its acknowledgement, when the task ends, waits for Redis like every other command of a
  worker (``VTRACK_BROKER_OUTAGE_SECONDS``, tasks/redis_clients.py) instead of failing
  with a logged traceback (and the message being run again after the visibility timeout);
* it can be acknowledged at all: kombu acknowledges through the channel the message came
  on, whose transport was closed with the lost connection, and building that channel's
  connection pool again failed on the closed transport with an AttributeError that
  stopped the whole worker. The channel keeps what it needs to build it;
* it is not put back in its queue while its task runs. kombu, closing the lost connection's
  channel, puts every message the worker holds unacknowledged back in its queue (if it can
  reach Redis then: a failover, a dropped connection, a quick restart), including those
  whose tasks a pool process is running, which Celery lets run on: the message was then
  delivered again and its task ran a second time. Inside :func:`keeping_running`, which the
  worker's consumer uses when its connection is lost (tasks/celery_app.py), the messages of
  running tasks stay in Redis's unacknowledged set (acknowledged when their task ends; back
  after the visibility timeout should the worker die first), and the others (not started,
  countdowns) are put back once Redis answers, waiting for it like every other command.

Installed for ``redis://`` and ``sentinel://`` broker URLs by :func:`install`, which the
Celery app calls (tasks/celery_app.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

from tasks.redis_clients import wait_for_redis

# Delivery tags of the messages whose tasks run in this worker, while its consumer closes a
# lost connection (None: not closing one, kombu restores everything as usual).
_running: frozenset[Any] | None = None


@contextmanager
def keeping_running(tags: frozenset[Any]) -> Iterator[None]:
    """While the body runs, a channel that closes keeps the messages ``tags`` in Redis's
    unacknowledged set instead of putting them back in their queue, and puts the others
    back once Redis answers (waiting for it up to ``VTRACK_BROKER_OUTAGE_SECONDS``)."""
    global _running
    _running = tags
    try:
        yield
    finally:
        _running = None


class PatientQoS(kombu_redis.QoS):
    def ack(self, delivery_tag: Any) -> None:
        wait_for_redis(lambda: super(PatientQoS, self).ack(delivery_tag))

    def restore_unacked_once(self, stderr: Any = None) -> Any:
        for tag in _running or ():
            self._delivered.pop(tag, None)  # acknowledged by its task; Redis still holds it
        # kombu's "Restoring N unacknowledged message(s)" then counts only those put back.
        return super().restore_unacked_once(stderr)

    def restore_unacked(self, client: Any = None) -> Any:
        if _running is None:
            return super().restore_unacked(client)
        # Restoring a message twice is harmless (the second finds it gone from the set).
        return wait_for_redis(lambda: super(PatientQoS, self).restore_unacked(client))


class _KeepsItsClient:
    """A channel that can build its connection pool after it or its transport was closed.

    Closing a channel drops its transport (``connection``), and closing the transport drops
    its client; the channel keeps both to acknowledge, after Redis is back, the messages of
    the tasks that ran through the outage.
    """

    connection: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own_transport = self.connection
        self._own_client = self.connection.client

    def _get_pool(self, asynchronous: bool = False) -> Any:
        closed = self.connection is None
        if closed:
            self.connection = self._own_transport
        transport = self.connection
        lent = transport.client is None and self._own_client is not None
        if lent:
            transport.client = self._own_client
        try:
            return super()._get_pool(asynchronous=asynchronous)  # type: ignore[misc]
        finally:
            if lent:
                transport.client = None
            if closed:
                self.connection = None


class Channel(_KeepsItsClient, kombu_redis.Channel):
    QoS = PatientQoS


class SentinelChannel(_KeepsItsClient, kombu_redis.SentinelChannel):
    QoS = PatientQoS


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


def install() -> None:
    """Make ``redis://`` and ``sentinel://`` broker URLs use these transports, in this process.

    Through kombu's table of URL schemes rather than Celery's ``broker_transport``, so the
    URLs stay as written (the worker's banner and logs show ``redis://:**@host...``).
    """
    TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"
    TRANSPORT_ALIASES["sentinel"] = f"{__name__}:SentinelTransport"
