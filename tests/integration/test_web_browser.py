"""The pages in a real headless browser: Debian's chromium driven by Playwright.

Playwright's own browser download cannot work here, so the browser is Debian's
``/usr/bin/chromium`` (installed with apt-get when missing; the tests skip with the reason
when that fails). With ``VTRACK_SCREENSHOT_DIR`` set, each page is also saved there as a
PNG: that is how the screenshots in docs/ are made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_VIDEOS
from tests.support.videos import write_test_video
from tests.support.web import (
    HEIGHT,
    WIDTH,
    Stack,
    make_clip,
    running_stack,
    submit,
    wait_finished,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path(os.environ.get("VTRACK_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
VIEWPORT = {"width": 1200, "height": 860}
DOG_CLIP = SHARED_VIDEOS / "sam2_01_dog.mp4"


def ensure_chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing; skips with the reason."""
    if CHROMIUM.is_file():
        return CHROMIUM
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(f"{CHROMIUM} is missing and cannot be installed here (needs root apt-get)")
    result = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if result.returncode != 0 or not CHROMIUM.is_file():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"apt-get install chromium failed: {last}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = ensure_chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip package playwright missing")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(executable), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def stack(redis_server: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack("sqlite", tmp_path_factory.mktemp("web-browser")) as built:
        yield built


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    yield opened
    context.close()


def screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("VTRACK_SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / name))


def test_job_page_shows_the_summary_and_every_animation(stack: Stack, page: Any) -> None:
    clip = make_clip(
        stack.incoming,
        {
            "dog": (0.93, range(5, 31)),
            "person": (0.88, range(0, 40)),
            "bicycle": (0.75, range(20, 40)),
        },
    )
    with stack.client() as client:
        job_id = submit(client, clip)
        assert wait_finished(client, job_id)["status"] == "completed"
    page.goto(f"{stack.web.url}/jobs/{job_id}")
    summary = page.locator("#summary")
    summary.wait_for()
    page.wait_for_function("document.getElementById('summary').naturalWidth > 0")
    animations = page.locator("img.animation")
    assert animations.count() == 3
    for index in range(animations.count()):
        animation = animations.nth(index)
        animation.scroll_into_view_if_needed()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=animation.element_handle()
        )
    entities = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.entity)")
    assert sorted(entities) == ["bicycle", "dog", "person"]
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "web-job.png")

    # Filters: by label, then by confidence.
    page.select_option("#label-filter", "dog")
    assert page.locator(".card:visible").count() == 1
    page.select_option("#label-filter", "")
    page.locator("#confidence-filter").fill("0.8")
    assert page.locator(".card:visible").count() == 2
    assert page.inner_text("#shown-count") == "2 shown"

    # The player jumps to an object's first time.
    page.locator(".card[data-entity='dog'] button.seek").click()
    page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 0.5) < 0.2")


def test_search_page_lists_the_dog_clip(stack: Stack, page: Any) -> None:
    if not DOG_CLIP.is_file():
        pytest.skip(f"shared test video not found at {DOG_CLIP}")
    with stack.client() as client:
        job_id = submit(client, DOG_CLIP, annotations_uri=None)  # the local tracker
        status = wait_finished(client, job_id, timeout=600)
    assert status["status"] == "completed", status["error"]
    page.goto(f"{stack.web.url}/search")
    field = page.locator("#entity")
    field.fill("do")
    page.wait_for_function(
        "[...document.querySelectorAll('#label-suggestions option')].some(o => o.value === 'dog')"
    )
    field.fill("dog")
    field.press("Enter")
    page.wait_for_url("**/search?entity=dog*")
    match = page.locator(f".match[data-video='{DOG_CLIP}']")
    assert match.count() == 1
    times = match.locator(".times li").all_inner_texts()
    assert times and all(text.strip().startswith("dog") for text in times)
    assert "0:0" in times[0]  # the dog is in the clip from its first seconds
    match.locator("img.mini").first.scroll_into_view_if_needed()
    page.wait_for_function(
        "[...document.querySelectorAll('.match img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    screenshot(page, "web-search.png")
    match.locator("h3 a").click()
    page.wait_for_url(f"**/jobs/{job_id}")
    assert page.locator(".card[data-entity='dog']").count() >= 1


def test_jobs_page_updates_progress_while_a_job_runs(stack: Stack, page: Any) -> None:
    page.goto(stack.web.url + "/")
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads
    # Five minutes of video: about a hundred tracking segments, so that on a quiet machine
    # the job still runs well past the three progress changes and the cancel below.
    video = write_test_video(
        stack.incoming / "running.mp4", frames=3000, fps=10, width=WIDTH, height=HEIGHT
    )
    with stack.client() as client:
        job_id = submit(client, video, annotations_uri=None)  # the local tracker: segments
        row = page.locator(f"#job-{job_id}")
        row.wait_for(timeout=30_000)
        # The count above the table follows the job list as the page refreshes it.
        total = client.get("/api/jobs").json()["total"]
        page.wait_for_function(
            "n => document.getElementById('job-count').textContent === n + ' job(s)'", arg=total
        )
        seen: list[str] = []
        stage = row.locator(".stage")
        for _ in range(3):
            seen.append(stage.inner_text())
            page.wait_for_function(
                "([el, text]) => el.textContent !== text",
                arg=[stage.element_handle(), seen[-1]],
                timeout=120_000,
            )
        seen.append(stage.inner_text())
        screenshot(page, "web-jobs.png")
        assert len(set(seen)) == len(seen), seen
        assert any("tracking" in text or "rendering" in text for text in seen), seen
        assert page.evaluate("window.loadedOnce") is True
        cancelled = client.delete(f"/api/jobs/{job_id}")
        assert cancelled.status_code == 200, cancelled.text  # 409 once the job has ended
    page.wait_for_function(
        "el => el.textContent.trim() === 'cancelled'",
        arg=row.locator(".badge").element_handle(),
        timeout=120_000,  # the cancel asks the workers which tasks they hold first
    )
    assert page.evaluate("window.loadedOnce") is True


def test_docs_render_with_no_network(stack: Stack, page: Any, tmp_path: Path) -> None:
    """/docs with every request off the app refused, as on a machine with no internet:
    Swagger UI (served by the app itself) shows the API, and nothing else was asked for."""
    app_origin = stack.web.url.rstrip("/")
    refused: list[str] = []

    def only_the_app(route: Any) -> None:
        if route.request.url.startswith(app_origin + "/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", only_the_app)
    page.goto(f"{app_origin}/docs")
    page.locator(".swagger-ui .info .title").wait_for()
    assert "vtrack" in page.inner_text(".swagger-ui .info .title")
    page.locator(".opblock-summary-path").first.wait_for()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any(path.replace("\u200b", "") == "/api/jobs" for path in paths), paths
    assert refused == []
    page.screenshot(path=str(tmp_path / "docs.png"))
    screenshot(page, "web-docs.png")


def _record(**fields: Any) -> str:
    """A job record in the stack's result backend (the same Redis databases)."""
    import time
    import uuid

    from tasks import job_ids, runtime
    from tasks.jobstore import JobRecord

    defaults: dict[str, Any] = {
        "video_uri": f"/srv/cameras/north/clip-{uuid.uuid4().hex[:6]}.mp4",
        "backend": "local",
        "source": "cli",
        "created_at": time.time(),
        "updated_at": time.time(),
    }
    record = JobRecord(job_id=job_ids.new_job_id(), **{**defaults, **fields})
    runtime.current().jobs.create(record)
    return record.job_id


def test_a_long_error_stays_inside_the_jobs_table(stack: Stack, page: Any) -> None:
    # Paths as errors name them: one unbroken word far wider than the column.
    folder = "/".join(f"camera_{n:02}_north_entrance_recordings" for n in range(8))
    error = f"gs://site_archive/{folder}/2026_12_06_08_00_00.mp4: no such object"
    job_id = _record(status="failed", stage="failed", error=error)
    page.goto(f"{stack.web.url}/?status=failed")
    cell = page.locator(f"#job-{job_id} td.error")
    cell.wait_for()
    assert cell.inner_text().replace("\n", "") == error
    table = page.locator("table.jobs").bounding_box()
    main = page.locator("main").bounding_box()
    box = cell.bounding_box()
    assert table and main and box
    assert box["x"] + box["width"] <= table["x"] + table["width"] + 1
    assert table["x"] + table["width"] <= main["x"] + main["width"] + 1, (table, main)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_the_running_filter_lists_the_jobs_not_ended(stack: Stack, page: Any) -> None:
    running = _record(status="annotating", stage="tracking 1 of 4 segments")
    queued = _record(status="queued", stage="queued")
    done = _record(status="completed", stage="done", percent=100.0)
    page.goto(stack.web.url + "/")
    page.locator(".filters a", has_text="running").click()
    page.wait_for_url("**/?status=running")
    assert page.locator(".filters a.on").inner_text() == "running"
    page.locator(f"#job-{running}").wait_for()
    page.wait_for_timeout(2000)  # a refresh of the list (every 1.5 s) keeps the same rows
    rows = page.locator("tr[data-job]").evaluate_all("rows => rows.map(r => r.dataset.job)")
    assert running in rows and queued in rows and done not in rows
    statuses = set(page.locator("tr[data-job] .badge").all_inner_texts())
    assert statuses <= {"queued", "annotating", "rendering", "assembling"}, statuses
