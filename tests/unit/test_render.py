"""Rendering objects, captions and the summary grid from small real videos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont

from tests.support.videos import box_at, read_scaled_frame_index, write_test_video
from workers.annotations.model import Entity, NormalizedBox, ObjectTrack, Segment, TrackedFrame
from workers.errors import InputError, VideoError
from workers.media.grid import grid_layout
from workers.media.render import (
    RenderOptions,
    assemble_summary_grid,
    pick_cell_frame,
    pick_frames,
    render_object,
    render_objects,
)
from workers.media.render_cells import (
    BOX_CORE_COLOUR,
    caption_font,
    caption_lines,
    caption_size,
    caption_text,
    draw_caption,
)

WIDTH, HEIGHT, FPS, FRAMES = 320, 192, 10, 40
DOG = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "videos" / "sam2_01_dog.mp4"


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("render") / "moving.mp4"
    return write_test_video(path, frames=FRAMES, fps=FPS, width=WIDTH, height=HEIGHT)


def tracked_rectangle(
    first: int = 0, last: int = FRAMES - 1, confidence: float = 0.92
) -> ObjectTrack:
    """An object whose annotation follows the test video's red rectangle exactly."""
    frames = []
    for index in range(first, last + 1):
        left, top, right, bottom = box_at(index, WIDTH, HEIGHT)
        box = NormalizedBox(left / WIDTH, top / HEIGHT, right / WIDTH, bottom / HEIGHT)
        frames.append(TrackedFrame(index / FPS, box))
    return ObjectTrack(
        entity=Entity("/m/0k4j", "rectangle"),
        confidence=confidence,
        segment=Segment(first / FPS, last / FPS),
        frames=tuple(frames),
    )


def animation_frames(data: bytes) -> list[Image.Image]:
    image = Image.open(io.BytesIO(data))
    frames = []
    for index in range(image.n_frames):
        image.seek(index)
        frames.append(image.convert("RGB"))
    return frames


def animation_durations(data: bytes) -> list[int]:
    image = Image.open(io.BytesIO(data))
    durations = []
    for index in range(image.n_frames):
        image.seek(index)
        image.load()  # WebP reads a frame's duration when it decodes the frame
        durations.append(image.info["duration"])
    return durations


def test_gif_loops_forever_with_12_frames_of_250_ms(video: Path) -> None:
    rendered = render_object(video, tracked_rectangle(), RenderOptions())
    gif = Image.open(io.BytesIO(rendered.animation))
    assert gif.format == "GIF"
    assert rendered.animation_content_type == "image/gif"
    assert gif.n_frames == 12
    assert gif.info["loop"] == 0
    assert animation_durations(rendered.animation) == [250] * 12


def test_animation_spans_the_whole_track_first_and_last_included(video: Path) -> None:
    rendered = render_object(video, tracked_rectangle(first=5, last=27), RenderOptions())
    assert rendered.frame_times[0] == pytest.approx(0.5)
    assert rendered.frame_times[-1] == pytest.approx(2.7)
    shown = [read_scaled_frame_index(f, WIDTH) for f in animation_frames(rendered.animation)]
    assert shown == [round(t * FPS) for t in rendered.frame_times]
    assert shown == sorted(set(shown)) and len(shown) == 12


def test_box_is_drawn_around_the_rectangle(video: Path) -> None:
    rendered = render_object(video, tracked_rectangle(), RenderOptions())
    first = np.asarray(animation_frames(rendered.animation)[0]).astype(int)
    left, top, right, _bottom = box_at(0, WIDTH, HEIGHT)
    # The box's bright core runs along the rectangle's edges: the middle of its top side...
    edge = first[top, (left + right) // 2]
    assert np.abs(edge - BOX_CORE_COLOUR).max() < 40
    # ...and the footage far from the box is untouched by it.
    assert np.abs(first[HEIGHT - 5, WIDTH - 5] - BOX_CORE_COLOUR).max() > 60


def test_webp_is_animated_looping_and_timed(video: Path) -> None:
    options = RenderOptions(animation_format="webp", animation_frames=6)
    rendered = render_object(video, tracked_rectangle(), options)
    webp = Image.open(io.BytesIO(rendered.animation))
    assert webp.format == "WEBP"
    assert rendered.animation_content_type == "image/webp"
    assert rendered.animation_extension == "webp"
    assert webp.n_frames == 6
    assert webp.info["loop"] == 0
    assert animation_durations(rendered.animation) == [250] * 6


def test_animation_is_scaled_to_max_width(video: Path) -> None:
    options = RenderOptions(animation_max_width=160, cell_width=200, animation_frames=3)
    rendered = render_object(video, tracked_rectangle(), options)
    assert Image.open(io.BytesIO(rendered.animation)).size == (160, 96)
    assert Image.open(io.BytesIO(rendered.cell_jpeg)).size == (200, 120)


def test_cell_is_the_frame_where_the_box_is_largest(video: Path) -> None:
    track = tracked_rectangle(first=0, last=20)
    grown = list(track.frames)
    big = NormalizedBox(0.1, 0.3, 0.6, 0.9)
    grown[10] = TrackedFrame(grown[10].time, big)
    track = ObjectTrack(track.entity, track.confidence, track.segment, tuple(grown))
    rendered = render_object(video, track, RenderOptions(animation_frames=21))
    assert rendered.cell_time == pytest.approx(1.0)
    cell = Image.open(io.BytesIO(rendered.cell_jpeg))
    assert cell.format == "JPEG"
    assert cell.size == (WIDTH, HEIGHT)  # the video is narrower than the cell width


def test_short_track_renders_every_annotated_frame(video: Path) -> None:
    rendered = render_object(video, tracked_rectangle(first=30, last=33), RenderOptions())
    assert Image.open(io.BytesIO(rendered.animation)).n_frames == 4


def test_batch_renders_like_one_at_a_time(video: Path) -> None:
    objects = [tracked_rectangle(0, 39), tracked_rectangle(12, 18, confidence=0.8)]
    batch = render_objects(video, objects, RenderOptions())
    single = [render_object(video, obj, RenderOptions()) for obj in objects]
    assert [r.animation for r in batch] == [r.animation for r in single]
    assert [r.cell_jpeg for r in batch] == [r.cell_jpeg for r in single]


def test_object_without_frames_is_refused(video: Path) -> None:
    empty = ObjectTrack(Entity("", "ghost"), 0.9, Segment(0, 1), ())
    with pytest.raises(InputError, match="ghost"):
        render_object(video, empty, RenderOptions())


def test_annotation_past_the_end_of_the_video_is_refused(video: Path) -> None:
    late = ObjectTrack(
        Entity("", "late"),
        0.9,
        Segment(0, 9),
        (
            TrackedFrame(0.0, NormalizedBox(0, 0, 1, 1)),
            TrackedFrame(9.0, NormalizedBox(0, 0, 1, 1)),
        ),
    )
    with pytest.raises(VideoError, match=r"no frame at 9\.000s"):
        render_object(video, late, RenderOptions())


def test_options_refuse_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="gif or webp"):
        RenderOptions(animation_format="avi")


def test_caption_says_what_how_sure_and_how_many_frames() -> None:
    assert caption_text(tracked_rectangle(0, 123, confidence=0.918)) == "rectangle · 92% · 124 fr."


def test_caption_uses_the_bundled_font_not_a_system_one() -> None:
    font = caption_font(18)
    assert isinstance(font, ImageFont.FreeTypeFont)
    # Pillow's bundled font is loaded from memory, not from a file installed on the machine.
    assert not isinstance(font.path, (str, Path))
    assert font.size == 18


def test_caption_is_readable_on_a_dark_band() -> None:
    white = Image.new("RGB", (480, 270), (255, 255, 255))
    draw_caption(white, "dog · 92% · 124 fr.")
    band = np.asarray(white)[-12:, 300:].astype(int)  # right of the text, inside the band
    assert band.max() < 120  # the band darkens even white footage
    text_area = np.asarray(white)[-25:, :200]
    assert text_area.max() > 200  # white text on it


def test_caption_moves_to_the_top_when_the_object_is_at_the_bottom() -> None:
    image = Image.new("RGB", (480, 270), (255, 255, 255))
    draw_caption(image, "dog · 92% · 124 fr.", NormalizedBox(0.2, 0.7, 0.5, 1.0))
    pixels = np.asarray(image).astype(int)
    assert pixels[2:12, 300:].max() < 120  # the band is at the top
    assert pixels[-10:].min() == 255  # and the bottom is untouched


def test_long_descriptions_are_shortened_to_fit() -> None:
    image = Image.new("RGB", (160, 90), (0, 0, 0))
    draw_caption(image, "a very long description of a thing nobody can name · 92% · 12 fr.")
    # The band spans the width; the text must not run off the right edge.
    right_edge = np.asarray(image)[-8:, -3:].astype(int)
    assert right_edge.max() < 120


@pytest.mark.parametrize("size", [(480, 853), (270, 480), (480, 1080), (160, 284)])
def test_portrait_cells_keep_the_whole_label(size: tuple[int, int]) -> None:
    """A phone video's cell is narrow: the label stays whole (on a line of its own when the
    caption does not fit on one), where it used to be cut to "ten… · 81% · 124 fr."."""
    width, height = size
    text = "tennis racket · 81% · 124 fr."
    font = caption_font(caption_size(width, height))
    lines = caption_lines(text, font, width - 6)
    assert lines in ([text], ["tennis racket", "81% · 124 fr."]), lines
    image = Image.new("RGB", size, (0, 0, 0))
    draw_caption(image, text)
    pixels = np.asarray(image).astype(int)
    assert pixels[:, -2:].max() < 120  # nothing runs off the right edge
    assert pixels[-height // 8 :].max() > 200  # the text is there, at the bottom


def test_summary_of_a_portrait_video_keeps_its_captions_readable() -> None:
    """Cells of a portrait video are laid side by side, so once the summary scales them
    down their captions are still at least 12 px high."""
    for count in (4, 9, 30):
        layout = grid_layout(count, 720, 1280, 1920, 1080, max_cell_width=480)
        assert layout.width <= 1920 and layout.height <= 1080
        scale = layout.cell_width / 480
        assert caption_size(480, 853) * scale >= 12, (count, layout)


def test_caption_on_a_tiny_cell_still_fits() -> None:
    image = Image.new("RGB", (40, 24), (0, 0, 0))
    draw_caption(image, "dog · 92% · 124 fr.")
    assert np.asarray(image)[-6:, -2:].max() < 120


def test_pick_frames_spreads_evenly_with_ends() -> None:
    frames = tracked_rectangle(0, 39).frames
    picked = pick_frames(frames, 4)
    assert [f.time for f in picked] == pytest.approx([0.0, 1.3, 2.6, 3.9])
    assert pick_frames(frames[:3], 12) == frames[:3]
    assert pick_frames(frames, 1) == (frames[19],)
    assert pick_frames((), 12) == ()


def test_pick_cell_frame_prefers_the_largest_box_then_the_middle() -> None:
    same = NormalizedBox(0.1, 0.1, 0.2, 0.2)
    frames = [TrackedFrame(float(i), same) for i in range(5)]
    assert pick_cell_frame(frames) == 2
    frames[4] = TrackedFrame(4.0, NormalizedBox(0.0, 0.0, 0.5, 0.5))
    assert pick_cell_frame(frames) == 4


@pytest.mark.parametrize(
    ("count", "columns", "rows"),
    [(1, 1, 1), (2, 2, 1), (5, 3, 2), (12, 4, 3), (30, 6, 5)],
)
def test_grid_layout_is_near_square_and_within_bounds(count: int, columns: int, rows: int) -> None:
    layout = grid_layout(count, 1280, 720, 1920, 1080)
    assert (layout.columns, layout.rows) == (columns, rows)
    assert layout.width <= 1920 and layout.height <= 1080
    assert layout.cell_width / layout.cell_height == pytest.approx(1280 / 720, rel=0.02)
    # As large as the bounds allow: one side nearly touches its bound.
    assert layout.width > 1920 - columns - 8 or layout.height > 1080 - rows - 8


def test_grid_layout_of_portrait_video_and_cell_cap() -> None:
    layout = grid_layout(3, 720, 1280, 1920, 1080)
    assert (layout.columns, layout.rows) == (3, 1)  # side by side: cells twice as large
    assert layout.cell_height / layout.cell_width == pytest.approx(1280 / 720, rel=0.02)
    assert layout.height <= 1080
    capped = grid_layout(1, 1280, 720, 1920, 1080, max_cell_width=480)
    assert (capped.width, capped.height) == (480, 270)


def test_grid_layout_needs_a_cell() -> None:
    with pytest.raises(ValueError, match="at least one cell"):
        grid_layout(0, 1280, 720)


def test_summary_grid_places_cells_in_reading_order() -> None:
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250)]
    cells = []
    for colour in colours:
        buffer = io.BytesIO()
        Image.new("RGB", (480, 270), colour).save(buffer, format="JPEG")
        cells.append(buffer.getvalue())
    grid = Image.open(io.BytesIO(assemble_summary_grid(cells, 1280, 720, 1000, 1000)))
    layout = grid_layout(5, 1280, 720, 1000, 1000, max_cell_width=480)
    assert grid.format == "JPEG"
    assert grid.size == (layout.width, layout.height)
    pixels = np.asarray(grid).astype(int)
    for index, colour in enumerate(colours):
        x, y = layout.origin(index)
        centre = pixels[y + layout.cell_height // 2, x + layout.cell_width // 2]
        assert np.abs(centre - colour).max() < 30
    empty_slot = layout.origin(5)
    assert pixels[empty_slot[1] + 10, empty_slot[0] + 10].max() < 60  # background, no cell


def test_summary_of_no_objects_says_so() -> None:
    data = assemble_summary_grid([], 1280, 720)
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    assert image.width / image.height == pytest.approx(16 / 9, rel=0.02)
    pixels = np.asarray(image.convert("L"))
    assert pixels.max() > 150  # the words "no objects" are written on the dark background


@pytest.mark.shared_data
@pytest.mark.skipif(not DOG.exists(), reason="../shared/data/videos/sam2_01_dog.mp4 is absent")
def test_real_video_renders_across_the_second_keyframe() -> None:
    frames = tuple(
        TrackedFrame(i * 1001 / 30000, NormalizedBox(0.3, 0.4, 0.55, 0.8)) for i in range(200, 289)
    )
    dog = ObjectTrack(
        Entity("/m/0bt9lr", "dog"), 0.95, Segment(frames[0].time, frames[-1].time), frames
    )
    rendered = render_object(DOG, dog, RenderOptions())
    gif = Image.open(io.BytesIO(rendered.animation))
    assert gif.n_frames == 12 and gif.size == (480, 270)
    assert rendered.frame_times[0] == pytest.approx(200 * 1001 / 30000)
    assert rendered.frame_times[-1] == pytest.approx(288 * 1001 / 30000)
    assert Image.open(io.BytesIO(rendered.cell_jpeg)).size == (480, 270)
