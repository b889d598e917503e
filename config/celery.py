"""Celery's configuration, built from the settings: queues, routes, limits, serialization.

Two queues split the work by its shape: ``annotate`` carries short control tasks
(starting and polling operations, assembling summaries) and ``render`` carries the
heavy, parallel per-object rendering, so each can have its own workers and scale apart.
"""

from __future__ import annotations

from typing import Any

from config.settings import Settings

ANNOTATE_QUEUE = "annotate"
RENDER_QUEUE = "render"
QUEUES = (ANNOTATE_QUEUE, RENDER_QUEUE)

# Every task has an explicit route; tests/unit/test_celery_config.py checks that none is missing.
TASK_ROUTES: dict[str, dict[str, str]] = {
    "vtrack.annotate": {"queue": ANNOTATE_QUEUE},
    "vtrack.poll": {"queue": ANNOTATE_QUEUE},
    "vtrack.render_batch": {"queue": RENDER_QUEUE},
    # Tracking a segment is heavy, parallel work like rendering: it goes where render workers are.
    "vtrack.track_segment": {"queue": RENDER_QUEUE},
    "vtrack.stitch": {"queue": ANNOTATE_QUEUE},
    "vtrack.assemble_summary": {"queue": ANNOTATE_QUEUE},
    "vtrack.job_failed": {"queue": ANNOTATE_QUEUE},
    # Service entry points (tasks/service_tasks.py): short control tasks, like the job's own.
    "vtrack.scan_source": {"queue": ANNOTATE_QUEUE},
    "vtrack.submit_video": {"queue": ANNOTATE_QUEUE},
    # A catalog write that failed at a job's completion, retried (tasks/jobs.py).
    "vtrack.record_in_catalog": {"queue": ANNOTATE_QUEUE},
}

# Redis re-delivers a message that a worker has not acknowledged within this margin above
# the hard time limit; with acks_late a task runs to its limit before it is acknowledged.
VISIBILITY_MARGIN_SECONDS = 300
# How long the lock on looking for a dead worker's messages outlives a worker killed holding it.
UNACKED_LOCK_SECONDS = 15


def results_ttl(settings: Settings) -> int:
    """Seconds results and job records are kept: well beyond the longest job, at least a day."""
    return max(settings.job_timeout * 4, 24 * 3600)


def visibility_timeout(settings: Settings) -> int:
    """Seconds a message a worker took stays hidden from others before Redis re-delivers it."""
    margin = VISIBILITY_MARGIN_SECONDS
    return settings.broker_visibility_timeout or settings.task_time_limit + margin


def longest_countdown(settings: Settings) -> float:
    """The longest a task may be re-queued for (a poll, a retry, a quota wait).

    A re-queued message is held by a worker, unacknowledged, until its countdown ends; held
    longer than the visibility timeout, Redis hands it to a second worker and the step runs
    twice. Half the timeout leaves the other half for the task's own run.
    """
    return visibility_timeout(settings) / 2


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for these settings (``app.conf.update(celery_config(s))``)."""
    # Imported here: reading results_ttl (vtrack status) must not load kombu and Celery.
    from kombu import Queue

    from config.beat import beat_schedule

    visibility_timeout_s = visibility_timeout(settings)
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        # JSON only: pickle in a message is remote code execution for whoever reaches Redis.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Idempotent tasks are acknowledged after they finish and re-queued if their worker
        # dies; tasks that are not idempotent opt out in their own definition.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A task running when the worker loses Redis runs on: its result is stored when
        # Redis is back (tasks/redis_clients.py); cancelling it would only run it again.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Celery's consumer, made to survive a second close of a lost Redis connection.
        "worker_consumer": "tasks.celery_app:VtrackConsumer",
        # A chord's error callback (job_failed) goes to its body alone: the body fails once,
        # with the failed header task's own error inside (job_failed unwraps it). On the
        # header too, a job would be marked failed, and logged, once per failed task more.
        "task_allow_error_cb_on_chord_header": False,
        # One message at a time per process: render tasks are long, prefetching starves peers.
        "worker_prefetch_multiplier": 1,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": ANNOTATE_QUEUE,
        "task_routes": TASK_ROUTES,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        # Results must outlive the longest job, or a waiting caller finds nothing.
        "result_expires": results_ttl(settings),
        "result_extended": True,
        "task_track_started": True,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout_s,
            # Workers look for messages whose visibility timeout has passed every few
            # seconds (kombu's default is every 100 s), so a dead worker's tasks come back
            # soon after the timeout.
            "unacked_restore_interval": min(10, max(1, visibility_timeout_s // 3)),
            "unacked_restore_throttle": 1,
            # The lock one worker takes to look for them. kombu's default expiry is five
            # minutes: a worker killed while it held the lock (a few milliseconds every
            # few seconds) kept every other worker from restoring a dead worker's tasks for
            # that long. The look itself takes milliseconds; two workers restoring at once
            # after an early expiry are harmless (each message is moved in a transaction).
            "unacked_mutex_expire": UNACKED_LOCK_SECONDS,
        },
        # sentinel:// URLs add the master's name and the Sentinels' own options to both
        # (tasks/celery_app.py: they are Redis client options, not configuration).
        "result_backend_transport_options": {"visibility_timeout": visibility_timeout_s},
        "broker_connection_retry_on_startup": True,
        # Events for Flower: task names, states and progress.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        # Scheduled scans (config/beat.py); empty when VTRACK_SCAN_SOURCES is unset.
        "beat_schedule": beat_schedule(settings),
    }
