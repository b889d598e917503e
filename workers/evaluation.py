"""Score an annotation against MOTChallenge ground truth: CLEAR, Identity and HOTA.

The metrics themselves are Roboflow ``trackers``' (``trackers.eval``, written to match
TrackEval's figures); this module gets the two sides onto one frame grid:

* **Ground truth** is a MOTChallenge ``gt.txt`` (``frame,id,left,top,width,height,flag,
  class,visibility``, pixels, frames from 1), or a sequence folder holding ``gt.txt`` or
  ``gt/gt.txt``; ``seqinfo.ini`` beside it (or in the folder above ``gt/``) gives the frame
  rate, frame size and length. Rows whose flag is 0 are ignored. Which rows count depends
  on the classes (see :func:`read_ground_truth`): MOT15-style files (no class column, or
  -1 / world coordinates there) are class-agnostic; MOT16/17/20 files are scored as
  TrackEval scores them (pedestrians only, our ``person`` tracks, predictions on
  distractors such as reflections or static people neither rewarded nor penalized); with
  a class map (``{1: "person", 2: "dog"}``) every mapped class is scored and a prediction
  only matches ground truth of its own label.
* **The annotation** (ours or the Video Intelligence API's JSON, or a tracker's MOT txt)
  has times; a box at time ``t`` is video frame ``round(t * fps)``, MOT frame one more.
  With ``frames="all"`` (the default) each track is interpolated linearly between its
  reported frames when they are at most ``max_gap`` seconds apart, and every ground-truth
  frame is scored: a tracker that samples the video (the local backend processes 10
  frames a second, the API about one in a few) is judged on what a viewer sees.
  ``frames="sampled"`` scores only the frames at which the annotation reports anything.
"""

from __future__ import annotations

import configparser
import io
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from workers.annotations.model import NormalizedBox, ObjectTrack, VideoAnnotation
from workers.errors import InputError
from workers.geometry import box_iou_matrix, xywh_to_xyxy

# MOTChallenge (MOT16/17/20) class numbers.
MOT_PEDESTRIAN = 1
MOT_DISTRACTORS = (2, 7, 8, 12)  # person on vehicle, static person, distractor, reflection
MOT_CLASS_RANGE = range(1, 13)
DISTRACTOR_MIN_IOU = 0.5

FrameMode = Literal["all", "sampled"]


@dataclass(frozen=True, slots=True)
class SequenceInfo:
    """What ``seqinfo.ini`` says about a sequence (frame rate, size, length)."""

    name: str
    frame_rate: float | None
    width: int | None
    height: int | None
    length: int

    @property
    def complete(self) -> bool:
        return bool(self.frame_rate and self.width and self.height)

    def pixel_grid(self) -> SequenceInfo:
        """These values, with 1 frame a second and a 1x1 frame where they are unknown (so a
        tracker's MOT file, already in frames and pixels, goes through unchanged)."""
        return replace(
            self, frame_rate=self.frame_rate or 1.0, width=self.width or 1, height=self.height or 1
        )


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """Ground-truth rows as arrays: frames (from 1), ids, ``[n, 4]`` xywh boxes, classes.

    ``class_mode``: ``"none"`` (MOT15: classes ignored), ``"motchallenge"`` (pedestrians
    scored, distractors ignored) or ``"mapped"`` (every class in ``class_names`` scored).
    """

    info: SequenceInfo
    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    flags: np.ndarray
    classes: np.ndarray
    class_mode: Literal["none", "motchallenge", "mapped"]
    class_names: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The figures of one evaluation (``per_class`` when the ground truth has classes)."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    frames: int
    ground_truth_ids: int
    predicted_ids: int


def _find_ground_truth(path: Path) -> tuple[Path, Path | None]:
    if path.is_dir():
        for candidate in (path / "gt.txt", path / "gt" / "gt.txt"):
            if candidate.is_file():
                path = candidate
                break
        else:
            raise InputError(f"{path}: no gt.txt or gt/gt.txt in this folder")
    elif not path.is_file():
        raise InputError(f"{path}: no such ground-truth file")
    for folder in (path.parent, path.parent.parent):
        if (folder / "seqinfo.ini").is_file():
            return path, folder / "seqinfo.ini"
    return path, None


def read_sequence_info(path: Path | None, name: str) -> SequenceInfo:
    """``seqinfo.ini``'s ``[Sequence]`` values; those it lacks (MOT15 files often give only
    the length) are None."""
    if path is None:
        return SequenceInfo(name, None, None, None, 0)
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
        section = parser["Sequence"]
        rate, width, height = (section.get(key) for key in ("frameRate", "imWidth", "imHeight"))
        return SequenceInfo(
            name=section.get("name", name),
            frame_rate=float(rate) if rate else None,
            width=int(width) if width else None,
            height=int(height) if height else None,
            length=int(section.get("seqLength", "0")),
        )
    except (KeyError, ValueError, configparser.Error) as error:
        raise InputError(f"{path}: not a MOTChallenge seqinfo.ini ({error})") from None


def parse_class_map(text: str) -> dict[int, str]:
    """``"1=person,2=dog"`` as ``{1: "person", 2: "dog"}``."""
    mapping: dict[int, str] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        number, sep, name = part.partition("=")
        if not sep or not name.strip():
            raise InputError(f"class map: '{part}' is not NUMBER=LABEL")
        try:
            mapping[int(number)] = name.strip()
        except ValueError:
            raise InputError(f"class map: '{number}' is not a class number") from None
    return mapping


def read_mot_rows(source: str | Path | bytes, what: str = "a MOTChallenge file") -> np.ndarray:
    """The rows of a MOTChallenge text file (``gt.txt``, ``det.txt``, a tracker's result):
    one ``[rows, values]`` float array, file order. The one reader of these files here and
    in the benches; raises :class:`InputError` ("not ``what``") for one it cannot read."""
    name = "MOT result" if isinstance(source, bytes) else str(source)
    readable = io.StringIO(source.decode()) if isinstance(source, bytes) else source
    try:
        return np.loadtxt(readable, delimiter=",", ndmin=2, dtype=np.float64)
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        raise InputError(f"{name}: not {what} ({error})") from None


def read_ground_truth(
    path: str | Path,
    *,
    class_names: Mapping[int, str] | None = None,
    frame_rate: float | None = None,
    size: tuple[int, int] | None = None,
) -> GroundTruth:
    """Read MOTChallenge ground truth (see the module doc for what counts).

    ``frame_rate`` and ``size`` (width, height) replace ``seqinfo.ini``'s values. Raises
    :class:`InputError` for a missing or malformed file.
    """
    gt_path, ini = _find_ground_truth(Path(path))
    info = read_sequence_info(ini, gt_path.parent.name)
    info = replace(info, frame_rate=frame_rate or info.frame_rate)
    if size:
        info = replace(info, width=size[0], height=size[1])
    rows = read_mot_rows(gt_path, "MOTChallenge CSV")
    if rows.size == 0 or rows.shape[1] < 6:
        raise InputError(f"{gt_path}: expected at least 6 comma-separated values a line")
    count = rows.shape[0]
    flags = rows[:, 6] if rows.shape[1] > 6 else np.ones(count)
    raw_classes = rows[:, 7] if rows.shape[1] > 7 else np.full(count, -1.0)
    integral = np.all(raw_classes == np.round(raw_classes))
    has_mot_classes = bool(
        integral and np.isin(raw_classes.astype(int), list(MOT_CLASS_RANGE)).all()
    )
    mode: Literal["none", "motchallenge", "mapped"]
    if class_names:
        if not integral:
            raise InputError(f"{gt_path}: a class map was given but column 8 holds no classes")
        mode = "mapped"
    elif has_mot_classes:
        mode = "motchallenge"
    else:
        mode = "none"
    return GroundTruth(
        info=info,
        frames=rows[:, 0].astype(int),
        ids=rows[:, 1].astype(int),
        boxes=rows[:, 2:6].copy(),
        flags=flags,
        classes=np.where(integral, raw_classes, -1).astype(int),
        class_mode=mode,
        class_names=dict(class_names or ({MOT_PEDESTRIAN: "person"} if has_mot_classes else {})),
    )


def read_mot_tracks(
    source: str | Path | bytes, info: SequenceInfo, label: str = ""
) -> VideoAnnotation:
    """A tracker's MOTChallenge result file as an annotation (every row labelled ``label``).

    Frames become times and pixels normalized boxes by ``info`` (pass the same ``info`` to
    the evaluation; :meth:`SequenceInfo.pixel_grid` when the frame rate or size is unknown).
    """
    name = "MOT result" if isinstance(source, bytes) else str(source)
    rows = read_mot_rows(source, "a MOTChallenge result file")
    from workers.annotations.model import Entity, Segment, TrackedFrame

    tracks: dict[int, list[TrackedFrame]] = defaultdict(list)
    for row in rows:
        if row[1] < 0:
            continue
        left, top, width, height = row[2:6]
        tracks[int(row[1])].append(
            TrackedFrame(
                time=(row[0] - 1) / info.frame_rate,
                box=NormalizedBox(
                    left / info.width,
                    top / info.height,
                    (left + width) / info.width,
                    (top + height) / info.height,
                ),
            )
        )
    objects = []
    for track_id, frames in sorted(tracks.items()):
        frames.sort(key=lambda frame: frame.time)
        objects.append(
            ObjectTrack(
                entity=Entity(description=label),
                confidence=1.0,
                segment=Segment(frames[0].time, frames[-1].time),
                frames=tuple(frames),
                track_id=track_id,
            )
        )
    return VideoAnnotation(input_uri=name, objects=tuple(objects))


def _pixel_box(box: NormalizedBox, info: SequenceInfo) -> tuple[float, float, float, float]:
    """A normalized box as MOT's xywh in pixels (not clipped: the API's may pass the edge)."""
    return (
        box.left * info.width,
        box.top * info.height,
        (box.right - box.left) * info.width,
        (box.bottom - box.top) * info.height,
    )


def track_boxes_by_frame(
    track: ObjectTrack, info: SequenceInfo, frames: FrameMode, max_gap: float
) -> dict[int, tuple[float, float, float, float]]:
    """MOT frame -> xywh pixel box of ``track`` (interpolated within gaps, see module doc)."""
    result: dict[int, tuple[float, float, float, float]] = {}
    rate = info.frame_rate
    reported = sorted(track.frames, key=lambda frame: frame.time)
    for frame in reported:
        result[round(frame.time * rate) + 1] = _pixel_box(frame.box, info)
    if frames == "sampled":
        return result
    for before, after in itertools.pairwise(reported):
        gap = after.time - before.time
        if gap <= 0 or gap > max_gap + 1e-9:
            continue
        first, last = round(before.time * rate) + 1, round(after.time * rate) + 1
        a, b = np.array(_pixel_box(before.box, info)), np.array(_pixel_box(after.box, info))
        for number in range(first + 1, last):
            share = (number - first) / (last - first)
            result[number] = tuple(float(v) for v in a + (b - a) * share)  # type: ignore[assignment]
    return result


def _xywh_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return box_iou_matrix(xywh_to_xyxy(first), xywh_to_xyxy(second))


@dataclass
class _Frame:
    gt_ids: list[int] = field(default_factory=list)
    gt_boxes: list[tuple[float, ...]] = field(default_factory=list)
    gt_labels: list[str] = field(default_factory=list)
    distractors: list[tuple[float, ...]] = field(default_factory=list)
    other_gt: list[tuple[float, ...]] = field(default_factory=list)
    pred_ids: list[int] = field(default_factory=list)
    pred_boxes: list[tuple[float, ...]] = field(default_factory=list)
    pred_labels: list[str] = field(default_factory=list)


def _scored_labels(truth: GroundTruth) -> set[str] | None:
    return None if truth.class_mode == "none" else set(truth.class_names.values())


def _build_frames(
    annotation: VideoAnnotation,
    truth: GroundTruth,
    frames: FrameMode,
    max_gap: float,
    labels: set[str] | None,
    info: SequenceInfo,
) -> dict[int, _Frame]:
    table: dict[int, _Frame] = defaultdict(_Frame)
    for index in range(len(truth.ids)):
        if truth.flags[index] == 0 and truth.class_mode != "motchallenge":
            continue
        number, box = int(truth.frames[index]), tuple(truth.boxes[index])
        cls = int(truth.classes[index])
        if truth.class_mode == "none":
            table[number].gt_ids.append(int(truth.ids[index]))
            table[number].gt_boxes.append(box)
            table[number].gt_labels.append("")
        elif truth.class_mode == "motchallenge":
            if cls in MOT_DISTRACTORS:
                table[number].distractors.append(box)
            elif cls == MOT_PEDESTRIAN and truth.flags[index] != 0:
                table[number].gt_ids.append(int(truth.ids[index]))
                table[number].gt_boxes.append(box)
                table[number].gt_labels.append(truth.class_names[MOT_PEDESTRIAN])
            else:
                table[number].other_gt.append(box)
        elif cls in truth.class_names:
            table[number].gt_ids.append(int(truth.ids[index]))
            table[number].gt_boxes.append(box)
            table[number].gt_labels.append(truth.class_names[cls])
    scored = _scored_labels(truth)
    for position, track in enumerate(annotation.objects, start=1):
        label = track.entity.description
        if labels is not None and label not in labels:
            continue
        if scored is not None and label not in scored:
            continue
        track_id = track.track_id if track.track_id is not None else position
        for number, box in track_boxes_by_frame(track, info, frames, max_gap).items():
            if info.length and not 1 <= number <= info.length:
                continue
            table[number].pred_ids.append(track_id)
            table[number].pred_boxes.append(box)
            table[number].pred_labels.append(label)
    return table


def _frame_numbers(table: dict[int, _Frame], truth: GroundTruth, frames: FrameMode) -> list[int]:
    if frames == "sampled":
        return sorted(number for number, frame in table.items() if frame.pred_ids)
    # From the first frame to the last one the ground truth or a track reaches: seqinfo.ini
    # gives the whole sequence's length even when its ground truth covers a few frames.
    last = max([*table, int(truth.frames.max()) if len(truth.frames) else 0])
    if truth.info.length:
        last = min(last, truth.info.length)
    return list(range(1, last + 1))


def _remove_distractor_matches(frame: _Frame) -> None:
    """TrackEval's MOT17 rule: a prediction best matched to a distractor is dropped."""
    if not frame.distractors or not frame.pred_ids:
        return
    from scipy.optimize import linear_sum_assignment

    every = np.array(frame.gt_boxes + frame.distractors + frame.other_gt, dtype=float)
    similarity = _xywh_iou(every, np.array(frame.pred_boxes, dtype=float))
    similarity[similarity < DISTRACTOR_MIN_IOU - 1e-10] = 0
    rows, columns = linear_sum_assignment(-similarity)
    first_distractor = len(frame.gt_boxes)
    last_distractor = first_distractor + len(frame.distractors)
    drop = {
        int(column)
        for row, column in zip(rows, columns, strict=True)
        if similarity[row, column] > 1e-10 and first_distractor <= row < last_distractor
    }
    keep = [i for i in range(len(frame.pred_ids)) if i not in drop]
    frame.pred_ids = [frame.pred_ids[i] for i in keep]
    frame.pred_boxes = [frame.pred_boxes[i] for i in keep]
    frame.pred_labels = [frame.pred_labels[i] for i in keep]


def _score(table: dict[int, _Frame], numbers: Sequence[int], threshold: float) -> dict[str, float]:
    from trackers.eval import (
        compute_clear_metrics,
        compute_hota_metrics,
        compute_identity_metrics,
    )

    gt_map: dict[int, int] = {}
    pred_map: dict[int, int] = {}
    gt_ids, pred_ids, similarities = [], [], []
    for number in numbers:
        frame = table.get(number, _Frame())
        gts = [gt_map.setdefault(i, len(gt_map)) for i in frame.gt_ids]
        preds = [pred_map.setdefault(i, len(pred_map)) for i in frame.pred_ids]
        similarity = _xywh_iou(
            np.array(frame.gt_boxes, dtype=float).reshape(-1, 4),
            np.array(frame.pred_boxes, dtype=float).reshape(-1, 4),
        )
        for i, gt_label in enumerate(frame.gt_labels):
            for j, pred_label in enumerate(frame.pred_labels):
                if gt_label and gt_label != pred_label:
                    similarity[i, j] = 0.0
        gt_ids.append(np.array(gts, dtype=np.intp))
        pred_ids.append(np.array(preds, dtype=np.intp))
        similarities.append(similarity)
    clear = compute_clear_metrics(gt_ids, pred_ids, similarities, threshold=threshold)
    identity = compute_identity_metrics(gt_ids, pred_ids, similarities, threshold=threshold)
    hota = compute_hota_metrics(gt_ids, pred_ids, similarities)
    figures = {
        name: float(clear[name])
        for name in ("MOTA", "MOTP", "IDSW", "CLR_TP", "CLR_FN", "CLR_FP", "MT", "PT", "ML")
    }
    figures.update({name: float(identity[name]) for name in ("IDF1", "IDP", "IDR")})
    figures.update({name: float(np.mean(hota[name])) for name in ("HOTA", "DetA", "AssA", "LocA")})
    figures["recall"] = float(clear["CLR_Re"])
    figures["precision"] = float(clear["CLR_Pr"])
    figures["gt_ids"] = float(len(gt_map))
    figures["predicted_ids"] = float(len(pred_map))
    return figures


def _only(table: dict[int, _Frame], label: str) -> dict[int, _Frame]:
    narrowed: dict[int, _Frame] = {}
    for number, frame in table.items():
        gt = [i for i, name in enumerate(frame.gt_labels) if name == label]
        pr = [i for i, name in enumerate(frame.pred_labels) if name == label]
        narrowed[number] = _Frame(
            gt_ids=[frame.gt_ids[i] for i in gt],
            gt_boxes=[frame.gt_boxes[i] for i in gt],
            gt_labels=[label for _ in gt],
            pred_ids=[frame.pred_ids[i] for i in pr],
            pred_boxes=[frame.pred_boxes[i] for i in pr],
            pred_labels=[label for _ in pr],
        )
    return narrowed


def evaluate_annotation(
    annotation: VideoAnnotation,
    truth: GroundTruth,
    *,
    threshold: float = 0.5,
    frames: FrameMode = "all",
    max_gap: float = 1.0,
    labels: Iterable[str] | None = None,
    info: SequenceInfo | None = None,
) -> Evaluation:
    """CLEAR, Identity and HOTA figures of ``annotation`` against ``truth``.

    ``threshold``: the IoU a prediction needs to match (CLEAR and Identity; HOTA averages
    over 0.05 to 0.95). ``labels``: score only tracks with these descriptions (for a
    class-agnostic ground truth such as MOT15's pedestrians: ``{"person"}``). ``info``
    replaces the ground truth's frame rate and size (see :func:`read_mot_tracks`).
    """
    info = info or truth.info
    if not info.complete:
        raise InputError(
            f"ground truth {info.name}: its seqinfo.ini gives no frame rate or frame size; "
            "give them (--fps, --size WIDTHxHEIGHT)"
        )
    wanted = set(labels) if labels is not None else None
    table = _build_frames(annotation, truth, frames, max_gap, wanted, info)
    numbers = _frame_numbers(table, truth, frames)
    if truth.class_mode == "motchallenge":
        for number in numbers:
            if number in table:
                _remove_distractor_matches(table[number])
    overall = _score(table, numbers, threshold)
    per_class: dict[str, dict[str, float]] = {}
    if truth.class_mode == "mapped" and len(set(truth.class_names.values())) > 1:
        for label in sorted(set(truth.class_names.values())):
            per_class[label] = _score(_only(table, label), numbers, threshold)
    return Evaluation(
        metrics=overall,
        per_class=per_class,
        frames=len(numbers),
        ground_truth_ids=int(overall["gt_ids"]),
        predicted_ids=int(overall["predicted_ids"]),
    )
