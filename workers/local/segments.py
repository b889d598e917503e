"""Split a video into overlapping time segments, and stitch the segments' tracks back.

Segments let several workers track one long video at once. Each segment is tracked on its
own, so the same object gets a different track in each. Consecutive segments overlap by a
few seconds; there both segments track the same frames, so a track of one is matched to a
track of the other when their labels may be one object's (the same class, confusable
labels, or mostly the same labels over their boxes: see
:func:`workers.local.merge.labels_may_join`) and their boxes overlap at the same moments.
A matched pair becomes one object: the earlier segment's frames up to the middle of the
overlap, the later one's after it. Every track is cut at those midpoints in the
same way, so nothing in the overlap is reported twice.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from workers.annotations.model import ObjectTrack, Segment, TrackedFrame, VideoAnnotation
from workers.annotations.selection import frame_minimum
from workers.local.merge import (
    MergeRules,
    combined_appearance,
    combined_label_frames,
    combined_label_scores,
    labels_may_join,
    merge_fragments,
    voted_entity,
)
from workers.local.options import LocalTrackingOptions
from workers.media.video import VideoInfo


@dataclass(frozen=True, slots=True)
class StitchRules:
    """When a track of one segment continues a track of the next.

    ``min_iou``: the least mean IoU of the two tracks' boxes at common moments of the
    overlap. Lower tolerates the two trackers' boxes disagreeing; higher avoids joining
    two objects of one class that stand close together.
    ``min_common_frames``: the least number of overlap moments both tracks were seen at.
    ``time_tolerance``: two frames this close in time count as the same moment (segments
    may sample slightly different frames when processing below the frame rate).
    """

    min_iou: float = 0.4
    min_common_frames: int = 1
    time_tolerance: float = 0.06


def plan_segments(info: VideoInfo, segment_seconds: float, overlap_seconds: float) -> list[Segment]:
    """Cut ``[0, duration]`` into segments of about ``segment_seconds`` overlapping by
    ``overlap_seconds``.

    A video up to 1.5 segments long is one segment: splitting off a stub would cost a
    worker's start-up and a stitch for little parallelism. Longer videos get segments of
    one length, overlap included, so that workers tracking them side by side finish
    together.
    """
    duration = float(info.duration)
    if segment_seconds <= 0:
        raise ValueError("segment_seconds must be positive")
    overlap = max(0.0, overlap_seconds)
    if duration <= segment_seconds * 1.5:
        return [Segment(0.0, duration)]
    count = math.ceil(duration / segment_seconds)
    length = (duration + (count - 1) * overlap) / count
    step = length - overlap
    return [
        Segment(index * step, duration if index == count - 1 else index * step + length)
        for index in range(count)
    ]


def _frames_in(track: ObjectTrack, start: float, end: float) -> list[TrackedFrame]:
    return [frame for frame in track.frames if start <= frame.time <= end]


def overlap_similarity(
    earlier: ObjectTrack, later: ObjectTrack, window: Segment, rules: StitchRules
) -> float | None:
    """Mean IoU of the two tracks at common moments in ``window``, or None if they differ."""
    if not labels_may_join(earlier, later):
        return None
    later_frames = _frames_in(later, window.start, window.end)
    if not later_frames:
        return None
    later_times = np.array([frame.time for frame in later_frames])
    overlaps: list[float] = []
    for frame in _frames_in(earlier, window.start, window.end):
        nearest = int(np.argmin(np.abs(later_times - frame.time)))
        if abs(later_times[nearest] - frame.time) <= rules.time_tolerance:
            overlaps.append(frame.box.iou(later_frames[nearest].box))
    if len(overlaps) < rules.min_common_frames:
        return None
    similarity = float(np.mean(overlaps))
    return similarity if similarity >= rules.min_iou else None


def match_across_boundary(
    earlier: Sequence[ObjectTrack],
    later: Sequence[ObjectTrack],
    window: Segment,
    rules: StitchRules,
) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``: ``earlier[i]`` and ``later[j]`` are one object (one-to-one)."""
    if not earlier or not later:
        return []
    similarity = np.zeros((len(earlier), len(later)))
    for i, first in enumerate(earlier):
        for j, second in enumerate(later):
            value = overlap_similarity(first, second, window, rules)
            similarity[i, j] = value if value is not None else 0.0
    # Imported here: scipy.optimize takes a quarter second to load, and only stitching needs it.
    from scipy.optimize import linear_sum_assignment

    rows, columns = linear_sum_assignment(similarity, maximize=True)
    return [(int(i), int(j)) for i, j in zip(rows, columns, strict=True) if similarity[i, j] > 0]


def _ownership(segments: Sequence[Segment]) -> list[Segment]:
    """The stretch each segment's tracks are kept for: cut at the middle of each overlap."""
    cuts = [
        (previous.end + following.start) / 2 for previous, following in itertools.pairwise(segments)
    ]
    starts = [-math.inf, *cuts]
    ends = [*cuts, math.inf]
    return [Segment(start, end) for start, end in zip(starts, ends, strict=True)]


def _assemble(
    members: Sequence[tuple[int, ObjectTrack]], ownership: Sequence[Segment]
) -> ObjectTrack | None:
    """One track from a chain of per-segment tracks, each cut to its segment's stretch."""
    frames: list[TrackedFrame] = []
    weighted_confidence = 0.0
    for part, track in members:
        own = ownership[part]
        kept = [frame for frame in track.frames if own.start <= frame.time < own.end]
        frames.extend(kept)
        weighted_confidence += track.confidence * len(kept)
    if not frames:
        return None
    frames.sort(key=lambda frame: frame.time)
    first = members[0][1]
    tracks = [track for _, track in members]
    return ObjectTrack(
        entity=voted_entity(tracks),
        confidence=weighted_confidence / len(frames),
        segment=Segment(frames[0].time, frames[-1].time),
        frames=tuple(frames),
        track_id=first.track_id,
        label_scores=combined_label_scores(tracks),
        appearance=combined_appearance(tracks),
        label_frames=combined_label_frames(tracks),
    )


def stitch_tracks(
    parts: Sequence[tuple[Segment, Sequence[ObjectTrack]]],
    overlap_seconds: float,
    rules: StitchRules | None = None,
) -> list[ObjectTrack]:
    """The tracks of consecutive segments joined across their overlaps (see the module doc).

    Tracks are matched only in the first ``overlap_seconds`` of each segment (no further
    than where the previous segment ends).

    Track ids in the result are renumbered 1, 2, ... in order of first appearance.
    """
    rules = rules or StitchRules()
    ordered = sorted(parts, key=lambda part: part[0].start)
    segments = [segment for segment, _ in ordered]
    ownership = _ownership(segments)
    # successor[(part, i)] = index in part + 1 of the same object
    successor: dict[tuple[int, int], int] = {}
    has_predecessor: set[tuple[int, int]] = set()
    for part in range(len(ordered) - 1):
        start = segments[part + 1].start
        window = Segment(start, min(segments[part].end, start + max(0.0, overlap_seconds)))
        for i, j in match_across_boundary(ordered[part][1], ordered[part + 1][1], window, rules):
            successor[(part, i)] = j
            has_predecessor.add((part + 1, j))
    stitched: list[ObjectTrack] = []
    for part, (_, tracks) in enumerate(ordered):
        for index, track in enumerate(tracks):
            if (part, index) in has_predecessor:
                continue  # assembled with the chain it continues
            members = [(part, track)]
            key = (part, index)
            while key in successor:
                key = (key[0] + 1, successor[key])
                members.append((key[0], ordered[key[0]][1][key[1]]))
            assembled = _assemble(members, ownership)
            if assembled is not None:
                stitched.append(assembled)
    return renumber(stitched)


def renumber(tracks: Sequence[ObjectTrack]) -> list[ObjectTrack]:
    """Tracks in order of first appearance, with track ids 1, 2, ..."""
    ordered = sorted(tracks, key=lambda track: (track.first_time, track.last_time))
    return [replace(track, track_id=number) for number, track in enumerate(ordered, start=1)]


def stitch_segments(
    parts: Sequence[tuple[Segment, VideoAnnotation]],
    overlap_seconds: float,
    *,
    options: LocalTrackingOptions | None = None,
    input_uri: str | None = None,
    video_frames: int = 0,
) -> VideoAnnotation:
    """Join the segments' tracks across boundaries, merge fragments, and finish the result.

    ``overlap_seconds`` is the overlap the segments were planned with; tracks are matched
    across a boundary only in that stretch. Track ids are renumbered 1, 2, ... in order of
    first appearance. A video with no detections gives an annotation with no objects.
    ``video_frames`` (the video's frame count, 0 if unknown) lowers
    ``options.min_track_frames`` for a clip too short to pass it (see
    :func:`workers.annotations.selection.frame_minimum`).
    """
    options = options or LocalTrackingOptions()
    if not parts:
        return VideoAnnotation(input_uri=input_uri or "", objects=(), segment=None)
    ordered = sorted(parts, key=lambda part: part[0].start)
    segments = [segment for segment, _ in ordered]
    stitched = stitch_tracks(
        [(segment, annotation.objects) for segment, annotation in ordered],
        overlap_seconds,
        StitchRules(),
    )
    merged = merge_fragments(stitched, MergeRules(max_gap_seconds=options.merge_max_gap_seconds))
    min_frames = frame_minimum(options.min_track_frames, video_frames)
    kept = [track for track in merged if track.frame_count >= min_frames]
    return VideoAnnotation(
        input_uri=input_uri if input_uri is not None else ordered[0][1].input_uri,
        objects=tuple(renumber(kept)),
        segment=Segment(segments[0].start, max(segment.end for segment in segments)),
    )
