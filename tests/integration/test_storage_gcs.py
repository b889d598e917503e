"""gs:// storage against a real Cloud Storage HTTP server (gcp-storage-emulator on 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gcs_emulator import create_bucket, running_gcs_emulator, using_gcs_emulator
from tests.support.waiting import wait_for
from workers.errors import InputError, NotFoundError, UnsafePathError
from workers.storage import GCSStorage, gcs_client, open_storage

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[str]:
    """The emulator's address, with vtrack's client pointed at it (may move to conftest)."""
    with running_gcs_emulator() as host, using_gcs_emulator(host):
        yield host


@pytest.fixture
def bucket(gcs_emulator: str) -> str:
    return create_bucket(gcs_emulator)


@pytest.fixture
def storage(gcs_emulator: str, tmp_path: Path) -> GCSStorage:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    return GCSStorage(temp_dir=downloads)


def test_write_then_read_round_trips_with_generation_and_content_type(
    storage: GCSStorage, bucket: str
) -> None:
    uri = f"gs://{bucket}/clip.mp4/person/summary.json"

    written = storage.write_bytes(uri, b'{"ok": true}', "application/json")

    assert storage.read_bytes(uri) == b'{"ok": true}'
    assert written.uri == uri
    assert written.size == 12
    assert written.content_type == "application/json"
    assert written.generation is not None and written.generation.isdigit()
    assert written.mtime is not None and abs(written.mtime - time.time()) < 60
    assert storage.stat(uri) == written


def test_overwriting_changes_the_generation(storage: GCSStorage, bucket: str) -> None:
    uri = f"gs://{bucket}/manifest.json"
    first = storage.write_bytes(uri, b"1", "application/json")

    second = storage.write_bytes(uri, b"22", "application/json")

    assert second.generation != first.generation
    assert storage.stat(uri).generation == second.generation
    assert storage.read_bytes(uri) == b"22"


def test_the_content_type_written_is_the_one_stored(storage: GCSStorage, bucket: str) -> None:
    storage.write_bytes(f"gs://{bucket}/a/dog.webp", b"RIFF", "image/webp")
    storage.write_bytes(f"gs://{bucket}/a/dog.gif", b"GIF89a", "image/gif")

    types = {Path(item.uri).name: item.content_type for item in storage.list(f"gs://{bucket}/a")}

    assert types == {"dog.gif": "image/gif", "dog.webp": "image/webp"}
    assert storage.stat(f"gs://{bucket}/a/dog.webp").content_type == "image/webp"


def test_list_takes_the_prefix_as_a_folder(storage: GCSStorage, bucket: str) -> None:
    names = ["out", "out/a.json", "out/sub/b.json", "outside/c.json", "other.json"]
    for name in names:
        storage.write_bytes(f"gs://{bucket}/{name}", b"12345", "application/json")

    def listed(prefix: str) -> list[str]:
        return [item.uri.removeprefix(f"gs://{bucket}/") for item in storage.list(prefix)]

    assert listed(f"gs://{bucket}/out") == ["out", "out/a.json", "out/sub/b.json"]
    assert listed(f"gs://{bucket}/out/") == ["out/a.json", "out/sub/b.json"]
    assert listed(f"gs://{bucket}/out/a.json") == ["out/a.json"]
    assert listed(f"gs://{bucket}") == sorted(names)
    assert listed(f"gs://{bucket}/nothing/") == []
    assert {item.size for item in storage.list(f"gs://{bucket}/out/")} == {5}


def test_exists_and_delete(storage: GCSStorage, bucket: str) -> None:
    uri = f"gs://{bucket}/a.json"
    storage.write_bytes(uri, b"{}", "application/json")
    assert storage.exists(uri)

    storage.delete(uri)

    assert not storage.exists(uri)
    assert not storage.exists(f"gs://no-such-bucket-{bucket}/a.json")
    with pytest.raises(NotFoundError, match=f"gs://{bucket}/a.json does not exist"):
        storage.delete(uri)


@pytest.mark.parametrize(
    "operation",
    [
        lambda s, uri: s.read_bytes(uri),
        lambda s, uri: s.stat(uri),
        lambda s, uri: s.delete(uri),
        lambda s, uri: s.local_copy(uri).__enter__(),
        lambda s, uri: s.local_copy(uri, max_bytes=10).__enter__(),
    ],
    ids=["read_bytes", "stat", "delete", "local_copy", "local_copy_capped"],
)
def test_a_missing_object_raises_not_found_naming_the_uri(
    storage: GCSStorage, bucket: str, operation, tmp_path: Path
) -> None:
    uri = f"gs://{bucket}/nowhere/clip.mp4"
    with pytest.raises(NotFoundError) as raised:
        operation(storage, uri)
    assert str(raised.value).startswith(f"{uri} does not exist")
    assert list((tmp_path / "downloads").iterdir()) == []  # no temporary file left behind


@pytest.mark.parametrize(
    "operation",
    [
        lambda s, uri: s.read_bytes(uri),
        lambda s, uri: s.stat(uri),
        lambda s, uri: s.write_bytes(uri, b"{}", "application/json"),
        lambda s, uri: list(s.list(uri)),
    ],
    ids=["read_bytes", "stat", "write_bytes", "list"],
)
def test_a_missing_bucket_raises_not_found_naming_it(
    storage: GCSStorage, gcs_emulator: str, operation
) -> None:
    uri = "gs://vtrack-no-such-bucket/clip.mp4.json"
    with pytest.raises(NotFoundError) as raised:
        operation(storage, uri)
    assert str(raised.value) == (
        f"{uri} does not exist (no such object, or no bucket 'vtrack-no-such-bucket')"
    )


@pytest.mark.parametrize(
    "name",
    ["../escape.json", "out/../../escape.json", "/etc/escape.json", "out/./escape.json", ".."],
)
def test_unsafe_object_names_are_refused(storage: GCSStorage, bucket: str, name: str) -> None:
    uri = f"gs://{bucket}/{name}"
    with pytest.raises(UnsafePathError, match="object names must not"):
        storage.write_bytes(uri, b"{}", "application/json")
    with pytest.raises(UnsafePathError):
        storage.read_bytes(uri)
    assert list(storage.list(f"gs://{bucket}")) == []


def test_upload_file_and_local_copy_of_a_multi_megabyte_object(
    storage: GCSStorage, bucket: str, tmp_path: Path
) -> None:
    """9 MiB is past the client's 8 MiB one-request limit, so the upload is resumable."""
    video = tmp_path / "clip.mp4"
    content = os.urandom(9 * MiB)
    video.write_bytes(content)
    uri = f"gs://{bucket}/videos/clip.mp4"

    uploaded = storage.upload_file(video, uri, "video/mp4")

    assert (uploaded.size, uploaded.content_type) == (9 * MiB, "video/mp4")
    with storage.local_copy(uri, max_bytes=9 * MiB) as copy:
        assert copy.suffix == ".mp4"  # decoders that probe by extension still work
        assert copy.read_bytes() == content
    assert not copy.exists()


def test_local_copy_deletes_its_file_when_the_caller_fails(
    storage: GCSStorage, bucket: str
) -> None:
    uri = f"gs://{bucket}/clip.mp4"
    storage.write_bytes(uri, b"\0" * 1000, "video/mp4")

    with pytest.raises(RuntimeError), storage.local_copy(uri) as copy:
        raise RuntimeError("decoding failed")

    assert not copy.exists()


def test_local_copy_refuses_objects_over_the_limit_before_downloading(
    storage: GCSStorage, bucket: str, tmp_path: Path
) -> None:
    uri = f"gs://{bucket}/big.mp4"
    storage.write_bytes(uri, b"\0" * (3 * MiB), "video/mp4")

    with pytest.raises(InputError) as raised, storage.local_copy(uri, max_bytes=2 * MiB):
        pass

    assert str(raised.value) == (
        f"{uri} is 3.1 MB (3145728 bytes), over the limit of 2.1 MB (2097152 bytes)"
    )
    assert list((tmp_path / "downloads").iterdir()) == []


def test_upload_of_a_missing_local_file_names_it(
    storage: GCSStorage, bucket: str, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match=r"nothing\.gif: no such file to upload"):
        storage.upload_file(tmp_path / "nothing.gif", f"gs://{bucket}/x.gif", "image/gif")


def test_open_storage_routes_gs_uris_and_local_paths(
    gcs_emulator: str, bucket: str, tmp_path: Path
) -> None:
    storage = open_storage([str(tmp_path), f"gs://{bucket}/ignored-as-a-root"])
    local = tmp_path / "clip.mp4.json"

    storage.write_bytes(str(local), b"local", "application/json")
    storage.write_bytes(f"gs://{bucket}/clip.mp4.json", b"remote", "application/json")

    assert storage.read_bytes(str(local)) == b"local"
    assert storage.read_bytes(f"gs://{bucket}/clip.mp4.json") == b"remote"
    assert [item.uri for item in storage.list(f"gs://{bucket}")] == [f"gs://{bucket}/clip.mp4.json"]


def test_one_client_per_process_and_a_new_one_after_fork(storage: GCSStorage, bucket: str) -> None:
    """A Celery prefork child must not share the parent's HTTP connections."""
    uri = f"gs://{bucket}/forked.json"
    storage.write_bytes(uri, b"from parent", "application/json")
    parent_client = gcs_client()
    assert gcs_client() is parent_client

    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        try:
            fresh = gcs_client() is not parent_client
            os._exit(0 if fresh and storage.read_bytes(uri) == b"from parent" else 1)
        except BaseException:
            os._exit(2)

    def child_ended() -> tuple[int, int] | None:
        ended, status = os.waitpid(pid, os.WNOHANG)
        return (ended, status) if ended else None

    try:  # a child that hangs fails the test in a minute, not at pytest's time limit
        _, status = wait_for(child_ended, 60, "the forked child to end")
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise

    assert os.waitstatus_to_exitcode(status) == 0
