"""Job ids: random UUIDs whose first 48 bits are the submission time (UUID version 7).

The time in the id lets :mod:`tasks.lost` tell a job lost with Redis from an unknown id.
Nothing here needs Redis or Celery: ``vtrack run`` makes its ids with this module alone.
"""

from __future__ import annotations

import os
import time
import uuid


def new_job_id(now: float | None = None) -> str:
    """A random UUID whose first 48 bits are the time in milliseconds (UUID version 7)."""
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def submitted_at(job_id: str) -> float | None:
    """When the job was submitted, from its id; None for ids that carry no time."""
    try:
        parsed = uuid.UUID(job_id)
    except ValueError:
        return None
    if parsed.version != 7:
        return None
    return (parsed.int >> 80) / 1000.0
