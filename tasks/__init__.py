"""The Celery side of vtrack: the app, thin tasks, the canvas, and the job API front ends use.

``tasks.app`` (what ``celery -A tasks`` finds) is loaded on first use with every task
registered; importing another module of the package (the API) does not load
Celery and the processing code it does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

    app: Celery

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from tasks import jobs  # noqa: F401  (registers the tasks)
        from tasks.celery_app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
