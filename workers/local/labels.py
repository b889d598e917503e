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

Labels of different groups never join, with one exception for fragments of tracks rather
than single boxes: two fragments whose boxes carry mostly the same labels
(:func:`shared_label_share`) may be one object even when their votes differ (a small
runner voted "traffic light" by a hair in one fragment and "person" in the next:
docs/local-backend.md, "Why one object comes out as one object", 5.).
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


# Two fragments share labels on at least this share of their boxes (see
# :func:`shared_label_share`) to be one object whatever their votes. Lower joins fragments
# that are mostly of different objects (a person track with one "traffic light" box and a
# traffic light: 0.17 for 5 + 1 boxes against 6); higher splits an object whose labels
# flip about evenly (the generated runner's fragments with int8 inference: 0.8 to 0.83).
MIN_SHARED_LABELS = 0.5


def shared_label_share(
    first: Iterable[tuple[str, int]], second: Iterable[tuple[str, int]]
) -> float:
    """How much two label counts (``(label, boxes)`` pairs) agree: the sum over label groups
    of the smaller of the two shares of boxes in that group (1 for the same proportions, 0
    for no group in common; 0 when either has no boxes)."""
    shares = []
    for counts in (first, second):
        groups: dict[str, int] = defaultdict(int)
        for label, count in counts:
            groups[label_group(label)] += count
        total = sum(groups.values())
        if total <= 0:
            return 0.0
        shares.append({group: count / total for group, count in groups.items()})
    return sum(min(share, shares[1].get(group, 0.0)) for group, share in shares[0].items())


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
