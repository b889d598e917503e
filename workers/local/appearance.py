"""Cheap appearance cues of an object's box, for the offline merge.

The offline merge (:mod:`workers.local.merge`) compares fragments by where their boxes
are; when an object is hidden for a while or leaves the frame and comes back, geometry
alone cannot tell whether the new track is the same object. Each cue below answers one
part of "do these two fragments look like one object?", and each is blind somewhere:

* **colour**: a hue-saturation histogram (16x4 bins) of the box's inner part. Changes
  little with pose and lighting and separates most differently coloured objects. Blind
  to grey, black, white and silver: with no saturation every such box falls into the
  same bins, so two different people in a black-and-white video score 1.0, and a silver
  and a dark car 0.87.
* **grey levels**: a 16-bin histogram of the inner part's brightness. Separates a dark
  object from a light one whatever the colour (a man in black from a woman in a white
  shirt); blind to two objects of the same overall brightness, and moved by lighting.
* **layout**: the box shrunk to a 8x16 grayscale thumbnail, normalized to zero mean and
  unit variance, compared by correlation. Says where the dark and light parts are (dark
  top and light legs, a white roof on a dark car); blind to detail, and changes when the
  object turns around or the box is cut by the frame's edge.
* **gradients**: an orientation histogram of the image gradients (8 orientations in 2x2
  cells of the box): the texture (stripes, edges, smooth areas). Blind to colour and
  brightness; changes with scale when an object comes much nearer.

A track's cues are averages over samples of its boxes (one detection in
``SAMPLE_EVERY``), stored as one flat vector (:func:`describe` / :func:`parts`) so it
travels in the annotation's ``appearance`` field. Learned embeddings (re-identification,
:mod:`workers.local.reid`) are appended when a model is configured.

Cost: one crop of the frame the detector already scaled (at most 416 px wide), sampled
to at most about 32x32 pixels, per sampled box: see docs/local-backend.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

HUE_BINS = 16
SATURATION_BINS = 4
GREY_BINS = 16
LAYOUT_SIZE = (8, 16)  # width, height of the thumbnail
GRADIENT_BINS = 8
GRADIENT_CELLS = 2  # per side
INNER_SHARE = 0.6  # of the box's width and height, centred: less background, same object
LAYOUT_SHARE = 0.9  # the layout keeps more of the box: its shape matters
SAMPLE_SIDE = 32
SAMPLE_EVERY = 3  # a track's cues are taken on its 1st, 4th, 7th... detection

COLOUR_LENGTH = HUE_BINS * SATURATION_BINS
# (name, length) of the parts of a described box, in order.
HAND_MADE_PARTS: tuple[tuple[str, int], ...] = (
    ("colour", COLOUR_LENGTH),
    ("grey", GREY_BINS),
    ("layout", LAYOUT_SIZE[0] * LAYOUT_SIZE[1]),
    ("gradients", GRADIENT_BINS * GRADIENT_CELLS * GRADIENT_CELLS),
)
HAND_MADE_LENGTH = sum(length for _, length in HAND_MADE_PARTS)


def _crop(image: np.ndarray, box: np.ndarray, share: float) -> np.ndarray:
    """The centred ``share`` of ``box`` (normalized xyxy), sampled to about SAMPLE_SIDE."""
    height, width = image.shape[:2]
    left, top, right, bottom = (float(v) for v in box)
    margin_x = (right - left) * (1 - share) / 2
    margin_y = (bottom - top) * (1 - share) / 2
    x0 = int(np.clip((left + margin_x) * width, 0, width - 1))
    x1 = int(np.clip(np.ceil((right - margin_x) * width), x0 + 1, width))
    y0 = int(np.clip((top + margin_y) * height, 0, height - 1))
    y1 = int(np.clip(np.ceil((bottom - margin_y) * height), y0 + 1, height))
    step_y = max(1, (y1 - y0) // SAMPLE_SIDE)
    step_x = max(1, (x1 - x0) // SAMPLE_SIDE)
    return np.ascontiguousarray(image[y0:y1:step_y, x0:x1:step_x])


def _normalized(values: np.ndarray) -> np.ndarray:
    total = float(values.sum())
    return (values / total if total > 0 else values).astype(np.float32)


def _gradient_histogram(grey: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    magnitude, angle = cv2.cartToPolar(gx, gy, angleInDegrees=True)
    orientation = np.minimum((angle % 180.0) / (180.0 / GRADIENT_BINS), GRADIENT_BINS - 1)
    orientation = orientation.astype(np.int32)
    height, width = grey.shape
    cells = []
    for row in range(GRADIENT_CELLS):
        for column in range(GRADIENT_CELLS):
            rows = slice(row * height // GRADIENT_CELLS, (row + 1) * height // GRADIENT_CELLS)
            columns = slice(
                column * width // GRADIENT_CELLS, (column + 1) * width // GRADIENT_CELLS
            )
            cells.append(
                np.bincount(
                    orientation[rows, columns].ravel(),
                    weights=magnitude[rows, columns].ravel(),
                    minlength=GRADIENT_BINS,
                )
            )
    return _normalized(np.concatenate(cells))


def describe(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Every hand-made cue of ``box`` (normalized xyxy) in the RGB ``image``, as one flat
    vector laid out as :data:`HAND_MADE_PARTS`."""
    inner = _crop(image, box, INNER_SHARE)
    hsv = cv2.cvtColor(inner, cv2.COLOR_RGB2HSV)
    colour = cv2.calcHist(
        [hsv], [0, 1], None, [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256]
    ).ravel()
    grey_inner = cv2.cvtColor(inner, cv2.COLOR_RGB2GRAY)
    grey_levels = cv2.calcHist([grey_inner], [0], None, [GREY_BINS], [0, 256]).ravel()
    whole = cv2.cvtColor(_crop(image, box, LAYOUT_SHARE), cv2.COLOR_RGB2GRAY)
    thumbnail = cv2.resize(whole, LAYOUT_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    return np.concatenate(
        [
            _normalized(colour),
            _normalized(grey_levels),
            thumbnail.ravel() / 255.0,
            _gradient_histogram(whole),
        ]
    ).astype(np.float32)


def parts(vector: Sequence[float] | np.ndarray) -> dict[str, np.ndarray]:
    """The named cues of a track's appearance vector: the hand-made ones, then (when the
    vector is longer) a re-identification embedding. A shorter vector (an older
    annotation's) is a colour histogram alone."""
    values = np.asarray(vector, dtype=np.float64)
    if len(values) < HAND_MADE_LENGTH:
        return {"colour": values} if len(values) else {}
    named, start = {}, 0
    for name, length in HAND_MADE_PARTS:
        named[name] = values[start : start + length]
        start += length
    if len(values) > start:
        named["reid"] = values[start:]
    return named


def similarity(
    first: tuple[float, ...] | np.ndarray, second: tuple[float, ...] | np.ndarray
) -> float:
    """Bhattacharyya coefficient of two normalized histograms: 1 identical, 0 disjoint."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or not a.size:
        return 0.0
    return float(np.sum(np.sqrt(np.clip(a, 0, None) * np.clip(b, 0, None))))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    scale = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / scale) if scale > 1e-9 else 0.0


def layout_similarity(first: np.ndarray, second: np.ndarray) -> float:
    """Correlation of two thumbnails (each normalized to zero mean, unit variance): 1 the
    same pattern of dark and light, 0 unrelated, -1 inverted. The better of the thumbnail
    and its mirror image: an object that comes back walking the other way is the same."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.size != LAYOUT_SIZE[0] * LAYOUT_SIZE[1]:
        return 0.0
    mirrored = b.reshape(LAYOUT_SIZE[1], LAYOUT_SIZE[0])[:, ::-1].ravel()
    return max(_correlation(a, b), _correlation(a, mirrored))


def cosine(first: np.ndarray, second: np.ndarray) -> float:
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    scale = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / scale) if scale > 1e-12 else 0.0


def cue_similarities(
    first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """How alike two appearance vectors are, cue by cue (only cues both have)."""
    a, b = parts(first), parts(second)
    result: dict[str, float] = {}
    for name in a.keys() & b.keys():
        if name == "layout":
            result[name] = layout_similarity(a[name], b[name])
        elif name == "reid":
            result[name] = cosine(a[name], b[name])
        else:
            result[name] = similarity(a[name], b[name])
    return result
