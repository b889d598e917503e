"""Two videos with one file name in two folders, through the real service (worker + web app).

Outputs were once named by the file name alone: the second job overwrote the first one's
summary, manifest and catalog row. Each video now has its own place below the output root.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.web import Stack, make_clip, running_stack, submit, wait_finished
from workers.catalog import Catalog

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(redis_server: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack("sqlite", tmp_path_factory.mktemp("same-names")) as built:
        yield built


def test_two_same_named_videos_keep_their_own_results_page_catalog_and_search(
    stack: Stack,
) -> None:
    dog = make_clip(stack.incoming / "a", {"dog": (0.93, range(0, 40))}, name="clip.mp4")
    bedroom = make_clip(stack.incoming / "b", {"bed": (0.9, range(0, 40))}, name="clip.mp4")
    with stack.client() as client:
        job_a = submit(client, dog)
        status_a = wait_finished(client, job_a)
        job_b = submit(client, bedroom)
        status_b = wait_finished(client, job_b)
        assert status_a["status"] == status_b["status"] == "completed", (status_a, status_b)

        # Each video's outputs sit in its own folder below the output root.
        manifest_a = Path(status_a["manifest"]["manifest_uri"])
        manifest_b = Path(status_b["manifest"]["manifest_uri"])
        assert manifest_a == stack.output / "a" / "clip.mp4.manifest.json"
        assert manifest_b == stack.output / "b" / "clip.mp4.manifest.json"
        assert (stack.output / "a" / "clip.mp4.json").is_file()
        on_disk = json.loads(manifest_a.read_text())
        assert on_disk["job_id"] == job_a and on_disk["video_uri"] == str(dog)

        # Job A, asked after B finished, still shows A's objects and A's summary.
        again = client.get(f"/api/jobs/{job_a}").json()
        assert [o["entity"] for o in again["manifest"]["objects"]] == ["dog"]
        summary_a = again["manifest"]["summary_uri"]
        assert summary_a == str(stack.output / "a" / "clip.mp4.summary_pct70_fr10.jpeg")
        page = client.get(f"/jobs/{job_a}")
        assert page.status_code == 200
        (src,) = re.findall(r'id="summary" src="([^"]+)"', page.text)
        assert src.endswith("/a/clip.mp4.summary_pct70_fr10.jpeg"), src
        served = client.get(src)
        assert served.status_code == 200 and served.content == Path(summary_a).read_bytes()

        # The catalog holds both jobs; a search for "dog" finds A, one for "bed" finds B.
        dogs = client.get("/api/videos", params={"entity": "dog"}).json()
        assert [(v["video_uri"], v["job_id"]) for v in dogs] == [(str(dog), job_a)]
        beds = client.get("/api/videos", params={"entity": "bed"}).json()
        assert [(v["video_uri"], v["job_id"]) for v in beds] == [(str(bedroom), job_b)]

    # An output root written by an earlier version (flat names) is read by the rebuild,
    # along with the new layout.
    legacy = json.loads(manifest_b.read_text())
    legacy.update(
        job_id="legacy-job",
        video_uri=str(stack.incoming / "old.mp4"),
        manifest_uri=str(stack.output / "old.mp4.manifest.json"),
    )
    (stack.output / "old.mp4.manifest.json").write_text(json.dumps(legacy))
    rebuilt = stack.vtrack("catalog", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    catalog = Catalog(stack.catalog_url)
    try:
        assert {job.job_id for job in catalog.jobs(limit=500)} >= {job_a, job_b, "legacy-job"}
        assert [m.job_id for m in catalog.search("dog")] == [job_a]
    finally:
        catalog.dispose()
