"""``vtrack run`` with the detector a user picks (VTRACK_DETECTOR), on a real shared clip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SHARED_MODELS


def vtrack_run(video: Path, out: Path, **settings: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTRACK_")}
    env |= {"VTRACK_STORAGE_DIR": str(out), "VTRACK_INFERENCE_THREADS": "1"} | settings
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "run", str(video), "--out", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(Path(done.stdout.strip().splitlines()[-1]).read_text())


@pytest.mark.parametrize(
    ("model", "tiles"),
    [
        ("yolox_nano_416.onnx", "off"),
        ("picodet_s_416_coco.onnx", "off"),
        ("yolox_nano_416.onnx", "2x2"),
    ],
)
def test_run_tracks_the_dog_clip_with_the_chosen_detector(
    shared_videos: Path, tmp_path: Path, model: str, tiles: str
) -> None:
    path = SHARED_MODELS / model
    if not path.is_file():
        pytest.skip(f"shared model not found at {path}")
    manifest = vtrack_run(
        shared_videos / "sam2_01_dog.mp4",
        tmp_path / "out",
        VTRACK_DETECTOR=str(path),
        VTRACK_DETECT_TILES=tiles,
    )
    assert manifest["status"] == "completed"
    labels = [entry["entity"] for entry in manifest["objects"]]
    # The clip: a woman walking a dog across a lawn.
    assert "dog" in labels and "person" in labels, labels
    assert labels.count("person") == 1, labels
    dogs = [entry for entry in manifest["objects"] if entry["entity"] == "dog"]
    assert max(dog["last_time"] - dog["first_time"] for dog in dogs) >= 5.0
