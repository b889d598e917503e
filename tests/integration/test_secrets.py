"""No password or token in any log line, status or manifest (docs/faults.md).

A Redis of the test's own requires a password, which the broker and result URLs carry; the
worker also has Flower's basic-auth credentials in its environment, as docker-compose gives
every service the same ``.env``. A job that completes, one that fails and a submit to a
broker that does not answer are run through the CLI; then every line the worker logged,
everything the CLI printed, the job records, the manifest and every value left in Redis is
searched for the secrets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import REPO_ROOT, WorkerProcess
from tests.support.annotations import standard_annotation, write_annotation
from tests.support.private_redis import PrivateRedis, free_port
from tests.support.videos import write_test_video

pytestmark = pytest.mark.integration

PASSWORD = f"pw-{uuid.uuid4().hex}"
FLOWER_TOKEN = f"tok-{uuid.uuid4().hex}"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server of the test's own that wants ``PASSWORD``; stopped by its pid."""
    server = PrivateRedis(tmp_path / "redis", password=PASSWORD)
    try:
        yield server.start().port
    finally:
        server.stop()


def test_no_secret_reaches_a_log_a_status_or_a_manifest(
    private_redis: int, tmp_path: Path, session_dirs: dict[str, Path]
) -> None:
    base = f"redis://:{PASSWORD}@127.0.0.1:{private_redis}"
    env = {
        **os.environ,
        "VTRACK_BROKER_URL": f"{base}/0",
        "VTRACK_RESULT_BACKEND": f"{base}/1",
        "FLOWER_BASIC_AUTH": f"admin:{FLOWER_TOKEN}",
    }
    video = write_test_video(session_dirs["input"] / f"secret-{uuid.uuid4().hex[:6]}.mp4")
    annotations = write_annotation(
        Path(f"{video}.json"), standard_annotation(str(video), 30, 10, 160, 96)
    )
    worker = WorkerProcess(
        "annotate,render", 2, f"secrets-{uuid.uuid4().hex[:6]}", tmp_path / "w.log", env=env
    )
    printed: list[str] = []

    def vtrack(*args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", *args],
            cwd=REPO_ROOT,
            env={**env, **overrides},
            capture_output=True,
            text=True,
            timeout=180,
        )
        printed.extend((result.stdout, result.stderr))
        return result

    try:
        worker.wait_ready()
        good = vtrack("submit", str(video), "--annotations", str(annotations))
        not_a_video = session_dirs["input"] / f"notes-{uuid.uuid4().hex[:6]}.mp4"
        not_a_video.write_text("meeting notes, not a video\n")
        bad = vtrack("submit", str(not_a_video), "--annotations", str(annotations))
        good_id = good.stdout.strip().splitlines()[-1]
        bad_id = bad.stdout.strip().splitlines()[-1]
        waited = vtrack("wait", good_id, "--timeout", "120")
        assert waited.returncode == 0, waited.stderr
        # The failed job's status shows its error (the records themselves are searched below).
        assert not_a_video.name in vtrack("status", bad_id, "--json").stdout
        # A broker that does not answer: the error names it, not its password.
        down = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
        refused = vtrack("submit", str(video), VTRACK_BROKER_URL=down, VTRACK_RESULT_BACKEND=down)
        assert refused.returncode != 0
    finally:
        worker.stop()

    manifest = Path(waited.stdout.strip().splitlines()[-1]).read_text()
    values: list[bytes] = []
    for db in (0, 1):
        client = redis.Redis(host="127.0.0.1", port=private_redis, password=PASSWORD, db=db)
        for key in client.scan_iter():
            kind = client.type(key)
            if kind == b"string":
                values.append(client.get(key) or b"")
            elif kind == b"hash":
                values.extend(client.hgetall(key).values())
            elif kind == b"list":
                values.extend(client.lrange(key, 0, -1))
    assert values, "the jobs left nothing in Redis to search"
    texts = {
        "worker log": worker.log(),
        "CLI output": "\n".join(printed),
        "manifest": manifest,
        "Redis values": b"\n".join(values).decode(errors="replace"),
    }
    for where, text in texts.items():
        assert PASSWORD not in text, f"the Redis password is in the {where}"
        assert FLOWER_TOKEN not in text, f"Flower's token is in the {where}"
    assert "redis://:**@127.0.0.1" in worker.log(), "the worker banner shows the URL, masked"
