"""vtrack export: MOT, CVAT for video 1.1 and COCO video, each read back by an independent
reader (csv, xml.etree, json), from an annotation file and from a manifest."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from entrypoints.cli import main
from tests.support.videos import write_test_video
from workers.annotations.exports import ExportObject, ExportVideo, to_coco, to_cvat, to_mot
from workers.annotations.model import (
    Entity,
    NormalizedBox,
    ObjectTrack,
    Segment,
    TrackedFrame,
    VideoAnnotation,
)
from workers.annotations.vi_json import dump_annotation_json

WIDTH, HEIGHT = 160, 96


def obj(label: str, times: list[float], confidence: float, *, left: float = 0.1) -> ObjectTrack:
    frames = tuple(
        TrackedFrame(t, NormalizedBox(left + 0.01 * i, 0.2, left + 0.3 + 0.01 * i, 0.7))
        for i, t in enumerate(times)
    )
    return ObjectTrack(
        entity=Entity(entity_id="", description=label),
        confidence=confidence,
        segment=Segment(times[0], times[-1]),
        frames=frames,
    )


# The API's shape: irregular times, two times within one frame, a dog that is gone for
# 1.5 s, and (in memory only) a box past the frame's edge.
PERSON = obj("person", [0.0, 0.1, 0.13, 0.2, 0.5, 0.9, 1.2, 1.5, 1.8, 2.0, 2.1, 2.2], 0.9)
DOG = obj("dog", [0.3, 0.4, 0.5, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 3.2, 3.4, 3.6], 0.8, left=0.55)
PAST_EDGE = obj("dog", [0.3, 0.4], 0.8, left=0.8)
FAINT = obj("person", [1.0, 1.1, 1.2], 0.2)
VIDEO = ExportVideo(name="clip.mp4", width=WIDTH, height=HEIGHT, fps=10.0, frame_count=40)


def objects() -> list[ExportObject]:
    return [ExportObject(1, PERSON), ExportObject(2, DOG)]


def test_mot_lines_have_ten_values_frames_and_ids_from_one_and_pixel_boxes() -> None:
    rows = list(csv.reader(io.StringIO(to_mot(objects(), VIDEO))))
    assert all(len(row) == 10 for row in rows)
    assert all(row[7:] == ["-1", "-1", "-1"] for row in rows)
    person = [row for row in rows if row[1] == "1"]
    frames = [int(row[0]) for row in person]
    # 0.1 s and 0.13 s are both frame 1 (MOT frame 2): written once.
    assert frames == [1, 2, 3, 6, 10, 13, 16, 19, 21, 22, 23]
    first = [float(value) for value in person[0][2:7]]
    assert first == pytest.approx([0.1 * WIDTH, 0.2 * HEIGHT, 0.3 * WIDTH, 0.5 * HEIGHT, 0.9])
    edge = list(csv.reader(io.StringIO(to_mot([ExportObject(1, PAST_EDGE)], VIDEO))))
    # The box passes the right edge (0.8 + 0.3): clipped to the frame.
    assert float(edge[0][2]) + float(edge[0][4]) == pytest.approx(WIDTH)
    assert [int(row[0]) for row in rows] == sorted(int(row[0]) for row in rows)


def test_cvat_xml_is_version_1_1_with_one_box_per_frame_and_outside_after_each_stretch() -> None:
    root = ET.fromstring(to_cvat(objects(), VIDEO))
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    task = root.find("meta/task")
    assert task is not None
    assert task.findtext("size") == "40" and task.findtext("mode") == "interpolation"
    assert task.findtext("original_size/width") == str(WIDTH)
    assert task.findtext("original_size/height") == str(HEIGHT)
    assert sorted(label.findtext("name") for label in task.findall("labels/label")) == [
        "dog",
        "person",
    ]
    tracks = root.findall("track")
    assert [(t.get("id"), t.get("label"), t.get("source")) for t in tracks] == [
        ("0", "person", "auto"),
        ("1", "dog", "auto"),
    ]
    for track in tracks:
        boxes = track.findall("box")
        frames = [int(box.get("frame", "-1")) for box in boxes]
        assert len(frames) == len(set(frames)), "a frame twice in one track"
        assert frames == sorted(frames)
        for box in boxes:
            assert {"frame", "xtl", "ytl", "xbr", "ybr", "outside", "occluded", "keyframe"} <= set(
                box.attrib
            )
            assert float(box.get("xtl", 0)) < float(box.get("xbr", 0)) <= WIDTH
        inside = [int(b.get("frame", 0)) for b in boxes if b.get("outside") == "0"]
        outside = [int(b.get("frame", 0)) for b in boxes if b.get("outside") == "1"]
        assert outside[-1] == inside[-1] + 1  # after the last frame
    dog_boxes = tracks[1].findall("box")
    # Gone from 0.5 s to 2.0 s: outside at frame 6, back at frame 20.
    states = [(int(b.get("frame", 0)), b.get("outside")) for b in dog_boxes]
    assert (6, "1") in states and (20, "0") in states


def test_coco_video_links_annotations_to_images_of_one_video_by_frame() -> None:
    document = json.loads(to_coco(objects(), VIDEO))
    assert [video["id"] for video in document["videos"]] == [1]
    images = {image["id"]: image for image in document["images"]}
    assert all(image["video_id"] == 1 for image in images.values())
    assert len({image["frame_id"] for image in images.values()}) == len(images)
    categories = {c["id"]: c["name"] for c in document["categories"]}
    by_track: dict[int, list[int]] = {}
    for annotation in document["annotations"]:
        image = images[annotation["image_id"]]
        assert annotation["video_id"] == image["video_id"]
        x, y, w, h = annotation["bbox"]
        assert w > 0 and h > 0 and x + w <= WIDTH + 1e-6 and y + h <= HEIGHT + 1e-6
        by_track.setdefault(annotation["track_id"], []).append(image["frame_id"])
        assert categories[annotation["category_id"]] == (
            "person" if annotation["track_id"] == 1 else "dog"
        )
    assert by_track[1] == [0, 1, 2, 5, 9, 12, 15, 18, 20, 21, 22]
    assert len({a["id"] for a in document["annotations"]}) == len(document["annotations"])


@pytest.fixture
def annotated_video(tmp_path: Path) -> tuple[Path, Path]:
    # Variable frame rate: frame i at 0.1 * i, but frames 10.. are 0.2 s apart.
    times = [0.1 * i for i in range(10)] + [1.0 + 0.2 * i for i in range(20)]
    video = write_test_video(
        tmp_path / "clip.mp4", frames=30, width=WIDTH, height=HEIGHT, times=times
    )
    annotation = VideoAnnotation(input_uri=str(video), objects=(PERSON, DOG, FAINT))
    path = tmp_path / "clip.mp4.json"
    path.write_text(dump_annotation_json(annotation), encoding="utf-8")
    return video, path


def test_cli_exports_an_annotation_file_with_the_videos_own_frame_numbers(
    annotated_video: tuple[Path, Path],
) -> None:
    _, annotation = annotated_video
    result = CliRunner().invoke(
        main,
        [
            "export",
            str(annotation),
            "--format",
            "mot",
            "--min-confidence",
            "0.5",
            "--min-frames",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert {row[1] for row in rows} == {"1", "2"}  # the faint person is not kept
    dog_frames = [int(row[0]) - 1 for row in rows if row[1] == "2"]
    # 2.0 s is frame 15 of this variable-rate video (1.0 + 0.2 * 5), not round(2.0 * fps);
    # the dog is seen every 0.2 s from there, one frame each.
    assert dog_frames == [3, 4, 5, 15, 16, 17, 18, 19, 20, 21, 22, 23]
    every = CliRunner().invoke(
        main, ["export", str(annotation), "--format", "mot", "--all", "--min-confidence", "0.5"]
    )
    assert {row[1] for row in csv.reader(io.StringIO(every.stdout))} == {"1", "2", "3"}


def test_cli_exports_a_manifests_kept_objects_numbered_as_in_the_manifest(
    annotated_video: tuple[Path, Path], tmp_path: Path
) -> None:
    video, annotation = annotated_video
    manifest = {
        "job_id": "j1",
        "video_uri": str(video),
        "backend": "file",
        "status": "completed",
        "thresholds": {"min_confidence": 0.85, "min_frames": 3},
        "video": {"duration": 5.0, "fps": 6.0, "width": WIDTH, "height": HEIGHT, "frame_count": 30},
        "objects_total": 3,
        "objects": [],
        "summary_uri": None,
        "annotation_uri": str(annotation),
        "manifest_uri": str(tmp_path / "clip.mp4.manifest.json"),
        "timings": {},
    }
    path = tmp_path / "clip.mp4.manifest.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    out = tmp_path / "out.xml"
    result = CliRunner().invoke(main, ["export", str(path), "--format", "cvat", "--out", str(out)])
    assert result.exit_code == 0, result.output
    tracks = ET.parse(out).getroot().findall("track")
    assert [track.get("label") for track in tracks] == ["person"]  # only 0.9 >= 0.85
    coco = CliRunner().invoke(main, ["export", str(path), "--format", "coco", "--all"])
    document = json.loads(coco.stdout)
    assert sorted({a["track_id"] for a in document["annotations"]}) == [1, 2, 3]


def test_cli_export_of_a_missing_source_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["export", str(tmp_path / "nope.json"), "--format", "mot"])
    assert result.exit_code == 2
    assert "nope.json" in result.output and "Traceback" not in result.output


def test_coco_export_is_read_and_scored_by_pycocotools(tmp_path: Path) -> None:
    """The COCO reference tools as a consumer: the export loads as a dataset, every
    annotation has the fields readers expect, and scored against itself it is perfect."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    text = to_coco([*objects(), ExportObject(3, PAST_EDGE)], VIDEO)
    path = tmp_path / "clip.coco.json"
    path.write_text(text, encoding="utf-8")
    truth = COCO(str(path))
    assert sorted(c["name"] for c in truth.loadCats(truth.getCatIds())) == ["dog", "person"]
    person = truth.getCatIds(catNms=["person"])
    assert len(truth.getAnnIds(catIds=person)) == 11  # 12 times, two on one frame
    for annotation in truth.loadAnns(truth.getAnnIds()):
        assert annotation["segmentation"] == [] and annotation["iscrowd"] == 0
        x, y, w, h = annotation["bbox"]
        assert annotation["area"] == pytest.approx(w * h, abs=0.01)
        image = truth.loadImgs(annotation["image_id"])[0]
        assert x + w <= image["width"] + 1e-6 and y + h <= image["height"] + 1e-6

    detections = truth.loadRes(
        [
            {key: annotation[key] for key in ("image_id", "category_id", "bbox", "score")}
            for annotation in json.loads(text)["annotations"]
        ]
    )
    evaluation = COCOeval(truth, detections, "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP at IoU 0.50:0.95
