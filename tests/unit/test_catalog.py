"""The catalog on SQLite and on the PostgreSQL of this machine: record, search, rebuild."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tasks.catalog import indexed_record
from tasks.jobstore import JobRecord
from tests.support.web import postgres_answers, postgres_database
from workers.catalog import Catalog, default_catalog_url
from workers.catalog.schema import SCHEMA_VERSION, CatalogVersionError
from workers.job import Manifest, ObjectResult
from workers.steps import write_manifest
from workers.storage import open_storage


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog' / 'catalog.sqlite3'}"
        return
    if not postgres_answers():
        pytest.skip("no PostgreSQL answers at VTRACK_TEST_PG_URL (127.0.0.1:5432 by default)")
    with postgres_database() as url:
        yield url


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    store = Catalog(catalog_url)
    yield store
    store.dispose()


def obj(index: int, entity: str, confidence: float, first: float, last: float, **kw: object):
    return ObjectResult(
        index=index,
        entity=entity,
        confidence=confidence,
        frame_count=kw.get("frames", 40),  # type: ignore[arg-type]
        first_time=first,
        last_time=last,
        status=kw.get("status", "ok"),  # type: ignore[arg-type]
        cell_uri=f"/out/{index}.jpeg",
        animation_uri=None if kw.get("status") == "failed" else f"/out/{index}.gif",
        error=kw.get("error"),  # type: ignore[arg-type]
    )


def manifest(job_id: str, video: str, objects: list[ObjectResult], root: str = "/out") -> Manifest:
    name = video.rsplit("/", 1)[-1]
    return Manifest(
        job_id=job_id,
        video_uri=video,
        backend="gcp",
        status="completed_with_errors"
        if any(o.status == "failed" for o in objects)
        else "completed",
        thresholds={"min_confidence": 0.5, "min_frames": 10},
        video={"duration": 61.3, "fps": 29.97, "width": 1280, "height": 720, "frame_count": 1837},
        objects_total=len(objects) + 17,
        objects=tuple(objects),
        summary_uri=f"{root}/{name}.summary_pct50_fr10.jpeg",
        annotation_uri=f"{root}/{name}.json",
        manifest_uri=f"{root}/{name}.manifest.json",
        timings={"total_seconds": 12.5},
        errors=tuple(f"object {o.index} ({o.entity}): {o.error}" for o in objects if o.error),
    )


def street_objects(count: int, seed: int = 7) -> list[ObjectResult]:
    """Hundreds of objects as a busy street gives them: many labels, irregular times."""
    rng = random.Random(seed)
    labels = ["person", "Person", "car", "traffic light", "bicycle", "bus", "Truck "]
    found = []
    for index in range(1, count + 1):
        first = round(rng.uniform(0, 55), 3)
        found.append(
            obj(
                index,
                rng.choice(labels),
                rng.uniform(0.5, 0.99),
                first,
                first + rng.uniform(0.4, 6),
            )
        )
    return found


def test_search_answers_the_videos_with_that_label_and_their_times(catalog: Catalog) -> None:
    street = manifest("job-street", "gs://cams/street.mp4", street_objects(300))
    park = manifest(
        "job-park",
        "/videos/park.mp4",
        [
            obj(1, "Dog", 0.91, 1.2, 8.4),
            obj(2, "person", 0.88, 0.0, 9.6),
            obj(3, "dog", 0.55, 20.033, 24.5),
        ],
    )
    beach = manifest("job-beach", "/videos/beach.mp4", [obj(1, "dog", 0.71, 3.0, 4.0)])
    catalog.record(street, completed_at=1000.0)
    catalog.record(park, completed_at=2000.0)
    catalog.record(beach, completed_at=3000.0)

    found = catalog.search("DOG")
    assert [match.video_uri for match in found] == ["/videos/beach.mp4", "/videos/park.mp4"]
    park_match = found[1]
    assert park_match.job_id == "job-park"
    assert park_match.summary_uri == park.summary_uri
    assert [(o.entity, o.first_time, o.last_time) for o in park_match.objects] == [
        ("dog", 1.2, 8.4),
        ("dog", 20.033, 24.5),
    ]
    assert [m.video_uri for m in catalog.search("dog", min_confidence=0.8)] == ["/videos/park.mp4"]
    assert catalog.search("cat") == []

    people = catalog.search("person")
    assert [m.video_uri for m in people] == ["/videos/park.mp4", "gs://cams/street.mp4"]
    expected = sum(1 for o in street.objects if o.entity.strip().lower() == "person")
    assert len(people[1].objects) == expected
    assert catalog.search("truck")[0].objects[0].entity == "truck"
    assert catalog.search("traffic light")


def test_rows_and_search_answers_keep_their_keys(catalog: Catalog) -> None:
    """The shapes the hand-written ``to_dict`` gave: ``GET /api/videos``' answer, the rows,
    and the record a catalogued job is answered with once Redis forgot it."""
    failed = obj(2, "Dog ", 0.8, 1.0, 2.0, status="failed", error="decoder gave up")
    park = manifest("job-park", "/v/park.mp4", [obj(1, "dog", 0.9, 0.5, 3.0), failed])
    catalog.record(park, completed_at=1000.0)
    (match,) = catalog.search("dog")
    dog = {"entity": "dog", "confidence": 0.9, "first_time": 0.5, "last_time": 3.0}
    assert match.model_dump(mode="json") == {
        "video_uri": "/v/park.mp4", "job_id": "job-park", "summary_uri": park.summary_uri,
        "completed_at": 1000.0,
        "objects": [
            {**dog, "animation_uri": "/out/1.gif"},
            {"entity": "dog", "confidence": 0.8, "first_time": 1.0, "last_time": 2.0,
             "animation_uri": None},
        ],
    }  # fmt: skip
    assert list(match.model_dump()) == [
        "video_uri",
        "job_id",
        "summary_uri",
        "completed_at",
        "objects",
    ]
    assert [o.model_dump() for o in catalog.objects("job-park")][1] == {
        "index": 2, "entity": "dog", "confidence": 0.8, "frame_count": 40, "first_time": 1.0,
        "last_time": 2.0, "status": "failed", "animation_uri": None, "cell_uri": "/out/2.jpeg",
    }  # fmt: skip
    job = catalog.job("job-park")
    assert job is not None and job.model_dump() == {
        "job_id": "job-park", "video_uri": "/v/park.mp4", "backend": "gcp",
        "status": "completed_with_errors", "manifest_uri": park.manifest_uri,
        "summary_uri": park.summary_uri, "annotation_uri": park.annotation_uri,
        "min_confidence": 0.5, "min_frames": 10, "objects_total": 19, "objects_kept": 2,
        "duration": 61.3, "total_seconds": 12.5, "error": "object 2 (Dog ): decoder gave up",
        "completed_at": 1000.0,
    }  # fmt: skip
    assert indexed_record(job) == JobRecord(
        job_id="job-park", video_uri="/v/park.mp4", backend="gcp",
        status="completed_with_errors", stage="done", percent=100.0,
        error="object 2 (Dog ): decoder gave up", objects_total=2, objects_done=2,
        manifest_uri=park.manifest_uri, summary_uri=park.summary_uri,
        created_at=987.5, updated_at=1000.0,
    )  # fmt: skip


def test_labels_suggest_what_the_catalog_holds(catalog: Catalog) -> None:
    catalog.record(manifest("a", "/v/a.mp4", [obj(1, "dog", 0.9, 0, 1), obj(2, "door", 0.9, 0, 1)]))
    catalog.record(manifest("b", "/v/b.mp4", [obj(1, "dog", 0.9, 0, 1), obj(2, "dog", 0.8, 2, 3)]))
    catalog.record(manifest("c", "/v/c.mp4", [obj(1, "cat", 0.9, 0, 1)]))
    assert catalog.labels() == [("dog", 2), ("cat", 1), ("door", 1)]
    assert catalog.labels("Do") == [("dog", 2), ("door", 1)]
    assert catalog.labels("100%_") == []  # LIKE wildcards are matched literally


def test_recording_again_replaces_the_job_and_the_video_s_older_job(catalog: Catalog) -> None:
    first = manifest("job-1", "/v/park.mp4", [obj(1, "dog", 0.9, 0, 1)])
    catalog.record(first, completed_at=10.0)
    catalog.record(first, completed_at=11.0)  # the retry of a write that did land
    assert len(catalog.search("dog")) == 1
    # The same video processed again: its manifest was replaced, so is its row.
    again = manifest("job-2", "/v/park.mp4", [obj(1, "cat", 0.9, 0, 1)])
    catalog.record(again, completed_at=20.0)
    assert catalog.search("dog") == []
    assert [m.job_id for m in catalog.search("cat")] == ["job-2"]
    assert catalog.job("job-1") is None
    job = catalog.job("job-2")
    assert job is not None and job.status == "completed" and job.objects_kept == 1


def test_failed_objects_are_kept_with_no_animation(catalog: Catalog) -> None:
    failed = obj(2, "dog", 0.8, 1.0, 2.0, status="failed", error="decoder gave up")
    catalog.record(manifest("job-x", "/v/x.mp4", [obj(1, "dog", 0.9, 0, 1), failed]))
    (match,) = catalog.search("dog")
    assert [o.animation_uri for o in match.objects] == ["/out/1.gif", None]
    job = catalog.job("job-x")
    assert job is not None and job.status == "completed_with_errors"
    assert job.error == "object 2 (dog): decoder gave up"


def test_rebuild_reads_every_manifest_under_the_output_root(
    catalog: Catalog, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "cams" / "north").mkdir(parents=True)
    storage = open_storage([str(out)])
    kept = manifest("job-a", "/v/a.mp4", [obj(1, "dog", 0.9, 1.5, 3.0)], root=str(out))
    nested = manifest(
        "job-b",
        "gs://cams/north/b.mp4",
        [obj(1, "dog", 0.6, 0.0, 2.0)],
        root=str(out / "cams/north"),
    )
    write_manifest(kept, storage)
    write_manifest(nested, storage)
    (out / "broken.mp4.manifest.json").write_text('{"job_id": "half a manif')
    (out / "a.mp4.json").write_text(json.dumps({"annotationResults": []}))  # not a manifest
    gone = manifest("job-gone", "/v/gone.mp4", [obj(1, "dog", 0.9, 0, 1)], root=str(out))
    catalog.record(gone)  # its manifest was deleted since

    report = catalog.rebuild(storage, str(out))
    assert report.recorded == 2
    assert report.removed == 1
    assert report.unreadable == (str(out / "broken.mp4.manifest.json"),)
    assert {m.job_id for m in catalog.search("dog")} == {"job-a", "job-b"}
    (match,) = [m for m in catalog.search("dog") if m.job_id == "job-a"]
    assert (match.objects[0].first_time, match.objects[0].last_time) == (1.5, 3.0)
    # Twice is the same as once.
    assert catalog.rebuild(storage, str(out)).recorded == 2
    assert len(catalog.search("dog")) == 2


def test_schema_is_versioned_and_a_newer_one_is_refused(catalog_url: str) -> None:
    Catalog(catalog_url).labels()  # creates the schema
    engine = create_engine(catalog_url)
    with engine.begin() as conn:
        version = conn.execute(
            text("SELECT value FROM catalog_meta WHERE key = 'schema_version'")
        ).scalar_one()
        assert int(version) == SCHEMA_VERSION
        conn.execute(text("UPDATE catalog_meta SET value = '99' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(CatalogVersionError, match="schema version 99"):
        Catalog(catalog_url).labels()


def test_default_catalog_lives_beside_folder_outputs_else_in_the_working_directory(
    tmp_path: Path,
) -> None:
    assert default_catalog_url(str(tmp_path / "out")) == (
        f"sqlite:///{tmp_path / 'out' / '.vtrack-catalog.sqlite3'}"
    )
    assert default_catalog_url("gs://bucket/results", cwd=tmp_path) == (
        f"sqlite:///{tmp_path / '.vtrack-catalog.sqlite3'}"
    )


def test_jobs_are_counted_leaving_out_those_counted_elsewhere(catalog: Catalog) -> None:
    for number in range(1203):  # more ids to leave out than one query binds
        status = "completed_with_errors" if number % 3 == 0 else "completed"
        done = manifest(f"job-{number:04d}", f"gs://b/v{number}.mp4", [obj(1, "dog", 0.9, 0, 4)])
        catalog.record(done.model_copy(update={"status": status}), completed_at=1000.0 + number)
    assert catalog.count_jobs() == 1203
    assert catalog.count_jobs(status="completed_with_errors") == 401
    redis_holds = [f"job-{number:04d}" for number in range(0, 1203, 2)] + ["job-not-in-catalog"]
    assert catalog.count_jobs(excluding=redis_holds) == 601
    assert catalog.count_jobs(status="completed_with_errors", excluding=redis_holds) == 200
