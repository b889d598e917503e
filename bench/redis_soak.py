"""Soak under Redis restarts: jobs run while Redis is killed and started again, over and over.

    python -m bench.redis_soak [--videos 20] [--seconds 4] [--every 30] [--down 3]

A private ``redis-server`` (append-only file, fsync every second, as docker-compose.yml runs
it) on a free 127.0.0.1 port; one ``annotate`` worker (one process) and one ``render``
worker (two processes); ``--videos`` local-backend videos of real photo sprites submitted
at once. Every ``--every`` seconds Redis is killed (SIGKILL) and started again ``--down``
seconds later on the same port and data folder, until every job has ended.

It checks that every job completes (none lost), that each video has one manifest whose
objects are all distinct (none duplicated), counts the tasks that ran more than once (a
task whose acknowledgement was lost with Redis runs again, publishing the same outputs),
counts tracebacks and "lost Redis"/"Redis is back" lines in the workers' logs, and samples
the RSS of every worker process (peak, first and last fifth: flat or growing). The
machine is shared: the load average is printed with the figures.

Not part of the test suite (it runs for minutes); the result goes in docs/faults.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.soak import (
    _SUCCEEDED,
    MemorySampler,
    make_videos,
    memory_summary,
    soak_env,
    start_worker,
)
from tests.support.private_redis import PrivateRedis


class Restarter(threading.Thread):
    """Kill Redis every ``every`` seconds and start it again ``down`` seconds later."""

    def __init__(self, server: PrivateRedis, every: float, down: float) -> None:
        super().__init__(daemon=True)
        self.server, self.every, self.down = server, every, down
        self.restarts = 0
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.every):
            self.server.kill()
            time.sleep(self.down)
            self.server.start()
            self.restarts += 1

    def stop(self) -> None:
        self._stopping.set()
        self.join()


def wait_all(job_ids: list[str], timeout: float) -> dict[str, Any]:
    """Each job's final record, asking again while Redis is down."""
    from tasks.api import Job
    from workers.errors import ServiceUnavailableError

    final: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while len(final) < len(job_ids) and time.monotonic() < deadline:
        for job_id in job_ids:
            if job_id in final:
                continue
            try:
                record = Job(job_id).status()
            except ServiceUnavailableError:
                break  # Redis is down: ask again in a moment
            except Exception as exc:  # a lost job: JobLost, JobNotFound
                final[job_id] = exc
                continue
            if record.finished:
                final[job_id] = record
        time.sleep(1)
    return final


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--every", type=float, default=30.0)
    parser.add_argument("--down", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="vtrack-redis-soak-"))
    server = PrivateRedis(work / "redis", appendonly=True).start()
    env = soak_env(work, f"{server.url}/0", f"{server.url}/1", "local") | {
        "VTRACK_CATALOG_URL": f"sqlite:///{work / 'catalog.sqlite3'}",
        # A message whose acknowledgement was lost comes back after this long.
        "VTRACK_BROKER_VISIBILITY_TIMEOUT": "120",
    }
    os.environ.update(env)  # before tasks is imported: this process submits to this Redis
    videos = make_videos(work / "input", args.videos, args.seconds, "local")
    workers = [
        start_worker("annotate", "annotate", 1, env, work),
        start_worker("render", "render", 2, env, work),
    ]
    sampler = MemorySampler(workers)
    restarter = Restarter(server, args.every, args.down)
    load_before = os.getloadavg()
    from tasks.api import submit

    try:
        sampler.start()
        started = time.monotonic()
        job_ids = [submit(str(video)).id for video, _ in videos]
        restarter.start()
        final = wait_all(job_ids, args.timeout)
        wall = time.monotonic() - started
        restarter.stop()
        time.sleep(2)
    finally:
        sampler.stop()
        for worker in workers:
            worker.stop()
        server.stop()

    statuses: Counter[str] = Counter()
    duplicated_objects: list[str] = []
    manifests: Counter[str] = Counter()
    for job_id in job_ids:
        record = final.get(job_id)
        if record is None:
            statuses["unfinished"] += 1
        elif isinstance(record, Exception):
            statuses[type(record).__name__] += 1
        else:
            statuses[record.status] += 1
            if record.manifest_uri:
                manifest = json.loads(Path(record.manifest_uri).read_text())
                manifests[manifest["video_uri"]] += 1
                indexes = [obj["index"] for obj in manifest["objects"]]
                if len(indexes) != len(set(indexes)):
                    duplicated_objects.append(job_id)
    runs: Counter[str] = Counter()
    logs = "".join(worker.log() for worker in workers)
    for name, task_id in _SUCCEEDED.findall(logs):
        runs[f"{name}[{task_id}]"] += 1
    memory = memory_summary(workers)
    figures = {
        "videos": len(job_ids),
        "restarts": restarter.restarts,
        "statuses": dict(statuses),
        "videos_with_more_than_one_manifest": [u for u, c in manifests.items() if c > 1],
        "jobs_with_an_object_twice": duplicated_objects,
        "tasks_run_more_than_once": sorted(t for t, c in runs.items() if c > 1),
        "tracebacks_in_worker_logs": logs.count("Traceback"),
        "lost_redis_lines": logs.count("lost Redis"),
        "redis_is_back_lines": logs.count("Redis is back"),
        "wall_seconds": round(wall, 1),
        "memory_mib": memory,
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    print(json.dumps({k: v for k, v in figures.items() if k != "memory_mib"}, indent=2))
    print("\n| process | peak RSS MiB | mean RSS, first fifth | mean RSS, last fifth | alive s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, f in memory.items():
        print(
            f"| {name} | {f['peak']} | {f['first_fifth']} | {f['last_fifth']} | "
            f"{f['seconds_alive']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(f"\nlogs and outputs: {work}", file=sys.stderr)
    completed = statuses["completed"] + statuses["completed_with_errors"]
    return 0 if completed == len(job_ids) and not duplicated_objects else 1


if __name__ == "__main__":
    sys.exit(main())
