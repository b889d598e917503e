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

Anything that cannot be read raises :class:`~workers.errors.AnnotationFormatError`
naming the file and the JSON path of the offending field, in the spelling the file
uses, e.g. ``response.annotationResults[0].objectAnnotations[3].frames[12]
.normalizedBoundingBox.left``.

The writer, :func:`dump_annotation_json`, writes the camelCase ``AnnotateVideoResponse``
form that the API's own client library reads back (``AnnotateVideoResponse.from_json``).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from workers.annotations.model import (
    Entity,
    NormalizedBox,
    ObjectTrack,
    Segment,
    TrackedFrame,
    VideoAnnotation,
)
from workers.errors import AnnotationFormatError, NotFoundError

BOX_TOLERANCE = 0.01
"""How far outside the frame (or how inverted) a box coordinate may be before it is an error.

Detectors and trackers overshoot the frame by a pixel or two and store float32 values, so
a coordinate within this distance of [0, 1] is clipped into it silently, and a box whose
left passes its right (or top its bottom) by less than this is read as empty. Raising it
accepts sloppier producers but hides more real faults; lowering it reports noise as errors.
Pixel coordinates and swapped edges are far beyond it and always reported.
"""

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
        parsed = [
            _parse_result(result, _join(results_path, index))
            for index, result in enumerate(results)
        ]
        return _merge(parsed, input_uri)
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
      proto ``oneof``): the client library rejects an object holding both. An object with
      a ``track_id`` is therefore written with ``trackId`` (a string, as proto3 JSON
      writes int64) and without ``segment``; reading it back gives it the segment from its
      first to its last frame, which is what trackers report anyway.
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


# --- Field access and shapes -------------------------------------------------------------


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


# --- Durations -----------------------------------------------------------------------------


def _parse_duration(value: Any, path: str) -> float:
    """A time offset in seconds from any of its JSON forms; ``None`` (omitted) is 0.

    Forms: ``"1.5s"`` (any number of fractional digits, rounded to the nanosecond),
    ``{"seconds": 1, "nanos": 500000000}`` (either key may be missing, ``seconds`` may be
    a string), or a plain number of seconds. Negative times are an error: every duration
    in this API is an offset from the start of the video.
    """
    if value is None:
        return 0.0
    if isinstance(value, str):
        nanos = _duration_text_nanos(value, path)
        seconds = nanos / _NANOS_PER_SECOND
    elif isinstance(value, dict):
        nanos = _duration_object_nanos(value, path)
        seconds = nanos / _NANOS_PER_SECOND
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = _expect_number(value, path)
    else:
        raise _FieldError(
            path, f'expected a duration like "1.5s" or {{"seconds": 1}}, found {_describe(value)}'
        )
    if seconds < 0:
        raise _FieldError(path, f"negative time {_format_duration(seconds)}")
    return seconds


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


# --- The annotation messages -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Result:
    """One ``VideoAnnotationResults``, read."""

    input_uri: str
    input_uri_path: str
    segment: Segment | None
    objects: list[ObjectTrack]


def _parse_result(value: Any, path: str) -> _Result:
    result = _expect_object(value, path)
    error, error_path = _field(result, "error", path)
    if error is not None and _status_is_error(error):
        raise _FieldError(error_path, f"the API reported: {_status_text(error, error_path)}")
    uri_value, uri_path = _field(result, "inputUri", path)
    input_uri = "" if uri_value is None else _expect_string(uri_value, uri_path)
    segment_value, segment_path = _field(result, "segment", path)
    segment = None if segment_value is None else _parse_segment(segment_value, segment_path)
    objects_value, objects_path = _field(result, "objectAnnotations", path)
    objects = [] if objects_value is None else _expect_list(objects_value, objects_path)
    return _Result(
        input_uri=input_uri,
        input_uri_path=uri_path,
        segment=segment,
        objects=[_parse_object(obj, _join(objects_path, i)) for i, obj in enumerate(objects)],
    )


def _parse_segment(value: Any, path: str) -> Segment:
    segment = _expect_object(value, path)
    start_value, start_path = _field(segment, "startTimeOffset", path)
    end_value, end_path = _field(segment, "endTimeOffset", path)
    start = _parse_duration(start_value, start_path)
    end = _parse_duration(end_value, end_path)
    if end < start:
        raise _FieldError(
            path,
            f"ends ({_format_duration(end)}) before it starts ({_format_duration(start)})",
        )
    return Segment(start=start, end=end)


def _parse_object(value: Any, path: str) -> ObjectTrack:
    obj = _expect_object(value, path)
    entity_value, entity_path = _field(obj, "entity", path)
    entity = _parse_entity({} if entity_value is None else entity_value, entity_path)
    confidence_value, confidence_path = _field(obj, "confidence", path)
    confidence = _parse_confidence(confidence_value, confidence_path)
    frames_value, frames_path = _field(obj, "frames", path)
    frames = [] if frames_value is None else _expect_list(frames_value, frames_path)
    parsed_frames = sorted(
        (_parse_frame(frame, _join(frames_path, i)) for i, frame in enumerate(frames)),
        key=lambda frame: frame.time,
    )
    segment_value, segment_path = _field(obj, "segment", path)
    if segment_value is not None:
        segment = _parse_segment(segment_value, segment_path)
    elif parsed_frames:
        segment = Segment(start=parsed_frames[0].time, end=parsed_frames[-1].time)
    else:
        segment = Segment(start=0.0, end=0.0)
    track_id_value, track_id_path = _field(obj, "trackId", path)
    track_id = None if track_id_value is None else _expect_int64(track_id_value, track_id_path)
    return ObjectTrack(
        entity=entity,
        confidence=confidence,
        segment=segment,
        frames=tuple(parsed_frames),
        track_id=track_id,
    )


def _parse_entity(value: Any, path: str) -> Entity:
    entity = _expect_object(value, path)
    texts = {}
    for camel in ("entityId", "description", "languageCode"):
        text_value, text_path = _field(entity, camel, path)
        texts[camel] = "" if text_value is None else _expect_string(text_value, text_path)
    return Entity(
        entity_id=texts["entityId"],
        description=texts["description"],
        language_code=texts["languageCode"],
    )


def _parse_confidence(value: Any, path: str) -> float:
    if value is None:
        return 0.0
    confidence = _expect_number(value, path)
    if not 0.0 <= confidence <= 1.0:
        raise _FieldError(path, f"confidence {confidence!r} is outside [0, 1]")
    return confidence


def _parse_frame(value: Any, path: str) -> TrackedFrame:
    frame = _expect_object(value, path)
    box_value, box_path = _field(frame, "normalizedBoundingBox", path)
    time_value, time_path = _field(frame, "timeOffset", path)
    return TrackedFrame(
        time=_parse_duration(time_value, time_path),
        box=_parse_box({} if box_value is None else box_value, box_path),
    )


def _parse_box(value: Any, path: str) -> NormalizedBox:
    """A normalized box, clipped to the frame; see :data:`BOX_TOLERANCE` for what is refused."""
    box = _expect_object(value, path)
    coordinates = {}
    for name in ("left", "top", "right", "bottom"):
        coordinate_path = _join(path, name)
        raw = box.get(name)
        coordinate = 0.0 if raw is None else _expect_number(raw, coordinate_path)
        if not -BOX_TOLERANCE <= coordinate <= 1.0 + BOX_TOLERANCE:
            raise _FieldError(
                coordinate_path, f"{coordinate!r} is outside the frame (normalized 0 to 1)"
            )
        coordinates[name] = min(max(coordinate, 0.0), 1.0)
    left, top, right, bottom = (coordinates[k] for k in ("left", "top", "right", "bottom"))
    if left > right + BOX_TOLERANCE:
        raise _FieldError(path, f"left ({left!r}) is right of right ({right!r})")
    if top > bottom + BOX_TOLERANCE:
        raise _FieldError(path, f"top ({top!r}) is below bottom ({bottom!r})")
    # A smaller inversion is rounding noise on an empty box: keep it empty, not inverted.
    return NormalizedBox(left=left, top=top, right=max(left, right), bottom=max(top, bottom))


def _merge(results: list[_Result], input_uri: str | None) -> VideoAnnotation:
    """One annotation from the results of one video (one result per requested segment)."""
    named = [result for result in results if result.input_uri]
    for other in named[1:]:
        if other.input_uri != named[0].input_uri:
            raise _FieldError(
                other.input_uri_path,
                f"results for different videos in one document: {other.input_uri!r} "
                f"after {named[0].input_uri!r}",
            )
    segments = [result.segment for result in results if result.segment is not None]
    span = (
        Segment(start=min(s.start for s in segments), end=max(s.end for s in segments))
        if segments
        else None
    )
    return VideoAnnotation(
        input_uri=input_uri if input_uri is not None else (named[0].input_uri if named else ""),
        objects=tuple(track for result in results for track in result.objects),
        segment=span,
    )


# --- Writing ---------------------------------------------------------------------------------


def _segment_json(segment: Segment) -> dict[str, str]:
    return {
        "startTimeOffset": _format_duration(segment.start),
        "endTimeOffset": _format_duration(segment.end),
    }


def _object_json(track: ObjectTrack) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "entity": {
            "entityId": track.entity.entity_id,
            "description": track.entity.description,
            "languageCode": track.entity.language_code,
        },
        "confidence": float(track.confidence),
    }
    if track.track_id is None:
        obj["segment"] = _segment_json(track.segment)
    else:
        obj["trackId"] = str(track.track_id)
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
