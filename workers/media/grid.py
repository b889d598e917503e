"""The summary image: every object's cell in one near-square grid.

Cells keep the video's aspect ratio. The grid has as many columns as make its cells the
largest that fit the bounds; among layouts whose cells are as large (cells are never
enlarged beyond the size they were rendered at: that would only blur them and weigh more),
the nearest to ``ceil(sqrt(n))`` columns. For landscape video in the default 1920 x 1080
that is the near-square grid (12 objects make 4 x 3, 30 make 6 x 5); portrait video gets
more columns and fewer rows (4 phone videos side by side rather than 2 x 2 cells half as
tall), so its cells, and their captions, are not shrunk to unreadable.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from workers.media.render_cells import caption_font, encode_jpeg

GRID_GAP = 4  # px between cells: enough to tell cells apart, little enough to waste no room
GRID_BACKGROUND = (24, 24, 24)
EMPTY_SUMMARY_WIDTH = 640
EMPTY_SUMMARY_TEXT = "no objects"


@dataclass(frozen=True, slots=True)
class GridLayout:
    """Where the cells go: ``columns`` x ``rows`` cells of ``cell_width`` x ``cell_height``."""

    columns: int
    rows: int
    cell_width: int
    cell_height: int
    gap: int = GRID_GAP

    @property
    def width(self) -> int:
        return self.columns * self.cell_width + (self.columns - 1) * self.gap

    @property
    def height(self) -> int:
        return self.rows * self.cell_height + (self.rows - 1) * self.gap

    def origin(self, index: int) -> tuple[int, int]:
        """Top-left pixel of cell ``index`` (row by row, left to right)."""
        row, column = divmod(index, self.columns)
        return column * (self.cell_width + self.gap), row * (self.cell_height + self.gap)


def grid_layout(
    count: int,
    video_width: int,
    video_height: int,
    max_width: int = 1920,
    max_height: int = 1080,
    *,
    max_cell_width: int | None = None,
    gap: int = GRID_GAP,
) -> GridLayout:
    """The layout of ``count`` cells of the video's aspect ratio within the bounds."""
    if count < 1:
        raise ValueError("a grid needs at least one cell")
    if min(video_width, video_height, max_width, max_height) < 1:
        raise ValueError("sizes must be positive")
    square = math.ceil(math.sqrt(count))
    layouts = [
        _layout_with(
            columns, count, video_width / video_height, max_width, max_height, gap, max_cell_width
        )
        for columns in range(1, count + 1)
    ]
    return max(layouts, key=lambda layout: (layout.cell_width, -abs(layout.columns - square)))


def _layout_with(
    columns: int,
    count: int,
    aspect: float,
    max_width: int,
    max_height: int,
    gap: int,
    max_cell_width: int | None,
) -> GridLayout:
    rows = math.ceil(count / columns)
    room_width = (max_width - (columns - 1) * gap) / columns
    room_height = (max_height - (rows - 1) * gap) / rows
    cell_width = min(room_width, room_height * aspect)
    if max_cell_width is not None:
        cell_width = min(cell_width, max_cell_width)
    cell_width = max(1, math.floor(cell_width))
    cell_height = max(1, min(math.floor(room_height), round(cell_width / aspect)))
    return GridLayout(columns, rows, cell_width, cell_height, gap)


def assemble_summary_grid(
    cells: Sequence[bytes],
    video_width: int,
    video_height: int,
    max_width: int = 1920,
    max_height: int = 1080,
    *,
    jpeg_quality: int = 85,
) -> bytes:
    """A JPEG of the ``cells`` (JPEG bytes, in order) in a near-square grid.

    With no cells it returns a small image of the video's shape that says "no objects", so
    a job whose video shows nothing trackable still has a summary to show.
    """
    if not cells:
        return _empty_summary(video_width, video_height, max_width, max_height, jpeg_quality)
    images = [Image.open(io.BytesIO(cell)) for cell in cells]
    layout = grid_layout(
        len(images),
        video_width,
        video_height,
        max_width,
        max_height,
        max_cell_width=max(image.width for image in images),
    )
    grid = Image.new("RGB", (layout.width, layout.height), GRID_BACKGROUND)
    size = (layout.cell_width, layout.cell_height)
    for index, image in enumerate(images):
        image.draft("RGB", size)  # JPEG decodes straight at 1/2, 1/4... scale when it can
        grid.paste(
            image.convert("RGB").resize(size, Image.Resampling.LANCZOS), layout.origin(index)
        )
    return encode_jpeg(grid, jpeg_quality)


def _empty_summary(
    video_width: int, video_height: int, max_width: int, max_height: int, quality: int
) -> bytes:
    layout = grid_layout(
        1, video_width, video_height, max_width, max_height, max_cell_width=EMPTY_SUMMARY_WIDTH
    )
    image = Image.new("RGB", (layout.width, layout.height), GRID_BACKGROUND)
    font = caption_font(max(10, layout.cell_height // 10))
    left, top, right, bottom = font.getbbox(EMPTY_SUMMARY_TEXT)
    position = (
        (layout.width - (right - left)) / 2 - left,
        (layout.height - (bottom - top)) / 2 - top,
    )
    ImageDraw.Draw(image).text(position, EMPTY_SUMMARY_TEXT, font=font, fill=(220, 220, 220))
    return encode_jpeg(image, quality)
