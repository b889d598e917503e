"""Who reaches the web app and what it serves: basic auth, origins, hosts, safe file paths.

The app runs as ``vtrack web`` in its own process against the real Redis; requests are sent
byte for byte (``http.client``), so paths reach the server exactly as written.
"""

from __future__ import annotations

import base64
import http.client
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, TEST_ENV
from tests.support.web import WebApp

pytestmark = pytest.mark.integration

USER, PASSWORD = "viewer", "s3cret:with-colon"


def raw_get(
    app: WebApp, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("web-access")
    found = {name: root / name for name in ("output", "input", "outside")}
    for folder in found.values():
        folder.mkdir()
    out = found["output"]
    (out / "clip.mp4.manifest.json").write_text('{"job_id": "j"}')
    (out / "clip.mp4.001_dog_pct90_fr40.gif").write_bytes(b"GIF89a" + bytes(64))
    (out / "clip.mp4.001_dog_pct90_fr40.webp").write_bytes(b"RIFF" + bytes(64))
    (out / "nested").mkdir()
    (out / "nested" / "b.mp4.summary_pct70_fr10.jpeg").write_bytes(b"\xff\xd8\xff" + bytes(64))
    (found["outside"] / "secret.txt").write_text("not for the web")
    (out / "leak.txt").symlink_to(found["outside"] / "secret.txt")
    (out / "leakdir").symlink_to(found["outside"], target_is_directory=True)
    (out / ".clip.mp4.manifest.json.x1.vtrack-partial").write_text("{")  # a write in progress
    (out / "catalog.db").write_bytes(b"SQLite format 3\x00")
    return found


def app_env(folders: dict[str, Path], **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        **TEST_ENV,
        "VTRACK_OUTPUT_ROOT": str(folders["output"]),
        "VTRACK_ANNOTATION_ROOT": str(folders["output"]),
        "VTRACK_INPUT_ROOTS": str(folders["input"]),
        **extra,
    }
    env.pop("VTRACK_CATALOG_URL")  # the default: beside the outputs
    return env


@pytest.fixture(scope="module")
def open_app(redis_server: None, folders: dict[str, Path]) -> Iterator[WebApp]:
    app = WebApp(app_env(folders), folders["output"].parent / "open.log").start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def locked_app(redis_server: None, folders: dict[str, Path]) -> Iterator[WebApp]:
    env = app_env(folders, VTRACK_WEB_AUTH=f"{USER}:{PASSWORD}")
    app = WebApp(env, folders["output"].parent / "locked.log").start()
    yield app
    app.stop()


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api/jobs",
        "/api/videos?entity=dog",
        "/docs",
        "/openapi.json",
        "/search?entity=dog",
        "/static/app.css",
        "/files/outputs/clip.mp4.manifest.json",
    ],
)
def test_401_without_credentials(locked_app: WebApp, path: str) -> None:
    response = raw_get(locked_app, path)
    assert response.status == 401
    assert response.getheader("WWW-Authenticate", "").startswith("Basic ")
    assert raw_get(locked_app, path, basic(USER, "wrong")).status == 401
    assert raw_get(locked_app, path, basic("someone", PASSWORD)).status == 401


def test_credentials_open_every_page(locked_app: WebApp) -> None:
    for path in ("/", "/api/jobs", "/docs", "/files/outputs/clip.mp4.manifest.json"):
        assert raw_get(locked_app, path, basic(USER, PASSWORD)).status == 200, path
    # With credentials any Host is served: the operator chose to listen beyond loopback.
    headers = {**basic(USER, PASSWORD), "Host": "vtrack.example.org"}
    assert raw_get(locked_app, "/api/jobs", headers).status == 200


def test_cross_origin_changes_are_refused(locked_app: WebApp) -> None:
    auth = basic(USER, PASSWORD)
    host = f"127.0.0.1:{locked_app.port}"
    for method, path in (("POST", "/api/jobs"), ("DELETE", "/api/jobs/x"), ("POST", "/jobs")):
        foreign = {**auth, "Origin": "https://evil.example"}
        assert raw_get(locked_app, path, foreign, method).status == 403
        referer = {**auth, "Referer": "https://evil.example/page"}
        assert raw_get(locked_app, path, referer, method).status == 403
        assert raw_get(locked_app, path, {**auth, "Origin": "null"}, method).status == 403
    # The app's own pages pass the check and reach the route (unknown job: 404).
    own = {**auth, "Origin": f"http://{host}"}
    assert raw_get(locked_app, "/api/jobs/no-such-job", own, "DELETE").status == 404
    # Reading is never refused for its origin.
    assert (
        raw_get(locked_app, "/api/jobs", {**auth, "Origin": "https://evil.example"}).status == 200
    )


def test_without_auth_other_hosts_are_refused(open_app: WebApp) -> None:
    assert raw_get(open_app, "/api/jobs").status == 200
    assert raw_get(open_app, "/api/jobs", {"Host": f"localhost:{open_app.port}"}).status == 200
    rebinding = raw_get(open_app, "/api/jobs", {"Host": "attacker.example"})
    assert rebinding.status == 403


def test_vtrack_web_refuses_another_host_without_auth(folders: dict[str, Path]) -> None:
    env = app_env(folders)
    env.pop("VTRACK_WEB_AUTH", None)
    result = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "web", "--host", "0.0.0.0", "--port", "1"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "VTRACK_WEB_AUTH" in lines[0] and "0.0.0.0" in lines[0]


def test_outputs_are_served_with_their_type_and_caching(open_app: WebApp) -> None:
    manifest = raw_get(open_app, "/files/outputs/clip.mp4.manifest.json")
    assert manifest.status == 200
    assert manifest.getheader("Content-Type") == "application/json; charset=utf-8"
    assert manifest.getheader("Cache-Control") == "private, no-cache"
    etag = manifest.getheader("ETag")
    assert etag and manifest.getheader("Last-Modified")
    again = raw_get(open_app, "/files/outputs/clip.mp4.manifest.json", {"If-None-Match": etag})
    assert again.status == 304
    gif = raw_get(open_app, "/files/outputs/clip.mp4.001_dog_pct90_fr40.gif")
    assert gif.getheader("Content-Type") == "image/gif"
    assert gif.getheader("Cache-Control") == "private, max-age=300"
    webp = raw_get(open_app, "/files/outputs/clip.mp4.001_dog_pct90_fr40.webp")
    assert webp.getheader("Content-Type") == "image/webp"
    nested = raw_get(open_app, "/files/outputs/nested/b.mp4.summary_pct70_fr10.jpeg")
    assert nested.status == 200 and nested.getheader("Content-Type") == "image/jpeg"
    part = raw_get(
        open_app, "/files/outputs/clip.mp4.001_dog_pct90_fr40.gif", {"Range": "bytes=0-5"}
    )
    assert part.status == 206 and part.getheader("Content-Range") == "bytes 0-5/70"


@pytest.mark.parametrize(
    "path",
    [
        "/files/outputs/../outside/secret.txt",
        "/files/outputs/nested/../../outside/secret.txt",
        "/files/outputs/%2e%2e/outside/secret.txt",
        "/files/outputs/./clip.mp4.manifest.json",
    ],
)
def test_dot_dot_is_refused(open_app: WebApp, path: str) -> None:
    assert raw_get(open_app, path).status in (400, 404)


@pytest.mark.parametrize(
    "path",
    [
        "/files/outputs/nested%2Fb.mp4.summary_pct70_fr10.jpeg",
        "/files/outputs/nested%2fb.mp4.summary_pct70_fr10.jpeg",
        "/files/outputs/..%2F..%2Foutside%2Fsecret.txt",
        "/files/outputs/nested%5Cb.mp4.summary_pct70_fr10.jpeg",
    ],
)
def test_encoded_slashes_are_refused(open_app: WebApp, path: str) -> None:
    assert raw_get(open_app, path).status == 400


def test_symlinks_out_of_the_root_are_refused(open_app: WebApp) -> None:
    assert raw_get(open_app, "/files/outputs/leak.txt").status == 404
    assert raw_get(open_app, "/files/outputs/leakdir/secret.txt").status == 404


def test_the_catalog_and_hidden_files_are_never_served(
    open_app: WebApp, folders: dict[str, Path]
) -> None:
    assert (folders["output"] / ".vtrack-catalog.sqlite3").is_file()  # the default catalog
    assert raw_get(open_app, "/files/outputs/.vtrack-catalog.sqlite3").status == 404
    assert raw_get(open_app, "/files/outputs/.vtrack-catalog.sqlite3-wal").status == 404
    partial = "/files/outputs/.clip.mp4.manifest.json.x1.vtrack-partial"
    assert raw_get(open_app, partial).status == 404
    assert raw_get(open_app, "/files/outputs/catalog.db").status == 404
    assert raw_get(open_app, "/files/elsewhere/clip.mp4.manifest.json").status == 404
