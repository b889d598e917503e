"""Building the Video Intelligence client: settings, endpoints and credentials.

No test here contacts Google: the credential tests point ``GOOGLE_APPLICATION_CREDENTIALS``
at a file (missing, or holding user credentials with no project), so Application Default
Credentials stop at that file and never ask a metadata server; clients are built but never
called (gRPC channels connect on first use).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from workers.annotators.gcp_client import (
    GcpConfig,
    cached_client,
    insecure_client,
    make_client,
    parse_bucket_list,
    parse_endpoint,
)
from workers.errors import ConfigurationError

_PROJECT_VARIABLES = ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")


@pytest.fixture
def no_project(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROJECT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def user_credentials_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``authorized_user`` ADC file, as ``gcloud auth application-default login`` writes."""
    path = tmp_path / "adc.json"
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "test-client.apps.example",
                "client_secret": "not-a-secret",
                "refresh_token": "not-a-token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return path


def test_bucket_list_accepts_names_and_gs_uris() -> None:
    assert parse_bucket_list(" videos, gs://public-clips/ ,,other ") == {
        "videos",
        "public-clips",
        "other",
    }
    assert parse_bucket_list("") == frozenset()
    assert parse_bucket_list(None) == frozenset()


@pytest.mark.parametrize("endpoint", ["127.0.0.1:50051", "localhost:8080", "[::1]:9000"])
def test_endpoint_host_port_is_accepted(endpoint: str) -> None:
    assert parse_endpoint(f" {endpoint} ") == endpoint


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:50051", "127.0.0.1", "grpc://host:1", "host:0", "host:70000"]
)
def test_endpoint_that_is_not_host_port_names_the_setting(endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="VTRACK_VI_ENDPOINT"):
        parse_endpoint(endpoint)


def test_config_from_settings_reads_every_gcp_setting() -> None:
    settings = SimpleNamespace(
        vi_endpoint=" 127.0.0.1:5000 ",
        gcp_project="",
        gcp_location_id="europe-west1",
        allowed_buckets="a,gs://b",
        gcp_call_timeout=12,
    )
    assert GcpConfig.from_settings(settings) == GcpConfig(
        endpoint="127.0.0.1:5000",
        project=None,
        location_id="europe-west1",
        allowed_buckets=frozenset({"a", "b"}),
        call_timeout=12.0,
    )


def test_local_endpoint_needs_no_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_project: None
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    client = insecure_client("127.0.0.1:1")
    assert client.transport.kind == "grpc"


def test_missing_credentials_say_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_project: None
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    with pytest.raises(ConfigurationError) as raised:
        make_client(GcpConfig(endpoint=None))
    message = str(raised.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "gcloud auth application-default login" in message
    assert "VTRACK_VI_ENDPOINT" in message
    assert "absent.json" in message  # the cause: which file was not found
    assert "\n" not in message


def test_credentials_without_project_say_what_to_set(
    user_credentials_file: Path, no_project: None
) -> None:
    with pytest.raises(ConfigurationError, match="VTRACK_GCP_PROJECT or GOOGLE_CLOUD_PROJECT"):
        make_client(GcpConfig(endpoint=None))


def test_credentials_and_project_build_a_client_for_google(
    user_credentials_file: Path, no_project: None
) -> None:
    client = make_client(GcpConfig(endpoint=None, project="my-project"))
    assert client.transport.host == "videointelligence.googleapis.com:443"
    # User credentials bill the configured project.
    assert client.transport._credentials.quota_project_id == "my-project"


def test_cached_client_is_built_once_per_process() -> None:
    cached_client.cache_clear()
    try:
        first = cached_client("127.0.0.1:1", None)
        assert cached_client("127.0.0.1:1", None) is first
        assert cached_client("127.0.0.1:2", None) is not first
    finally:
        cached_client.cache_clear()
