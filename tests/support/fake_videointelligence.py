"""A Video Intelligence API server for tests: real gRPC on 127.0.0.1, scripted behaviour.

It implements the two RPCs vtrack's gcp backend uses, with the client library's own
protobuf messages, so the real ``VideoIntelligenceServiceClient`` talks to it unchanged
over an insecure channel (``VTRACK_VI_ENDPOINT=127.0.0.1:PORT``):

* ``google.cloud.videointelligence.v1.VideoIntelligenceService/AnnotateVideo`` starts an
  operation and answers with its name, as the API does;
* ``google.longrunning.Operations/GetOperation`` reports it. Each successful read counts as
  one poll: the progress in the metadata (``AnnotateVideoProgress``) rises with the polls
  and the operation is done at the ``polls_until_done``-th. On completion the annotation is
  written to the request's ``output_uri`` (through vtrack's storage, so the gs:// URI lands
  in the storage emulator named by ``STORAGE_EMULATOR_HOST``) in the JSON style chosen,
  and the operation's ``response`` carries an ``AnnotateVideoResponse``; the full results
  are in the response only when the request had no ``output_uri``, so a client that
  ignored the file would see no objects.

What the fake "finds" is a :class:`VideoAnnotation` (``annotation``), or, to return what
the real API returns untouched by vtrack's writer, an ``AnnotateVideoResponse`` JSON text
(``response_json``, e.g. from :mod:`tests.support.api_output`: boxes past the frame and
all), which only the client library reads.

A :class:`Scenario` scripts the failures: transient errors for the first calls, a
permanent error on every submission, an operation that finishes with an error status.

In a test process::

    with running_fake_videointelligence(Scenario(polls_until_done=3), annotation) as fake:
        client = insecure_client(fake.endpoint)

As a separate process (for tests whose workers run in other processes)::

    python -m tests.support.fake_videointelligence --port 0 --scenario transient-submit
    # prints "READY 127.0.0.1:PORT" once it serves; stops on SIGTERM or SIGINT

or :func:`fake_videointelligence_process`, which does that and yields the endpoint.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from google.cloud import videointelligence_v1 as vi
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, json_format, timestamp_pb2
from google.rpc import status_pb2

from workers.annotations.model import (
    Entity,
    NormalizedBox,
    ObjectTrack,
    Segment,
    TrackedFrame,
    VideoAnnotation,
)
from workers.annotations.vi_json import dump_annotation_json, parse_annotation_json

VI_SERVICE = "google.cloud.videointelligence.v1.VideoIntelligenceService"
OPERATIONS_SERVICE = "google.longrunning.Operations"

AnnotateVideoRequestPb = vi.AnnotateVideoRequest.pb()
AnnotateVideoResponsePb = vi.AnnotateVideoResponse.pb()
AnnotateVideoProgressPb = vi.AnnotateVideoProgress.pb()

# The messages the real API sends in these situations (as seen in its documentation and
# reported issues), so tests check the text a user would read.
STREAM_REMOVED = (grpc.StatusCode.UNAVAILABLE, "Stream removed")
QUOTA_EXCEEDED = (
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute'",
)
POLL_TIMEOUT = (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
INVALID_ARGUMENT = (
    grpc.StatusCode.INVALID_ARGUMENT,
    "Request contains an invalid argument.",
)
PERMISSION_DENIED = (
    grpc.StatusCode.PERMISSION_DENIED,
    "The caller does not have permission",
)
UNDECODABLE_VIDEO = (
    grpc.StatusCode.INVALID_ARGUMENT,
    "Unable to process the input video: the file is not a valid video",
)

JSON_STYLES = ("snake", "camel", "proto3")
_DURATION_KEYS = frozenset(
    {"time_offset", "timeOffset", "start_time_offset", "startTimeOffset"}
    | {"end_time_offset", "endTimeOffset"}
)

ErrorSpec = tuple[grpc.StatusCode, str]


@dataclass(frozen=True)
class Scenario:
    """How the fake behaves.

    ``submit_errors`` / ``poll_errors`` fail the first AnnotateVideo / GetOperation calls, one
    spec per call, then calls succeed. ``always_submit_error`` fails every submission (a
    permanent refusal). ``operation_error`` makes each operation finish with that status
    instead of results. ``json_style`` is how the output file is written: ``snake``
    (proto field names, ``{seconds, nanos}`` durations, zero values omitted: the files the
    API writes), ``camel`` (the same with camelCase names) or ``proto3`` (camelCase and
    ``"1.5s"`` durations, as the REST API answers).
    """

    polls_until_done: int = 3
    submit_errors: tuple[ErrorSpec, ...] = ()
    poll_errors: tuple[ErrorSpec, ...] = ()
    always_submit_error: ErrorSpec | None = None
    operation_error: ErrorSpec | None = None
    json_style: str = "snake"

    def __post_init__(self) -> None:
        if self.polls_until_done < 1:
            raise ValueError("polls_until_done must be at least 1")
        if self.json_style not in JSON_STYLES:
            raise ValueError(f"json_style must be one of {JSON_STYLES}")


def _scenarios(polls: int, failures: int) -> dict[str, Scenario]:
    def cycle(*specs: ErrorSpec) -> tuple[ErrorSpec, ...]:
        return tuple(itertools.islice(itertools.cycle(specs), failures))

    return {
        "done-after-polls": Scenario(polls_until_done=polls),
        "transient-submit": Scenario(
            polls_until_done=polls, submit_errors=cycle(STREAM_REMOVED, QUOTA_EXCEEDED)
        ),
        "transient-poll": Scenario(
            polls_until_done=polls, poll_errors=cycle(STREAM_REMOVED, POLL_TIMEOUT)
        ),
        "invalid-argument": Scenario(always_submit_error=INVALID_ARGUMENT),
        "permission-denied": Scenario(always_submit_error=PERMISSION_DENIED),
        "operation-error": Scenario(polls_until_done=polls, operation_error=UNDECODABLE_VIDEO),
    }


SCENARIO_NAMES = tuple(_scenarios(1, 0))


def named_scenario(name: str, *, polls: int = 3, failures: int = 2) -> Scenario:
    """A scenario of the command line; ``failures`` is how many calls fail before success."""
    scenarios = _scenarios(polls, failures)
    if name not in scenarios:
        raise ValueError(f"unknown scenario {name!r}; choose one of {sorted(scenarios)}")
    return scenarios[name]


def sample_annotation() -> VideoAnnotation:
    """A dog crossing the frame over 9 s (fits the 9.6 s sam2_01_dog.mp4), and a brief ball."""
    dog_frames = tuple(
        TrackedFrame(
            time=round(0.5 + i * 0.9, 3),
            box=NormalizedBox(0.1 + i * 0.04, 0.3, 0.4 + i * 0.04, 0.8),
        )
        for i in range(10)
    )
    ball_frames = tuple(
        TrackedFrame(time=2.0 + i * 0.25, box=NormalizedBox(0.6, 0.6, 0.7, 0.7)) for i in range(3)
    )
    return VideoAnnotation(
        input_uri="",
        objects=(
            ObjectTrack(
                entity=Entity("/m/0bt9lr", "dog", "en-US"),
                confidence=0.91,
                segment=Segment(0.5, 8.6),
                frames=dog_frames,
            ),
            ObjectTrack(
                entity=Entity("/m/018xm", "ball", "en-US"),
                confidence=0.55,
                segment=Segment(2.0, 2.5),
                frames=ball_frames,
            ),
        ),
        segment=Segment(0.0, 9.6),
    )


def api_input_uri(gcs_uri: str) -> str:
    """The API reports ``gs://bucket/name`` as ``/bucket/name``."""
    return "/" + gcs_uri.removeprefix("gs://")


def response_message(annotation: VideoAnnotation, input_uri: str) -> Any:
    """``annotation`` as an ``AnnotateVideoResponse`` protobuf for the video ``input_uri``."""
    response = vi.AnnotateVideoResponse.from_json(
        dump_annotation_json(replace(annotation, input_uri=input_uri))
    )
    return vi.AnnotateVideoResponse.pb(response)


def raw_response_message(response_json: str, input_uri: str) -> Any:
    """An ``AnnotateVideoResponse`` JSON text, read by the client library alone, for ``input_uri``.

    Nothing of vtrack touches it: what the API found (boxes past the frame, inverted
    boxes...) reaches the output file as it is.
    """
    response = vi.AnnotateVideoResponse.pb(
        vi.AnnotateVideoResponse.from_json(response_json, ignore_unknown_fields=True)
    )
    for result in response.annotation_results:
        result.input_uri = input_uri
    return response


def render_output_json(response: Any, style: str) -> str:
    """The output file's text for ``response`` in ``style`` (see :class:`Scenario`)."""
    if style == "proto3":
        return json_format.MessageToJson(response)
    document = json_format.MessageToDict(response, preserving_proto_field_name=style == "snake")
    return json.dumps(_durations_as_objects(document), indent=1)


def _durations_as_objects(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _durations_as_objects(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_durations_as_objects(item, key) for item in value]
    if key in _DURATION_KEYS and isinstance(value, str) and value.endswith("s"):
        whole, _, fraction = value[:-1].partition(".")
        seconds, nanos = int(whole), int((fraction + "000000000")[:9])
        # Zero parts are left out, as the API's own files do.
        return {name: number for name, number in (("seconds", seconds), ("nanos", nanos)) if number}
    return value


@dataclass
class _FakeOperation:
    name: str
    request: Any  # AnnotateVideoRequest protobuf
    started: timestamp_pb2.Timestamp
    polls: int = 0
    done: bool = False
    error: status_pb2.Status | None = None
    response: Any = None


OutputWriter = Callable[[str, bytes], None]


def storage_writer() -> OutputWriter:
    """Writes through vtrack's storage (gs:// goes to ``STORAGE_EMULATOR_HOST``)."""
    from workers.storage import open_storage

    storage = open_storage([])

    def write(uri: str, data: bytes) -> None:
        # Without the emulator the write would go to real Cloud Storage: never from a test.
        if uri.startswith("gs://") and not os.environ.get("STORAGE_EMULATOR_HOST"):
            raise RuntimeError("STORAGE_EMULATOR_HOST is not set")
        storage.write_bytes(uri, data, "application/json")

    return write


@dataclass
class FakeVideoIntelligence:
    """The servicer and its state; :meth:`start` serves it on 127.0.0.1."""

    scenario: Scenario = field(default_factory=Scenario)
    annotation: VideoAnnotation = field(default_factory=sample_annotation)
    # An AnnotateVideoResponse as JSON text: when set, returned instead of ``annotation``.
    response_json: str | None = None
    write_output: OutputWriter | None = None
    port: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    requests: list[Any] = field(default_factory=list)
    # time.monotonic() of each GetOperation that was answered (not failed by the scenario).
    answered_polls: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._operations: dict[str, _FakeOperation] = {}
        self._ids = itertools.count(1)
        self._server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_scenario(self, scenario: Scenario) -> None:
        """Script the next calls; counts of failed calls start again from zero."""
        with self._lock:
            self.scenario = scenario
            self.calls.clear()
            self.answered_polls.clear()

    def operation_names(self) -> list[str]:
        with self._lock:
            return list(self._operations)

    # --- serving ----------------------------------------------------------------------

    def start(self) -> FakeVideoIntelligence:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handlers = {
            VI_SERVICE: {
                "AnnotateVideo": grpc.unary_unary_rpc_method_handler(
                    self.annotate_video,
                    request_deserializer=AnnotateVideoRequestPb.FromString,
                    response_serializer=operations_pb2.Operation.SerializeToString,
                )
            },
            OPERATIONS_SERVICE: {
                "GetOperation": grpc.unary_unary_rpc_method_handler(
                    self.get_operation,
                    request_deserializer=operations_pb2.GetOperationRequest.FromString,
                    response_serializer=operations_pb2.Operation.SerializeToString,
                )
            },
        }
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(name, table) for name, table in handlers.items()]
        )
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        if not self.port:
            raise RuntimeError("could not bind the fake Video Intelligence server")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    # --- RPCs -------------------------------------------------------------------------

    def annotate_video(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.calls["AnnotateVideo"] += 1
            attempt = self.calls["AnnotateVideo"]
            self.requests.append(request)
            scenario = self.scenario
        failure = scenario.always_submit_error or _scripted(scenario.submit_errors, attempt)
        if failure is not None:
            context.abort(*failure)
        problem = _request_problem(request)
        if problem:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        location = request.location_id or "us-east1"
        started = timestamp_pb2.Timestamp()
        started.GetCurrentTime()
        with self._lock:
            name = f"projects/424242/locations/{location}/operations/{next(self._ids)}"
            operation = _FakeOperation(name=name, request=request, started=started)
            self._operations[name] = operation
            return self._message(operation)

    def get_operation(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.calls["GetOperation"] += 1
            attempt = self.calls["GetOperation"]
            scenario = self.scenario
            operation = self._operations.get(request.name)
        failure = _scripted(scenario.poll_errors, attempt)
        if failure is not None:
            context.abort(*failure)
        if operation is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Operation {request.name} not found")
        with self._lock:
            self.answered_polls.append(time.monotonic())
            if not operation.done:
                operation.polls += 1
                if operation.polls >= scenario.polls_until_done:
                    self._finish(operation, scenario)
            return self._message(operation)

    # --- state ------------------------------------------------------------------------

    def _finish(self, operation: _FakeOperation, scenario: Scenario) -> None:
        operation.done = True
        if scenario.operation_error is not None:
            code, message = scenario.operation_error
            operation.error = status_pb2.Status(code=code.value[0], message=message)
            return
        input_uri = api_input_uri(operation.request.input_uri)
        if self.response_json is not None:
            full = raw_response_message(self.response_json, input_uri)
        else:
            full = response_message(self.annotation, input_uri)
        output_uri = operation.request.output_uri
        if not output_uri:
            operation.response = full
            return
        text = render_output_json(full, scenario.json_style)
        try:
            writer = self.write_output or storage_writer()
            writer(output_uri, text.encode())
        except Exception as error:  # the real API reports an unwritable output as the op's error
            operation.error = status_pb2.Status(
                code=grpc.StatusCode.PERMISSION_DENIED.value[0],
                message=f"Cannot write to output URI {output_uri}: {error}",
            )
            return
        # With an output_uri the results are in the file; the response names the video only.
        operation.response = AnnotateVideoResponsePb(
            annotation_results=[vi.VideoAnnotationResults.pb()(input_uri=input_uri)]
        )

    def _message(self, operation: _FakeOperation) -> operations_pb2.Operation:
        percent = 100 if operation.done else operation.polls * 100 // self.scenario.polls_until_done
        updated = timestamp_pb2.Timestamp()
        updated.GetCurrentTime()
        progress = AnnotateVideoProgressPb(
            annotation_progress=[
                vi.VideoAnnotationProgress.pb()(
                    input_uri=api_input_uri(operation.request.input_uri),
                    progress_percent=percent,
                    start_time=operation.started,
                    update_time=updated,
                    feature=vi.Feature.OBJECT_TRACKING,
                )
            ]
        )
        message = operations_pb2.Operation(name=operation.name, done=operation.done)
        message.metadata.Pack(progress)
        if operation.error is not None:
            message.error.CopyFrom(operation.error)
        elif operation.response is not None:
            packed = any_pb2.Any()
            packed.Pack(operation.response)
            message.response.CopyFrom(packed)
        return message


def _scripted(errors: tuple[ErrorSpec, ...], attempt: int) -> ErrorSpec | None:
    return errors[attempt - 1] if attempt <= len(errors) else None


def _request_problem(request: Any) -> str:
    """What the real API would refuse in this request, or ``""``."""
    if not request.input_uri.startswith("gs://"):
        return "Request contains an invalid argument: input_uri must be a gs:// URI"
    if vi.Feature.OBJECT_TRACKING not in request.features:
        return "Request contains an invalid argument: features"
    if request.output_uri and not request.output_uri.startswith("gs://"):
        return "Request contains an invalid argument: output_uri must be a gs:// URI"
    return ""


@contextmanager
def running_fake_videointelligence(
    scenario: Scenario | None = None,
    annotation: VideoAnnotation | None = None,
    write_output: OutputWriter | None = None,
) -> Iterator[FakeVideoIntelligence]:
    """Serve a fake in this process (gRPC's own threads) for the ``with`` block."""
    fake = FakeVideoIntelligence(
        scenario=scenario or Scenario(),
        annotation=annotation or sample_annotation(),
        write_output=write_output,
    ).start()
    try:
        yield fake
    finally:
        fake.stop()


@contextmanager
def fake_videointelligence_process(
    scenario: str = "done-after-polls",
    *,
    polls: int = 3,
    failures: int = 2,
    json_style: str = "snake",
    annotation_file: Path | None = None,
    env: dict[str, str] | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[str]:
    """Run the fake as a subprocess for the ``with`` block; yields its ``host:port``.

    ``env`` is the subprocess's environment (default: this one); it needs
    ``STORAGE_EMULATOR_HOST`` for gs:// outputs.
    """
    command = [
        sys.executable,
        "-m",
        "tests.support.fake_videointelligence",
        "--port=0",
        f"--scenario={scenario}",
        f"--polls={polls}",
        f"--failures={failures}",
        f"--json-style={json_style}",
    ]
    if annotation_file is not None:
        command.append(f"--annotation-file={annotation_file}")
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        command,
        cwd=root,
        env=env if env is not None else dict(os.environ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = _await_ready(process, startup_timeout)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _await_ready(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    result: list[str] = []
    reader = threading.Thread(
        target=lambda: result.append(process.stdout.readline() if process.stdout else ""),
        daemon=True,
    )
    reader.start()
    reader.join(timeout)
    line = result[0].strip() if result else ""
    if not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"fake Video Intelligence server did not start (got {line!r})")
    return line.removeprefix("READY ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--scenario", choices=SCENARIO_NAMES, default="done-after-polls")
    parser.add_argument("--polls", type=int, default=3, help="polls until an operation is done")
    parser.add_argument("--failures", type=int, default=2, help="failed calls in transient-*")
    parser.add_argument("--json-style", choices=JSON_STYLES, default="snake")
    parser.add_argument(
        "--annotation-file",
        type=Path,
        help="annotation JSON (any API form) to return instead of the built-in sample",
    )
    args = parser.parse_args(argv)
    scenario = replace(
        named_scenario(args.scenario, polls=args.polls, failures=args.failures),
        json_style=args.json_style,
    )
    annotation = sample_annotation()
    if args.annotation_file is not None:
        annotation = parse_annotation_json(
            args.annotation_file.read_bytes(), source=str(args.annotation_file)
        )
    fake = FakeVideoIntelligence(scenario=scenario, annotation=annotation, port=args.port)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    fake.start()
    print(f"READY {fake.endpoint}", flush=True)
    while not stopping.wait(0.5):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
