"""The ``celery worker`` command line the tests and benchmarks start real workers with.

Prefork, as deployed; without gossip and mingle, which only slow a worker's start when the
workers of one test never need to know about one another.
"""

from __future__ import annotations

import sys


def worker_command(queues: str, concurrency: int, hostname: str, *extra: str) -> list[str]:
    """``python -m celery -A tasks worker`` on ``queues`` with ``concurrency`` processes,
    named ``hostname@%h``; ``extra`` options are added at the end."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        f"--queues={queues}",
        f"--hostname={hostname}@%h",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        *extra,
    ]
