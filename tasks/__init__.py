"""The Celery side of vtrack: the app, thin tasks, the canvas, the Python API and the CLI."""

from tasks import jobs  # noqa: F401  (registers the tasks wherever the app is imported)
from tasks.celery_app import app

__all__ = ["app"]
