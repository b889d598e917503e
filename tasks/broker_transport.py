"""kombu's Redis transports (``redis://``, ``sentinel://``), made to ride out Redis outages.

Two changes, both to what happens to a message a worker had taken when the connection it
came on was lost (Redis restarted or failed over while its task ran):

* its acknowledgement, when the task ends, waits for Redis like every other command of a
  worker (``VTRACK_BROKER_OUTAGE_SECONDS``, tasks/redis_clients.py) instead of failing
  with a logged traceback (and the message being run again after the visibility timeout);
* it can be acknowledged at all: kombu acknowledges through the channel the message came
  on, whose transport was closed with the lost connection, and building that channel's
  connection pool again failed on the closed transport with an AttributeError that
  stopped the whole worker. The channel keeps what it needs to build it.

Installed for ``redis://`` and ``sentinel://`` broker URLs by :func:`install`, which the
Celery app calls (tasks/celery_app.py).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

from tasks.redis_clients import wait_for_redis


class PatientQoS(kombu_redis.QoS):
    def ack(self, delivery_tag: Any) -> None:
        wait_for_redis(lambda: super(PatientQoS, self).ack(delivery_tag))


class _KeepsItsClient:
    """A channel that can build its connection pool after its transport was closed."""

    connection: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own_client = self.connection.client

    def _get_pool(self, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport.client is not None or self._own_client is None:
            return super()._get_pool(asynchronous=asynchronous)  # type: ignore[misc]
        transport.client = self._own_client
        try:
            return super()._get_pool(asynchronous=asynchronous)  # type: ignore[misc]
        finally:
            transport.client = None


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
