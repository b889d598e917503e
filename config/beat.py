"""celery beat's schedule, built from ``VTRACK_SCAN_SOURCES`` and ``VTRACK_SCAN_SCHEDULE``.

One entry per scan source, so each source is scanned by its own task (a slow or broken
bucket does not hold up a folder) and Flower shows each scan by its source.

Only one beat may run: two would each send every scan. That would not start duplicate jobs
(the in-flight key stops the second), but it doubles the listing work; see
docs/operations.md for why vtrack runs a single beat rather than a locked standby.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery.schedules import crontab

from config.settings import Settings
from workers.errors import ConfigurationError

SCAN_SOURCE_TASK = "vtrack.scan_source"
CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def parse_schedule(text: str) -> crontab | timedelta:
    """``"*/5 * * * *"`` as a crontab, ``"30"`` or ``"2.5"`` as that many seconds.

    Raises :class:`ConfigurationError` naming the setting for anything else.
    """
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        if seconds <= 0:
            raise ConfigurationError(f"VTRACK_SCAN_SCHEDULE={text!r}: seconds must be above 0")
        return timedelta(seconds=seconds)
    fields = value.split()
    if len(fields) != len(CRONTAB_FIELDS):
        raise ConfigurationError(
            f"VTRACK_SCAN_SCHEDULE={text!r}: expected a five-field crontab "
            "(minute hour day month weekday) or a number of seconds"
        )
    try:
        return crontab(**dict(zip(CRONTAB_FIELDS, fields, strict=True)))
    except ValueError as exc:
        raise ConfigurationError(f"VTRACK_SCAN_SCHEDULE={text!r}: {exc}") from exc


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule``: one ``vtrack.scan_source`` entry per scan source."""
    sources = settings.scan_source_list()
    if not sources:
        return {}
    schedule = parse_schedule(settings.scan_schedule)
    # A scan that waited longer than one interval in the queue is stale: the next one
    # will list the same videos, so let it expire instead of piling up behind a backlog.
    expires = schedule.total_seconds() if isinstance(schedule, timedelta) else None
    return {
        f"scan {source}": {
            "task": SCAN_SOURCE_TASK,
            "schedule": schedule,
            "args": (source,),
            "options": {"expires": expires} if expires else {},
        }
        for source in sources
    }
