"""vtrack's kombu Redis transport when a worker's broker connection is lost
(tasks/broker_transport.py), on a real redis-server of the test's own."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection, Queue

from tasks import broker_transport
from tests.support.private_redis import PrivateRedis


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    private = PrivateRedis(tmp_path / "redis").start()
    try:
        yield private
    finally:
        private.stop()


def take_two(server: PrivateRedis) -> tuple[Connection, list]:
    """A connection through vtrack's transport holding two messages unacknowledged."""
    broker_transport.install()
    connection = Connection(f"{server.url}/0")
    queue = Queue("work")
    with connection.Producer() as producer:
        for body in ("running", "waiting"):
            producer.publish(body, routing_key="work", declare=[queue])
    channel = connection.default_channel
    taken = [queue(channel).get(no_ack=False) for _ in range(2)]
    assert [message.payload for message in taken] == ["running", "waiting"]
    return connection, taken


def queued(server: PrivateRedis) -> list[bytes]:
    """The bodies of the messages in the queue."""
    raws = server.client(0).lrange("work", 0, -1)
    return sorted(base64.b64decode(json.loads(raw)["body"]) for raw in raws)


def test_a_lost_connection_keeps_a_running_task_s_message_out_of_its_queue(
    server: PrivateRedis,
) -> None:
    connection, (running, _) = take_two(server)
    with broker_transport.keeping_running(frozenset({running.delivery_tag})):
        connection.collect()

    # The message not started is back in the queue; the running one waits, unacknowledged,
    # for its task to end (or for the visibility timeout, should the worker die).
    assert queued(server) == [b"waiting"]
    assert server.client(0).hkeys("unacked") == [running.delivery_tag.encode()]
    # The task ends: its message is acknowledged through the closed channel.
    running.ack()
    assert server.client(0).hlen("unacked") == 0
    assert queued(server) == [b"waiting"]


def test_a_connection_closed_otherwise_puts_back_every_message(server: PrivateRedis) -> None:
    connection, _ = take_two(server)
    connection.collect()

    assert queued(server) == [b"running", b"waiting"]
    assert server.client(0).hlen("unacked") == 0


def test_messages_of_running_tasks_are_acknowledged_after_the_lost_connection_closed(
    server: PrivateRedis,
) -> None:
    connection, taken = take_two(server)
    with broker_transport.keeping_running(frozenset(m.delivery_tag for m in taken)):
        connection.collect()
    assert queued(server) == []

    for message in taken:  # both tasks end once Redis is back
        message.ack()
    assert server.client(0).hlen("unacked") == 0
    assert queued(server) == []
