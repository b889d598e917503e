"""The one settings object of vtrack.

Every setting is read from the environment with the prefix ``VTRACK_`` (and from a
``.env`` file in the working directory when present). README's settings table and
``.env.example`` list them; a test checks that the three agree.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VTRACK_", env_file=".env", extra="ignore", frozen=True
    )

    # --- Broker and results -------------------------------------------------------
    broker_url: str = Field(
        "redis://localhost:6379/0", description="Celery broker (Redis) for job messages."
    )
    result_backend: str = Field(
        "redis://localhost:6379/1",
        description="Where task results and job records are kept (Redis).",
    )

    # --- Where things are read from and written to ----------------------------------
    output_root: str = Field(
        "./vtrack-output",
        description=(
            "Folder, file:// URI or gs://bucket/prefix for summaries, animations and manifests."
        ),
    )
    annotation_root: str = Field(
        "./vtrack-output",
        description="Folder, file:// URI or gs://bucket/prefix where annotation JSON is written.",
    )
    input_roots: str = Field(
        ".",
        description=(
            "Comma-separated local folders that submitted local videos and annotation "
            "files must lie in; anything outside them is refused."
        ),
    )

    # --- Which objects are rendered ------------------------------------------------
    min_confidence: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description=(
            "Objects tracked with a lower confidence are not rendered. Raising it drops "
            "doubtful objects (fewer false ones, more missed ones)."
        ),
    )
    min_frames: int = Field(
        10,
        ge=1,
        description=(
            "Objects seen in fewer annotated frames are not rendered. Raising it drops "
            "fleeting objects and tracker fragments; lowering it keeps brief appearances."
        ),
    )

    # --- Annotation backend --------------------------------------------------------
    backend: Literal["local", "gcp", "file"] = Field(
        "local",
        description=(
            "Where annotations come from: local detector+tracker, gcp Video Intelligence, or file."
        ),
    )

    max_video_bytes: int = Field(
        0,
        ge=0,
        description="Largest video a worker downloads from a bucket, in bytes (0: no limit).",
    )

    # --- Google Cloud backend (docs/gcp-backend.md) ----------------------------------
    vi_endpoint: str = Field(
        "",
        description=(
            "host:port of a plain-gRPC Video Intelligence server (tests, emulators); empty "
            "means Google's endpoint with Application Default Credentials."
        ),
    )
    gcp_project: str = Field(
        "", description="Project billed for Video Intelligence (default: from the credentials)."
    )
    gcp_location_id: str = Field(
        "", description="Region the API runs the annotation in (us-east1, europe-west1, ...)."
    )
    allowed_buckets: str = Field(
        "",
        description="Comma-separated buckets videos may come from; empty means any bucket.",
    )
    gcp_call_timeout: float = Field(60.0, gt=0, description="Timeout of one API call, seconds.")
    gcp_requests_per_minute: int = Field(
        60,
        ge=1,
        description=(
            "Video Intelligence requests per minute across all workers (the default quota "
            "is 60); lowering it avoids RESOURCE_EXHAUSTED when quotas are shared."
        ),
    )
    gcp_max_in_flight: int = Field(
        3, ge=1, description="Videos annotated by the API at once across all workers."
    )

    # --- Rendering -----------------------------------------------------------------
    animation_format: Literal["gif", "webp"] = Field(
        "gif",
        description="Per-object animation format: gif (the seed's) or webp (smaller, faster).",
    )
    animation_max_width: int = Field(
        480,
        ge=16,
        description=(
            "Animations wider than this are scaled down. Larger keeps detail; smaller makes "
            "files lighter and encoding faster (a full-size 720p GIF is about 5 MB)."
        ),
    )
    animation_frames: int = Field(
        12, ge=1, le=100, description="Frames per animation, spread evenly over the track."
    )
    animation_frame_ms: int = Field(250, ge=20, description="Display time of each animation frame.")
    summary_max_width: int = Field(1920, ge=64, description="Largest width of the summary grid.")
    summary_max_height: int = Field(1080, ge=64, description="Largest height of the summary grid.")

    # --- Task limits ---------------------------------------------------------------
    task_soft_time_limit: int = Field(
        900,
        ge=1,
        description="Seconds after which a task is asked to stop (SoftTimeLimitExceeded).",
    )
    task_time_limit: int = Field(
        960, ge=1, description="Seconds after which a task's worker process is killed."
    )
    job_timeout: int = Field(
        6 * 3600,
        ge=60,
        description="Longest a whole job may take; results are kept well beyond it.",
    )
    poll_initial_delay: float = Field(
        2.0, ge=0.0, description="First wait before checking a running annotation again."
    )
    poll_max_delay: float = Field(
        60.0, ge=0.1, description="Longest wait between two checks of a running annotation."
    )
    render_max_tasks_per_child: int = Field(
        50,
        ge=1,
        description=(
            "Render worker processes are replaced after this many tasks (bounds leaks in decoders)."
        ),
    )

    def input_root_list(self) -> list[str]:
        return [root.strip() for root in self.input_roots.split(",") if root.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings()
