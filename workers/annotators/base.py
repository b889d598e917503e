"""What an annotation backend is: something that starts an operation and can be asked about it.

Every backend has the shape of the Video Intelligence API's long-running operation, so
the Celery pipeline treats them alike: ``annotate`` calls :meth:`Annotator.start` and
returns at once; ``poll`` calls :meth:`Annotator.check` and re-queues itself with a
countdown until the operation is done. :class:`Operation` and :class:`OperationStatus`
are small and JSON-friendly so they can travel in task messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from workers.annotations.model import VideoAnnotation


@dataclass(frozen=True, slots=True)
class AnnotateRequest:
    """What to annotate and where the backend should leave its annotation JSON."""

    video_uri: str
    output_uri: str
    annotations_uri: str | None = None  # an existing annotation file (the ``file`` backend)
    job_id: str = ""  # the job this is for: backends that report progress report it there

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_uri": self.video_uri,
            "output_uri": self.output_uri,
            "annotations_uri": self.annotations_uri,
            "job_id": self.job_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnnotateRequest:
        return cls(
            video_uri=data["video_uri"],
            output_uri=data["output_uri"],
            annotations_uri=data.get("annotations_uri"),
            job_id=data.get("job_id", ""),
        )


@dataclass(frozen=True, slots=True)
class Operation:
    """A started annotation: which backend runs it and the name it goes by there."""

    backend: str
    name: str
    request: AnnotateRequest
    data: dict[str, Any] = field(default_factory=dict)  # small JSON-able backend state

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "name": self.name,
            "request": self.request.to_dict(),
            "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Operation:
        return cls(
            backend=data["backend"],
            name=data["name"],
            request=AnnotateRequest.from_dict(data["request"]),
            data=dict(data.get("data") or {}),
        )


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
