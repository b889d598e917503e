"""Cloud Storage notifications as Pub/Sub delivers them: read one, decide whether it names a
new video to process. Plain functions: no Pub/Sub client, no Celery.

A bucket's notification configuration publishes one message per change. Its attributes
say what happened (``eventType``: ``OBJECT_FINALIZE`` for a new object or a new generation
of one, ``OBJECT_METADATA_UPDATE``, ``OBJECT_DELETE``, ``OBJECT_ARCHIVE``), to which object
(``bucketId``, ``objectId``, ``objectGeneration``) and what the data holds
(``payloadFormat``: ``JSON_API_V1``, the object's JSON API resource, or ``NONE``, nothing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workers.storage import ObjectStat
from workers.uris import GCS_SCHEME

FINALIZE = "OBJECT_FINALIZE"
JSON_API_V1 = "JSON_API_V1"
NO_PAYLOAD = "NONE"
PAYLOAD_FORMATS = frozenset({JSON_API_V1, NO_PAYLOAD})
REQUIRED_ATTRIBUTES = ("eventType", "bucketId", "objectId", "objectGeneration", "payloadFormat")


class MalformedNotification(ValueError):
    """The message is not a Cloud Storage notification vtrack can read (one line says why)."""


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """One notification: what happened to which generation of which object.

    ``resource`` is the object's JSON API resource when the payload carried it (``None``
    with ``payloadFormat=NONE``); it gives the content type and size without asking the
    bucket.
    """

    event_type: str
    bucket: str
    name: str
    generation: str
    payload_format: str
    resource: dict[str, Any] | None = None

    @property
    def uri(self) -> str:
        return f"{GCS_SCHEME}://{self.bucket}/{self.name}"

    def stat(self) -> ObjectStat | None:
        """The object as the payload describes it, or None without a payload."""
        if self.resource is None:
            return None
        return ObjectStat(
            uri=self.uri,
            size=_int(self.resource.get("size"), "size"),
            generation=self.generation,
            mtime=_timestamp(self.resource.get("updated")),
            content_type=self.resource.get("contentType"),
        )


def parse_notification(attributes: dict[str, str], data: bytes) -> ObjectEvent:
    """The event a message describes; :class:`MalformedNotification` when it cannot be read."""
    missing = [name for name in REQUIRED_ATTRIBUTES if not attributes.get(name)]
    if missing:
        raise MalformedNotification(f"no {', '.join(missing)} attribute")
    generation = attributes["objectGeneration"]
    if not generation.isdigit():
        raise MalformedNotification(f"objectGeneration {generation!r} is not a number")
    payload_format = attributes["payloadFormat"]
    if payload_format not in PAYLOAD_FORMATS:
        raise MalformedNotification(f"unknown payloadFormat {payload_format!r}")
    resource = None
    if payload_format == JSON_API_V1:
        resource = _resource(data, attributes)
    return ObjectEvent(
        event_type=attributes["eventType"],
        bucket=attributes["bucketId"],
        name=attributes["objectId"],
        generation=generation,
        payload_format=payload_format,
        resource=resource,
    )


def _resource(data: bytes, attributes: dict[str, str]) -> dict[str, Any]:
    try:
        resource = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedNotification(f"the JSON_API_V1 payload is not JSON ({exc})") from None
    if not isinstance(resource, dict):
        raise MalformedNotification("the JSON_API_V1 payload is not an object resource")
    for field, attribute in (("bucket", "bucketId"), ("name", "objectId")):
        if field in resource and resource[field] != attributes[attribute]:
            raise MalformedNotification(
                f"the payload's {field} {resource[field]!r} is not the {attribute} attribute's"
            )
    if "size" not in resource:  # the JSON API's object resource always has it
        raise MalformedNotification("the JSON_API_V1 payload has no size")
    _int(resource["size"], "size")
    return resource


def name_allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    """Whether an object name lies under one of ``prefixes`` (no prefixes: any name)."""
    return not prefixes or any(name.startswith(prefix) for prefix in prefixes)


def _int(value: Any, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MalformedNotification(f"the payload's {field} {value!r} is not a number") from None


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
