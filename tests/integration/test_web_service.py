"""The web app over HTTP with real workers, real Redis, and the catalog on SQLite and PostgreSQL.

Each catalog gets its own stack: one ``celery worker`` (prefork, 2 processes) and one
``vtrack web`` process, both with the same settings, as an operator would run them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support.videos import write_test_video
from tests.support.waiting import wait_for
from tests.support.web import (
    HEIGHT,
    WIDTH,
    Stack,
    flush_redis,
    make_clip,
    running_stack,
    submit,
    wait_finished,
)
from workers.catalog import Catalog

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest, redis_server: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(request.param, tmp_path_factory.mktemp(f"web-{request.param}")) as built:
        yield built


def test_jobs_submitted_over_http_complete_and_search_answers_with_times(stack: Stack) -> None:
    park = make_clip(stack.incoming, {"dog": (0.93, range(5, 31)), "person": (0.88, range(0, 40))})
    street = make_clip(stack.incoming, {"person": (0.9, range(12, 40))})
    with stack.client() as client:
        park_job = submit(client, park, min_frames=5)
        park_status = wait_finished(client, park_job)
        street_job = submit(client, street)
        street_status = wait_finished(client, street_job)

        for status in (park_status, street_status):
            assert status["status"] == "completed", status
            assert status["source"] == "web"
            assert status["manifest"]["job_id"] == status["job_id"]
        assert sorted(o["entity"] for o in park_status["manifest"]["objects"]) == ["dog", "person"]

        dogs = client.get("/api/videos", params={"entity": "dog"}).json()
        assert [(v["video_uri"], v["job_id"]) for v in dogs] == [(str(park), park_job)]
        (dog,) = dogs[0]["objects"]
        assert dog["first_time"] == pytest.approx(0.5) and dog["last_time"] == pytest.approx(3.0)
        assert dog["confidence"] == pytest.approx(0.93)
        assert dog["animation_uri"].endswith(".gif")
        assert dogs[0]["summary_uri"] == park_status["manifest"]["summary_uri"]

        people = client.get("/api/videos", params={"entity": "Person"}).json()
        assert [v["video_uri"] for v in people] == [str(street), str(park)]  # newest first
        assert people[0]["objects"][0]["first_time"] == pytest.approx(1.2)
        strict = client.get("/api/videos", params={"entity": "person", "min_confidence": 0.89})
        assert [v["video_uri"] for v in strict.json()] == [str(street)]
        assert client.get("/api/videos", params={"entity": "giraffe"}).json() == []

        listed = client.get("/api/jobs", params={"limit": 100}).json()
        ids = [job["job_id"] for job in listed["jobs"]]
        assert ids.index(street_job) < ids.index(park_job)
        done = client.get("/api/jobs", params={"status": "completed", "limit": 100}).json()
        assert {park_job, street_job} <= {job["job_id"] for job in done["jobs"]}
        failed = client.get("/api/jobs", params={"status": "failed", "limit": 500}).json()
        assert {job["status"] for job in failed["jobs"]} <= {"failed"}
        assert not {park_job, street_job} & {job["job_id"] for job in failed["jobs"]}

        # One record, three readers: the API, `vtrack status --json` and `vtrack jobs`.
        printed = stack.vtrack("status", street_job, "--json")
        assert printed.returncode == 0, printed.stderr
        api_view = client.get(f"/api/jobs/{street_job}").json()
        api_view.pop("manifest")
        assert json.loads(printed.stdout) == api_view
        jobs = stack.vtrack("jobs", "--json", "--limit", "100")
        assert street_job in [json.loads(line)["job_id"] for line in jobs.stdout.splitlines()]

        # Pages and the outputs they show.
        page = client.get(f"/jobs/{park_job}")
        assert page.status_code == 200 and "dog" in page.text
        summary = client.get(page.text.split('id="summary" src="', 1)[1].split('"', 1)[0])
        assert summary.status_code == 200 and summary.headers["content-type"] == "image/jpeg"
        search = client.get("/search", params={"entity": "dog"})
        assert park.name in search.text and street.name not in search.text


def test_catalog_survives_a_redis_flush_and_an_app_restart_and_is_rebuilt(stack: Stack) -> None:
    clip = make_clip(stack.incoming, {"kayak": (0.8, range(0, 30))})
    with stack.client() as client:
        job_id = submit(client, clip)
        assert wait_finished(client, job_id)["status"] == "completed"
    flush_redis()  # every job record and result is gone
    stack.web.restart()
    with stack.client() as client:
        found = client.get("/api/videos", params={"entity": "kayak"}).json()
        assert [v["job_id"] for v in found] == [job_id]
        status = client.get(f"/api/jobs/{job_id}").json()
        assert status["status"] == "completed"
        assert status["manifest"]["objects"][0]["entity"] == "kayak"
        listed = client.get("/api/jobs", params={"limit": 500}).json()
        assert job_id in [job["job_id"] for job in listed["jobs"]]
        assert client.get(f"/jobs/{job_id}").status_code == 200

    # The catalog itself is lost: the manifests under the output root rebuild it.
    stack.web.stop()
    _lose_catalog(stack.catalog_url)
    rebuilt = stack.vtrack("catalog", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "catalog rebuilt" in rebuilt.stderr
    stack.web.start()
    with stack.client() as client:
        found = client.get("/api/videos", params={"entity": "kayak"}).json()
        assert [v["job_id"] for v in found] == [job_id]
    printed = stack.vtrack("status", job_id, "--json")
    assert printed.returncode == 0 and json.loads(printed.stdout)["status"] == "completed"


def _lose_catalog(url: str) -> None:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    from sqlalchemy import create_engine

    from workers.catalog.schema import metadata

    engine = create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()


def test_a_job_page_without_summary_says_whether_nothing_was_found_or_nothing_passed(
    stack: Stack,
) -> None:
    if stack.kind != "sqlite":
        pytest.skip("the page does not depend on the database: run on the SQLite stack only")
    faint = make_clip(stack.incoming, {"owl": (0.4, range(0, 30))})
    empty = make_clip(stack.incoming, {})
    with stack.client() as client:
        faint_job = submit(client, faint, min_confidence=0.9)
        empty_job = submit(client, empty)
        for job_id in (faint_job, empty_job):
            assert wait_finished(client, job_id)["status"] == "completed"
        faint_page = client.get(f"/jobs/{faint_job}").text
        empty_page = client.get(f"/jobs/{empty_job}").text
    assert (
        "None of the 1 object(s) found passed the thresholds (confidence 0.90, 10 frames): "
        "no summary."
    ) in faint_page
    assert "The annotations hold no objects: no summary." in empty_page
    assert "passed the thresholds" not in empty_page


def test_a_catalog_that_cannot_be_written_does_not_fail_the_job(stack: Stack) -> None:
    if stack.kind != "sqlite":
        pytest.skip("the retry does not depend on the database: run on the SQLite stack only")
    blocker = stack.root / f"blocked-{uuid.uuid4().hex[:6]}"
    blocker.write_text("a file where the catalog's folder should be")
    broken_url = f"sqlite:///{blocker / 'catalog.sqlite3'}"
    stack.worker.stop()
    broken = stack.start_worker({**stack.env, "VTRACK_CATALOG_URL": broken_url})
    try:
        clip = make_clip(stack.incoming, {"owl": (0.8, range(0, 30))})
        with stack.client() as client:
            job_id = submit(client, clip)
            status = wait_finished(client, job_id)
        assert status["status"] == "completed", status  # the job does not fail
        assert (stack.output / f"{clip.name}.manifest.json").is_file()
        assert "catalog not written" in broken.log()
        blocker.unlink()  # the database comes back: the retry lands
        catalog = Catalog(broken_url)
        try:
            found = wait_for(lambda: catalog.search("owl"), 90, interval=1, what="retried write")
        finally:
            catalog.dispose()
        assert [m.job_id for m in found] == [job_id]
    finally:
        broken.stop()
        stack.worker = stack.start_worker()


def test_cancel_stops_a_running_job(stack: Stack) -> None:
    if stack.kind != "sqlite":
        pytest.skip("cancel does not touch the catalog: run on the SQLite stack only")

    # A longer video tracked by the local backend: many segments, several seconds each.
    video = write_test_video(
        stack.incoming / f"long-{uuid.uuid4().hex[:6]}.mp4",
        frames=600,
        fps=10,
        width=WIDTH,
        height=HEIGHT,
    )
    with stack.client() as client:
        response = client.post("/api/jobs", json={"video_uri": str(video)})
        job_id = response.json()["job_id"]
        wait_for(
            lambda: "tracking" in client.get(f"/api/jobs/{job_id}").json()["stage"],
            90,
            what="tracking started",
        )
        log_before = len(stack.worker.log())
        cancelled = client.delete(f"/api/jobs/{job_id}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"

        def job_tasks() -> list[str]:
            # Asked from another process: a broadcast from this one would leave connections
            # that later forked test processes inherit.
            asked = subprocess.run(
                [sys.executable, "-m", "celery", "-A", "tasks", "inspect", "active", "--json"],
                cwd=REPO_ROOT,
                env=stack.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            try:
                replies = json.loads(asked.stdout.strip().splitlines()[-1])
            except (IndexError, ValueError):
                replies = {}
            return [
                task["id"]
                for tasks in replies.values()
                for task in tasks
                if job_id in json.dumps([task.get("args"), task.get("kwargs")], default=str)
            ]

        quiet: list[bool] = []

        def stayed_quiet() -> bool:  # no task of the job running, three checks in a row
            quiet.append(not job_tasks())
            return quiet[-3:] == [True, True, True]

        wait_for(stayed_quiet, 60, interval=1.0, what="no task of the job running")
        # The segments still queued never track anything: at most the ones already
        # running when the cancel came (the worker's concurrency) could have finished.
        after_cancel = stack.worker.log()[log_before:]
        finished_segments = [
            line
            for line in after_cancel.splitlines()
            if "vtrack.track_segment[" in line and " succeeded in " in line
        ]
        assert len(finished_segments) <= 2, finished_segments
        stopped = ("Terminating ", "Discarding revoked task", "] ignored")
        assert any(sign in after_cancel for sign in stopped), "the cancel stopped no task"
        after = client.get(f"/api/jobs/{job_id}").json()
        assert after["status"] == "cancelled" and after["manifest"] is None
        assert not list(stack.output.glob(f"{video.name}.*")), "a cancelled job publishes nothing"
        again = client.delete(f"/api/jobs/{job_id}")
        assert again.status_code == 409
        # The video is free again: a new submission starts a new job.
        second = client.post("/api/jobs", json={"video_uri": str(video)}).json()["job_id"]
        assert second != job_id
    ended = stack.vtrack("cancel", second)
    assert ended.returncode == 0, ended.stderr
    refused = stack.vtrack("cancel", second)
    assert refused.returncode == 2 and "already ended" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
