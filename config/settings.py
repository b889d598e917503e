"""The one settings object of vtrack.

Every setting is read from the environment with the prefix ``VTRACK_`` (and from a
``.env`` file in the working directory when present). README's settings table and
``.env.example`` list them; a test checks that the three agree.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat
from pydantic_settings import BaseSettings, SettingsConfigDict

# Constraints several settings share (as Field(ge=..., le=...) would state them one by one).
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
AtLeastOne = Annotated[int, Field(ge=1)]


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
    broker_outage_seconds: NonNegativeFloat = Field(
        120.0,
        description=(
            "Seconds a worker waits for an unreachable Redis (restarted, failing over) before "
            "a task fails with the connection error. Longer rides out longer outages; a task "
            "holds its worker process while it waits."
        ),
    )
    sentinel_master_name: str = Field(
        "mymaster",
        description=(
            "With sentinel:// URLs: the name the Sentinels monitor the Redis primary under."
        ),
    )
    sentinel_password: str = Field(
        "",
        description="With sentinel:// URLs: the Sentinels' own password (requirepass), if any.",
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
            "files must lie in; anything outside them is refused. Local VTRACK_SCAN_SOURCES "
            "folders are allowed too."
        ),
    )

    # --- Which objects are rendered ------------------------------------------------
    min_confidence: Fraction = Field(
        0.7,
        description=(
            "Objects tracked with a lower confidence are not rendered. Raising it drops "
            "doubtful objects (fewer false ones, more missed ones)."
        ),
    )
    min_frames: AtLeastOne = Field(
        10,
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

    max_video_bytes: NonNegativeInt = Field(
        0,
        description="Largest video a worker downloads from a bucket, in bytes (0: no limit).",
    )
    max_video_pixels: NonNegativeInt = Field(
        7680 * 4320,
        description=(
            "Largest frame (width x height) a job accepts, checked when the video is probed; "
            "0: no limit. The default is 8K UHD; one decoded frame costs 3 bytes a pixel, so "
            "raising it raises the memory a worker process needs."
        ),
    )
    max_video_seconds: NonNegativeFloat = Field(
        4 * 3600.0,
        description=(
            "Longest video a job accepts, in seconds, checked when the video is probed; 0: no "
            "limit. Keep it well under what VTRACK_JOB_TIMEOUT lets the backend track."
        ),
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
    gcp_call_timeout: PositiveFloat = Field(60.0, description="Timeout of one API call, seconds.")
    gcp_requests_per_minute: AtLeastOne = Field(
        60,
        description=(
            "Video Intelligence requests per minute across all workers (the default quota "
            "is 60); lowering it avoids RESOURCE_EXHAUSTED when quotas are shared."
        ),
    )
    gcp_max_in_flight: AtLeastOne = Field(
        3, description="Videos annotated by the API at once across all workers."
    )

    # --- vtrack vi-server: the Video Intelligence API served by vtrack (docs/vi-server.md)
    vi_server_backend: Literal["local", "gcp"] = Field(
        "local", description="Backend of the jobs that vtrack vi-server starts."
    )
    vi_server_api_key: str = Field(
        "",
        description=(
            "API key every call to vtrack vi-server must carry (x-goog-api-key, as the client "
            "sends client_options api_key); empty: no key, and loopback only."
        ),
    )
    vi_server_tls_cert: str = Field(
        "", description="PEM certificate chain file for vtrack vi-server; empty: plain gRPC."
    )
    vi_server_tls_key: str = Field(
        "", description="PEM private key file of VTRACK_VI_SERVER_TLS_CERT."
    )
    vi_server_max_content_bytes: NonNegativeInt = Field(
        50_000_000,
        description=(
            "Largest video accepted inline (input_content) by vtrack vi-server; larger ones "
            "must be given as an input_uri."
        ),
    )

    # --- Local backend: detector + tracker (docs/local-backend.md) --------------------
    local_min_confidence: Fraction = Field(
        0.3,
        description=(
            "Render threshold for the local backend when VTRACK_MIN_CONFIDENCE is not set: "
            "its confidence is the mean detection score, and YOLOv3-tiny scores a clearly "
            "visible dog about 0.6."
        ),
    )
    detector_model: str = Field(
        "",
        description=(
            "An ONNX detector in the Ultralytics YOLOv8/YOLO11 layout; empty uses the "
            "default YOLOv3-tiny."
        ),
    )
    detector: str = Field(
        "",
        description=(
            "The detector: a known model name (yolov3-tiny, yolox-nano, picodet-s-416..., see "
            "`vtrack models`) or the path of an ONNX file of any supported family; empty uses "
            "VTRACK_DETECTOR_MODEL, else yolov3-tiny."
        ),
    )
    detector_family: str = Field(
        "",
        description=(
            "How to decode the detector: yolo-export, yolox or gfl; empty reads it from the "
            "model file's input and output shapes."
        ),
    )
    detector_precision: Literal["fp32", "int8", "auto"] = Field(
        "fp32",
        description=(
            "fp32; int8: the detector quantized to 8-bit integers, made once and cached (the "
            "default YOLOv3-tiny from parameters shipped with vtrack; another model "
            "calibrated on the first video tracked: check its detections, "
            "docs/benchmarks.md); or auto: int8 for the default YOLOv3-tiny, fp32 for any "
            "other model (a setting safe with every detector)."
        ),
    )
    detect_tiles: str = Field(
        "off",
        description=(
            "Sliced detection for small objects: off, auto or RxC (e.g. 2x2). Each tile costs "
            "one more network run per frame."
        ),
    )
    model_dir: str = Field(
        "", description="Where `vtrack models fetch` puts models (default: the model cache)."
    )
    model_cache_dir: str = Field(
        "", description="Where the converted default model is cached (default: user cache)."
    )
    model_url: str = Field(
        "https://pjreddie.com/media/files/yolov3-tiny.weights",
        description=(
            "Where the default weights may be downloaded when no installed copy is found "
            "(checked against their sha256); empty disables downloading."
        ),
    )
    tracker: str = Field(
        "bytetrack", description="Tracker: bytetrack, ocsort, botsort or sort (Roboflow trackers)."
    )
    process_fps: NonNegativeFloat = Field(
        10.0,
        description=(
            "Frames tracked per second of video; 0 tracks every frame. Lower is faster and "
            "coarser (10 on a 30 fps video is every third frame)."
        ),
    )
    camera_motion: Literal["auto", "on", "off"] = Field(
        "auto",
        description=(
            "Camera motion compensation of the local tracker: auto applies the camera's "
            "estimated motion between processed frames to the tracks' predictions when the "
            "picture moved (not with botsort, which does its own), on always, off never."
        ),
    )
    reid_model: str = Field(
        "",
        description=(
            "An ONNX person re-identification model (a path, or a name `vtrack models` lists, "
            "once fetched; e.g. OSNet) the local tracker uses to "
            "tell people apart after a gap and in the fragment merge; empty: hand-made "
            "appearance cues only."
        ),
    )
    detection_confidence: Fraction = Field(
        0.0,
        description=(
            "Detections below this score are dropped; 0 uses the model's own value. Raising "
            "it removes false detections and loses faint real ones."
        ),
    )
    track_activation: Fraction = Field(
        0.0,
        description=(
            "Score a detection needs to start a track; 0 uses the model's own value. The "
            "library's 0.7 never starts tracks for YOLOv3-tiny's typical 0.2 to 0.7 scores."
        ),
    )
    inference_threads: NonNegativeInt = Field(
        1,
        description=(
            "onnxruntime threads per worker process; 0 uses every core. Keep 1 when several "
            "worker processes share a machine."
        ),
    )
    decode_threads: NonNegativeInt = Field(
        0,
        description=(
            "FFmpeg decoding threads per worker process; 0: one when the worker's processes "
            "are as many as the cores it may use (each core then decodes for a process of its "
            "own, and more threads only take turns), else FFmpeg's choice."
        ),
    )
    decode_ahead: NonNegativeInt = Field(
        0,
        description=(
            "Frames a tracking process decodes ahead of its detector, in a thread of its own, "
            "so decoding overlaps inference; 0 decodes in turn with the detector."
        ),
    )
    still_detect_every: AtLeastOne = Field(
        3,
        description=(
            "Where the scene is still (no object moved more than about a tenth of its size, "
            "none appeared or left, over the last detected frames), run the detector on one "
            "processed frame in this many and interpolate the boxes between; any change at "
            "the next detected frame has the frames between detected after all. 1 detects "
            "every processed frame. Higher saves more detector runs in still scenes and "
            "can miss more of what appears and goes within the skipped frames."
        ),
    )
    segment_seconds: PositiveFloat = Field(
        30.0,
        description=(
            "Length of the time segments a video is split into for parallel tracking; "
            "shorter spreads one video over more workers, with more boundaries to stitch."
        ),
    )
    segment_overlap: NonNegativeFloat = Field(
        2.0,
        description="Overlap between segments, where tracks are matched across the boundary.",
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
    render_batch_size: AtLeastOne = Field(
        8,
        description=(
            "Objects one render task draws from one decode pass of their stretch of video. "
            "Larger decodes less in total; smaller spreads a job over more workers."
        ),
    )

    # --- Moving bytes and running in one process --------------------------------------
    video_cache_dir: str = Field(
        "",
        description=(
            "Folder where workers keep the videos they downloaded from a bucket, shared by the "
            "worker processes of one machine; empty: vtrack-video-cache in the temp folder."
        ),
    )
    video_cache_bytes: NonNegativeInt = Field(
        10_000_000_000,
        description=(
            "Most bytes of downloaded videos a machine keeps (least recently used go first); "
            "0 keeps none (every task downloads the video again)."
        ),
    )
    run_processes: NonNegativeInt = Field(
        0,
        description=(
            "Processes vtrack run tracks segments and renders batches in; 0: one per core "
            "it may run on (its CPU affinity: a container's CPU set, taskset)."
        ),
    )

    # --- Task limits ---------------------------------------------------------------
    task_soft_time_limit: AtLeastOne = Field(
        900,
        description="Seconds after which a task is asked to stop (SoftTimeLimitExceeded).",
    )
    task_time_limit: AtLeastOne = Field(
        960, description="Seconds after which a task's worker process is killed."
    )
    task_max_deliveries: AtLeastOne = Field(
        3,
        description=(
            "Times a task may be handed to a worker process that dies running it (killed, out "
            "of memory, crashed decoder) before it fails as a poison message. Higher rides out "
            "more worker losses; lower stops a task that crashes its worker sooner."
        ),
    )
    broker_visibility_timeout: NonNegativeInt = Field(
        0,
        description=(
            "Seconds after which Redis hands the messages a dead (killed) worker had taken to "
            "another worker; 0 means VTRACK_TASK_TIME_LIMIT plus 5 minutes. Shorter recovers "
            "sooner, but it must exceed the longest task or that task runs twice; poll and "
            "retry countdowns are kept below half of it."
        ),
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
    render_max_tasks_per_child: AtLeastOne = Field(
        50,
        description=(
            "Render worker processes are replaced after this many tasks (bounds leaks in decoders)."
        ),
    )

    # --- Scheduled scans (docs/operations.md) -------------------------------------------
    scan_sources: str = Field(
        "",
        description=(
            "Comma-separated gs://bucket/prefix, local folders or file:// URIs that celery "
            "beat scans for new videos; empty means no scheduled scan."
        ),
    )
    scan_schedule: str = Field(
        "*/5 * * * *",
        description=(
            "When beat scans: a five-field crontab (minute hour day month weekday, UTC) or a "
            "number of seconds between scans."
        ),
    )
    scan_max_jobs: AtLeastOne = Field(
        20,
        description=(
            "Most jobs one scan enqueues (oldest videos first); the rest wait for the next "
            "scan. Higher drains a backlog faster; lower keeps queues short for manual jobs."
        ),
    )
    scan_min_age: NonNegativeFloat = Field(
        10.0,
        description=(
            "Local files modified less than this many seconds ago are left for the next scan, "
            "so a copy still in progress is not picked up half-written."
        ),
    )
    scan_sidecar_annotations: bool = Field(
        False,
        description=(
            "A scanned VIDEO with a VIDEO.json beside it is processed from that annotation "
            "file (file backend) instead of the default backend."
        ),
    )
    scan_retry_failed_after: NonNegativeInt = Field(
        3600,
        description=(
            "Seconds a scan leaves alone a video whose job failed (unless the video changes); "
            "0 retries at every scan. Lower retries transient failures sooner, at the cost of "
            "re-running jobs that will fail again."
        ),
    )

    # --- Upload events: vtrack listen and vtrack watch (docs/operations.md) -----------------
    pubsub_subscription: str = Field(
        "",
        description=(
            "Pub/Sub subscription (projects/P/subscriptions/S) receiving a bucket's Cloud "
            "Storage notifications, for vtrack listen when it is given none."
        ),
    )
    listen_prefixes: str = Field(
        "",
        description=(
            "Comma-separated object name prefixes vtrack listen acts on (videos/, "
            "incoming/cam1/); empty means every object of the allowed buckets."
        ),
    )
    listen_max_messages: AtLeastOne = Field(
        10,
        description=(
            "Notifications vtrack listen holds at once (Pub/Sub flow control); more keeps "
            "up with bursts of uploads, fewer leaves the rest to other listeners."
        ),
    )
    watch_stable_seconds: PositiveFloat = Field(
        5.0,
        description=(
            "vtrack watch submits a file not closed after writing once its size has not "
            "changed for this many seconds; longer is safer with slow copies, shorter starts "
            "sooner."
        ),
    )

    def listen_prefix_list(self) -> tuple[str, ...]:
        return tuple(prefix.strip() for prefix in self.listen_prefixes.split(",") if prefix.strip())

    # --- Catalog and web app (docs/web.md) ------------------------------------------------
    catalog_url: str = Field(
        "",
        description=(
            "SQLAlchemy URL of the catalog across videos (sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB); empty: a SQLite file .vtrack-catalog.sqlite3 in "
            "the output folder, or in the working directory when the outputs are in a bucket."
        ),
    )
    web_auth: str = Field(
        "",
        description=(
            "user:password for basic auth on every page and API call of vtrack web; empty: no "
            "auth, and vtrack web listens on the loopback interface only."
        ),
    )

    def scan_source_list(self) -> list[str]:
        return [source.strip() for source in self.scan_sources.split(",") if source.strip()]

    def input_root_list(self) -> list[str]:
        return [root.strip() for root in self.input_roots.split(",") if root.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's CPU set or
    ``taskset`` counts, not the machine's cores), at least 1. Settings whose 0 means "one
    per core" use it."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
