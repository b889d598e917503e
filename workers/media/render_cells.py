"""Drawing on frames: an object's box, its caption, and the JPEG of a summary cell.

Text uses the font bundled with Pillow (>= 10.1, a scalable FreeType font), so a caption
looks the same on every machine whatever fonts are installed; without FreeType it falls
back to Pillow's built-in bitmap font, which is small but still readable.
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, features

from workers.annotations.model import NormalizedBox, ObjectTrack

# The box is a bright core line between two thin dark edges: the core shows on dark
# footage, the edges on light footage (white walls, snow, sky).
BOX_CORE_COLOUR = (255, 200, 0)
BOX_EDGE_COLOUR = (0, 0, 0)
CAPTION_TEXT_COLOUR = (255, 255, 255)
CAPTION_BAND_COLOUR = (0, 0, 0, 170)  # translucent: the footage stays visible behind the text

# Colours a GIF palette must hold exactly, whatever the footage's colours are.
DRAWN_COLOURS = (BOX_CORE_COLOUR, BOX_EDGE_COLOUR, CAPTION_TEXT_COLOUR)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def box_core_width(image_width: int) -> int:
    """Core line width: 2 px on a 400-px frame, growing with the frame so it stays visible."""
    return max(2, round(image_width / 200))


def draw_box(image: Image.Image, box: NormalizedBox) -> None:
    """Draw ``box`` on ``image`` (in place): a bright core line between two 1-px dark edges."""
    left, top, right, bottom = box.to_pixels(image.width, image.height)
    core = box_core_width(image.width)
    half = core // 2  # the core is centred on the box's edge
    outer = (left - half, top - half, right + half, bottom + half)
    draw = ImageDraw.Draw(image)
    draw.rectangle(_grown(outer, 1), outline=BOX_EDGE_COLOUR, width=1)
    draw.rectangle(outer, outline=BOX_CORE_COLOUR, width=core)
    inner = _grown(outer, -core)
    if inner[2] > inner[0] and inner[3] > inner[1]:
        draw.rectangle(inner, outline=BOX_EDGE_COLOUR, width=1)


def _grown(rect: tuple[int, int, int, int], by: int) -> tuple[int, int, int, int]:
    left, top, right, bottom = rect
    return left - by, top - by, right + by, bottom + by


def caption_text(obj: ObjectTrack, frame_count: int | None = None) -> str:
    """``dog · 92% · 124 fr.``: what it is, how sure the tracker is, how many annotated frames.

    ``frame_count`` overrides the track's own count when the track carries only the frames
    to draw.
    """
    what = obj.entity.description.strip() or obj.entity.entity_id.strip() or "object"
    count = obj.frame_count if frame_count is None else frame_count
    return f"{what} · {round(obj.confidence * 100)}% · {count} fr."


@lru_cache(maxsize=16)
def caption_font(size: int) -> Font:
    """Pillow's bundled scalable font at ``size`` px (the bitmap default without FreeType)."""
    if features.check("freetype2"):
        return ImageFont.load_default(size=size)
    return ImageFont.load_default()


def caption_size(width: int, height: int) -> int:
    """The caption's font size in px for an image of ``width`` x ``height``.

    A sixteenth of the height on landscape frames; on portrait (narrow) ones the width
    limits it instead, so ``person · 87% · 97 fr.`` still fits a 480-px-wide cell of a phone
    video rather than being cut to ``per…``. Larger text reads better once the summary grid
    scales the cell down, but covers more of the object.
    """
    return max(10, round(min(height / 16, width / 14)))


def draw_caption(image: Image.Image, text: str, box: NormalizedBox | None = None) -> None:
    """Write ``text`` on a translucent band across the bottom of ``image`` (in place).

    A caption too long for one line goes on two: what the object is, then the figures
    (``87% · 124 fr.``); a description too long even for its own line is shortened with an
    ellipsis. The band goes to the top instead when the object's ``box`` reaches further
    into the bottom band than into the top one, so the caption hides as little of the
    object as it can.
    """
    font = caption_font(caption_size(image.width, image.height))
    padding = max(3, round(min(image.width, image.height) / 60))
    lines = caption_lines(text, font, image.width - 2 * padding)
    _, text_top, _, text_bottom = font.getbbox("Ag")
    line_height = text_bottom - text_top
    spacing = max(1, line_height // 4)
    band_height = len(lines) * line_height + (len(lines) - 1) * spacing + 2 * padding
    band_top = image.height - band_height
    if box is not None and _band_hides_more_at_bottom(box, band_height / image.height):
        band_top = 0
    draw = ImageDraw.Draw(image, "RGBA")
    draw.rectangle((0, band_top, image.width, band_top + band_height), fill=CAPTION_BAND_COLOUR)
    for number, line in enumerate(lines):
        y = band_top + padding - text_top + number * (line_height + spacing)
        draw.text((padding, y), line, font=font, fill=CAPTION_TEXT_COLOUR)


def caption_lines(text: str, font: Font, width: int) -> list[str]:
    """``text`` as the one or two lines that fit ``width`` px (see :func:`draw_caption`)."""
    if font.getlength(text) <= width:
        return [text]
    what, separator, rest = text.partition(" · ")
    if not separator:
        return [_fit(text, font, width)]
    return [_fit(what, font, width), _fit(rest, font, width)]


def encode_jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def _fit(text: str, font: Font, width: int) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` px."""
    if font.getlength(text) <= width:
        return text
    for end in range(len(text) - 1, 0, -1):
        candidate = f"{text[:end].rstrip()}…"
        if font.getlength(candidate) <= width:
            return candidate
    return "…"


def _band_hides_more_at_bottom(box: NormalizedBox, band_fraction: float) -> bool:
    clipped = box.clipped()
    hidden_at_bottom = max(0.0, clipped.bottom - (1.0 - band_fraction))
    hidden_at_top = max(0.0, band_fraction - clipped.top)
    return hidden_at_bottom > hidden_at_top
