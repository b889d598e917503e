"""``vtrack models`` and ``vtrack models fetch``, against a real HTTP server on 127.0.0.1
serving the real model files of ``../shared/models``."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SHARED_MODELS
from tests.support.cli import vtrack
from workers.local.backend import LocalTrackingOptions, load_detector
from workers.local.model_catalogue import CATALOGUE, find_model
from workers.local.model_files import sha256_of

pytestmark = pytest.mark.skipif(
    not (SHARED_MODELS / "picodet_s_320_coco.onnx").is_file(),
    reason=f"shared models not found at {SHARED_MODELS}",
)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def models_server() -> Iterator[str]:
    """``../shared/models`` over HTTP on 127.0.0.1 (its base URL)."""
    handler = functools.partial(QuietHandler, directory=str(SHARED_MODELS))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def environment(model_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTRACK_")}
    return env | {"VTRACK_MODEL_DIR": str(model_dir)}


def test_the_catalogue_checksums_are_those_of_the_shared_files() -> None:
    for model in CATALOGUE:
        shared = SHARED_MODELS / model.file_name
        if not shared.is_file():
            shared = SHARED_MODELS / "agpl" / model.file_name
        if shared.is_file():
            assert sha256_of(shared) == model.sha256, model.name
            assert shared.stat().st_size == model.size_bytes, model.name


def test_models_lists_every_model_with_its_licence_url_and_checksum(tmp_path: Path) -> None:
    result = vtrack("models", env=environment(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = {line.split("\t")[0]: line.split("\t") for line in result.stdout.splitlines()}
    assert rows["name"][:6] == ["name", "kind", "family", "input", "COCO mAP", "size"]
    assert rows["yolox-nano"][1:5] == ["detector", "yolox", "416x416", "25.8"]
    assert rows["picodet-s-416"][2] == "gfl"
    assert rows["osnet-x0.25-msmt17"][1] == "reid"
    assert rows["yolo11n-int8-320"][6].startswith("AGPL")
    assert rows["yolox-nano"][-1] == find_model("yolox-nano").sha256  # type: ignore[union-attr]
    assert rows["yolox-nano"][-2].startswith("https://")


def test_fetch_downloads_checks_and_the_detector_then_runs_by_name(
    tmp_path: Path, models_server: str
) -> None:
    folder = tmp_path / "models"
    url = f"{models_server}/picodet_s_320_coco.onnx"
    result = vtrack("models", "fetch", "picodet-s-320", "--url", url, env=environment(folder))
    assert result.returncode == 0, result.stderr
    assert "sha256 verified" in result.stderr and "VTRACK_DETECTOR=picodet-s-320" in result.stderr
    fetched = folder / "picodet_s_320_coco.onnx"
    assert sha256_of(fetched) == find_model("picodet-s-320").sha256  # type: ignore[union-attr]
    listed = vtrack("models", env=environment(folder)).stdout
    assert (
        "picodet-s-320\tdetector\tgfl\t320x320\t27.1\t4.0 MB" in listed and "\tfetched\t" in listed
    )
    detector = load_detector(LocalTrackingOptions(detector="picodet-s-320", model_dir=str(folder)))
    assert (detector.family, detector.input_width, detector.model_path) == ("gfl", 320, fetched)


def test_a_file_whose_checksum_does_not_match_is_refused_and_not_kept(
    tmp_path: Path, models_server: str
) -> None:
    folder = tmp_path / "models"
    wrong = f"{models_server}/picodet_s_416_coco.onnx"  # a real model, but not picodet-s-320
    result = vtrack("models", "fetch", "picodet-s-320", "--url", wrong, env=environment(folder))
    assert result.returncode != 0
    assert "sha256" in result.stderr and "refused" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # "fetching ..." and the one error
    assert "Traceback" not in result.stderr
    assert not folder.exists() or list(folder.iterdir()) == []


def test_agpl_weights_are_never_fetched_without_consent(tmp_path: Path, models_server: str) -> None:
    folder = tmp_path / "models"
    url = f"{models_server}/agpl/yolo11n_int8_320.onnx"
    refused = vtrack("models", "fetch", "yolo11n-int8-320", "--url", url, env=environment(folder))
    assert refused.returncode != 0 and "--accept-agpl" in refused.stderr
    assert not folder.exists()
    accepted = vtrack(
        "models",
        "fetch",
        "yolo11n-int8-320",
        "--url",
        url,
        "--accept-agpl",
        env=environment(folder),
    )
    assert accepted.returncode == 0, accepted.stderr
    assert (folder / "yolo11n_int8_320.onnx").is_file()


def test_a_known_name_not_yet_fetched_says_how_to_get_it(tmp_path: Path) -> None:
    from workers.errors import ConfigurationError

    options = LocalTrackingOptions(detector="yolox-nano", model_dir=str(tmp_path))
    with pytest.raises(ConfigurationError, match="vtrack models fetch yolox-nano"):
        load_detector(options)
    with pytest.raises(ConfigurationError, match="neither a known detector model"):
        load_detector(LocalTrackingOptions(detector="yolox-huge", model_dir=str(tmp_path)))
    with pytest.raises(ConfigurationError, match=r"VTRACK_DETECTOR: .* does not exist"):
        load_detector(LocalTrackingOptions(detector=str(tmp_path / "absent.onnx")))


def test_the_reid_model_is_resolved_by_name_once_fetched(
    tmp_path: Path, models_server: str
) -> None:
    from workers.errors import ConfigurationError
    from workers.local.model_catalogue import resolve_reid_name

    with pytest.raises(ConfigurationError, match=r"vtrack models fetch osnet-x0\.25-msmt17"):
        resolve_reid_name("osnet-x0.25-msmt17", tmp_path)
    url = f"{models_server}/osnet_x0_25_msmt17.onnx"
    fetched = vtrack(
        "models", "fetch", "osnet-x0.25-msmt17", "--url", url, env=environment(tmp_path)
    )
    assert fetched.returncode == 0 and "VTRACK_REID_MODEL=osnet-x0.25-msmt17" in fetched.stderr
    assert resolve_reid_name("osnet-x0.25-msmt17", tmp_path) == tmp_path / "osnet_x0_25_msmt17.onnx"
    with pytest.raises(ConfigurationError, match="VTRACK_REID_MODEL: 'yolox-nano'"):
        resolve_reid_name("yolox-nano", tmp_path)
