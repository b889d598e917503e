"""Building the Video Intelligence client, once per worker process.

Two ways to reach the API:

* ``VTRACK_VI_ENDPOINT`` unset: Google's endpoint, authenticated with Application Default
  Credentials (a service-account key named by ``GOOGLE_APPLICATION_CREDENTIALS``,
  ``gcloud auth application-default login``, or the service account of the VM/Cloud Run
  instance). The project comes from ``VTRACK_GCP_PROJECT``, ``GOOGLE_CLOUD_PROJECT`` or the
  credentials themselves; without credentials or a project the worker stops with a
  :class:`ConfigurationError` that names what to set.
* ``VTRACK_VI_ENDPOINT=host:port``: a plain (unencrypted) gRPC server such as the fake one the
  tests run. Passing only ``client_options={"api_endpoint": ...}`` is not enough: the client
  would still open a TLS channel, fail the handshake against a plain server and retry for
  minutes. So the transport is given an explicit insecure channel, and no credentials are
  looked up at all.

gRPC channels must not cross a ``fork()``: build the client in each worker process (Celery's
``worker_process_init``), never in the parent before the pool forks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import google.auth
import grpc
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import Credentials
from google.cloud import videointelligence_v1 as vi
from google.cloud.videointelligence_v1.services.video_intelligence_service.transports import (
    VideoIntelligenceServiceGrpcTransport,
)

from workers.errors import ConfigurationError

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")

# Keepalive pings let a long-idle channel notice a dropped connection before the next call
# instead of during it; 5 minutes stays well clear of servers' ping-abuse limits.
_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.keepalive_time_ms", 300_000),
    ("grpc.keepalive_timeout_ms", 20_000),
)


@dataclass(frozen=True, slots=True)
class GcpConfig:
    """Everything the Google Cloud backend reads from the settings.

    ``call_timeout`` bounds each single RPC (submit or poll). A longer one rides out a slow
    API front end; a shorter one frees the worker sooner when the API hangs. Either way the
    call is not retried by the client: a failure goes back to the task, which retries with
    backoff.
    """

    endpoint: str | None = None
    project: str | None = None
    location_id: str | None = None
    allowed_buckets: frozenset[str] = frozenset()
    call_timeout: float = 60.0

    @classmethod
    def from_settings(cls, settings: Any) -> GcpConfig:
        """Read the ``VTRACK_*`` settings (see docs/gcp-backend.md for the list)."""
        return cls(
            endpoint=(settings.vi_endpoint or "").strip() or None,
            project=(settings.gcp_project or "").strip() or None,
            location_id=(settings.gcp_location_id or "").strip() or None,
            allowed_buckets=parse_bucket_list(settings.allowed_buckets),
            call_timeout=float(settings.gcp_call_timeout),
        )


def parse_bucket_list(text: str | None) -> frozenset[str]:
    """``"a, gs://b/ ,c"`` -> ``{"a", "b", "c"}``; empty text means no restriction."""
    names = (item.strip().removeprefix("gs://").strip("/") for item in (text or "").split(","))
    return frozenset(name for name in names if name)


def parse_endpoint(endpoint: str) -> str:
    """Check that ``endpoint`` is ``host:port`` (no scheme) and return it."""
    text = endpoint.strip()
    if not _HOST_PORT.match(text) or not 0 < int(text.rsplit(":", 1)[1]) < 65536:
        raise ConfigurationError(
            f"VTRACK_VI_ENDPOINT={endpoint!r} is not host:port "
            "(a plain gRPC server such as 127.0.0.1:50051, without http:// or grpc://)"
        )
    return text


def insecure_client(endpoint: str) -> vi.VideoIntelligenceServiceClient:
    """A client talking plain gRPC to ``endpoint`` (a local or test server), no credentials."""
    channel = grpc.insecure_channel(parse_endpoint(endpoint), options=_CHANNEL_OPTIONS)
    transport = VideoIntelligenceServiceGrpcTransport(channel=channel)
    return vi.VideoIntelligenceServiceClient(transport=transport)


def application_default_credentials(
    project: str | None,
) -> tuple[Credentials, str]:
    """The ADC credentials and the project to bill, or a :class:`ConfigurationError`."""
    try:
        credentials, adc_project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except auth_exceptions.DefaultCredentialsError as error:
        raise ConfigurationError(
            "no Google Cloud credentials for the Video Intelligence API: set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run "
            "`gcloud auth application-default login`, or run on Google Cloud with a service "
            "account attached (Application Default Credentials); to use a local server "
            f"instead set VTRACK_VI_ENDPOINT=host:port. Cause: {_one_line(error)}"
        ) from error
    chosen = project or adc_project
    if not chosen:
        raise ConfigurationError(
            "no Google Cloud project for the Video Intelligence API: set VTRACK_GCP_PROJECT "
            "or GOOGLE_CLOUD_PROJECT (the project that has the API enabled and is billed)"
        )
    if project and hasattr(credentials, "with_quota_project"):
        # User credentials carry no project of their own; the API bills the quota project.
        credentials = credentials.with_quota_project(project)
    return credentials, chosen


def make_client(config: GcpConfig) -> vi.VideoIntelligenceServiceClient:
    """A new client for ``config``: the local endpoint when set, else Google's, authenticated
    with Application Default Credentials."""
    if config.endpoint:
        return insecure_client(config.endpoint)
    credentials, _ = application_default_credentials(config.project)
    return vi.VideoIntelligenceServiceClient(credentials=credentials)


@lru_cache(maxsize=4)
def cached_client(endpoint: str | None, project: str | None) -> vi.VideoIntelligenceServiceClient:
    """This process's client for ``(endpoint, project)``, built on first use.

    Call it from the worker's process-init hook so a configuration error surfaces when the
    worker starts, not on the first job; ``cached_client.cache_clear()`` drops it.
    """
    return make_client(GcpConfig(endpoint=endpoint, project=project))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
