"""What ``vtrack status`` and ``vtrack jobs`` answer, as a user sees it (issue 17): exit codes,
one-line errors, a closed pipe, a narrow terminal. Real Redis, the real command line."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
import uuid

import pytest

from tasks import job_ids
from tasks.jobstore import JobRecord
from tests.conftest import REPO_ROOT
from tests.support.cli import vtrack
from tests.support.private_redis import free_port


def recorded(**fields: object) -> JobRecord:
    from tasks import runtime

    defaults: dict[str, object] = {
        "video_uri": f"/srv/videos/cam-{uuid.uuid4().hex[:6]}/clip.mp4",
        "backend": "local",
        "source": "cli",
        "created_at": time.time(),
    }
    record = JobRecord(job_id=job_ids.new_job_id(), **{**defaults, **fields})  # type: ignore[arg-type]
    runtime.current().jobs.create(record)
    return record


@pytest.mark.parametrize(
    ("status", "code"),
    [("failed", 1), ("cancelled", 1), ("completed_with_errors", 3), ("completed", 0)],
)
def test_status_exits_with_the_readme_code_for_the_job(
    redis_server: None, status: str, code: int
) -> None:
    record = recorded(status=status, stage=status, error="boom" if status == "failed" else None)
    for args in ((), ("--json",)):
        shown = vtrack("status", record.job_id, *args)
        assert shown.returncode == code, (args, shown.stdout, shown.stderr)
        assert status in shown.stdout and shown.stderr == ""


def test_status_of_a_running_job_exits_0_and_piped_names_stand_apart(
    redis_server: None,
) -> None:
    record = recorded(status="rendering", stage="rendering 1 of 3 objects", percent=33.0)
    shown = vtrack("status", record.job_id)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^started by +cli$", shown.stdout, re.M), shown.stdout
    assert re.search(r"^job +\S+$", shown.stdout, re.M), shown.stdout


def test_jobs_with_the_result_backend_down_is_one_line_and_exit_2() -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    env = {**os.environ, "VTRACK_RESULT_BACKEND": down, "VTRACK_BROKER_URL": down}
    for args in (("jobs",), ("jobs", "--json")):
        listed = vtrack(*args, env=env)
        assert listed.returncode == 2, listed.stderr
        [line] = listed.stderr.splitlines()
        assert line.startswith(
            "error: the service cannot reach Redis right now: the result backend at "
        )
        assert "VTRACK_RESULT_BACKEND" in line and "Traceback" not in listed.stderr


def test_jobs_into_a_pipe_closed_early_ends_quietly(redis_server: None) -> None:
    """``vtrack jobs | head -1``: the reader goes away before the list is written."""
    recorded(status="queued")
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "jobs", "--limit", "5"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # as head does once it has its lines
    stderr = process.stderr.read().decode()
    code = process.wait(timeout=120)
    assert stderr == "", stderr
    assert code == 141  # what a shell reports for a tool ended by SIGPIPE


def _on_a_terminal(*args: str, columns: int) -> str:
    """``vtrack ARGS`` with its standard output on a terminal ``columns`` wide."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", *args],
        cwd=REPO_ROOT,
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command has ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=120)
    os.close(leader)
    assert process.returncode == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode())


def test_jobs_on_an_80_column_terminal_shows_every_field(redis_server: None) -> None:
    long_video = "/srv/videos/" + "/".join(f"camera-{n:02}-north-entrance" for n in range(3))
    record = recorded(
        status="rendering", stage="rendering 3 of 7 objects", percent=40.0, video_uri=long_video
    )
    shown = _on_a_terminal("jobs", "--limit", "1", columns=80)
    flat = shown.replace("\r\n", "\n")
    assert record.job_id in flat
    assert "rendering 3 of 7 objects (40%)" in flat
    assert long_video in flat.replace("\n", "")  # whole, wrapped only by the terminal
    assert "cli" in flat and time.strftime("%Y-%m-%d") in flat
    assert all(len(line) <= 80 for line in flat.splitlines() if long_video not in line)

    wide = _on_a_terminal("jobs", "--limit", "1", columns=200).replace("\r\n", "\n")
    header = next(line for line in wide.splitlines() if line.strip().startswith("job"))
    assert header.split() == ["job", "status", "stage", "source", "video", "started"]


def test_jobs_status_running_lists_every_job_not_ended(redis_server: None) -> None:
    running = [recorded(status=s, stage=s) for s in ("queued", "annotating", "rendering")]
    ended = [recorded(status=s, stage=s) for s in ("completed", "failed", "cancelled")]
    listed = vtrack("jobs", "--status", "running", "--json", "--limit", "500")
    assert listed.returncode == 0, listed.stderr
    shown = [json.loads(line) for line in listed.stdout.splitlines()]
    ids = [job["job_id"] for job in shown]
    assert {r.job_id for r in running} <= set(ids)
    assert not {r.job_id for r in ended} & set(ids)
    assert {job["status"] for job in shown} <= {"queued", "annotating", "rendering", "assembling"}
    assert ids.index(running[2].job_id) < ids.index(running[0].job_id)  # newest first
