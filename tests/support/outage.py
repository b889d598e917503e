"""What the Redis outage and failover tests share: the clip their jobs track, and what a
user compares between a job that met an outage and one that did not (its objects, and how
many times each task ran, read from the workers' logs)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import WorkerProcess
from tests.support.sprite_video import real_scene, write_sprite_video

# Celery's line for a task's run that ended: "Task NAME[ID] succeeded in ..." (or "ignored",
# for a wait that sent the task again); vtrack's for a delivery acknowledged
# without running, because that task's run had already ended (tasks/deliveries.py).
ENDED = re.compile(r"Task (vtrack\.\w+)\[([0-9a-f-]+)\] (?:succeeded|ignored)")
NOT_RUN_AGAIN = re.compile(r"(vtrack\.\w+)\[([0-9a-f-]+)\] delivered again after its run ended")


def scene_clip(root: Path, shared_videos: Path) -> Path:
    """6 s of real photo sprites at 480x270, 10 fps: with the test session's 3 s segments, a
    local-backend job of two segments and a few objects, tracked in seconds."""
    background, sprites = real_scene(shared_videos, width=480, height=270)
    clip = root / "scene.mp4"
    write_sprite_video(clip, background, sprites, fps=10, duration=6.0)
    return clip


def objects_of(manifest: dict[str, Any]) -> list[tuple]:
    """What a user compares between two jobs of one clip: each object, with its frames."""
    return sorted(
        (obj["entity"], obj["frame_count"], round(obj["first_time"], 2), round(obj["last_time"], 2))
        for obj in manifest["objects"]
    )


def task_runs(*workers: WorkerProcess) -> Counter[str]:
    """How many times each task ran to its end in these workers' logs, by task name. A task
    that ran to its end twice (the same name and id; not for tasks that retry) fails the
    assertion."""
    ended: Counter[tuple[str, str]] = Counter()
    for worker in workers:
        log = worker.log()
        ended.update(ENDED.findall(log))
        ended.subtract(NOT_RUN_AGAIN.findall(log))
    twice = {key: count for key, count in ended.items() if count > 1}
    assert not twice, f"tasks run more than once: {twice}"
    return Counter(name for (name, _), count in ended.items() if count == 1)
