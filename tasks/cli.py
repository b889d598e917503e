"""The ``vtrack`` command line.

Exit codes: 0 the job completed; 1 the job failed (or was lost); 2 bad input, usage, or
no broker or result backend to reach (nothing ran);
3 the job completed with errors (some objects could not be rendered); 4 timed out waiting.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tasks.api import Job, JobFailed, JobNotFound, make_spec, start_job
from tasks.display import print_record
from tasks.inprocess import run_video
from tasks.jobstore import JobRecord
from workers.errors import InputError, ServiceUnavailableError, VtrackError
from workers.steps import describe_box_fixes
from workers.uris import parse_uri

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_COMPLETED_WITH_ERRORS = 3
EXIT_TIMEOUT = 4

err_console = Console(stderr=True)
out_console = Console()


def fail(message: str, code: int) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """One line per error and a non-zero exit; the traceback only with ``--debug``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return command(*args, **kwargs)
        except (KeyboardInterrupt, SystemExit, click.exceptions.Exit):
            raise
        except click.ClickException:
            raise
        except Exception as exc:
            if debug:
                traceback.print_exc()
            if isinstance(exc, JobFailed):
                fail(str(exc), EXIT_FAILED)
            if isinstance(exc, InputError | JobNotFound | ServiceUnavailableError):
                fail(str(exc), EXIT_BAD_INPUT)
            if isinstance(exc, VtrackError):
                fail(str(exc), EXIT_FAILED)
            if isinstance(exc, TimeoutError):
                fail(str(exc), EXIT_TIMEOUT)
            fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)

    wrapper.__name__ = command.__name__
    wrapper.__doc__ = command.__doc__
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vtrack", prog_name="vtrack")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def main(debug: bool) -> None:
    """vtrack: which objects appear in a video, tracked, rendered and summarized."""


def _exit_for(status: str) -> None:
    if status == "completed_with_errors":
        sys.exit(EXIT_COMPLETED_WITH_ERRORS)
    if status == "failed":
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
@guarded
def run(
    video: str,
    annotations: str | None,
    out_dir: str,
    min_confidence: float | None,
    min_frames: int | None,
    backend: str | None,
    animation_format: str | None,
) -> None:
    """Run the whole pipeline on VIDEO in this process: no broker, no cloud, no network."""
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
        )
    if record is None or not record.finished:
        fail("the job did not finish", EXIT_FAILED)
    if record.status == "failed":
        fail(record.error or "the job failed", EXIT_FAILED)
    _print_box_fixes(record)
    _print_outcome(record)
    _exit_for(record.status)


def _print_box_fixes(record: JobRecord) -> None:
    """Say how many of the annotation's boxes had to be clipped or dropped (from the manifest)."""
    if not record.manifest_uri:
        return
    manifest = json.loads(Path(record.manifest_uri).read_text(encoding="utf-8"))
    clipped, dropped = manifest.get("boxes_clipped", 0), manifest.get("boxes_dropped", 0)
    if clipped or dropped:
        err_console.print(f"annotations: {describe_box_fixes(clipped, dropped)}", highlight=False)


def _existing_local_file(value: str, what: str) -> Path:
    parsed = parse_uri(value)
    if not parsed.is_local:
        raise InputError(
            f"{value}: vtrack run takes local files; use vtrack submit for {what}s in gs://"
        )
    path = parsed.local_path()
    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    return path


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<36}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _print_outcome(record: JobRecord) -> None:
    done = record.objects_done
    if record.status == "completed_with_errors":
        err_console.print(f"[yellow]completed with errors:[/] {record.error}", soft_wrap=True)
    if record.summary_uri:
        err_console.print(f"summary: {record.summary_uri}", highlight=False, soft_wrap=True)
    else:
        err_console.print("no objects passed the thresholds: no summary", highlight=False)
    err_console.print(f"{done} object(s) rendered", highlight=False)
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
    spec = make_spec(
        uri,
        annotations_uri=annotations,
        backend=backend,
        min_confidence=min_confidence,
        min_frames=min_frames,
        animation_format=animation_format,
    )
    job = start_job(spec)
    if job.id != spec.job_id:
        err_console.print(f"a job for {uri} is already in flight: {job.id}", highlight=False)
    click.echo(job.id)


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job record as JSON.")
@guarded
def status(job_id: str, as_json: bool) -> None:
    """Show a job's stage, progress, errors and outputs."""
    record = Job(job_id).status()
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2))
        return
    print_record(record, out_console)


@main.command()
@click.argument("job_id")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@guarded
def wait(job_id: str, timeout: float | None) -> None:
    """Wait for a job to end; prints the manifest's URI as the last line."""
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
    err_console.print(report.describe(), highlight=False, soft_wrap=True)
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
    from tasks.listen import listen as run_listener

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
    from tasks.watch import watch as run_watcher

    _log_to_stderr()
    run_watcher(list(folders), get_settings())


@main.command("vi-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(0, 65535))
@guarded
def vi_server(host: str, port: int) -> None:
    """Serve the Video Intelligence API (AnnotateVideo, OBJECT_TRACKING) from vtrack's jobs."""
    from config.settings import get_settings
    from tasks.vi_server.server import serve

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
    from tasks.cluster import Cluster, cluster_ports

    settings = get_settings()
    ports = cluster_ports(settings, redis_port, flower_port)
    pids = Cluster(Path(run_dir), ports).start(timeout=timeout)
    for service, pid in pids.items():
        err_console.print(f"{service:<16} pid {pid}", highlight=False)
    for line in ports.describe(settings):
        err_console.print(line, highlight=False, soft_wrap=True)
    err_console.print(
        f"Flower: http://127.0.0.1:{flower_port}  logs: {run_dir}/logs", highlight=False
    )


@cluster.command("status")
@_cluster_dir
@guarded
def cluster_status(run_dir: str) -> None:
    """Show which of the cluster's services are running."""
    from tasks.cluster import Cluster

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
    from tasks.cluster import Cluster

    stopped = Cluster(Path(run_dir)).stop()
    err_console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}", highlight=False)


if __name__ == "__main__":
    main()
