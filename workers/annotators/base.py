"""What an annotation backend is: something that starts an operation and can be asked about it.

Every backend has the shape of the Video Intelligence API's long-running operation, so
the Celery pipeline treats them alike: ``annotate`` calls :meth:`Annotator.start` and
returns at once; ``poll`` calls :meth:`Annotator.check` and re-queues itself with a
countdown until the operation is done. :class:`Operation` and :class:`AnnotateRequest`
are messages (pydantic models, see docs/messages.md) that travel between tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import Field

from workers.annotations.model import VideoAnnotation
from workers.messages import Message


class AnnotateRequest(Message):
    """What to annotate and where the backend should leave its annotation JSON."""

    video_uri: str
    output_uri: str
    annotations_uri: str | None = None  # an existing annotation file (the ``file`` backend)
    job_id: str = ""  # the job this is for: backends that report progress report it there


class Operation(Message):
    """A started annotation: which backend runs it and the name it goes by there."""

    backend: str
    name: str
    request: AnnotateRequest
    data: dict[str, Any] = Field(default_factory=dict)  # small JSON-able backend state


@dataclass(frozen=True, slots=True)
class OperationStatus:
    """How far an operation is; ``annotation`` is set once it is done and succeeded."""

    done: bool
    progress_percent: float | None = None
    annotation: VideoAnnotation | None = None
    detail: str | None = None  # what is happening, for users ("tracking: 2 of 4 segments done")


class Annotator(Protocol):
    """A source of object-tracking annotations.

    ``start`` must return quickly (seconds): long work runs elsewhere and is observed
    with ``check``. ``check`` raises :class:`workers.errors.BackendError` when the
    operation failed for good and :class:`workers.errors.TransientBackendError` when
    asking again later may succeed.
    """

    name: str

    def start(self, request: AnnotateRequest) -> Operation: ...

    def check(self, operation: Operation) -> OperationStatus: ...
