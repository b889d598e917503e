"""Labels the detector confuses for one another, and how a track's label is chosen.

YOLOv3-tiny (and small detectors generally) flips between neighbouring COCO classes for one
object from one frame to the next: a thrown bag is "sports ball" in one frame and
"frisbee" in the next, a car seen from above "car", "truck" or "bus". Treating such labels
as different objects splits one real object into several tracks. So association (the
first-detection claim, segment stitching and the offline merge) treats the labels of one
group below as compatible, and the label a track reports is the vote of its boxes: the
label of the most boxes, ties going to the larger summed score. (A vote weighted by score
let 40% of boxes scored 0.9 outvote 60% scored 0.4: a track mostly of a dog was reported
as a person.)

Labels of different groups never join: a person and a dog side by side stay two, and two
objects of one class side by side stay two because they are seen at the same moments
(the merge never joins tracks seen together for long).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

# Each group: labels one real object is often given by the detector (COCO names).
CONFUSABLE_LABELS: tuple[frozenset[str], ...] = (
    frozenset({"sports ball", "frisbee", "kite"}),
    frozenset({"car", "truck", "bus", "van"}),
    # Four-legged animals: in black-and-white video YOLOv3-tiny calls a dog "cow".
    frozenset({"cat", "dog", "cow", "sheep", "horse"}),
    frozenset({"couch", "bed", "chair"}),
)

_GROUP_OF: dict[str, str] = {label: min(group) for group in CONFUSABLE_LABELS for label in group}


def label_group(label: str) -> str:
    """A name shared by every label of ``label``'s confusable group (the label itself when it
    is in none)."""
    return _GROUP_OF.get(label, label)


def compatible_labels(first: str, second: str) -> bool:
    """Whether one object may carry both labels (equal, or in one confusable group)."""
    return first == second or label_group(first) == label_group(second)


def box_vote(counts: Iterable[tuple[str, int]], scores: Iterable[tuple[str, float]]) -> str:
    """The label of the most boxes among ``(label, boxes)`` pairs, ties going to the larger
    summed score in ``(label, score sum)`` (then to the label seen first). Without counts
    (annotations written before they were kept): the largest score sum."""
    totals: dict[str, int] = defaultdict(int)
    for label, count in counts:
        totals[label] += count
    score_totals: dict[str, float] = defaultdict(float)
    for label, score in scores:
        score_totals[label] += score
    if not totals:
        return weighted_vote(score_totals.items())
    order = list(totals)
    return max(order, key=lambda label: (totals[label], score_totals[label], -order.index(label)))


def weighted_vote(votes: Iterable[tuple[str, float]]) -> str:
    """The label with the largest summed weight among ``(label, weight)`` pairs (ties: the
    label seen first). Weights are detection scores, or score sums of whole tracks."""
    totals: dict[str, float] = defaultdict(float)
    order: list[str] = []
    for label, weight in votes:
        if label not in totals:
            order.append(label)
        totals[label] += weight
    if not order:
        return ""
    return max(order, key=lambda label: (totals[label], -order.index(label)))
