"""Outputs in a ``gs://`` bucket served through the app, against a real Cloud Storage emulator.

The app runs in this process (Starlette's test client) with its outputs in a bucket of
gcp-storage-emulator; no Redis is needed to serve files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config.settings import Settings
from entrypoints.web.app import create_app
from entrypoints.web.files import CHUNK_BYTES, output_url
from tasks import runtime
from tasks.jobstore import MemoryJobStore
from tests.support.gcs_emulator import create_bucket, running_gcs_emulator, using_gcs_emulator
from workers.storage import open_storage

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[str]:
    with running_gcs_emulator() as host, using_gcs_emulator(host):
        yield host


@pytest.fixture
def bucket_app(gcs_emulator: str, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    bucket = create_bucket(gcs_emulator)
    root = f"gs://{bucket}/results"
    settings = Settings(
        output_root=root,
        annotation_root=root,
        input_roots=str(tmp_path),
        catalog_url=f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        web_auth="",
    )
    storage = open_storage([str(tmp_path)])
    runtime.configure(runtime.Runtime(settings, storage, MemoryJobStore()))
    try:
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            yield client, root
    finally:
        runtime.configure(None)


def test_bucket_outputs_are_streamed_with_type_caching_and_ranges(
    bucket_app: tuple[TestClient, str],
) -> None:
    client, root = bucket_app
    storage = runtime.current().storage
    animation = os.urandom(2 * CHUNK_BYTES + 12345)  # several pieces
    stat = storage.write_bytes(
        f"{root}/cams/clip.mp4.001_dog_pct90_fr40.gif", animation, "image/gif"
    )
    storage.write_bytes(
        f"{root}/cams/clip.mp4.manifest.json", b'{"job_id": "j"}', "application/json"
    )

    url = output_url(f"{root}/cams/clip.mp4.001_dog_pct90_fr40.gif", {"outputs": root})
    assert url == "/files/outputs/cams/clip.mp4.001_dog_pct90_fr40.gif"
    whole = client.get(url)
    assert whole.status_code == 200
    assert whole.content == animation
    assert whole.headers["content-type"] == "image/gif"
    assert whole.headers["cache-control"] == "private, max-age=300"
    assert whole.headers["etag"] == f'"{stat.generation}"'
    assert whole.headers["last-modified"]
    assert client.get(url, headers={"If-None-Match": whole.headers["etag"]}).status_code == 304

    start = CHUNK_BYTES - 10
    part = client.get(url, headers={"Range": f"bytes={start}-{start + 99}"})
    assert part.status_code == 206
    assert part.content == animation[start : start + 100]
    assert part.headers["content-range"] == f"bytes {start}-{start + 99}/{len(animation)}"
    tail = client.get(url, headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == animation[-7:]

    manifest = client.get("/files/outputs/cams/clip.mp4.manifest.json")
    assert manifest.json() == {"job_id": "j"}
    assert manifest.headers["cache-control"] == "private, no-cache"


def test_bucket_paths_stay_under_the_output_prefix(bucket_app: tuple[TestClient, str]) -> None:
    client, root = bucket_app
    storage = runtime.current().storage
    bucket = root.removeprefix("gs://").split("/", 1)[0]
    storage.write_bytes(f"gs://{bucket}/private/secret.json", b"{}", "application/json")
    storage.write_bytes(f"{root}/a.json", b"{}", "application/json")
    assert client.get("/files/outputs/a.json").status_code == 200
    assert client.get("/files/outputs/missing.json").status_code == 404
    assert client.get("/files/outputs/%2e%2e/private/secret.json").status_code == 404
    assert client.get("/files/outputs/..%2Fprivate%2Fsecret.json").status_code == 400
    assert output_url(f"gs://{bucket}/private/secret.json", {"outputs": root}) is None
    assert output_url("gs://elsewhere/results/a.json", {"outputs": root}) is None
