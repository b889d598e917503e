"""Annotation backends: the interface (:mod:`workers.annotators.base`), the ``file`` and
``gcp`` backends. Which name builds which backend is :mod:`tasks.backends`."""
