"""``vtrack listen``: start a job seconds after a video lands in a bucket.

A bucket's Cloud Storage notifications go to a Pub/Sub topic; this process holds a
streaming pull on a subscription of it (Google's client: flow control, lease extension,
reconnects). Each ``OBJECT_FINALIZE`` of an allowed video starts one job through the path
scans take (:func:`tasks.scan.start_video_job`): the same claims and source stamps, so a
redelivered message, a generation already processed and a scan that finds the same video
never make a second job. docs/operations.md ("vtrack listen") says which messages are
acknowledged when, and how SIGTERM stops the pull.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from dataclasses import dataclass
from types import FrameType
from typing import Any

from config.settings import Settings
from tasks.api import REDIS_DOWN, service_storage
from tasks.scan import start_video_job
from workers.annotators.gcp_client import parse_bucket_list
from workers.errors import ConfigurationError, InputError, ServiceUnavailableError, StorageError
from workers.service import scanning
from workers.service.notifications import (
    FINALIZE,
    MalformedNotification,
    name_allowed,
    parse_notification,
)

log = logging.getLogger(__name__)

STARTED = "started"
DUPLICATE = "duplicate"
IGNORED = "ignored"
MALFORMED = "malformed"
RETRY = "retry"  # not acknowledged: Pub/Sub delivers it again

# Failures that pass: the message is delivered again rather than dropped.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    *REDIS_DOWN,  # Redis or the broker cannot be reached
    ServiceUnavailableError,  # the same, as start_job reports it
    StorageError,  # the bucket did not answer (a missing object is handled before)
    OSError,
)
# A nacked message comes back at once: wait this long first, so a broker outage does not
# become a busy loop (the subscription's retry policy can add more).
RETRY_PAUSE_SECONDS = 2.0
STOP_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class ListenRules:
    """Which notifications may start jobs: buckets (empty: any) and name prefixes (empty: any)."""

    buckets: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ListenRules:
        return cls(parse_bucket_list(settings.allowed_buckets), settings.listen_prefix_list())


@dataclass(frozen=True)
class Handled:
    """What became of one message, and the log line that says so."""

    outcome: str
    detail: str
    job_id: str | None = None

    @property
    def ack(self) -> bool:
        return self.outcome != RETRY


def handle_notification(attributes: dict[str, str], data: bytes, rules: ListenRules) -> Handled:
    """Decide one message and start its job when it needs one.

    Transient failures raise (one of :data:`TRANSIENT_ERRORS`): the caller does not
    acknowledge the message.
    """
    try:
        event = parse_notification(attributes, data)
    except MalformedNotification as exc:
        return Handled(MALFORMED, f"{_describe(attributes)}: {exc}")
    uri = event.uri
    if event.event_type != FINALIZE:
        return Handled(IGNORED, f"{uri}: {event.event_type}, not an upload")
    if rules.buckets and event.bucket not in rules.buckets:
        return Handled(IGNORED, f"{uri}: bucket {event.bucket} is not in VTRACK_ALLOWED_BUCKETS")
    if not name_allowed(event.name, rules.prefixes):
        return Handled(IGNORED, f"{uri}: not under VTRACK_LISTEN_PREFIXES")
    try:
        stat = event.stat()
    except MalformedNotification as exc:
        return Handled(MALFORMED, f"{_describe(attributes)}: {exc}")
    if stat is None:  # payloadFormat NONE: ask the bucket
        try:
            stat = service_storage().stat(uri)
        except InputError as exc:  # deleted since, or a name vtrack refuses
            return Handled(IGNORED, f"{uri}: {exc}")
        if stat.generation != event.generation:
            return Handled(
                IGNORED, f"{uri}#{event.generation}: replaced by generation {stat.generation}"
            )
    if not scanning.is_video(stat):
        return Handled(IGNORED, f"{uri}: not a video ({stat.content_type or 'no content type'})")
    try:
        outcome = start_video_job(stat, source="event")
    except InputError as exc:
        return Handled(IGNORED, f"{uri}: refused: {exc}")
    if outcome.started:
        return Handled(
            STARTED, f"started job {outcome.job_id} for {uri}#{event.generation}", outcome.job_id
        )
    held_by = f" (job {outcome.job_id})" if outcome.job_id else ""
    return Handled(DUPLICATE, f"{uri}#{event.generation}: {outcome.reason}{held_by}")


class Listener:
    """The subscriber of one subscription; :meth:`run` blocks until :meth:`stop`."""

    def __init__(self, subscription: str, rules: ListenRules, max_messages: int) -> None:
        self.subscription = subscription
        self.rules = rules
        self.max_messages = max_messages
        self.counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._stopping = threading.Event()

    def on_message(self, message: Any) -> None:
        """The client's callback (on its thread pool): handle, then ack or nack."""
        attributes = dict(message.attributes)
        try:
            handled = handle_notification(attributes, message.data, self.rules)
        except TRANSIENT_ERRORS as exc:
            handled = Handled(RETRY, f"{_describe(attributes)}: {type(exc).__name__}: {exc}")
        except Exception:  # a bug: keep the message and the listener, show the traceback
            log.exception("%s: could not handle the message", _describe(attributes))
            handled = Handled(RETRY, f"{_describe(attributes)}: unexpected error")
        self._count(handled.outcome)
        if handled.ack:
            message.ack()
            level = logging.WARNING if handled.outcome == MALFORMED else logging.INFO
            log.log(level, "%s: %s", handled.outcome, handled.detail)
            return
        log.warning("not acknowledged, will be delivered again: %s", handled.detail)
        self._stopping.wait(RETRY_PAUSE_SECONDS)
        message.nack()

    def run(self) -> Counter[str]:
        """Pull until stopped (or the subscription fails); the counts of each outcome."""
        from google.api_core.exceptions import GoogleAPICallError
        from google.cloud import pubsub_v1

        subscriber = pubsub_v1.SubscriberClient()
        flow_control = pubsub_v1.types.FlowControl(max_messages=self.max_messages)
        with subscriber:
            future = subscriber.subscribe(
                self.subscription,
                self.on_message,
                flow_control=flow_control,
                await_callbacks_on_shutdown=True,
            )
            log.info("listening on %s (%d messages at once)", self.subscription, self.max_messages)
            try:
                while not self._stopping.wait(0.5) and not future.done():
                    pass
            finally:
                future.cancel()
                try:
                    future.result(timeout=STOP_TIMEOUT_SECONDS)  # raises what ended the pull
                except GoogleAPICallError as exc:  # no such subscription, no permission
                    raise ConfigurationError(f"{self.subscription}: {exc.message}") from None
        return Counter(self.counts)

    def stop(self) -> None:
        self._stopping.set()

    def describe_counts(self) -> str:
        with self._counts_lock:
            return ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items())) or "none"

    def _count(self, outcome: str) -> None:
        with self._counts_lock:
            self.counts[outcome] += 1


def listen(subscription: str, settings: Settings) -> Counter[str]:
    """Run a listener until SIGTERM or Ctrl-C; the counts of each outcome."""
    listener = Listener(
        subscription, ListenRules.from_settings(settings), settings.listen_max_messages
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping after the messages in hand", signal.Signals(signum).name)
        listener.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        counts = listener.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped; messages: %s", listener.describe_counts())
    return counts


def _describe(attributes: dict[str, str]) -> str:
    bucket, name = attributes.get("bucketId"), attributes.get("objectId")
    if bucket and name:
        return f"gs://{bucket}/{name}#{attributes.get('objectGeneration', '?')}"
    return "message"
