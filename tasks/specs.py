"""A job's spec from a user's options, with defaults taken from the settings.

Kept apart from :mod:`tasks.api` so that what makes a spec (``vtrack run``, ``submit``)
does not need Celery loaded to do it.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from config.settings import Settings
from workers.errors import InputError, UnsafePathError
from workers.job import JobSpec
from workers.naming import video_stem
from workers.uris import LOCAL_SCHEME, parse_uri

if TYPE_CHECKING:
    from workers.storage import Storage


def default_min_confidence(settings: Settings, backend: str) -> float:
    """``VTRACK_MIN_CONFIDENCE`` when set; otherwise the backend's own scale's default.

    The local backend's confidence is a mean detection score, lower than the cloud API's
    for the same object, so it has its own default (``VTRACK_LOCAL_MIN_CONFIDENCE``).
    """
    if backend == "local" and "min_confidence" not in settings.model_fields_set:
        return settings.local_min_confidence
    return settings.min_confidence


def make_spec(
    video_uri: str,
    *,
    annotations_uri: str | None = None,
    backend: str | None = None,
    min_confidence: float | None = None,
    min_frames: int | None = None,
    animation_format: str | None = None,
    job_id: str | None = None,
    settings: Settings | None = None,
) -> JobSpec:
    """The job spec for a video with these options, defaults taken from ``settings``.

    Without ``settings``, this process's runtime's (``VTRACK_`` variables and ``.env``).
    """
    if settings is None:
        from tasks import runtime

        settings = runtime.current().settings
    # An unsupported scheme is refused here, before anything is queued.
    video_uri = normalized_uri(video_uri)
    if annotations_uri:
        annotations_uri = normalized_uri(annotations_uri)
    chosen_backend = backend or ("file" if annotations_uri else settings.backend)
    if chosen_backend == "file" and not annotations_uri:
        raise InputError("the file backend needs an annotation file (--annotations)")
    confidence = (
        default_min_confidence(settings, chosen_backend)
        if min_confidence is None
        else min_confidence
    )
    if not 0.0 <= confidence <= 1.0:
        raise InputError(f"min confidence must be between 0 and 1, not {confidence}")
    frames = settings.min_frames if min_frames is None else min_frames
    if frames < 1:
        raise InputError(f"min frames must be at least 1, not {frames}")
    return JobSpec(
        job_id=job_id or _new_job_id(),
        video_uri=video_uri,
        backend=chosen_backend,
        output_root=settings.output_root,
        annotation_root=settings.annotation_root,
        min_confidence=confidence,
        min_frames=frames,
        annotations_uri=annotations_uri,
        animation_format=animation_format or settings.animation_format,
        animation_frames=settings.animation_frames,
        animation_frame_ms=settings.animation_frame_ms,
        animation_max_width=settings.animation_max_width,
        summary_max_width=settings.summary_max_width,
        summary_max_height=settings.summary_max_height,
        max_video_bytes=settings.max_video_bytes or None,
        max_video_pixels=settings.max_video_pixels or None,
        max_video_seconds=settings.max_video_seconds or None,
        render_batch_size=settings.render_batch_size,
        submitted_at=time.time(),
        output_stem=video_stem(video_uri, settings.input_root_list()),
    )


def refuse_unusable_inputs(spec: JobSpec, settings: Settings, storage: Storage) -> None:
    """Refuse, before any job is made, local inputs that can never work: a missing file, a
    folder, a path outside ``VTRACK_INPUT_ROOTS`` (the message names the setting and its
    value). Unsupported schemes were refused by :func:`make_spec` already.

    Checked where the job is submitted, with this process's settings: the workers check
    again (they may run elsewhere, and the file may go before they read it). ``gs://``
    objects are not looked up here (the submitting machine may have no bucket access);
    what only reading the file tells (a text file named ``.mp4``) fails in the worker.
    """
    for uri in filter(None, (spec.video_uri, spec.annotations_uri)):
        if parse_uri(uri).scheme != LOCAL_SCHEME:
            continue
        try:
            storage.stat(uri)  # missing, a folder, or outside the allowed folders
        except UnsafePathError as exc:
            raise UnsafePathError(outside_input_roots(uri, settings)) from exc


def outside_input_roots(uri: str, settings: Settings) -> str:
    """One line: ``uri`` lies outside ``VTRACK_INPUT_ROOTS``, its value, and the fix."""
    path = parse_uri(uri).path
    real = os.path.realpath(path)
    where = path if real == path else f"{path} (which resolves to {real})"
    roots = settings.input_root_list()
    shown = ", ".join(
        root if os.path.realpath(root) == root else f"{root} = {os.path.realpath(root)}"
        for root in roots
    )
    return (
        f"{where} is outside VTRACK_INPUT_ROOTS ({shown or 'empty'}): add its folder to "
        f"VTRACK_INPUT_ROOTS (comma-separated), e.g. "
        f"VTRACK_INPUT_ROOTS={','.join([*roots, os.path.dirname(real)])}"
    )


def normalized_uri(uri: str) -> str:
    """``uri`` as stored in a job: local paths absolute, with no ``.`` or ``..`` left."""
    parsed = parse_uri(uri)
    if parsed.scheme == LOCAL_SCHEME:
        return os.path.normpath(parsed.path)
    return str(parsed)


def _new_job_id() -> str:
    from tasks.job_ids import new_job_id  # time-ordered: a lost job told from an unknown id

    return new_job_id()
