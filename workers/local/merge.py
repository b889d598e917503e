"""The offline pass that joins fragments of one object into one track.

A live tracker must decide at once; vtrack tracks files, so after tracking it can look at
every track together. An online tracker breaks one real object into several tracks when
the detector misses it for a while or its box jumps (YOLOv3-tiny's boxes for one dog
change size by half from one frame to the next). Two tracks of the same class are joined
when they are (almost) never seen at the same moment and, at every point where the
object passes from one track to the other, the time gap is short and the boxes line up:
one box, moved at its track's recent speed to the other's time, lies mostly inside the
other (intersection over the smaller box, which tolerates the detector's size jumps).
A short track seen only at moments another track of its class was also seen, with its
box inside the other's, is a duplicate and is absorbed the same way.

Labels the detector confuses (:mod:`workers.local.labels`) count as one class here
(:func:`labels_may_join`); a joined track's label is the vote of all its boxes.

A join needs evidence of two kinds, never likeness alone:

* **physical plausibility**: where the first fragment ended and the second began. After
  a gap longer than ``edge_free_gap_seconds``, an object that left the frame (its box at
  an edge, moving out) comes back at the same edge, and one that appeared at an edge
  (moving in) had left by it: a man who leaves at the bottom is not the woman who walks
  in from the right 3 s later, however alike they look. The distance between the boxes
  must be coverable at the fragments' own speed in the gap (see ``appearance_reach``).
* **appearance** (:mod:`workers.local.appearance`), when both tracks have cues: clearly
  different colour, grey levels or (for people, with a re-identification model) learned
  embeddings veto a join whatever the geometry; clearly alike colour *and* grey levels
  *and* layout (and embeddings, when there are some) let fragments join where geometry
  alone cannot: after a longer absence (up to ``appearance_max_gap_seconds``) or where
  the boxes do not line up but are near (a person hidden behind another while crossing).
  Colour alone is blind to grey, black, white and silver objects, hence the other cues.

Joining is greedy, best pair first (closest in time, then best aligned), repeated until
no pair qualifies, so chains of fragments become one track.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from workers.annotations.model import Entity, NormalizedBox, ObjectTrack, Segment, TrackedFrame
from workers.local.appearance import HAND_MADE_LENGTH, cue_similarities
from workers.local.coco import COCO_CLASS_NAMES
from workers.local.labels import (
    MIN_SHARED_LABELS,
    box_vote,
    compatible_labels,
    shared_label_share,
)

_SAME_MOMENT = 1e-3  # seconds: two frames this close are the same video frame


@dataclass(frozen=True, slots=True)
class MergeRules:
    """When two fragments are one object.

    ``max_gap_seconds``: the longest time the object may go unseen between the fragments.
    Longer bridges long occlusions; it also risks joining two different objects of one
    class that pass the same place.
    ``max_overlap_seconds``: how long two fragments may both be seen at the same moments
    and still be joined (a tracker sometimes starts the new id before dropping the old).
    ``min_alignment``: the least share of the smaller box inside the other where the
    fragments meet. Lower joins across bigger jumps; higher keeps nearby objects apart.
    ``max_area_ratio``: boxes whose areas differ more than this never align.
    ``velocity_window_seconds``: how much of a fragment near the meeting point is used to
    estimate its speed.
    ``max_extrapolation_seconds``: a box is moved at its speed for at most this long;
    beyond it, the object is assumed to have stopped.
    ``min_appearance``: fragments whose colour histograms are less alike than this
    (Bhattacharyya coefficient, 1 identical) are never joined. Higher keeps different
    objects of one class apart; too high splits an object whose lighting changes.
    ``alike_appearance``: fragments at least this alike may join after an absence up to
    ``appearance_max_gap_seconds`` and with boxes that do not line up, provided their
    centres are within ``appearance_reach`` box sizes of each other. Lower bridges more
    (and risks joining two similar-looking objects of one class).
    ``min_grey`` / ``alike_grey``: the same two thresholds for the grey-level histograms
    (Bhattacharyya); both must agree for the "alike" joins, with the thumbnails' layout
    correlation at least ``alike_layout``. One object measured 0.91 to 1.0 on grey levels
    over the shared clips, two different people 0.2 to 0.41. The layout varies more for
    one moving object (a dog trotting: 0.3 to 0.56) hence the low ``alike_layout``.
    ``min_reid`` / ``alike_reid``: the same for re-identification embeddings (cosine),
    when both fragments have one (people, with ``VTRACK_REID_MODEL``).
    ``edge_free_gap_seconds``: handovers with a longer gap must agree on the frame's
    edges: an object that left the frame (its box within ``edge_margin`` of an edge,
    moving towards it at ``edge_min_speed`` frame sizes a second or more) comes back
    within ``edge_reach`` (a share of the frame) of that edge, and one that came in by an
    edge had left within ``edge_reach`` of it. Lower ``edge_free_gap_seconds`` checks more
    handovers; a larger ``edge_reach`` allows for a detector that finds a returning
    object only once it is well inside the frame (the crossing scene's dog: 0.05 from the
    edge it left by), and lets more far-apart exits and entries join.
    """

    max_gap_seconds: float = 2.0
    max_overlap_seconds: float = 0.3
    min_alignment: float = 0.5
    max_area_ratio: float = 10.0
    velocity_window_seconds: float = 0.5
    max_extrapolation_seconds: float = 1.0
    min_appearance: float = 0.5
    alike_appearance: float = 0.8
    appearance_max_gap_seconds: float = 6.0
    appearance_reach: float = 2.0
    min_grey: float = 0.6
    alike_grey: float = 0.85
    alike_layout: float = 0.2
    min_reid: float = 0.5
    alike_reid: float = 0.7
    edge_free_gap_seconds: float = 0.5
    edge_margin: float = 0.01
    edge_min_speed: float = 0.02
    edge_reach: float = 0.3


def alignment(first: NormalizedBox, second: NormalizedBox, max_area_ratio: float) -> float:
    """Share of the smaller box inside the larger (0 when their sizes are too different)."""
    smaller, larger = sorted((first.area, second.area))
    if smaller <= 0 or larger / smaller > max_area_ratio:
        return 0.0
    return first.intersection(second) / smaller


def _centre_velocity(
    frames: Sequence[TrackedFrame], index: int, rules: MergeRules
) -> tuple[float, float]:
    """Speed of the box centre (per second) over the frames within the window around ``index``."""
    time = frames[index].time
    near = [frame for frame in frames if abs(frame.time - time) <= rules.velocity_window_seconds]
    elapsed = near[-1].time - near[0].time
    if elapsed <= 0:
        return 0.0, 0.0
    first, last = near[0].box, near[-1].box
    return (
        ((last.left + last.right) - (first.left + first.right)) / 2 / elapsed,
        ((last.top + last.bottom) - (first.top + first.bottom)) / 2 / elapsed,
    )


def _shifted(box: NormalizedBox, velocity: tuple[float, float], seconds: float) -> NormalizedBox:
    dx, dy = velocity[0] * seconds, velocity[1] * seconds
    return NormalizedBox(box.left + dx, box.top + dy, box.right + dx, box.bottom + dy)


def _handover_alignment(
    a: ObjectTrack, a_index: int, b: ObjectTrack, b_index: int, rules: MergeRules
) -> float:
    """How well the box of ``a`` at ``a_index`` and of ``b`` at ``b_index`` are one object."""
    a_frame, b_frame = a.frames[a_index], b.frames[b_index]
    span = b_frame.time - a_frame.time
    span = max(-rules.max_extrapolation_seconds, min(rules.max_extrapolation_seconds, span))
    a_moved = _shifted(a_frame.box, _centre_velocity(a.frames, a_index, rules), span)
    b_moved = _shifted(b_frame.box, _centre_velocity(b.frames, b_index, rules), -span)
    return max(
        alignment(a_frame.box, b_frame.box, rules.max_area_ratio),
        alignment(a_moved, b_frame.box, rules.max_area_ratio),
        alignment(a_frame.box, b_moved, rules.max_area_ratio),
    )


def _proximity(a: NormalizedBox, b: NormalizedBox, rules: MergeRules, slack: float) -> float:
    """1 for the same centre, falling to 0 at ``appearance_reach`` box sizes plus ``slack``
    apart (0 when the sizes differ too much)."""
    smaller, larger = sorted((a.area, b.area))
    if smaller <= 0 or larger / smaller > rules.max_area_ratio:
        return 0.0
    size = max(a.width, a.height, b.width, b.height)
    dx = (a.left + a.right - b.left - b.right) / 2
    dy = (a.top + a.bottom - b.top - b.bottom) / 2
    return max(0.0, 1.0 - (dx * dx + dy * dy) ** 0.5 / (rules.appearance_reach * size + slack))


def _handover_proximity(
    a: ObjectTrack, a_index: int, b: ObjectTrack, b_index: int, rules: MergeRules
) -> float:
    """How near the boxes are where ``a`` hands over to ``b``, allowing for how far either
    could have gone at its own speed (in any direction: it may have turned) in the gap."""
    a_frame, b_frame = a.frames[a_index], b.frames[b_index]
    gap = abs(b_frame.time - a_frame.time)
    speed = max(
        sum(v * v for v in _centre_velocity(a.frames, a_index, rules)) ** 0.5,
        sum(v * v for v in _centre_velocity(b.frames, b_index, rules)) ** 0.5,
    )
    return _proximity(a_frame.box, b_frame.box, rules, speed * gap)


def _appearance_verdict(
    first: ObjectTrack, second: ObjectTrack, rules: MergeRules
) -> tuple[bool, bool, float | None]:
    """(vetoed, alike, colour likeness) of two tracks by every cue both have."""
    if not first.appearance or not second.appearance:
        return False, False, None
    cues = cue_similarities(first.appearance, second.appearance)
    look = cues.get("colour")
    lowest = {"colour": rules.min_appearance, "grey": rules.min_grey, "reid": rules.min_reid}
    if any(name in cues and cues[name] < floor for name, floor in lowest.items()):
        return True, False, look
    alike_at = {
        "colour": rules.alike_appearance,
        "grey": rules.alike_grey,
        "layout": rules.alike_layout,
        "reid": rules.alike_reid,
    }
    alike = look is not None and all(
        cues[name] >= floor for name, floor in alike_at.items() if name in cues
    )
    return False, alike, look


def _edges(
    box: NormalizedBox, velocity: tuple[float, float], sign: int, rules: MergeRules
) -> set[str]:
    """The frame edges ``box`` touches while moving out (``sign`` 1) or in (-1) of them."""
    vx, vy = velocity[0] * sign, velocity[1] * sign
    margin, speed = rules.edge_margin, rules.edge_min_speed
    touching = {
        "left": box.left <= margin and vx <= -speed,
        "right": box.right >= 1 - margin and vx >= speed,
        "top": box.top <= margin and vy <= -speed,
        "bottom": box.bottom >= 1 - margin and vy >= speed,
    }
    return {edge for edge, yes in touching.items() if yes}


def _edge_distance(box: NormalizedBox, edge: str) -> float:
    return {
        "left": box.left,
        "right": 1 - box.right,
        "top": box.top,
        "bottom": 1 - box.bottom,
    }[edge]


def _edges_agree(
    a: ObjectTrack, a_index: int, b: ObjectTrack, b_index: int, rules: MergeRules
) -> bool:
    """Whether the object could have gone from ``a``'s box to ``b``'s across the gap: one
    that left the frame comes back near the edge it left by (the detector may find it
    only once it is well inside), and one that came in from outside had left near that
    edge."""
    a_box, b_box = a.frames[a_index].box, b.frames[b_index].box
    left_by = _edges(a_box, _centre_velocity(a.frames, a_index, rules), 1, rules)
    came_by = _edges(b_box, _centre_velocity(b.frames, b_index, rules), -1, rules)
    back_near = not left_by or any(_edge_distance(b_box, e) <= rules.edge_reach for e in left_by)
    gone_near = not came_by or any(_edge_distance(a_box, e) <= rules.edge_reach for e in came_by)
    return back_near and gone_near


def labels_may_join(first: ObjectTrack, second: ObjectTrack) -> bool:
    """Whether two tracks' labels allow them to be one object: compatible voted labels, or
    boxes that carry mostly the same labels (at least ``MIN_SHARED_LABELS`` of them: see
    :func:`workers.local.labels.shared_label_share`). A fragment voted "traffic light" by 3
    boxes against 3 "person" may continue one voted "person" 4 to 2; a traffic light seen
    only as one may not continue a person called "traffic light" once in 6 boxes. Tracks
    without box counts (annotations written before they were kept) compare votes only."""
    if compatible_labels(first.entity.description, second.entity.description):
        return True
    if not first.label_frames or not second.label_frames:
        return False
    return shared_label_share(first.label_frames, second.label_frames) >= MIN_SHARED_LABELS


def join_score(first: ObjectTrack, second: ObjectTrack, rules: MergeRules) -> float | None:
    """How surely two tracks are one object (higher is surer), or None if they are not.

    The two tracks' frames are laid out on one time line; every place where the line
    passes from one track to the other is a handover, which must be short and aligned
    (or, for alike-looking tracks, near: see :class:`MergeRules`).
    """
    if not labels_may_join(first, second):
        return None
    if not first.frames or not second.frames:
        return None
    vetoed, alike, look = _appearance_verdict(first, second, rules)
    if vetoed:
        return None
    max_gap = max(rules.max_gap_seconds, rules.appearance_max_gap_seconds if alike else 0.0)
    if second.first_time - first.last_time > max_gap:
        return None
    if first.first_time - second.last_time > max_gap:
        return None
    timeline = sorted(
        [(frame.time, 0, index) for index, frame in enumerate(first.frames)]
        + [(frame.time, 1, index) for index, frame in enumerate(second.frames)]
    )
    tracks = (first, second)
    together: list[tuple[int, int]] = []  # (index in first, index in second) at one moment
    worst_alignment = 1.0
    longest_gap = 0.0
    handovers = 0
    for (time, owner, index), (next_time, next_owner, next_index) in itertools.pairwise(timeline):
        if owner == next_owner:
            continue
        gap = next_time - time
        if gap <= _SAME_MOMENT:
            together.append((index, next_index) if owner == 0 else (next_index, index))
            continue
        handovers += 1
        longest_gap = max(longest_gap, gap)
        if gap > max_gap:
            return None
        if gap > rules.edge_free_gap_seconds and not _edges_agree(
            tracks[owner], index, tracks[next_owner], next_index, rules
        ):
            return None
        fit = (
            _handover_alignment(tracks[owner], index, tracks[next_owner], next_index, rules)
            if gap <= rules.max_gap_seconds
            else 0.0
        )
        if alike:
            near = _handover_proximity(tracks[owner], index, tracks[next_owner], next_index, rules)
            fit = max(fit, rules.min_alignment * (near > 0) + (1 - rules.min_alignment) * near)
        worst_alignment = min(worst_alignment, fit)
    if together:
        times = [first.frames[i].time for i, _ in together]
        if max(times) - min(times) > rules.max_overlap_seconds:
            return None
        for i, j in together:  # a short duplicate: both boxes must be the same object
            worst_alignment = min(
                worst_alignment,
                alignment(first.frames[i].box, second.frames[j].box, rules.max_area_ratio),
            )
    if (handovers == 0 and not together) or worst_alignment < rules.min_alignment:
        return None
    # Prefer the pair closest in time, then the best aligned, then the most alike.
    return (
        worst_alignment
        - longest_gap / max(rules.max_gap_seconds, 1e-9)
        + 0.5 * (look if look is not None else 0.0)
    )


def join_tracks(first: ObjectTrack, second: ObjectTrack) -> ObjectTrack:
    """One track with the frames of both (at a moment both saw, the longer track's box).

    The confidence is the mean of the two weighted by frame counts, so it stays the mean
    detection score over the frames when each part's confidence is.
    """
    main, other = (first, second) if first.frame_count >= second.frame_count else (second, first)
    main_times = [frame.time for frame in main.frames]
    extra = [
        frame
        for frame in other.frames
        if not any(abs(frame.time - time) <= _SAME_MOMENT for time in main_times)
    ]
    frames = tuple(sorted((*main.frames, *extra), key=lambda frame: frame.time))
    total = first.frame_count + second.frame_count
    confidence = (
        (first.confidence * first.frame_count + second.confidence * second.frame_count) / total
        if total
        else 0.0
    )
    earliest = first if first.first_time <= second.first_time else second
    return ObjectTrack(
        entity=voted_entity((first, second)),
        confidence=confidence,
        segment=Segment(frames[0].time, frames[-1].time),
        frames=frames,
        track_id=earliest.track_id,
        label_scores=combined_label_scores((first, second)),
        appearance=combined_appearance((first, second)),
        label_frames=combined_label_frames((first, second)),
    )


def _label_scores(track: ObjectTrack) -> tuple[tuple[str, float], ...]:
    """A track's score per label; one without them counts its confidence x frames."""
    if track.label_scores:
        return track.label_scores
    return ((track.entity.description, track.confidence * track.frame_count),)


def combined_label_scores(parts: Sequence[ObjectTrack]) -> tuple[tuple[str, float], ...]:
    totals: dict[str, float] = {}
    for part in parts:
        for label, score in _label_scores(part):
            totals[label] = totals.get(label, 0.0) + score
    return tuple(sorted(totals.items()))


def combined_label_frames(parts: Sequence[ObjectTrack]) -> tuple[tuple[str, int], ...]:
    """Boxes per label over ``parts`` (empty when a part has no counts: an older document)."""
    if any(not part.label_frames for part in parts):
        return ()
    totals: dict[str, int] = {}
    for part in parts:
        for label, count in part.label_frames:
            totals[label] = totals.get(label, 0) + count
    return tuple(sorted(totals.items()))


def voted_entity(parts: Sequence[ObjectTrack]) -> Entity:
    """The entity of the label of the most boxes over ``parts`` (see
    :func:`workers.local.labels.box_vote`)."""
    label = box_vote(combined_label_frames(parts), combined_label_scores(parts))
    for part in parts:
        if part.entity.description == label:
            return part.entity
    entity_id = str(COCO_CLASS_NAMES.index(label)) if label in COCO_CLASS_NAMES else ""
    return Entity(entity_id=entity_id, description=label)


def combined_appearance(parts: Sequence[ObjectTrack]) -> tuple[float, ...]:
    """The frame-weighted mean of the parts' appearance cues (empty when one part has
    none). Parts with and without a re-identification embedding keep the hand-made cues."""
    if not parts or any(not part.appearance for part in parts):
        return ()
    total = sum(part.frame_count for part in parts) or 1
    length = min(len(part.appearance) for part in parts)
    if any(len(part.appearance) != length for part in parts):
        if length < HAND_MADE_LENGTH:
            return ()
        length = HAND_MADE_LENGTH
    return tuple(
        round(sum(part.appearance[i] * part.frame_count for part in parts) / total, 5)
        for i in range(length)
    )


def merge_fragments(
    tracks: Sequence[ObjectTrack], rules: MergeRules | None = None
) -> list[ObjectTrack]:
    """``tracks`` with fragments of one object joined (see the module doc), in time order."""
    rules = rules or MergeRules()
    current = sorted(tracks, key=lambda track: (track.first_time, track.track_id or 0))
    while True:
        best: tuple[float, int, int] | None = None
        for i in range(len(current)):
            for j in range(i + 1, len(current)):
                score = join_score(current[i], current[j], rules)
                if score is not None and (best is None or score > best[0]):
                    best = (score, i, j)
        if best is None:
            return current
        _, i, j = best
        joined = join_tracks(current[i], current[j])
        current = [track for k, track in enumerate(current) if k not in (i, j)] + [joined]
        current.sort(key=lambda track: (track.first_time, track.track_id or 0))
