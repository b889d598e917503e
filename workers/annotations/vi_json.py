"""Reading and writing the Video Intelligence API's object-tracking JSON.

This is the only place that knows the API's JSON dialects; everything else in vtrack
handles :class:`~workers.annotations.model.VideoAnnotation`.

The reader, :func:`parse_annotation_json`, accepts every form the API's results reach
us in:

* an ``AnnotateVideoResponse`` (``{"annotationResults": [...]}``), which is also what the
  API writes to the request's ``output_uri``;
* a finished long-running operation (``{"name": ..., "metadata": {...}, "done": true,
  "response": {"@type": ".../AnnotateVideoResponse", "annotationResults": [...]}}``);
* a bare list of ``VideoAnnotationResults``, or a single one on its own.

Field names may be camelCase (proto3 JSON, the REST API) or snake_case (the original
proto names, used by the files the API writes to ``output_uri``). Durations may be
``"1.5s"`` strings, ``{"seconds": ..., "nanos": ...}`` objects or plain numbers of
seconds. As in proto3 JSON, a missing field or ``null`` means the zero value: a box
without ``left`` starts at 0, a frame without ``timeOffset`` is at 0 s, a missing
confidence is 0, a missing ``entity.languageCode`` is ``""``. Fields vtrack does not use
(``version``, the other feature's annotations, ``@type`` of the metadata...) are ignored.

How the work is shared: the operation envelope and the bare-list forms are unwrapped by
hand; each ``VideoAnnotationResults`` becomes the API's own message
(``google.cloud.videointelligence_v1.VideoAnnotationResults``, built from the proto field
names) which gives the field names, the nesting, the zero values and the float32 storage of
the API; and :func:`_annotation` is the one place where those messages become the
annotation model. By hand stays only what the library does not do: durations as
``{seconds, nanos}`` objects with string seconds or as plain numbers, each value's type
checked where its path is known, NaN and infinity refused, times and confidences in range.

Boxes are clipped into the frame, as real outputs of the API carry coordinates past every
edge (from about -0.6 to 1.3). A box that is empty once clipped (wholly outside the frame,
or inverted: right <= left or bottom <= top) drops that one frame, not its object. The
annotation counts both in ``boxes_clipped`` and ``boxes_dropped``.

Only what cannot be a box or a time is refused: :class:`~workers.errors.AnnotationFormatError`
names the file and the JSON path of the offending field, in the spelling the file uses,
e.g. ``response.annotationResults[0].objectAnnotations[3].frames[12]
.normalizedBoundingBox.left: expected a finite number, found nan``.

The writer, :func:`dump_annotation_json`, writes the camelCase ``AnnotateVideoResponse``
form that the API's own client library reads back (``AnnotateVideoResponse.from_json``).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import numpy
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from workers.annotations.model import (
    Entity,
    NormalizedBox,
    ObjectTrack,
    Segment,
    TrackedFrame,
    VideoAnnotation,
    fit_to_frame,
)
from workers.errors import AnnotationFormatError, NotFoundError

_NANOS_PER_SECOND = 1_000_000_000
_RESPONSE_TYPE_SUFFIX = ".AnnotateVideoResponse"
_DURATION_TEXT = re.compile(r"(-)?(\d+)(?:\.(\d+))?s")
_INT64_TEXT = re.compile(r"-?\d+")
_ENVELOPE_KEYS = frozenset({"name", "metadata", "done", "response", "error"})

# google.rpc.Code names, so an operation's error reads as the API documents it.
_RPC_CODE_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


# --- Public API ------------------------------------------------------------------------


def parse_annotation_json(
    text: str | bytes, source: str, input_uri: str | None = None
) -> VideoAnnotation:
    """The object tracks in an annotation JSON document, as one :class:`VideoAnnotation`.

    ``source`` names the document (a path or URI) in error messages. ``input_uri`` is the
    video the annotation is for: when given it becomes the annotation's ``input_uri``
    (the API rewrites ``gs://bucket/name`` as ``/bucket/name``, so the caller's spelling
    is the useful one); otherwise the document's ``inputUri`` is used.

    Several annotation results for the same video (one per requested segment) are merged
    into one annotation: their objects are concatenated in document order and the
    annotation's segment spans all of theirs. Results for different videos are an error.
    A result without objects is valid (a video with nothing to track); a document with no
    result at all is not.

    Raises :class:`AnnotationFormatError` naming ``source`` and the JSON path of the field
    at fault.
    """
    try:
        document = _decode(text)
        results, results_path = _locate_results(document)
        paths = [_join(results_path, index) for index in range(len(results))]
        messages = [
            _result_message(result, path) for result, path in zip(results, paths, strict=True)
        ]
        return _annotation(messages, results, paths, input_uri)
    except _FieldError as error:
        raise AnnotationFormatError(source, error.path, error.problem) from None


def read_annotation_file(
    path: str | os.PathLike[str], input_uri: str | None = None
) -> VideoAnnotation:
    """Parse the local annotation file at ``path`` (see :func:`parse_annotation_json`)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such annotation file") from None
    except OSError as error:
        raise AnnotationFormatError(str(path), "", f"cannot be read: {error.strerror}") from None
    return parse_annotation_json(data, str(path), input_uri)


def dump_annotation_json(annotation: VideoAnnotation) -> str:
    """``annotation`` as a camelCase ``AnnotateVideoResponse`` JSON document.

    The choices, all so that the API's client library reads the file back unchanged:

    * One annotation result holding ``inputUri``, the video ``segment`` when known and
      every object in ``objectAnnotations``.
    * Durations are ``"<seconds>s"`` strings rounded to the nanosecond, with 0, 3, 6 or 9
      fractional digits as proto3 JSON writes them: ``"0s"``, ``"1.500s"``,
      ``"0.033366700s"``, ``"3.000000001s"``. Rounding to whole nanoseconds removes float
      noise (0.1 + 0.2 is written ``"0.300s"``) and reading gives back the time to within
      half a nanosecond.
    * Zero values are written, not omitted (``"left": 0.0``, ``"timeOffset": "0s"``), so
      the file reads plainly; readers treat both alike.
    * In the API's message, an object's ``segment`` and ``trackId`` are alternatives (a
      proto ``oneof``, ``track_info``). The batch API (``annotate_video``, whose response
      this file is) fills ``segment`` with the object's first and last time and never
      ``trackId``, which only streaming annotation fills. So every object is written with
      its ``segment`` and without ``trackId``, as client code written for the batch API
      reads it; a tracker's own id is not written (objects are told apart by their place
      in ``objectAnnotations``). Reading still accepts either form.
    * Indented by 2 spaces, non-ASCII characters kept as they are (encode as UTF-8), and
      a final newline.

    Raises :class:`ValueError` for a time or coordinate that is NaN or infinite, which
    JSON cannot hold.
    """
    result: dict[str, Any] = {"inputUri": annotation.input_uri}
    if annotation.segment is not None:
        result["segment"] = _segment_json(annotation.segment)
    result["objectAnnotations"] = [_object_json(track) for track in annotation.objects]
    document = {"annotationResults": [result]}
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# --- Errors and paths ------------------------------------------------------------------


class _FieldError(Exception):
    """A problem at one JSON path; :func:`parse_annotation_json` adds the source."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _join(path: str, step: str | int) -> str:
    """The JSON path of a member (``step`` a key) or an item (``step`` an index) of ``path``."""
    if isinstance(step, int):
        return f"{path}[{step}]"
    return f"{path}.{step}" if path else step


def _describe(value: Any) -> str:
    """What a JSON value is, for "expected X, found Y" messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {json.dumps(shown, ensure_ascii=False)}"
    return f"the number {value!r}"


# --- Decoding and finding the results ---------------------------------------------------


def _decode(text: str | bytes) -> Any:
    """The JSON value in ``text``; bytes may be UTF-8 (with or without BOM), -16 or -32."""
    if isinstance(text, str):
        text = text.removeprefix("\ufeff")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        # Some messages end with "at" already ("Unterminated string starting at").
        joint = " " if error.msg.endswith(" at") else " at "
        raise _FieldError("", f"not JSON: {error.msg}{joint}{where}") from None
    except UnicodeDecodeError as error:
        raise _FieldError("", f"not UTF-8 text: bad byte at offset {error.start}") from None
    except RecursionError:
        raise _FieldError("", "not an annotation document: nested too deeply") from None


def _locate_results(document: Any) -> tuple[list[Any], str]:
    """The list of annotation results in ``document``, and its JSON path."""
    if isinstance(document, list):
        if not document:
            raise _FieldError("", "no annotation results: the document is an empty list")
        return document, ""
    if not isinstance(document, dict):
        raise _FieldError(
            "", f"expected a JSON object or list of annotation results, found {_describe(document)}"
        )
    path = ""
    if _has_field(document, "response") or (document and _ENVELOPE_KEYS.issuperset(document)):
        document, path = _unwrap_operation(document)
    value, results_path = _field(document, "annotationResults", path)
    if value is not None:
        results = _expect_list(value, results_path)
        if not results:
            raise _FieldError(results_path, "no annotation results: the list is empty")
        return results, results_path
    if _has_field(document, "objectAnnotations") or _has_field(document, "inputUri"):
        return [document], path  # a single VideoAnnotationResults
    if path:
        raise _FieldError(path, "no annotation results: the response has no annotationResults")
    keys = ", ".join(sorted(document)[:8]) or "none"
    raise _FieldError(
        "",
        "not an annotation document: expected annotationResults, an operation with a "
        f"response, or a list of annotation results; found keys: {keys}",
    )


def _unwrap_operation(operation: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The ``AnnotateVideoResponse`` inside a finished long-running operation, and its path."""
    error, error_path = _field(operation, "error", "")
    if error is not None and _status_is_error(error):
        raise _FieldError(error_path, f"the operation failed: {_status_text(error, error_path)}")
    response, response_path = _field(operation, "response", "")
    if response is None:
        name, _ = _field(operation, "name", "")
        done, _ = _field(operation, "done", "")
        operation_name = (
            f"the operation {name}" if isinstance(name, str) and name else "the operation"
        )
        if done is True:
            raise _FieldError(response_path, f"{operation_name} is done but holds no response")
        raise _FieldError(
            response_path, f"{operation_name} has not finished (done is not true): no response yet"
        )
    response = _expect_object(response, response_path)
    type_url = response.get("@type")
    if type_url is not None and not str(type_url).endswith(_RESPONSE_TYPE_SUFFIX):
        raise _FieldError(
            _join(response_path, "@type"),
            f"expected an AnnotateVideoResponse, found {_describe(type_url)}",
        )
    return response, response_path


def _status_is_error(status: Any) -> bool:
    """Whether a ``google.rpc.Status`` value reports a failure (code 0 or empty is success)."""
    if not isinstance(status, dict):
        return True
    return bool(status.get("code") or status.get("message"))


def _status_text(status: Any, path: str) -> str:
    """A ``google.rpc.Status`` as ``INVALID_ARGUMENT (code 3): the message``."""
    status = _expect_object(status, path)
    code = status.get("code")
    message = status.get("message") or "no message"
    name = _RPC_CODE_NAMES.get(code) if isinstance(code, int) else None
    if name:
        return f"{name} (code {code}): {message}"
    return f"code {code}: {message}" if code is not None else str(message)


# --- Field access and shapes (the envelope, read by hand) ---------------------------------


@cache
def _snake_case(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


def _has_field(obj: dict[str, Any], camel: str) -> bool:
    return camel in obj or _snake_case(camel) in obj


def _field(obj: dict[str, Any], camel: str, path: str) -> tuple[Any, str]:
    """The value of field ``camel`` (or its snake_case spelling) and its path.

    ``None`` when the field is absent or null, which proto3 JSON reads as the zero
    value. The path uses the spelling found in the document, camelCase when absent.
    """
    if camel in obj:
        return obj[camel], _join(path, camel)
    snake = _snake_case(camel)
    if snake in obj:
        return obj[snake], _join(path, snake)
    return None, _join(path, camel)


def _expect_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _FieldError(path, f"expected an object, found {_describe(value)}")
    return value


def _expect_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _FieldError(path, f"expected a list, found {_describe(value)}")
    return value


def _expect_string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _FieldError(path, f"expected a string, found {_describe(value)}")
    return value


def _expect_number(value: Any, path: str) -> float:
    """A finite JSON number (true/false are not numbers, though Python says they are)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _FieldError(path, f"expected a number, found {_describe(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise _FieldError(path, f"expected a finite number, found {value!r}")
    return number


def _expect_int64(value: Any, path: str) -> int:
    """A proto3 JSON integer: a number without fraction or a string of digits."""
    if isinstance(value, str) and _INT64_TEXT.fullmatch(value):
        return int(value)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and math.isfinite(value) and value == int(value):
        return int(value)
    raise _FieldError(path, f"expected a whole number, found {_describe(value)}")


# --- Durations: the forms the library's messages do not take -------------------------------


def _duration(value: Any, path: str) -> dict[str, int]:
    """A time offset from any of its JSON forms, as the ``Duration`` message's fields.

    Forms: ``"1.5s"`` (any number of fractional digits, rounded to the nanosecond),
    ``{"seconds": 1, "nanos": 500000000}`` (either key may be missing, ``seconds`` may be
    a string), or a plain number of seconds. Negative times are an error: every duration
    in this API is an offset from the start of the video.
    """
    if isinstance(value, str):
        nanos = _duration_text_nanos(value, path)
    elif isinstance(value, dict):
        nanos = _duration_object_nanos(value, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        nanos = round(_expect_number(value, path) * _NANOS_PER_SECOND)
    else:
        raise _FieldError(
            path, f'expected a duration like "1.5s" or {{"seconds": 1}}, found {_describe(value)}'
        )
    if nanos < 0:
        raise _FieldError(path, f"negative time {_format_duration(nanos / _NANOS_PER_SECOND)}")
    seconds, nanos = divmod(nanos, _NANOS_PER_SECOND)
    return {"seconds": seconds, "nanos": nanos}


def _duration_text_nanos(text: str, path: str) -> int:
    match = _DURATION_TEXT.fullmatch(text.strip())
    if match is None:
        raise _FieldError(path, f'expected a duration like "1.5s", found {_describe(text)}')
    sign, whole, fraction = match.groups()
    fraction = fraction or ""
    nanos = int(whole) * _NANOS_PER_SECOND + int(fraction[:9].ljust(9, "0"))
    if len(fraction) > 9 and fraction[9] >= "5":
        nanos += 1  # more precision than proto3 holds: round to the nearest nanosecond
    return -nanos if sign else nanos


def _duration_object_nanos(value: dict[str, Any], path: str) -> int:
    seconds_value, seconds_path = _field(value, "seconds", path)
    nanos_value, nanos_path = _field(value, "nanos", path)
    seconds = 0 if seconds_value is None else _expect_int64(seconds_value, seconds_path)
    nanos = 0 if nanos_value is None else _expect_int64(nanos_value, nanos_path)
    if abs(nanos) >= _NANOS_PER_SECOND:
        raise _FieldError(nanos_path, f"nanos must be below {_NANOS_PER_SECOND}, found {nanos}")
    return seconds * _NANOS_PER_SECOND + nanos


def _format_duration(seconds: float) -> str:
    """``seconds`` as a proto3 JSON duration: ``"0s"``, ``"1.500s"``, ``"0.000001500s"``."""
    if not math.isfinite(seconds):
        raise ValueError(f"cannot write the time {seconds!r} as a duration")
    total = round(seconds * _NANOS_PER_SECOND)
    sign = "-" if total < 0 else ""
    whole, nanos = divmod(abs(total), _NANOS_PER_SECOND)
    if nanos == 0:
        return f"{sign}{whole}s"
    if nanos % 1_000_000 == 0:
        return f"{sign}{whole}.{nanos // 1_000_000:03d}s"
    if nanos % 1_000 == 0:
        return f"{sign}{whole}.{nanos // 1_000:06d}s"
    return f"{sign}{whole}.{nanos:09d}s"


# --- From JSON to the library's messages ----------------------------------------------------

# The fields vtrack reads, per message of the API; the rest (other features' annotations,
# ``version``...) is skipped unread, as the library's ``ignore_unknown_fields`` would.
_READ_FIELDS: dict[str, frozenset[str]] = {
    "VideoAnnotationResults": frozenset({"input_uri", "segment", "object_annotations"}),
    "ObjectTrackingAnnotation": frozenset(
        {"entity", "confidence", "frames", "segment", "track_id"}
    ),
    "Entity": frozenset({"entity_id", "description", "language_code"}),
    "ObjectTrackingFrame": frozenset({"normalized_bounding_box", "time_offset"}),
    "NormalizedBoundingBox": frozenset({"left", "top", "right", "bottom"}),
    "VideoSegment": frozenset({"start_time_offset", "end_time_offset"}),
}
_DURATION_MESSAGE = "google.protobuf.Duration"
_DURATION_KEYS = frozenset({"seconds", "nanos"})

# What a field holds, for the walk below.
_NUMBER, _INTEGER, _STRING, _DURATION, _MESSAGE, _MESSAGES, _OTHER = range(7)
_SCALAR_KINDS = {
    FieldDescriptor.TYPE_FLOAT: _NUMBER,
    FieldDescriptor.TYPE_DOUBLE: _NUMBER,
    FieldDescriptor.TYPE_INT64: _INTEGER,
    FieldDescriptor.TYPE_INT32: _INTEGER,
    FieldDescriptor.TYPE_STRING: _STRING,
}


@dataclass(frozen=True, slots=True)
class _Field:
    name: str  # the proto field name, the message's keyword argument
    kind: int
    message: Descriptor | None  # the nested message's descriptor, for _MESSAGE(S)


_FIELDS_BY_KEY: dict[str, dict[str, _Field]] = {}


def _fields_by_key(descriptor: Descriptor) -> dict[str, _Field]:
    """The fields vtrack reads in ``descriptor``'s message, under both JSON spellings."""
    table = _FIELDS_BY_KEY.get(descriptor.full_name)
    if table is None:
        wanted = _READ_FIELDS[descriptor.name]
        table = {}
        for field in descriptor.fields:
            if field.name not in wanted:
                continue
            message = field.message_type
            if message is None:
                kind = _SCALAR_KINDS.get(field.type, _OTHER)
            elif message.full_name == _DURATION_MESSAGE:
                kind = _DURATION
            else:
                kind = _MESSAGES if field.is_repeated else _MESSAGE
            entry = _Field(field.name, kind, message)
            table[field.name] = entry  # snake_case: the files the API writes
            table[field.json_name] = entry  # camelCase: proto3 JSON, the REST API
        _FIELDS_BY_KEY[descriptor.full_name] = table
    return table


# A JSON path, built only when an error names it: (parent, step), the root a string.
_Path = tuple[Any, str | int] | str


def _path_text(path: _Path) -> str:
    steps: list[str | int] = []
    while isinstance(path, tuple):
        path, step = path
        steps.append(step)
    text = path
    for step in reversed(steps):
        text = _join(text, step)
    return text


def _message_fields(node: Any, descriptor: Descriptor, path: _Path) -> dict[str, Any]:
    """The JSON object ``node`` as the keyword arguments of ``descriptor``'s message.

    Keys in either spelling become the message's field names; durations in any form
    become ``{seconds, nanos}``; a null is left out (the zero value, as in proto3 JSON).
    Each value's JSON type is checked against the field's type here, where the path in
    the document's own spelling is known, so a wrong value is reported at its place
    rather than as the library's "Failed to initialize" without one. Numbers must be
    finite: NaN or infinity cannot be a box, a confidence or a time.

    This walk runs over every value of the file, so the common case is checked inline and
    the path is only spelled out for an error.
    """
    if type(node) is not dict:
        raise _FieldError(_path_text(path), f"expected an object, found {_describe(node)}")
    fields = _fields_by_key(descriptor)
    values: dict[str, Any] = {}
    for key, value in node.items():
        field = fields.get(key)
        if field is None or value is None:
            continue
        kind = field.kind
        value_type = type(value)
        if kind == _NUMBER:
            if not (value_type is float and math.isfinite(value)) and value_type is not int:
                _expect_number(value, _path_text((path, key)))  # raises
            if field.name == "confidence" and not 0.0 <= value <= 1.0:
                raise _FieldError(
                    _path_text((path, key)), f"confidence {value!r} is outside [0, 1]"
                )
        elif kind == _DURATION:
            is_plain = (
                value_type is dict
                and value.keys() <= _DURATION_KEYS
                and type(value.get("seconds", 0)) is int
                and type(value.get("nanos", 0)) is int
                and value.get("seconds", 0) >= 0
                and 0 <= value.get("nanos", 0) < _NANOS_PER_SECOND
            )
            if not is_plain:  # the API's own {seconds, nanos} goes straight to the library
                value = _duration(value, _path_text((path, key)))
        elif kind == _MESSAGES:
            if value_type is not list:
                _expect_list(value, _path_text((path, key)))  # raises
            where = (path, key)
            value = [
                _message_fields(item, field.message, (where, index))
                for index, item in enumerate(value)
            ]
        elif kind == _MESSAGE:
            value = _message_fields(value, field.message, (path, key))
        elif kind == _STRING:
            if value_type is not str:
                _expect_string(value, _path_text((path, key)))  # raises
        elif kind == _INTEGER:
            value = _expect_int64(value, _path_text((path, key)))
        values[field.name] = value
    if descriptor.name == "VideoSegment":
        _check_segment(values, path)
    return values


def _check_segment(values: dict[str, Any], path: _Path) -> None:
    start = _nanos(values.get("start_time_offset"))
    end = _nanos(values.get("end_time_offset"))
    if end < start:
        raise _FieldError(
            _path_text(path),
            f"ends ({_format_duration(end / _NANOS_PER_SECOND)}) before it starts "
            f"({_format_duration(start / _NANOS_PER_SECOND)})",
        )


def _nanos(duration: dict[str, int] | None) -> int:
    if not duration:
        return 0
    return duration.get("seconds", 0) * _NANOS_PER_SECOND + duration.get("nanos", 0)


def _result_message(value: Any, path: str) -> tuple[Any, list[int | None]]:
    """One ``VideoAnnotationResults`` JSON object as the library's message (raw protobuf).

    Also returns each object's ``track_id`` (None when absent), kept apart: in the message
    it shares a ``oneof`` with the object's ``segment``, and a file holding both must not
    lose either to the order of its keys.
    """
    result = _expect_object(value, path)
    error, error_path = _field(result, "error", path)
    if error is not None and _status_is_error(error):
        raise _FieldError(error_path, f"the API reported: {_status_text(error, error_path)}")
    results_type = _results_type()
    fields = _message_fields(result, results_type.pb().DESCRIPTOR, path)
    track_ids = [obj.pop("track_id", None) for obj in fields.get("object_annotations", ())]
    try:
        message = results_type(mapping=fields)
    except (TypeError, ValueError) as exc:  # checked above; what is left is out of range
        raise _FieldError(path, f"not a VideoAnnotationResults: {exc}") from None
    return results_type.pb(message), track_ids


@cache
def _results_type() -> Any:
    """The client library's ``VideoAnnotationResults``, imported on first read: the
    library takes a tenth of a second to load, and writers and renderers never need it."""
    from google.cloud import videointelligence_v1

    return videointelligence_v1.VideoAnnotationResults


# --- From the library's messages to the annotation model: the one place ---------------------


def _annotation(
    messages: list[tuple[Any, list[int | None]]],
    documents: list[dict[str, Any]],
    paths: list[str],
    input_uri: str | None,
) -> VideoAnnotation:
    """One annotation from the results of one video (one result per requested segment).

    Boxes are clipped into the frame; a frame whose box is empty once clipped is
    dropped (see :func:`~workers.annotations.model.fit_to_frame`), and the annotation
    counts both.
    """
    results = [result for result, _ in messages]
    named = [
        (result.input_uri, _field(document, "inputUri", path)[1])
        for result, document, path in zip(results, documents, paths, strict=True)
        if result.input_uri
    ]
    for other_uri, other_path in named[1:]:
        if other_uri != named[0][0]:
            raise _FieldError(
                other_path,
                f"results for different videos in one document: {other_uri!r} "
                f"after {named[0][0]!r}",
            )
    segments = [_segment(result.segment) for result in results if result.HasField("segment")]
    span = (
        Segment(start=min(s.start for s in segments), end=max(s.end for s in segments))
        if segments
        else None
    )
    objects: list[ObjectTrack] = []
    clipped = dropped = 0
    for result, track_ids in messages:
        for message, track_id in zip(result.object_annotations, track_ids, strict=True):
            track, track_clipped, track_dropped = _object_track(message, track_id)
            objects.append(track)
            clipped += track_clipped
            dropped += track_dropped
    return VideoAnnotation(
        input_uri=input_uri if input_uri is not None else (named[0][0] if named else ""),
        objects=tuple(objects),
        segment=span,
        boxes_clipped=clipped,
        boxes_dropped=dropped,
    )


def _object_track(message: Any, track_id: int | None) -> tuple[ObjectTrack, int, int]:
    """An ``ObjectTrackingAnnotation`` as a track, with its boxes clipped and counted."""
    coordinates: list[float] = []
    times: list[float] = []
    for frame in message.frames:
        box = frame.normalized_bounding_box
        coordinates += (box.left, box.top, box.right, box.bottom)
        times.append(_seconds(frame.time_offset))
    printed = iter(_as_printed(coordinates))
    frames = sorted(
        (TrackedFrame(time, NormalizedBox(*itertools.islice(printed, 4))) for time in times),
        key=lambda frame: frame.time,
    )
    if message.HasField("segment"):
        segment = _segment(message.segment)
    elif frames:  # the span the API tracked the object over, dropped frames included
        segment = Segment(start=frames[0].time, end=frames[-1].time)
    else:
        segment = Segment(start=0.0, end=0.0)
    kept, clipped, dropped = fit_to_frame(frames)
    entity = message.entity
    track = ObjectTrack(
        entity=Entity(
            entity_id=entity.entity_id,
            description=entity.description,
            language_code=entity.language_code,
        ),
        confidence=_as_printed([message.confidence])[0],
        segment=segment,
        frames=tuple(kept),
        track_id=track_id,
    )
    return track, clipped, dropped


def _as_printed(values: list[float]) -> list[float]:
    """float32 values of the API's messages as the shortest decimals that give them back.

    Coordinates and confidences are float32 in the API: 0.5527344 in a file is stored as
    0.552734375. Reading back the decimal the API printed (or that our writer wrote for a
    float32-exact value) keeps values as users see them in the JSON, not with float32
    noise in their 8th digit.
    """
    if not values:
        return []
    shortest = numpy.asarray(values, dtype=numpy.float32).astype(str)
    return [float(text) for text in shortest.tolist()]


def _seconds(duration: Any) -> float:
    """A ``Duration`` in seconds, rounded once from its exact count of nanoseconds."""
    return (duration.seconds * _NANOS_PER_SECOND + duration.nanos) / _NANOS_PER_SECOND


def _segment(message: Any) -> Segment:
    return Segment(start=_seconds(message.start_time_offset), end=_seconds(message.end_time_offset))


# --- Writing ---------------------------------------------------------------------------------


def _segment_json(segment: Segment) -> dict[str, str]:
    return {
        "startTimeOffset": _format_duration(segment.start),
        "endTimeOffset": _format_duration(segment.end),
    }


def _written_segment(track: ObjectTrack) -> Segment:
    """The object's segment as the batch API reports it: from its first to its last time.

    A track's own segment is kept when it spans its frames (the API's, read back, may
    reach past frames dropped from the frame); one that misses some of them (an empty
    default) is replaced by its frames' span.
    """
    if not track.frames:
        return track.segment
    first = min(frame.time for frame in track.frames)
    last = max(frame.time for frame in track.frames)
    if track.segment.start <= first and last <= track.segment.end:
        return track.segment
    return Segment(start=first, end=last)


def _object_json(track: ObjectTrack) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "entity": {
            "entityId": track.entity.entity_id,
            "description": track.entity.description,
            "languageCode": track.entity.language_code,
        },
        "confidence": float(track.confidence),
    }
    obj["segment"] = _segment_json(_written_segment(track))
    obj["frames"] = [
        {
            "normalizedBoundingBox": {
                "left": float(frame.box.left),
                "top": float(frame.box.top),
                "right": float(frame.box.right),
                "bottom": float(frame.box.bottom),
            },
            "timeOffset": _format_duration(frame.time),
        }
        for frame in track.frames
    ]
    return obj


def dump_api_output_json(annotation: VideoAnnotation) -> str:
    """``annotation`` as the file the API writes to a request's ``output_uri``.

    That file differs from :func:`dump_annotation_json` in form only: proto field names
    (``annotation_results``, ``time_offset``), durations as ``{"seconds", "nanos"}`` objects,
    and zero parts of a duration left out (``{"nanos": 500000000}``, ``{}`` for zero), as
    the API's own files are. Both forms read back alike.
    """
    document = json.loads(dump_annotation_json(annotation))
    return json.dumps(_api_file_form(document), indent=2, ensure_ascii=False) + "\n"


def _api_file_form(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {
            re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower(): _api_file_form(item, name)
            for name, item in value.items()
        }
    if isinstance(value, list):
        return [_api_file_form(item, key) for item in value]
    if key.endswith("imeOffset"):  # timeOffset, startTimeOffset, endTimeOffset: "1.500s"
        nanos = round(Decimal(value.removesuffix("s")) * 1_000_000_000)
        parts = {"seconds": nanos // 1_000_000_000, "nanos": nanos % 1_000_000_000}
        return {name: number for name, number in parts.items() if number}
    return value
