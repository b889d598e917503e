"""Processing code that runs inside vtrack's workers.

Nothing here imports Celery: every function can be called and tested on its own.
"""
