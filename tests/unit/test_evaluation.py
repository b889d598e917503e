"""vtrack eval: CLEAR, Identity and HOTA against MOTChallenge ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from entrypoints.cli import main
from tests.conftest import SHARED_DATA
from workers.annotations.model import (
    Entity,
    NormalizedBox,
    ObjectTrack,
    Segment,
    TrackedFrame,
    VideoAnnotation,
)
from workers.annotations.vi_json import dump_annotation_json
from workers.errors import InputError
from workers.evaluation import evaluate_annotation, read_ground_truth, read_mot_tracks

MOT = SHARED_DATA / "mot"
needs_mot = pytest.mark.skipif(not MOT.is_dir(), reason=f"no MOT ground truth at {MOT}")

# TrackEval 1.3.0 (MotChallenge2DBox, BENCHMARK=MOT15, HOTA/CLEAR/Identity) on the shared
# tracker results: the reference these figures were taken from.
TRACKEVAL = {
    "TUD-Campus": {
        "MOTA": 0.5264623955431755,
        "MOTP": 0.7227989153605385,
        "IDSW": 7,
        "CLR_FP": 13,
        "CLR_FN": 150,
        "IDF1": 0.5576592082616179,
        "HOTA": 0.3913974378451139,
        "DetA": 0.418047030142763,
        "AssA": 0.36912068120832836,
    },
    "TUD-Stadtmitte": {
        "MOTA": 0.5640138408304498,
        "MOTP": 0.6540957044559912,
        "IDSW": 7,
        "CLR_FP": 45,
        "CLR_FN": 452,
        "IDF1": 0.6446194225721785,
        "HOTA": 0.3978490169927877,
        "DetA": 0.3922675723693166,
        "AssA": 0.4088407518112996,
    },
}


@needs_mot
@pytest.mark.shared_data
@pytest.mark.parametrize("sequence", sorted(TRACKEVAL))
def test_figures_match_trackeval_on_a_real_trackers_mot15_results(sequence: str) -> None:
    result = CliRunner().invoke(
        main, ["eval", str(MOT / sequence / "tracker_result.txt"), str(MOT / sequence), "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["metrics"]
    for name, expected in TRACKEVAL[sequence].items():
        assert figures[name] == pytest.approx(expected, abs=1e-9), name


def write_sequence(folder: Path, rows: list[str], *, fps: int = 10, length: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gt.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "seqinfo.ini").write_text(
        f"[Sequence]\nname=synthetic\nframeRate={fps}\nseqLength={length}\n"
        "imWidth=200\nimHeight=100\n",
        encoding="utf-8",
    )
    return folder


def pixel_track(
    label: str, track_id: int, frames: range, box: tuple[int, int, int, int]
) -> ObjectTrack:
    """A track seen at MOT frames ``frames`` (10 fps) with the pixel box left, top, w, h."""
    left, top, width, height = box
    normalized = NormalizedBox(left / 200, top / 100, (left + width) / 200, (top + height) / 100)
    tracked = tuple(TrackedFrame((frame - 1) / 10, normalized) for frame in frames)
    return ObjectTrack(
        entity=Entity(description=label),
        confidence=0.9,
        segment=Segment(tracked[0].time, tracked[-1].time),
        frames=tracked,
        track_id=track_id,
    )


def test_class_aware_scoring_counts_a_wrong_label_as_a_miss_and_a_false_track(
    tmp_path: Path,
) -> None:
    rows = [f"{f},1,10,10,40,40,1,1,1" for f in range(1, 21)]
    rows += [f"{f},2,120,20,40,60,1,2,1" for f in range(1, 21)]
    gt = write_sequence(tmp_path / "seq", rows)
    truth = read_ground_truth(gt, class_names={1: "dog", 2: "person"})
    right = VideoAnnotation(
        "v",
        (
            pixel_track("dog", 1, range(1, 21), (10, 10, 40, 40)),
            pixel_track("person", 2, range(1, 21), (120, 20, 40, 60)),
        ),
    )
    perfect = evaluate_annotation(right, truth)
    assert perfect.metrics["MOTA"] == 1.0 and perfect.metrics["IDF1"] == 1.0
    assert sorted(perfect.per_class) == ["dog", "person"]
    wrong = VideoAnnotation(
        "v",
        (
            pixel_track("cat", 1, range(1, 21), (10, 10, 40, 40)),
            pixel_track("person", 2, range(1, 21), (120, 20, 40, 60)),
        ),
    )
    scored = evaluate_annotation(wrong, truth)
    assert scored.metrics["CLR_FN"] == 20 and scored.per_class["dog"]["CLR_FN"] == 20
    assert scored.per_class["person"]["MOTA"] == 1.0


def test_a_sampled_track_is_interpolated_over_short_gaps_only(tmp_path: Path) -> None:
    gt = write_sequence(tmp_path / "seq", [f"{f},1,10,10,40,40,1,-1,-1" for f in range(1, 21)])
    truth = read_ground_truth(gt)
    assert truth.class_mode == "none"
    every_third = VideoAnnotation("v", (pixel_track("x", 1, range(1, 21, 3), (10, 10, 40, 40)),))
    # Seen at frames 1, 4, ..., 19: bridged between them, not after the last.
    assert evaluate_annotation(every_third, truth).metrics["recall"] == pytest.approx(19 / 20)
    sampled = evaluate_annotation(every_third, truth, frames="sampled")
    assert sampled.frames == 7 and sampled.metrics["MOTA"] == 1.0
    no_bridging = evaluate_annotation(every_third, truth, max_gap=0.1)
    assert no_bridging.metrics["recall"] == pytest.approx(7 / 20)


def test_motchallenge_classes_score_pedestrians_and_ignore_distractors(tmp_path: Path) -> None:
    rows = [f"{f},1,10,10,40,60,1,1,1" for f in range(1, 11)]  # a pedestrian
    rows += [f"{f},2,120,10,40,60,1,12,1" for f in range(1, 11)]  # a reflection
    rows += [f"{f},3,60,50,40,40,0,3,1" for f in range(1, 11)]  # a car, not scored
    gt = write_sequence(tmp_path / "seq", rows, length=10)
    truth = read_ground_truth(gt)
    assert truth.class_mode == "motchallenge"
    found = VideoAnnotation(
        "v",
        (
            pixel_track("person", 1, range(1, 11), (10, 10, 40, 60)),
            pixel_track("person", 2, range(1, 11), (120, 10, 40, 60)),  # on the reflection
            pixel_track("car", 3, range(1, 11), (60, 50, 40, 40)),  # not a pedestrian
        ),
    )
    figures = evaluate_annotation(found, truth).metrics
    assert figures["CLR_FP"] == 0 and figures["MOTA"] == 1.0


def test_the_cli_scores_an_annotation_json_and_reports_bad_input_clearly(tmp_path: Path) -> None:
    gt = write_sequence(tmp_path / "seq", [f"{f},1,10,10,40,40,1,1,1" for f in range(1, 21)])
    annotation = tmp_path / "a.json"
    track = pixel_track("dog", 4, range(1, 21), (10, 10, 40, 40))
    annotation.write_text(dump_annotation_json(VideoAnnotation("v", (track,))), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(main, ["eval", str(annotation), str(gt), "--classes", "1=dog"])
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[1:3]
    assert header.split()[:4] == ["class", "MOTA", "IDF1", "HOTA"]
    assert row.split()[:3] == ["all", "1.000", "1.000"]
    missing = runner.invoke(main, ["eval", str(annotation), str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no such ground-truth file" in missing.output
    bad_map = runner.invoke(main, ["eval", str(annotation), str(gt), "--classes", "dog"])
    assert bad_map.exit_code == 2 and "NUMBER=LABEL" in bad_map.output


@needs_mot
@pytest.mark.shared_data
def test_mot15_ground_truth_without_a_frame_rate_needs_one_for_timed_annotations() -> None:
    truth = read_ground_truth(MOT / "TUD-Campus")
    assert truth.info.frame_rate is None and truth.info.length == 71
    tracks = read_mot_tracks(MOT / "TUD-Campus" / "tracker_result.txt", truth.info.pixel_grid())
    with pytest.raises(InputError, match="--fps"):
        evaluate_annotation(tracks, truth)


def test_frames_evaluated_end_where_the_ground_truth_and_the_tracks_end(tmp_path: Path) -> None:
    # seqinfo.ini gives the whole sequence (1050 frames); the ground truth covers 8.
    gt = write_sequence(tmp_path / "seq", [f"{f},1,10,10,40,40,1,-1,-1" for f in range(1, 9)])
    (tmp_path / "seq" / "seqinfo.ini").write_text(
        "[Sequence]\nname=cut\nframeRate=10\nseqLength=1050\nimWidth=200\nimHeight=100\n",
        encoding="utf-8",
    )
    truth = read_ground_truth(gt)
    seen = VideoAnnotation("v", (pixel_track("x", 1, range(1, 9), (10, 10, 40, 40)),))
    assert evaluate_annotation(seen, truth).frames == 8
    # A track running past the ground truth is scored up to its last frame (false there).
    longer = VideoAnnotation("v", (pixel_track("x", 1, range(1, 13), (10, 10, 40, 40)),))
    scored = evaluate_annotation(longer, truth)
    assert scored.frames == 12 and scored.metrics["CLR_FP"] == 4


@needs_mot
@pytest.mark.shared_data
def test_eval_of_the_8_frame_mot17_clip_says_8_frames() -> None:
    sequence = MOT / "MOT17-04_frames1-8"
    result = CliRunner().invoke(main, ["eval", str(sequence / "gt.txt"), str(sequence)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("MOT17-04-FRCNN: 8 frames,")
