"""Reading Cloud Storage notifications: real messages' shapes, and the ones that are not."""

from __future__ import annotations

import json

import pytest

from tests.support.pubsub_emulator import finalize_notification
from workers.service import scanning
from workers.service.notifications import (
    MalformedNotification,
    name_allowed,
    parse_notification,
)


def test_a_json_api_v1_upload_gives_the_object_as_the_payload_describes_it() -> None:
    data, attributes = finalize_notification(
        "cams", "site 4/2026-11-30 08.00.mp4", "1764489600123456", 7340032, "video/mp4"
    )
    event = parse_notification(attributes, data)
    assert event.event_type == "OBJECT_FINALIZE"
    assert event.uri == "gs://cams/site 4/2026-11-30 08.00.mp4"
    stat = event.stat()
    assert stat is not None
    assert (stat.size, stat.generation, stat.content_type) == (
        7340032,
        "1764489600123456",
        "video/mp4",
    )
    assert stat.mtime is not None and stat.mtime > 1.7e9
    assert scanning.is_video(stat)


def test_a_none_payload_names_the_object_and_leaves_the_rest_to_the_bucket() -> None:
    data, attributes = finalize_notification("cams", "a.mov", "42", 10, "", payload=False)
    event = parse_notification(attributes, data)
    assert event.payload_format == "NONE" and event.stat() is None
    assert (event.bucket, event.name, event.generation) == ("cams", "a.mov", "42")


@pytest.mark.parametrize(
    ("content_type", "name", "video"),
    [
        ("video/quicktime", "clip", True),  # the type decides, whatever the name
        ("application/octet-stream", "clip.MP4", True),  # a generic type: the extension
        ("image/jpeg", "frame.mp4", False),  # a type that says "not a video"
        ("application/json", "clip.mp4.json", False),
    ],
)
def test_whether_an_object_is_a_video_is_decided_as_scans_decide(
    content_type: str, name: str, video: bool
) -> None:
    data, attributes = finalize_notification("b", name, "1", 5, content_type)
    stat = parse_notification(attributes, data).stat()
    assert stat is not None and scanning.is_video(stat) is video


@pytest.mark.parametrize(
    ("change", "data", "why"),
    [
        ({"objectGeneration": None}, None, "no objectGeneration attribute"),
        ({"objectGeneration": "12a"}, None, "is not a number"),
        ({"payloadFormat": "XML"}, None, "unknown payloadFormat"),
        ({}, b"\x89PNG", "not JSON"),
        ({}, b"[1, 2]", "not an object resource"),
        ({}, json.dumps({"name": "other.mp4", "size": "1"}).encode(), "not the objectId"),
        ({}, json.dumps({"name": "a.mp4", "size": "big"}).encode(), "size 'big'"),
    ],
)
def test_a_malformed_message_says_why_in_one_line(
    change: dict[str, str | None], data: bytes | None, why: str
) -> None:
    payload, attributes = finalize_notification("b", "a.mp4", "1", 5, "video/mp4")
    for name, value in change.items():
        if value is None:
            del attributes[name]
        else:
            attributes[name] = value
    with pytest.raises(MalformedNotification, match=why) as raised:
        parse_notification(attributes, payload if data is None else data)
    assert "\n" not in str(raised.value)


def test_prefixes_limit_the_names_only_when_given() -> None:
    assert name_allowed("anything/at/all.mp4", ())
    assert name_allowed("uploads/cam1/a.mp4", ("incoming/", "uploads/"))
    assert not name_allowed("uploadsX/a.mp4", ("uploads/",))
