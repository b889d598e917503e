"""The ``file`` backend: annotations that already exist, in any of the API's JSON forms.

Useful to re-render a video the cloud API annotated before, or to test the pipeline
without a detector. Its operation is done as soon as it starts.
"""

from __future__ import annotations

from workers.annotations.vi_json import parse_annotation_json
from workers.annotators.base import AnnotateRequest, Operation, OperationStatus
from workers.errors import InputError
from workers.storage import Storage


class FileAnnotator:
    name = "file"

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def start(self, request: AnnotateRequest) -> Operation:
        if not request.annotations_uri:
            raise InputError("the file backend needs an annotation file (--annotations)")
        return Operation(backend=self.name, name=request.annotations_uri, request=request)

    def check(self, operation: Operation) -> OperationStatus:
        source = operation.name
        annotation = parse_annotation_json(
            self._storage.read_bytes(source), source=source, input_uri=operation.request.video_uri
        )
        return OperationStatus(done=True, progress_percent=100.0, annotation=annotation)
