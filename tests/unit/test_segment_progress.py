"""A job's tracking progress is the mean of its segments': it only rises."""

from __future__ import annotations

from tasks.jobstore import JobRecord, MemoryJobStore
from tasks.local_backend import SegmentProgress
from tasks.progress import TaskProgressJobStore


def test_segments_reporting_out_of_turn_never_make_the_percent_go_back() -> None:
    seen: list[float] = []
    store = MemoryJobStore(listener=lambda record: seen.append(record.percent))
    jobs = TaskProgressJobStore(store)  # what worker processes use
    jobs.create(JobRecord(job_id="j", status="annotating"))
    segments = [SegmentProgress(jobs, "j", number, 3, interval=0.0) for number in (1, 2, 3)]
    for fractions in ((0.5, 0.1, 0.0), (1.0, 0.2, 0.6), (1.0, 1.0, 1.0)):
        for report, fraction in zip(segments, fractions, strict=True):
            report(fraction)
    assert seen == sorted(seen)
    assert seen[-1] == 100.0
    record = store.get("j")
    assert record is not None and record.stage == "tracking 3 segments (100%)"
