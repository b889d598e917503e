"""Local storage: files under allowed roots, atomic writes, and the scheme router."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.waiting import wait_for
from workers.errors import (
    ConfigurationError,
    InputError,
    NotFoundError,
    UnsafePathError,
    UnsupportedURIError,
)
from workers.storage import (
    LocalStorage,
    ObjectStat,
    Storage,
    StorageRouter,
    open_storage,
    reset_gcs_client,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file next to the root, which the storage must never read or write."""
    path = tmp_path / "secret.txt"
    path.write_bytes(b"not yours")
    return path


@pytest.fixture
def storage(root: Path) -> LocalStorage:
    return LocalStorage([root])


# --- Reading and writing -------------------------------------------------------------------


def test_write_then_read_round_trips_and_creates_folders(storage: LocalStorage, root: Path) -> None:
    target = root / "clip.mp4" / "person" / "summary.json"

    written = storage.write_bytes(str(target), b'{"ok": true}', "application/json")

    assert target.read_bytes() == b'{"ok": true}'
    assert storage.read_bytes(str(target)) == b'{"ok": true}'
    assert written == ObjectStat(
        uri=str(target),
        size=12,
        generation=None,
        mtime=target.stat().st_mtime,
        content_type="application/json",
    )


def test_overwrite_replaces_content_and_keeps_permissions(
    storage: LocalStorage, root: Path
) -> None:
    target = root / "a.json"
    storage.write_bytes(str(target), b"first", "application/json")
    target.chmod(0o640)

    storage.write_bytes(str(target), b"second", "application/json")

    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o640


def test_new_files_get_the_usual_permissions_not_the_temp_file_ones(
    storage: LocalStorage, root: Path
) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    target = root / "b.json"

    storage.write_bytes(str(target), b"{}", "application/json")

    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_upload_file_copies_the_file(storage: LocalStorage, root: Path, tmp_path: Path) -> None:
    rendered = tmp_path / "render.gif"  # a worker's own temp file, outside the roots
    rendered.write_bytes(b"GIF89a" + bytes(range(256)) * 40)
    target = root / "clip.mp4" / "dog.gif"

    stat = storage.upload_file(rendered, str(target), "image/gif")

    assert target.read_bytes() == rendered.read_bytes()
    assert (stat.size, stat.content_type) == (rendered.stat().st_size, "image/gif")


def test_upload_of_a_missing_file_names_it(
    storage: LocalStorage, root: Path, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match=r"nothing\.gif: no such file"):
        storage.upload_file(tmp_path / "nothing.gif", str(root / "x.gif"), "image/gif")
    assert not (root / "x.gif").exists()


def test_exists_is_true_for_files_only(storage: LocalStorage, root: Path) -> None:
    (root / "folder").mkdir()
    (root / "folder" / "a.txt").write_text("a")

    assert storage.exists(str(root / "folder" / "a.txt"))
    assert not storage.exists(str(root / "folder"))
    assert not storage.exists(str(root / "missing.txt"))


def test_stat_guesses_the_content_type_from_the_extension(
    storage: LocalStorage, root: Path
) -> None:
    (root / "clip.mp4").write_bytes(b"\0" * 10)
    (root / "notes.unknownext").write_bytes(b"x")

    clip = storage.stat(str(root / "clip.mp4"))

    assert (clip.size, clip.content_type, clip.generation) == (10, "video/mp4", None)
    assert clip.mtime == (root / "clip.mp4").stat().st_mtime
    assert storage.stat(str(root / "notes.unknownext")).content_type is None


def test_stat_of_a_folder_is_refused(storage: LocalStorage, root: Path) -> None:
    (root / "folder").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        storage.stat(str(root / "folder"))


@pytest.mark.parametrize(
    "operation",
    [
        lambda s, uri: s.read_bytes(uri),
        lambda s, uri: s.stat(uri),
        lambda s, uri: s.delete(uri),
        lambda s, uri: s.local_copy(uri).__enter__(),
    ],
    ids=["read_bytes", "stat", "delete", "local_copy"],
)
def test_missing_files_raise_not_found_naming_the_path(
    storage: LocalStorage, root: Path, operation
) -> None:
    missing = root / "nowhere" / "clip.mp4"
    with pytest.raises(NotFoundError) as raised:
        operation(storage, str(missing))
    assert str(raised.value) == f"{missing}: no such file"


def test_delete_removes_the_file(storage: LocalStorage, root: Path) -> None:
    target = root / "a.json"
    target.write_text("{}")

    storage.delete(str(target))

    assert not target.exists()


def test_delete_of_a_symlink_removes_the_link_not_its_target(
    storage: LocalStorage, root: Path, outside: Path
) -> None:
    link = root / "link.txt"
    link.symlink_to(outside)

    storage.delete(str(link))

    assert not link.is_symlink()
    assert outside.read_bytes() == b"not yours"


# --- local_copy --------------------------------------------------------------------------------


def test_local_copy_yields_the_file_itself(storage: LocalStorage, root: Path) -> None:
    video = root / "clip.mp4"
    video.write_bytes(b"\0" * 100)

    with storage.local_copy(str(video)) as path:
        assert path == video
        assert path.read_bytes() == b"\0" * 100

    assert video.exists()  # never deleted: it is the caller's file


def test_local_copy_refuses_files_over_the_limit_naming_size_and_limit(
    storage: LocalStorage, root: Path
) -> None:
    video = root / "big.mp4"
    video.write_bytes(b"\0" * 2_500_000)

    with storage.local_copy(str(video), max_bytes=2_500_000) as path:  # at the limit: fine
        assert path == video
    with pytest.raises(InputError) as raised, storage.local_copy(str(video), max_bytes=2_000_000):
        pass
    assert str(raised.value) == (
        f"{video} is 2.5 MB (2500000 bytes), over the limit of 2.0 MB (2000000 bytes)"
    )


# --- Listing --------------------------------------------------------------------------------------


def test_list_of_a_folder_is_recursive_and_sorted(storage: LocalStorage, root: Path) -> None:
    for name in ["out/b.json", "out/a.json", "out/clip.mp4/dog.gif", "outside/c.json"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"12345")

    listed = list(storage.list(str(root / "out")))

    assert [item.uri for item in listed] == [
        str(root / "out/a.json"),
        str(root / "out/b.json"),
        str(root / "out/clip.mp4/dog.gif"),
    ]
    assert [item.content_type for item in listed] == ["application/json"] * 2 + ["image/gif"]
    assert {item.size for item in listed} == {5}


def test_list_of_a_file_is_that_file_and_of_nothing_is_empty(
    storage: LocalStorage, root: Path
) -> None:
    (root / "a.json").write_text("{}")

    assert [item.uri for item in storage.list(str(root / "a.json"))] == [str(root / "a.json")]
    assert list(storage.list(str(root / "missing"))) == []


def test_list_leaves_out_symlinks_that_lead_outside(
    storage: LocalStorage, root: Path, outside: Path
) -> None:
    (root / "inside.txt").write_text("mine")
    (root / "to-inside.txt").symlink_to(root / "inside.txt")
    (root / "to-outside.txt").symlink_to(outside)

    assert [Path(item.uri).name for item in storage.list(str(root))] == [
        "inside.txt",
        "to-inside.txt",
    ]


# --- Atomic writes -------------------------------------------------------------------------------


def _open_fifo_for_writing(fifo: Path, timeout_s: float = 10.0) -> int:
    """Open ``fifo`` once its reader (the upload) has opened it; never hang if it does not."""

    def opened() -> int | None:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            return None

    fd = wait_for(opened, timeout_s, "the upload reading the fifo", interval=0.01)
    os.set_blocking(fd, True)
    return fd


def test_a_write_in_progress_is_never_seen_by_readers(storage: LocalStorage, root: Path) -> None:
    """Feed an upload through a pipe, and look at the target while it is half written."""
    target = root / "clip.mp4" / "dog.gif"
    storage.write_bytes(str(target), b"old content", "image/gif")
    source = root / "source.fifo"
    os.mkfifo(source)
    chunk = b"n" * (1024 * 1024)
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            storage.upload_file(source, str(target), "image/gif")
        except BaseException as exc:
            errors.append(exc)

    uploader = threading.Thread(target=upload)
    uploader.start()
    feed = _open_fifo_for_writing(source)
    try:
        os.write(feed, chunk * 2)
        wait_for(
            lambda: any(
                p.name != target.name and p.stat().st_size >= len(chunk)
                for p in target.parent.iterdir()
            ),
            10,
            "the first megabyte in a file beside the target",
            0.01,
        )
        assert target.read_bytes() == b"old content"
        assert storage.read_bytes(str(target)) == b"old content"
        assert [item.uri for item in storage.list(str(target.parent))] == [str(target)]
        os.write(feed, chunk)
    finally:
        os.close(feed)
        uploader.join(timeout=10)

    assert not errors
    assert target.read_bytes() == chunk * 3
    assert [p.name for p in target.parent.iterdir()] == ["dog.gif"]


_WRITE_OVER_FILE_SIZE_LIMIT = """
import resource, signal, sys
from workers.errors import StorageError
from workers.storage import LocalStorage

root, target, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # make the kernel fail the write with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
try:
    LocalStorage([root]).write_bytes(target, b"n" * (3 * limit), "application/json")
except StorageError as exc:
    print(exc)
    sys.exit(0)
sys.exit("the write did not fail")
"""


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(
    storage: LocalStorage, root: Path
) -> None:
    """A real write failure: the kernel refuses to grow a file past RLIMIT_FSIZE."""
    target = root / "out" / "clip.mp4.json"
    storage.write_bytes(str(target), b'{"old": true}', "application/json")
    limit = 64 * 1024

    run = subprocess.run(
        [sys.executable, "-c", _WRITE_OVER_FILE_SIZE_LIMIT, str(root), str(target), str(limit)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{target}: cannot write it: File too large"
    assert target.read_bytes() == b'{"old": true}'
    assert [p.name for p in target.parent.iterdir()] == ["clip.mp4.json"]


# --- Path safety -------------------------------------------------------------------------------


def test_dot_dot_that_climbs_out_is_refused_naming_path_and_roots(
    storage: LocalStorage, root: Path, outside: Path
) -> None:
    climbing = f"{root}/../{outside.name}"

    with pytest.raises(UnsafePathError) as raised:
        storage.read_bytes(climbing)

    assert str(raised.value) == (
        f"{climbing} (which resolves to {outside}) is outside the allowed folders: {root}"
    )
    with pytest.raises(UnsafePathError):
        storage.write_bytes(f"{root}/../new.json", b"{}", "application/json")
    assert not (root.parent / "new.json").exists()


def test_dot_dot_that_stays_inside_is_allowed(storage: LocalStorage, root: Path) -> None:
    (root / "a").mkdir()
    storage.write_bytes(f"{root}/a/../b.json", b"{}", "application/json")
    assert (root / "b.json").read_bytes() == b"{}"


@pytest.mark.parametrize(
    "operation",
    [
        lambda s, uri: s.read_bytes(uri),
        lambda s, uri: s.write_bytes(uri, b"overwritten", "text/plain"),
        lambda s, uri: s.stat(uri),
        lambda s, uri: s.exists(uri),
        lambda s, uri: s.delete(uri),
        lambda s, uri: list(s.list(uri)),
        lambda s, uri: s.local_copy(uri).__enter__(),
    ],
    ids=["read_bytes", "write_bytes", "stat", "exists", "delete", "list", "local_copy"],
)
def test_absolute_paths_outside_the_roots_are_refused(
    storage: LocalStorage, root: Path, outside: Path, operation
) -> None:
    with pytest.raises(UnsafePathError, match="is outside the allowed folders"):
        operation(storage, str(outside))
    assert outside.read_bytes() == b"not yours"


def test_a_sibling_folder_sharing_the_roots_name_prefix_is_outside(
    storage: LocalStorage, root: Path
) -> None:
    sibling = root.parent / f"{root.name}-evil" / "a.json"
    with pytest.raises(UnsafePathError):
        storage.write_bytes(str(sibling), b"{}", "application/json")
    assert not sibling.exists()


def test_a_symlink_inside_the_root_pointing_outside_is_refused(
    storage: LocalStorage, root: Path, outside: Path
) -> None:
    link = root / "innocent.txt"
    link.symlink_to(outside)

    with pytest.raises(UnsafePathError, match=f"which resolves to {outside}"):
        storage.read_bytes(str(link))
    with pytest.raises(UnsafePathError):
        storage.write_bytes(str(link), b"overwritten", "text/plain")
    with pytest.raises(UnsafePathError), storage.local_copy(str(link)):
        pass
    assert outside.read_bytes() == b"not yours"


def test_a_symlinked_folder_pointing_outside_is_refused(
    storage: LocalStorage, root: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "out").symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(UnsafePathError):
        storage.write_bytes(str(root / "out" / "a.json"), b"{}", "application/json")
    assert list(elsewhere.iterdir()) == []


def test_a_symlink_that_stays_inside_is_followed(storage: LocalStorage, root: Path) -> None:
    (root / "real.json").write_text('{"real": 1}')
    (root / "alias.json").symlink_to(root / "real.json")
    assert storage.read_bytes(str(root / "alias.json")) == b'{"real": 1}'


def test_file_uris_are_held_to_the_roots_too(
    storage: LocalStorage, root: Path, outside: Path
) -> None:
    target = root / "my clip.mp4.json"  # as_uri() percent-encodes the space

    storage.write_bytes(target.as_uri(), b"{}", "application/json")

    assert target.read_bytes() == b"{}"
    assert storage.exists(target.as_uri())
    with pytest.raises(UnsafePathError):
        storage.read_bytes(outside.as_uri())


def test_roots_may_be_file_uris_or_reached_through_symlinks(root: Path, tmp_path: Path) -> None:
    second = tmp_path / "second"
    second.mkdir()
    via_link = tmp_path / "link-to-root"
    via_link.symlink_to(root, target_is_directory=True)
    storage = LocalStorage([via_link, second.as_uri()])

    storage.write_bytes(str(root / "a.json"), b"1", "application/json")
    storage.write_bytes(str(second / "b.json"), b"2", "application/json")

    assert (root / "a.json").read_bytes() == b"1"
    assert (second / "b.json").read_bytes() == b"2"


def test_with_no_roots_every_local_path_is_refused(root: Path) -> None:
    with pytest.raises(UnsafePathError, match="none are configured"):
        LocalStorage([]).read_bytes(str(root / "a.json"))


# --- The scheme router ---------------------------------------------------------------------------


@pytest.fixture
def no_google_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No emulator and credentials that cannot load, as on a machine that never set them up."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    reset_gcs_client()
    yield
    reset_gcs_client()


def test_open_storage_routes_local_uris_within_its_roots(
    root: Path, tmp_path: Path, outside: Path, no_google_credentials: None
) -> None:
    second = tmp_path / "second"
    storage = open_storage([str(root), "gs://bucket/prefix", second.as_uri(), " "])

    storage.write_bytes(str(root / "a.json"), b"1", "application/json")
    storage.write_bytes((second / "b.json").as_uri(), b"2", "application/json")

    assert isinstance(storage, Storage)
    assert storage.read_bytes(str(root / "a.json")) == b"1"
    assert [item.uri for item in storage.list(str(second))] == [str(second / "b.json")]
    with pytest.raises(UnsafePathError):
        storage.read_bytes(str(outside))


def test_open_storage_refuses_unknown_schemes(root: Path) -> None:
    storage = open_storage([str(root)])
    with pytest.raises(UnsupportedURIError, match="s3"):
        storage.read_bytes("s3://bucket/clip.mp4")


def test_a_router_without_gs_refuses_gs_uris(root: Path) -> None:
    storage = StorageRouter({"file": lambda: LocalStorage([root])})
    with pytest.raises(UnsupportedURIError, match="no storage is configured for gs://"):
        storage.exists("gs://bucket/clip.mp4")


def test_gs_without_credentials_says_how_to_set_them_up(
    root: Path, no_google_credentials: None
) -> None:
    storage = open_storage([str(root)])

    with pytest.raises(ConfigurationError) as raised:
        storage.read_bytes("gs://bucket/clip.mp4.json")

    message = str(raised.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "gcloud auth application-default login" in message
