"""Waiting for something to happen, and checking that something does not.

:func:`wait_for` polls a condition until it holds: a test waits as long as the event takes
on a loaded machine, not a fixed time. :func:`stays` checks that a condition holds for a
whole period, the "ensure not for a while" of Celery's test manager
(``celery.contrib.testing.manager``): how a test says that nothing more happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    timeout: float,
    what: str | Callable[[], str],
    interval: float = 0.1,
) -> T:
    """Call ``condition`` every ``interval`` seconds until it returns something truthy, and
    return that; TimeoutError naming ``what`` once ``timeout`` seconds have passed (when
    ``what`` is a function, what it says then: a log's end, what was seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what() if callable(what) else what}: not within {timeout:g}s")
        time.sleep(interval)


def stays(
    condition: Callable[[], object], seconds: float, what: str, interval: float = 0.1
) -> None:
    """Assert that ``condition`` holds at every check, every ``interval`` seconds, for
    ``seconds``: it fails at the first check that does not hold."""
    started = time.monotonic()
    while True:
        assert condition(), f"{what}: no longer so after {time.monotonic() - started:.1f}s"
        if time.monotonic() - started >= seconds:
            return
        time.sleep(interval)
