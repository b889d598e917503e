"""How long to wait before asking again whether a running operation is done.

Retries of failed calls use Celery's own backoff (``retry_backoff`` in ``tasks.jobs``)."""

from __future__ import annotations


def poll_delay(attempt: int, initial: float, maximum: float) -> float:
    """Wait before the ``attempt``-th check (0-based) of an operation still running.

    Doubles from ``initial`` up to ``maximum``: short jobs are noticed within seconds,
    long ones cost at most one check per ``maximum`` seconds.
    """
    return min(maximum, initial * (2 ** min(attempt, 30)))
