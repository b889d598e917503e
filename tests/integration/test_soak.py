"""The soak's short version: eight videos at once to one annotate and two render processes.

The same :func:`bench.soak.run_soak` as ``python -m bench.soak`` (fifty videos, figures in
docs/benchmarks.md), on the file backend to stay quick: every job completes, none is lost,
no task runs twice, each video gets one manifest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bench.soak import make_videos, run_soak
from tests.conftest import TEST_ENV

pytestmark = pytest.mark.integration

VIDEOS = 8


def test_eight_videos_at_once_all_complete_none_duplicated(
    redis_server: None, session_dirs: dict[str, Path], tmp_path: Path
) -> None:
    from tasks.api import submit

    videos = make_videos(session_dirs["input"] / "soak", VIDEOS, seconds=3, backend="file")

    def submit_all() -> list[Any]:
        return [submit(str(video), annotations_uri=str(notes)) for video, notes in videos]

    result = run_soak(submit_all, {**os.environ, **TEST_ENV}, tmp_path, timeout=300)

    assert result.failures == []
    assert result.completed == VIDEOS and result.statuses == {"completed": VIDEOS}
    assert result.duplicated_tasks == []
    assert sorted(result.manifests_per_video) == sorted(str(video) for video, _ in videos)
    assert set(result.manifests_per_video.values()) == {1}
    # Each job starts one annotation and assembles one summary.
    assert result.tasks_succeeded["vtrack.annotate"] == VIDEOS
    assert result.tasks_succeeded["vtrack.assemble_summary"] == VIDEOS
    assert any(name.startswith("render child") for name in result.memory)
