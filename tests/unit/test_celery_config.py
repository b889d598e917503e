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


def test_annotate_is_not_acknowledged_late() -> None:
    """Starting a cloud operation twice would be billed twice."""
    app.loader.import_default_modules()
    assert app.tasks["vtrack.annotate"].acks_late is False
    assert app.tasks["vtrack.render_object"].acks_late is True
