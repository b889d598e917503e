"""The Celery configuration the workers run with."""

from __future__ import annotations

from config.celery import QUEUES, TASK_ROUTES, celery_config
from config.settings import Settings
from tasks import app


def test_every_registered_task_has_an_explicit_route() -> None:
    app.loader.import_default_modules()
    ours = {name for name in app.tasks if name.startswith("vtrack.")}
    assert ours, "no vtrack task registered"
    assert ours == set(TASK_ROUTES), f"unrouted: {ours - set(TASK_ROUTES)}"
    assert {route["queue"] for route in TASK_ROUTES.values()} <= set(QUEUES)


def test_only_json_is_accepted() -> None:
    conf = celery_config(Settings())
    assert conf["accept_content"] == ["json"]
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert app.conf.accept_content == ["json"]


def test_limits_are_consistent() -> None:
    settings = Settings(task_soft_time_limit=100, task_time_limit=120, job_timeout=3600)
    conf = celery_config(settings)
    assert conf["task_soft_time_limit"] < conf["task_time_limit"]
    assert conf["broker_transport_options"]["visibility_timeout"] > conf["task_time_limit"]
    assert conf["result_expires"] > settings.job_timeout
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]


def test_a_worker_killed_holding_the_restore_lock_delays_restores_by_seconds() -> None:
    """kombu keeps its lock on restoring unacknowledged messages five minutes by default:
    a worker killed while it held it stopped every worker from taking a dead worker's tasks
    back for that long (a render chord stuck in the middle of a test)."""
    for visibility in (10, 600, 7200):
        options = celery_config(Settings(broker_visibility_timeout=visibility))[
            "broker_transport_options"
        ]
        assert options["unacked_mutex_expire"] <= 30
        assert options["unacked_restore_interval"] <= 10


def test_annotate_is_not_acknowledged_late() -> None:
    """Starting a cloud operation twice would be billed twice."""
    app.loader.import_default_modules()
    assert app.tasks["vtrack.annotate"].acks_late is False
    assert app.tasks["vtrack.render_batch"].acks_late is True


def test_render_workers_replace_their_processes() -> None:
    """Only a worker that consumes the render queue gets worker_max_tasks_per_child."""
    from types import SimpleNamespace

    from config.settings import get_settings
    from tasks.celery_app import limit_render_worker_children

    render = SimpleNamespace(worker_max_tasks_per_child=None)
    limit_render_worker_children(conf=render, options={"queues": "annotate,render"})
    assert render.worker_max_tasks_per_child == get_settings().render_max_tasks_per_child

    every_queue = SimpleNamespace(worker_max_tasks_per_child=None)  # started without -Q
    limit_render_worker_children(conf=every_queue, options={"queues": None})
    assert every_queue.worker_max_tasks_per_child == get_settings().render_max_tasks_per_child

    annotate_only = SimpleNamespace(worker_max_tasks_per_child=None)
    limit_render_worker_children(conf=annotate_only, options={"queues": ["annotate"]})
    assert annotate_only.worker_max_tasks_per_child is None

    chosen = SimpleNamespace(worker_max_tasks_per_child=7)  # --max-tasks-per-child wins
    limit_render_worker_children(conf=chosen, options={"queues": "render"})
    assert chosen.worker_max_tasks_per_child == 7


def test_worker_processes_filling_the_cores_decode_on_one_thread_each() -> None:
    from tasks.celery_app import worker_decode_threads

    assert worker_decode_threads(0, processes=2, cores=2) == 1
    assert worker_decode_threads(0, processes=8, cores=2) == 1
    assert worker_decode_threads(0, processes=1, cores=2) is None  # a core left for FFmpeg
    assert worker_decode_threads(0, processes=None, cores=2) is None  # solo or threads pool
    assert worker_decode_threads(3, processes=2, cores=2) == 3  # VTRACK_DECODE_THREADS wins
