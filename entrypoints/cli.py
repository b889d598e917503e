"""The ``vtrack`` command line.

Exit codes: 0 the job completed; 1 the job failed or was cancelled (or was lost); 2 bad
input, usage, or no broker or result backend to reach (nothing ran);
3 the job completed with errors (some objects could not be rendered); 4 timed out waiting.

Start-up time matters for a command line: each command imports what it uses inside its
own function (Celery for ``submit``, PyAV and the tracker for ``run``, nothing heavy for
``--help``), so new commands keep the pattern: a thin registration here, the work in a
module of its own, imported when the command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from entrypoints.console import (
    EXIT_COMPLETED_WITH_ERRORS,
    EXIT_FAILED,
    consoles,
    err_print,
    fail,
    guarded,
)
from entrypoints.models_cli import models
from workers.errors import InputError, VtrackError
from workers.job import JobStatus

if TYPE_CHECKING:
    from rich.progress import Progress

    from tasks.jobstore import JobRecord


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vtrack", prog_name="vtrack")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def main(debug: bool) -> None:
    """vtrack: which objects appear in a video, tracked, rendered and summarized."""


def _exit_for(status: str) -> None:
    if status == JobStatus.COMPLETED_WITH_ERRORS:
        sys.exit(EXIT_COMPLETED_WITH_ERRORS)
    if status in (JobStatus.FAILED, JobStatus.CANCELLED):
        sys.exit(EXIT_FAILED)


@main.command()
@click.argument("video")
@click.option("--annotations", "annotations", help="Use this annotation JSON instead of tracking.")
@click.option(
    "--out",
    "out_dir",
    default="./vtrack-output",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the annotations, summary, animations and manifest.",
)
@click.option(
    "--min-confidence", type=click.FloatRange(0, 1), help="Default VTRACK_MIN_CONFIDENCE."
)
@click.option("--min-frames", type=click.IntRange(min=1), help="Default VTRACK_MIN_FRAMES.")
@click.option(
    "--backend",
    type=click.Choice(["local", "file"]),
    help="Where annotations come from (default: file with --annotations, else local).",
)
@click.option("--format", "animation_format", type=click.Choice(["gif", "webp"]))
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    help=(
        "Cores to work on: processes to track segments and render batches in, threads for "
        "a video of one segment (default VTRACK_RUN_PROCESSES, else every usable core)."
    ),
)
@guarded
def run(
    video: str,
    annotations: str | None,
    out_dir: str,
    min_confidence: float | None,
    min_frames: int | None,
    backend: str | None,
    animation_format: str | None,
    processes: int | None,
) -> None:
    """Run the whole pipeline on VIDEO in this process: no broker, no cloud, no network."""
    from tasks.api import run_video

    video_path = _existing_local_file(video, "video")
    annotation_path = _existing_local_file(annotations, "annotation file") if annotations else None
    out = Path(out_dir).expanduser().absolute()
    with _progress() as progress:
        bar = progress.add_task("queued", total=100)

        def show(record: JobRecord) -> None:
            progress.update(bar, description=record.stage, completed=record.percent)

        record = run_video(
            video_path,
            out,
            annotations=annotation_path,
            backend=backend,
            min_confidence=min_confidence,
            min_frames=min_frames,
            animation_format=animation_format,
            listener=show,
            processes=processes,
            notice=lambda message: err_print(message, highlight=False),
        )
    if record is None or not record.finished:
        fail("the job did not finish", EXIT_FAILED)
    if record.status == JobStatus.FAILED:
        fail(record.error or "the job failed", EXIT_FAILED)
    _print_box_fixes(record)
    _print_outcome(record)
    _exit_for(record.status)


def _print_box_fixes(record: JobRecord) -> None:
    """Say how many of the annotation's boxes had to be clipped or dropped (from the manifest)."""
    from workers.steps import describe_box_fixes

    manifest = _local_manifest(record) or {}
    clipped, dropped = manifest.get("boxes_clipped", 0), manifest.get("boxes_dropped", 0)
    if clipped or dropped:
        err_print(f"annotations: {describe_box_fixes(clipped, dropped)}", highlight=False)


def _local_manifest(record: JobRecord) -> dict[str, Any] | None:
    """The job's manifest when it is a readable local file (vtrack run's always is)."""
    from workers.uris import parse_uri

    if not record.manifest_uri:
        return None
    try:
        parsed = parse_uri(record.manifest_uri)
        if not parsed.is_local:
            return None
        return json.loads(parsed.local_path().read_text(encoding="utf-8"))
    except (OSError, ValueError, VtrackError):
        return None


def _existing_local_file(value: str, what: str) -> Path:
    from workers.uris import parse_uri

    parsed = parse_uri(value)
    if not parsed.is_local:
        raise InputError(
            f"{value}: vtrack run takes local files; use vtrack submit for {what}s in gs://"
        )
    path = parsed.local_path()
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a {what} (vtrack run takes one file)")
    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    return path


def _progress() -> Progress:
    """A progress bar on a terminal; nothing at all in a pipe or a log file (where rich
    would leave a blank line behind)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = consoles()[0]
    return Progress(
        TextColumn("{task.description:<36}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _print_outcome(record: JobRecord) -> None:
    done = record.objects_done
    if record.status == JobStatus.COMPLETED_WITH_ERRORS:
        err_print(f"[yellow]completed with errors:[/] {record.error}")
    if record.summary_uri:
        err_print(f"summary: {record.summary_uri}", highlight=False)
    else:
        from workers.steps import describe_no_summary

        manifest = _local_manifest(record)
        reason = (
            describe_no_summary(manifest)
            if manifest is not None
            else "no objects passed the thresholds: no summary"
        )
        err_print(reason, highlight=False)
    err_print(f"{done} object(s) rendered", highlight=False)
    # The manifest's location is the last line on stdout, for scripts.
    click.echo(record.manifest_uri)


@main.command()
@click.argument("uri")
@click.option("--annotations", "annotations", help="Use this annotation JSON (path or gs:// URI).")
@click.option(
    "--backend", type=click.Choice(["local", "gcp", "file"]), help="Default VTRACK_BACKEND."
)
@click.option("--min-confidence", type=click.FloatRange(0, 1))
@click.option("--min-frames", type=click.IntRange(min=1))
@click.option("--format", "animation_format", type=click.Choice(["gif", "webp"]))
@guarded
def submit(
    uri: str,
    annotations: str | None,
    backend: str | None,
    min_confidence: float | None,
    min_frames: int | None,
    animation_format: str | None,
) -> None:
    """Enqueue URI on the configured broker; prints the job id as the last line."""
    from tasks.api import make_spec, refuse_unusable_inputs, start_job

    spec = make_spec(
        uri,
        annotations_uri=annotations,
        backend=backend,
        min_confidence=min_confidence,
        min_frames=min_frames,
        animation_format=animation_format,
    )
    refuse_unusable_inputs(spec)  # a missing file, a folder, outside VTRACK_INPUT_ROOTS
    job = start_job(spec, source="cli")
    if job.id != spec.job_id:
        err_print(f"a job for {uri} is already in flight: {job.id}", highlight=False)
    click.echo(job.id)


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job record as JSON.")
@guarded
def status(job_id: str, as_json: bool) -> None:
    """Show a job's stage, progress, errors and outputs; exits as ``vtrack wait`` would
    for a job that has ended (1 failed or cancelled, 3 completed with errors), else 0."""
    from tasks.api import Job

    record = Job(job_id).status()
    if as_json:
        click.echo(json.dumps(record.model_dump(mode="json"), indent=2))
    else:
        from entrypoints.display import print_record

        print_record(record, consoles()[1])
    _exit_for(record.status)


@main.command()
@click.argument("job_id")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@guarded
def wait(job_id: str, timeout: float | None) -> None:
    """Wait for a job to end; prints the manifest's URI as the last line."""
    from tasks.api import Job

    job = Job(job_id)
    job.wait(timeout=timeout)
    record = job.status()
    _print_outcome(record)
    _exit_for(record.status)


@main.command()
@click.argument("source")
@click.option(
    "--max-jobs",
    type=click.IntRange(min=1),
    help="Start at most N jobs (default VTRACK_SCAN_MAX_JOBS).",
)
@guarded
def scan(source: str, max_jobs: int | None) -> None:
    """Scan SOURCE (folder, file:// or gs:// prefix) once now; prints each job id started."""
    from tasks.scan import scan_source

    report = scan_source(source, max_jobs)
    err_print(report.describe(), highlight=False)
    for job_id in report.job_ids:
        click.echo(job_id)


def _log_to_stderr() -> None:
    """Long-running commands report progress as timestamped log lines."""
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@main.command()
@click.argument("subscription", required=False)
@guarded
def listen(subscription: str | None) -> None:
    """Start a job for each video uploaded to a bucket, from its Cloud Storage notifications
    on a Pub/Sub SUBSCRIPTION (projects/P/subscriptions/S; default VTRACK_PUBSUB_SUBSCRIPTION).
    Runs until SIGTERM or Ctrl-C."""
    from config.settings import get_settings
    from entrypoints.listen import listen as run_listener

    settings = get_settings()
    chosen = subscription or settings.pubsub_subscription
    if not chosen:
        raise InputError("give a SUBSCRIPTION or set VTRACK_PUBSUB_SUBSCRIPTION")
    _log_to_stderr()
    run_listener(chosen, settings)


@main.command()
@click.argument(
    "folders", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path)
)
@guarded
def watch(folders: tuple[Path, ...]) -> None:
    """Start a job for each video copied into FOLDERS once it is complete; videos already
    there are handled as a scan would. Runs until SIGTERM or Ctrl-C."""
    from config.settings import get_settings
    from entrypoints.watch import watch as run_watcher

    _log_to_stderr()
    run_watcher(list(folders), get_settings())


@main.command()
@click.argument("job_id")
@guarded
def cancel(job_id: str) -> None:
    """Cancel a job: revoke its tasks, mark it cancelled; nothing more is published."""
    from tasks.api import Job

    record = Job(job_id).cancel()
    err_print(f"job {record.job_id} cancelled ({record.video_uri})", highlight=False)


@main.command()
@click.option(
    "--status",
    "status_filter",
    help="Only jobs with this status (e.g. rendering), or running: every job not ended yet.",
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the job records as JSON lines.")
@guarded
def jobs(status_filter: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first: status, stage, video and how each was started."""
    from tasks.api import list_jobs, reaching, service_settings

    backend = service_settings().result_backend
    with reaching("result backend", "VTRACK_RESULT_BACKEND", backend):
        records, total = list_jobs(status=status_filter, limit=limit)
    if as_json:
        for record in records:
            click.echo(json.dumps(record.model_dump(mode="json")))
        return
    from entrypoints.display import print_job_list

    print_job_list(records, consoles()[1])
    err_print(f"{len(records)} of {total} job(s)", highlight=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@guarded
def web(host: str, port: int) -> None:
    """Serve the web app: jobs, results, search across videos, JSON API (docs at /docs)."""
    from entrypoints.web.server import serve

    serve(host, port)


@main.group()
def catalog() -> None:
    """The catalog across videos (VTRACK_CATALOG_URL)."""


@catalog.command("rebuild")
@guarded
def catalog_rebuild() -> None:
    """Re-read every manifest under the output root into the catalog."""
    from tasks.api import current_catalog, rebuild_catalog

    report = rebuild_catalog()
    err_print(f"{report.describe()} ({current_catalog().describe()})", highlight=False)


@main.command("vi-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(0, 65535))
@guarded
def vi_server(host: str, port: int) -> None:
    """Serve the Video Intelligence API (AnnotateVideo, OBJECT_TRACKING) from vtrack's jobs."""
    from config.settings import get_settings
    from entrypoints.vi_server.server import serve

    serve(get_settings(), host, port)


@main.group()
def cluster() -> None:
    """Run the docker-compose services as local processes (Redis, 2 workers, beat, Flower)."""


_cluster_dir = click.option(
    "--dir",
    "run_dir",
    default=".vtrack-cluster",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the cluster keeps its pids, logs and Redis data.",
)


@cluster.command("start")
@_cluster_dir
@click.option(
    "--redis-port",
    type=int,
    default=None,
    help="Use (or start) Redis on 127.0.0.1:PORT instead of VTRACK_BROKER_URL's.",
)
@click.option("--flower-port", default=5555, show_default=True)
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for readiness.")
@guarded
def cluster_start(run_dir: str, redis_port: int | None, flower_port: int, timeout: float) -> None:
    """Start the services in the background, bound to 127.0.0.1; returns once all are ready.

    They use VTRACK_BROKER_URL and VTRACK_RESULT_BACKEND; a Redis is started on the broker's
    local port when none answers there.
    """
    from config.settings import get_settings
    from entrypoints.cluster import Cluster, cluster_ports

    settings = get_settings()
    ports = cluster_ports(settings, redis_port, flower_port)
    pids = Cluster(Path(run_dir), ports).start(timeout=timeout)
    for service, pid in pids.items():
        err_print(f"{service:<16} pid {pid}", highlight=False)
    for line in ports.describe(settings):
        err_print(line, highlight=False)
    err_print(f"Flower: http://127.0.0.1:{flower_port}  logs: {run_dir}/logs", highlight=False)


@cluster.command("status")
@_cluster_dir
@guarded
def cluster_status(run_dir: str) -> None:
    """Show which of the cluster's services are running."""
    from entrypoints.cluster import Cluster

    known = Cluster(Path(run_dir))
    running = known.running()
    for service, pid in known.pids().items():
        click.echo(f"{service:<16} {pid:>8}  {'running' if service in running else 'stopped'}")
    if not running:
        sys.exit(EXIT_FAILED)


@cluster.command("stop")
@_cluster_dir
@guarded
def cluster_stop(run_dir: str) -> None:
    """Stop the services the cluster started, by their pids."""
    from entrypoints.cluster import Cluster

    stopped = Cluster(Path(run_dir)).stop()
    err_print(f"stopped: {', '.join(stopped) or 'nothing was running'}", highlight=False)


main.add_command(models)  # vtrack models: a module of its own

if __name__ == "__main__":
    main()


# --- Evaluation and export (imports inside: they need numpy, trackers, PyAV) -----------


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise InputError(f"--size {text}: expected WIDTHxHEIGHT, e.g. 1920x1080")
    return int(width), int(height)


@main.command("eval")
@click.argument("annotations")
@click.argument("ground_truth")
@click.option(
    "--classes",
    help="Ground-truth class numbers to labels, e.g. 1=person,2=dog (class-aware scoring). "
    "Default: MOTChallenge's (1=person) when the file has its classes, else none.",
)
@click.option("--labels", help="Score only tracks with these labels (comma-separated).")
@click.option("--iou", default=0.5, show_default=True, type=click.FloatRange(0.05, 0.95))
@click.option(
    "--frames",
    type=click.Choice(["all", "sampled"]),
    default="all",
    show_default=True,
    help="all: every ground-truth frame, tracks interpolated across short gaps; "
    "sampled: only frames the annotation reports.",
)
@click.option(
    "--max-gap",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a track is interpolated across (--frames all).",
)
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), help="Overrides seqinfo.ini.")
@click.option("--size", help="WIDTHxHEIGHT of the frames; overrides seqinfo.ini.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@guarded
def eval_command(
    annotations: str,
    ground_truth: str,
    classes: str | None,
    labels: str | None,
    iou: float,
    frames: str,
    max_gap: float,
    fps: float | None,
    size: str | None,
    as_json: bool,
) -> None:
    """Score ANNOTATIONS (annotation JSON, ours or the API's, or a MOT txt) against
    GROUND_TRUTH (MOTChallenge gt.txt or sequence folder): CLEAR, Identity and HOTA."""
    from workers.annotations.vi_json import parse_annotation_json
    from workers.evaluation import (
        evaluate_annotation,
        parse_class_map,
        read_ground_truth,
        read_mot_tracks,
    )
    from workers.storage import open_storage

    truth = read_ground_truth(
        ground_truth,
        class_names=parse_class_map(classes) if classes else None,
        frame_rate=fps,
        size=_parse_size(size),
    )
    data = open_storage(["/"]).read_bytes(annotations)
    info = None
    if data.lstrip()[:1] in (b"{", b"["):
        annotation = parse_annotation_json(data, annotations)
    else:  # a tracker's MOT result: already in frames and pixels
        info = truth.info.pixel_grid()
        label = next(iter(truth.class_names.values()), "") if truth.class_names else ""
        annotation = read_mot_tracks(data, info, label)
        max_gap = 0.0
    evaluation = evaluate_annotation(
        annotation,
        truth,
        threshold=iou,
        frames=frames,  # type: ignore[arg-type]
        max_gap=max_gap,
        labels=[name.strip() for name in labels.split(",")] if labels else None,
        info=info,
    )
    if as_json:
        consoles()[1].print_json(
            json.dumps(
                {
                    "sequence": truth.info.name,
                    "frames": evaluation.frames,
                    "metrics": evaluation.metrics,
                    "per_class": evaluation.per_class,
                }
            )
        )
        return
    columns = ("MOTA", "IDF1", "HOTA", "DetA", "AssA", "MOTP", "IDSW", "CLR_FP", "CLR_FN")
    counts = {"IDSW", "CLR_FP", "CLR_FN", "gt_ids", "predicted_ids"}
    headers = ("class", *(c.removeprefix("CLR_") for c in columns), "GT_ids", "tracks")
    keys = (*columns, "gt_ids", "predicted_ids")
    width = max([8, *(len(name) + 1 for name in evaluation.per_class)])
    print(f"{truth.info.name}: {evaluation.frames} frames, IoU {iou}")
    print(f"{headers[0]:<{width}}" + "".join(f"{header:>8}" for header in headers[1:]))
    for name, figures in {"all": evaluation.metrics, **evaluation.per_class}.items():
        values = (f"{figures[key]:.0f}" if key in counts else f"{figures[key]:.3f}" for key in keys)
        print(f"{name:<{width}}" + "".join(f"{value:>8}" for value in values))


@main.command("export")
@click.argument("source")
@click.option(
    "--format", "fmt", type=click.Choice(["mot", "cvat", "coco"]), required=True, help="Format."
)
@click.option("--out", "out", help="File to write, local or gs:// (default: standard output).")
@click.option("--all", "every_object", is_flag=True, help="Every object, not only the kept ones.")
@click.option("--video", help="The video, when SOURCE is an annotation file that names none.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), help="For an annotation file.")
@click.option("--min-frames", type=click.IntRange(min=1), help="For an annotation file.")
@guarded
def export_command(
    source: str,
    fmt: str,
    out: str | None,
    every_object: bool,
    video: str | None,
    min_confidence: float | None,
    min_frames: int | None,
) -> None:
    """Write the tracks of SOURCE (a job manifest or an annotation JSON, local or gs://)
    as MOTChallenge txt, CVAT for video 1.1 XML or COCO video JSON."""
    from config.settings import get_settings
    from workers.annotations.exports import export_text, load_export_source
    from workers.storage import open_storage
    from workers.uris import parse_uri

    settings = get_settings()
    storage = open_storage(["/"])
    loaded = load_export_source(
        source,
        storage,
        every_object=every_object,
        video_uri=video,
        min_confidence=min_confidence,
        min_frames=min_frames,
        default_thresholds=(settings.min_confidence, settings.min_frames),
        local_min_confidence=settings.local_min_confidence,
    )
    text = export_text(fmt, loaded.objects, loaded.video)  # type: ignore[arg-type]
    if out is None:
        sys.stdout.write(text)
        return
    content_type = {"mot": "text/plain", "cvat": "application/xml", "coco": "application/json"}
    target = out if parse_uri(out).scheme != "file" else str(Path(out).expanduser().absolute())
    storage.write_bytes(target, text.encode(), content_type[fmt])
    err_print(f"wrote {len(loaded.objects)} of {loaded.total} objects to {target}", highlight=False)
