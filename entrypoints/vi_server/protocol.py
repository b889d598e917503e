"""The RPCs vtrack serves, as the client library itself calls them: no hand-written protocol.

The Video Intelligence client ships no server stubs, only a transport that builds each call
from a method path and the message types' (de)serializers. :func:`annotate_video_rpc` hands
that transport a channel that records what it asks for, so the server answers exactly the
path and messages the real client sends. The ``google.longrunning.Operations`` service comes
with generated server code in googleapis-common-protos (``operations_pb2_grpc``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from typing import Any

import grpc
from google.auth.credentials import AnonymousCredentials
from google.cloud import videointelligence_v1 as vi
from google.cloud.videointelligence_v1.services.video_intelligence_service.transports.grpc import (
    VideoIntelligenceServiceGrpcTransport,
)


@dataclass(frozen=True)
class UnaryRpc:
    """One unary RPC: its path, and how the client encodes requests and decodes answers."""

    path: str  # "/package.Service/Method"
    request_serializer: Callable[[Any], bytes]
    response_deserializer: Callable[[bytes], Any]

    @property
    def request_type(self) -> Any:
        """The request's message class (the serializer is one of its class methods)."""
        return self.request_serializer.__self__  # type: ignore[attr-defined]

    @property
    def response_type(self) -> Any:
        return self.response_deserializer.__self__  # type: ignore[attr-defined]

    @property
    def service(self) -> str:
        return self.path.strip("/").split("/")[0]

    @property
    def method(self) -> str:
        return self.path.rsplit("/", 1)[1]


class _RecordingChannel(grpc.Channel):
    """Stands in for a gRPC channel: keeps the RPCs a transport asks it for, calls nothing."""

    def __init__(self) -> None:
        self.unary: list[UnaryRpc] = []

    def unary_unary(
        self,
        path: str,
        request_serializer: Callable[[Any], bytes],
        response_deserializer: Callable[[bytes], Any],
        *_: Any,
        **__: Any,
    ) -> Any:
        self.unary.append(UnaryRpc(path, request_serializer, response_deserializer))
        return None  # the caller fails on it, and that call is discarded

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        pass

    def unsubscribe(self, callback: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _RecordingChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@cache
def annotate_video_rpc() -> UnaryRpc:
    """``AnnotateVideo`` as the installed client library calls it."""
    channel = _RecordingChannel()
    transport = VideoIntelligenceServiceGrpcTransport(
        channel=channel,  # type: ignore[arg-type]
        credentials=AnonymousCredentials(),  # never used: nothing is sent
    )
    # The stub reaches the channel on its first call, through the library's interceptor.
    with suppress(Exception):
        transport.annotate_video(vi.AnnotateVideoRequest())
    (rpc,) = channel.unary
    return rpc
