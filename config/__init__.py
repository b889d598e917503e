"""vtrack's configuration: one settings object and the Celery configuration built from it."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
