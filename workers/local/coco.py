"""COCO class names, spelled as current COCO tools spell them.

Darknet's ``coco.names`` keeps a few older spellings ("motorbike", "tvmonitor"...);
they are mapped to the names Ultralytics models report so that one class has one
name whichever detector found it.
"""

from __future__ import annotations

COCO_CLASS_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip

_DARKNET_SPELLINGS = {
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "tvmonitor": "tv",
}


def canonical_class_name(name: str) -> str:
    """The current COCO spelling of a class name (other names are returned unchanged)."""
    stripped = name.strip()
    return _DARKNET_SPELLINGS.get(stripped, stripped)


def read_names_file(text: str) -> tuple[str, ...]:
    """Class names from a darknet ``.names`` file, one per line, in class-id order."""
    return tuple(canonical_class_name(line) for line in text.splitlines() if line.strip())
