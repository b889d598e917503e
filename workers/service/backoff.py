"""How long to wait before asking again: polling a running operation, retrying a catalog write."""

from __future__ import annotations

import random


def poll_delay(attempt: int, initial: float, maximum: float) -> float:
    """Wait before the ``attempt``-th check (0-based) of an operation still running.

    Doubles from ``initial`` up to ``maximum``: short jobs are noticed within seconds,
    long ones cost at most one check per ``maximum`` seconds.
    """
    return min(maximum, initial * (2 ** min(attempt, 30)))


def retry_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter for the ``attempt``-th retry (0-based).

    Jitter spreads the retries of many workers hit by the same outage, so they do not
    come back at the same moment and trip the quota again.
    """
    ceiling = min(cap, base * (2 ** min(attempt, 30)))
    return (rng or random).uniform(ceiling / 2, ceiling)
