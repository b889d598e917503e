"""The name of every Redis key vtrack writes itself, and what each holds.

All live in the result backend's Redis (``VTRACK_RESULT_BACKEND``, ``runtime.redis_client``)
beside Celery's own ``celery-task-meta-<task id>`` keys. ``results_ttl`` is the larger of
4 x ``VTRACK_JOB_TIMEOUT`` and 24 hours (``config.celery.results_ttl``).

Each key, what it holds (and who writes it), when it expires:

``vtrack:job:<job id>``
    hash, one JSON value per ``JobRecord`` field (``tasks.jobstore``); ``results_ttl``,
    renewed at each write.
``vtrack:job:<job id>:segments``
    hash: segment number -> fraction tracked (``track_segment``); ``results_ttl``.
``vtrack:jobs``
    sorted set: job id by creation time (the job list); never, ids older than
    ``results_ttl`` leave it at each create.
``vtrack:jobstore:epoch``
    string: when this Redis first held a job record (``tasks.lost``); never (``SET NX``).
``vtrack:deliveries:<task name>:<task id>:<hop>:<retries>``
    counter: deliveries of one message (``tasks.deliveries``; ``hop`` counts the re-sends
    of a waiting task, ``retries`` its retries after failures); ``results_ttl``.
``vtrack:ran:<task name>:<task id>:<hop>:<retries>``
    marker: that message's run ended, so a copy delivered again is not run
    (``tasks.deliveries``); ``results_ttl``.
``vtrack:inflight:<video>``
    string: JSON job id, claim time, video version (``tasks.claims``);
    ``VTRACK_JOB_TIMEOUT`` + 4 x ``VTRACK_TASK_TIME_LIMIT``.
``vtrack:failed:<video>``
    string: JSON job id, error, video version of a failed job (``tasks.claims``);
    ``VTRACK_SCAN_RETRY_FAILED_AFTER``.
``vtrack:gcp-quota:requests``, ``:in-flight``, ``:sequence``
    sorted set of request times, sorted set of job ids by slot expiry, request counter
    (``tasks.quotas``); the quota window + 1 s (slots: their TTL + 1 s).
``vtrack:vi:operation:<job id>``
    string: JSON operation of the VI server (``OperationBook``); ``results_ttl``.

``<video>`` is the video's URI in one spelling (``tasks.claims.video_key``). These names
are read by operators and by older workers during an upgrade: never rename one.
"""

from __future__ import annotations

JOB_PREFIX = "vtrack:job:"
JOB_INDEX = "vtrack:jobs"
JOBSTORE_EPOCH = "vtrack:jobstore:epoch"
GCP_QUOTA_PREFIX = "vtrack:gcp-quota"
VI_OPERATION_PREFIX = "vtrack:vi:operation:"


def job(job_id: str) -> str:
    return f"{JOB_PREFIX}{job_id}"


def job_segments(job_id: str) -> str:
    return f"{job(job_id)}:segments"


def inflight(video_key: str) -> str:
    return f"vtrack:inflight:{video_key}"


def failed(video_key: str) -> str:
    return f"vtrack:failed:{video_key}"


def quota_keys(prefix: str = GCP_QUOTA_PREFIX) -> tuple[str, str, str]:
    """The request window, the slots in flight and the request sequence of a quota."""
    return f"{prefix}:requests", f"{prefix}:in-flight", f"{prefix}:sequence"


def deliveries_key(task_name: str, message: str) -> str:
    return f"vtrack:deliveries:{task_name}:{message}"


def ran_key(task_name: str, message: str) -> str:
    return f"vtrack:ran:{task_name}:{message}"


def vi_operation(job_id: str) -> str:
    return f"{VI_OPERATION_PREFIX}{job_id}"
