"""tasks/redis_clients.py: URLs, and how long a command waits for a Redis that is down.

The waits are measured against a real redis-server of the test's own (killed and started
again on the same port), not a mock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config.settings import Settings
from tasks import redis_clients
from tasks.redis_clients import redis_client, sentinel_addresses
from tests.support.private_redis import PrivateRedis


def test_sentinel_urls_name_every_sentinel_and_the_primary_s_database_and_password() -> None:
    addresses, options = sentinel_addresses(
        "sentinel://:pw@10.0.0.5:26379/1;sentinel://10.0.0.6:26380/1;sentinel://10.0.0.7/1"
    )
    assert addresses == [("10.0.0.5", 26379), ("10.0.0.6", 26380), ("10.0.0.7", 26379)]
    assert options == {"db": 1, "password": "pw"}


def test_a_sentinel_url_gives_a_client_of_the_named_primary() -> None:
    settings = Settings(sentinel_master_name="vtrack", sentinel_password="s3")
    client = redis_client("sentinel://127.0.0.1:26379/2;sentinel://127.0.0.1:26380/2", settings)
    pool = client.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert pool.service_name == "vtrack"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["retry"].__class__ is redis_clients.OutageRetry


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    private = PrivateRedis(tmp_path / "redis", appendonly=True).start()
    try:
        yield private
    finally:
        private.stop()


@pytest.fixture
def patience() -> Iterator[None]:
    before = redis_clients.outage_seconds()
    yield
    redis_clients.ride_out_outages(before)


def test_a_front_end_gives_up_after_about_a_second(server: PrivateRedis, patience: None) -> None:
    redis_clients.ride_out_outages(redis_clients.FRONT_END_PATIENCE_SECONDS)
    client = redis_client(f"{server.url}/0", Settings())
    client.set("k", "v")
    server.kill()
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.get("k")
    assert 0.5 < time.monotonic() - started < 5


def test_a_worker_waits_for_redis_to_come_back_and_goes_on(
    server: PrivateRedis, patience: None
) -> None:
    redis_clients.ride_out_outages(30)
    client = redis_client(f"{server.url}/0", Settings())
    client.set("k", "v")
    server.wait_written_to_aof()
    server.kill()
    restart = threading.Timer(2.0, server.start)
    restart.start()
    started = time.monotonic()
    try:
        assert client.get("k") == b"v"
    finally:
        restart.join()
    assert 1.5 < time.monotonic() - started < 15


def test_a_worker_gives_up_after_its_patience(server: PrivateRedis, patience: None) -> None:
    redis_clients.ride_out_outages(2)
    client = redis_client(f"{server.url}/0", Settings())
    client.ping()
    server.kill()
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    assert 1.5 < time.monotonic() - started < 8
