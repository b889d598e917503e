"""Inputs that can never work are refused when submitted (issue 17): ``vtrack submit``,
``POST /api/jobs`` (and the jobs page's form) and ``tasks.api.submit`` answer with one line
(exit 2, HTTP 422, an ``InputError``) and make no job. Real Redis; no worker is needed,
since nothing may be queued."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from config.settings import Settings
from tasks import runtime
from tasks.api import submit
from tasks.specs import make_spec, refuse_unusable_inputs
from tests.conftest import BROKER_DB, REDIS_HOST, REDIS_PORT, REPO_ROOT
from tests.support.cli import vtrack
from tests.support.videos import write_test_video
from workers.errors import InputError
from workers.storage import open_storage

pytestmark = pytest.mark.integration

README_VIDEO = "../shared/data/videos/sam2_01_dog.mp4"  # the README's own example


def queued_work() -> tuple[list[str], int]:
    """Every job record, and every message waiting on the broker's queues."""
    broker = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BROKER_DB)
    messages = sum(int(broker.llen(queue)) for queue in ("annotate", "render", "celery"))
    return list(runtime.current().jobs.ids()), messages


@pytest.fixture
def cases(session_dirs: dict[str, Path], tmp_path: Path) -> dict[str, tuple[str, str]]:
    """name -> (video URI, what its one line must say)."""
    outside = write_test_video(tmp_path / "elsewhere.mp4", frames=10)
    return {
        "missing file": (str(session_dirs["input"] / "never-there.mp4"), "no such file"),
        "folder": (str(session_dirs["input"]), "is a folder, not a file"),
        "outside the input roots": (str(outside), "is outside VTRACK_INPUT_ROOTS ("),
        "unsupported scheme": ("https://example.com/clip.mp4", "unsupported URI scheme"),
    }


@pytest.fixture
def nothing_queued(redis_server: None) -> Iterator[None]:
    before = queued_work()
    yield
    assert queued_work() == before, "a refused input made a job"


def test_vtrack_submit_refuses_at_once_with_one_line(
    nothing_queued: None, cases: dict[str, tuple[str, str]]
) -> None:
    for name, (uri, expected) in cases.items():
        result = vtrack("submit", uri)
        assert result.returncode == 2, (name, result.stderr)
        assert result.stdout == "", name
        [line] = result.stderr.splitlines()
        assert line.startswith("error: ") and expected in line, (name, line)


def test_an_annotation_file_that_cannot_work_is_refused_too(
    nothing_queued: None, session_dirs: dict[str, Path], tmp_path: Path
) -> None:
    video = write_test_video(session_dirs["input"] / f"ok-{uuid.uuid4().hex[:6]}.mp4", frames=10)
    notes = tmp_path / "notes.json"
    notes.write_text("{}")
    result = vtrack("submit", str(video), "--annotations", str(notes))
    assert result.returncode == 2
    assert f"error: {notes} is outside VTRACK_INPUT_ROOTS (" in result.stderr
    missing = session_dirs["input"] / "gone.json"
    result = vtrack("submit", str(video), "--annotations", str(missing))
    assert result.returncode == 2 and f"{missing}: no such file" in result.stderr


def test_the_readme_example_names_the_setting_its_value_and_the_fix(
    nothing_queued: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the default VTRACK_INPUT_ROOTS=., the README's example video lies outside it."""
    if not (REPO_ROOT / README_VIDEO).is_file():
        pytest.skip(f"{README_VIDEO} not found beside the repository")
    env = {key: value for key, value in os.environ.items() if key != "VTRACK_INPUT_ROOTS"}
    result = vtrack("submit", README_VIDEO, env=env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    real_folder = os.path.realpath(REPO_ROOT / README_VIDEO).rsplit("/", 1)[0]
    assert f"is outside VTRACK_INPUT_ROOTS (. = {REPO_ROOT})" in line, line
    assert line.endswith(f"e.g. VTRACK_INPUT_ROOTS=.,{real_folder}"), line

    # The fix the README gives is accepted (checked here without making a job).
    monkeypatch.chdir(REPO_ROOT)
    settings = Settings(input_roots=".,../shared/data")
    spec = make_spec(README_VIDEO, settings=settings)
    refuse_unusable_inputs(spec, settings, open_storage([".", "../shared/data"]))


def test_the_python_api_raises_an_input_error(
    nothing_queued: None, cases: dict[str, tuple[str, str]]
) -> None:
    for uri, expected in cases.values():
        with pytest.raises(InputError, match=re.escape(expected)):
            submit(uri)


def test_post_api_jobs_and_the_form_answer_422(
    nothing_queued: None, cases: dict[str, tuple[str, str]]
) -> None:
    from entrypoints.web.app import create_app

    with TestClient(create_app(), base_url="http://127.0.0.1") as client:
        for name, (uri, expected) in cases.items():
            response = client.post("/api/jobs", json={"video_uri": uri})
            assert response.status_code == 422, (name, response.text)
            detail = response.json()["detail"]
            assert expected in detail and "\n" not in detail, (name, detail)

            page = client.post("/jobs", data={"video_uri": uri})
            assert page.status_code == 422, name
            assert expected.split(" (")[0] in page.text, name


def test_a_video_inside_the_roots_is_not_refused(session_dirs: dict[str, Path]) -> None:
    """The check refuses only what can never work: a text file named .mp4 passes (only a
    worker reading it can tell), so does a gs:// object (not looked
    up from the submitting machine)."""
    notes = session_dirs["input"] / f"notes-{uuid.uuid4().hex[:6]}.mp4"
    notes.write_text("not a video")
    rt = runtime.current()
    for uri in (str(notes), "gs://bucket/never/looked/up.mp4"):
        refuse_unusable_inputs(make_spec(uri, settings=rt.settings), rt.settings, rt.storage)
