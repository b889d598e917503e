"""A job cancelled while its segments wait for a busy render worker (issue 22): the cancel
revokes them by the job's stamp, so the worker drops each one on receipt, and the chord
that meets its revoked members ends. As the operator sees it: every task of the job in a
final state in the result backend and in the events Flower reads, no ERROR and no
traceback in either worker's log. Real Redis, real workers, real videos with the local
backend."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import states

from tasks.api import submit
from tasks.celery_app import app
from tests.conftest import WorkerProcess
from tests.support.cli import vtrack
from tests.support.task_events import FINAL as FINAL_EVENTS
from tests.support.task_events import EventRecorder
from tests.support.videos import write_test_video
from tests.support.waiting import stays, wait_for

pytestmark = pytest.mark.integration

SEGMENT_ENV = {"VTRACK_SEGMENT_SECONDS": "12", "VTRACK_SEGMENT_OVERLAP": "1"}


@pytest.fixture
def split_workers(
    redis_server: None, tmp_path: Path
) -> Iterator[tuple[WorkerProcess, WorkerProcess]]:
    """One worker for the annotate queue, one render worker with a single process, so a
    second job's segments wait behind the first job's."""
    name = uuid.uuid4().hex[:6]
    control = WorkerProcess(
        "annotate", 1, f"ctl-{name}", tmp_path / "control.log", extra_env=SEGMENT_ENV
    )
    heavy = WorkerProcess(
        "render", 1, f"heavy-{name}", tmp_path / "heavy.log", extra_env=SEGMENT_ENV
    )
    try:
        yield control.wait_ready(), heavy.wait_ready()
    finally:
        control.stop()
        heavy.stop()


def logs(*workers: WorkerProcess) -> str:
    return "".join(worker.log() for worker in workers)


def received(*workers: WorkerProcess) -> set[str]:
    """The ids of the tasks the workers took (Celery logs "Task NAME[ID] received")."""
    return set(re.findall(r"Task vtrack\.\w+\[([0-9a-f-]{36})\] received", logs(*workers)))


def long_video(folder: Path, seconds: int) -> Path:
    return write_test_video(
        folder / f"long-{uuid.uuid4().hex[:6]}.mp4",
        frames=seconds * 10,
        fps=10,
        width=160,
        height=96,
    )


def test_a_job_cancelled_while_its_segments_wait_ends_every_task(
    split_workers: tuple[WorkerProcess, WorkerProcess],
    session_dirs: dict[str, Path],
    tmp_path: Path,
) -> None:
    control, heavy = split_workers
    events = EventRecorder(tmp_path / "events.jsonl").wait_ready()
    try:
        # 20 segments: the render worker is busy with them long after the cancels.
        busy = submit(str(long_video(session_dirs["input"], 240)), backend="local")
        wait_for(lambda: "tracking" in busy.status().stage, 90, "the first job tracking a segment")
        waiting = submit(str(long_video(session_dirs["input"], 22)), backend="local")

        def sent(count: int) -> bool:  # annotate succeeds once it has sent the chord
            annotated = r"Task vtrack\.annotate\[[0-9a-f-]{36}\] succeeded"
            return len(re.findall(annotated, control.log())) >= count

        wait_for(lambda: sent(2), 60, "the second job's segments queued")
        assert waiting.status().stage.startswith("annotating"), waiting.status()

        for job in (waiting, busy):
            cancelled = vtrack("cancel", job.id)
            assert cancelled.returncode == 0, cancelled.stderr

        def every_task_ended() -> bool:
            shown = events.last_states()
            return (
                all(
                    app.AsyncResult(task).state in states.READY_STATES
                    and shown.get(task) in FINAL_EVENTS
                    for task in received(control, heavy)
                )
                and "revoked by header" in heavy.log()
            )

        try:
            wait_for(every_task_ended, 90, "every task of both jobs ended", interval=1.0)
        except TimeoutError:
            shown = events.last_states()
            left = {t: (app.AsyncResult(t).state, shown.get(t)) for t in received(control, heavy)}
            raise AssertionError(f"tasks not ended: {left}\n{heavy.log()[-3000:]}") from None
    finally:
        events.stop()

    def quiet() -> bool:
        text = logs(control, heavy)
        return "Traceback" not in text and " ERROR" not in text and "ERROR/" not in text

    stays(quiet, 2.0, "no traceback or ERROR line in the workers' logs")
    assert quiet(), logs(control, heavy)[-4000:]
    # The second job's segments never ran: the render worker dropped them by their stamp.
    dropped = re.findall(r"revoked by header: \{'vtrack_job': '([0-9a-f-]+)'\}", heavy.log())
    assert waiting.id in dropped, heavy.log()[-3000:]
    assert waiting.status().status == busy.status().status == "cancelled"
