"""vtrack's front ends: the ``vtrack`` CLI, the web app, the VI server, the listener,
the watcher and the local cluster (docs/architecture.md).

Rule (tests/unit/test_import_rules.py): a front end uses the job API (``tasks.api`` and the
records it returns) and ``workers/`` for evaluation and export, never the task modules or
the Celery app; nothing imports a front end.
"""
