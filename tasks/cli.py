"""The ``vtrack`` command line.

Exit codes: 0 the job completed; 1 the job failed; 2 bad input or usage (nothing ran);
3 the job completed with errors (some objects could not be rendered); 4 timed out waiting.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from config.settings import get_settings
from tasks import runtime
from tasks.api import Job, JobFailed, JobNotFound, make_spec, start_job
from tasks.celery_app import app
from tasks.jobstore import JobRecord, MemoryJobStore
from workers.errors import InputError, VtrackError
from workers.storage import open_storage
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
            if isinstance(exc, InputError | JobNotFound):
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
    out.mkdir(parents=True, exist_ok=True)
    settings = get_settings().model_copy(
        update={"output_root": str(out), "annotation_root": str(out)}
    )
    roots = [str(video_path.parent), str(out)]
    if annotation_path is not None:
        roots.append(str(annotation_path.parent))

    with _progress() as progress:
        bar = progress.add_task("queued", total=100)

        def show(record: JobRecord) -> None:
            progress.update(bar, description=record.stage, completed=record.percent)

        jobs = MemoryJobStore(listener=show)
        with _in_process(runtime.Runtime(settings, open_storage(roots), jobs)):
            spec = make_spec(
                str(video_path),
                annotations_uri=str(annotation_path) if annotation_path else None,
                backend=backend,
                min_confidence=min_confidence,
                min_frames=min_frames,
                animation_format=animation_format,
            )
            start_job(spec)
        record = jobs.get(spec.job_id)
    if record is None or not record.finished:
        fail("the job did not finish", EXIT_FAILED)
    if record.status == "failed":
        fail(record.error or "the job failed", EXIT_FAILED)
    _print_outcome(record)
    _exit_for(record.status)


@contextmanager
def _in_process(rt: runtime.Runtime) -> Iterator[None]:
    """Run tasks eagerly in this process with ``rt``'s clients, then put things back."""
    previous = {key: app.conf[key] for key in ("task_always_eager", "task_eager_propagates")}
    runtime.configure(rt)
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    try:
        yield
    finally:
        app.conf.update(previous)
        runtime.configure(None)


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
    table = Table(show_header=False, box=None)
    table.add_row("job", record.job_id)
    table.add_row("video", record.video_uri)
    table.add_row("backend", record.backend)
    table.add_row("status", record.status)
    table.add_row("stage", f"{record.stage} ({record.percent:.0f}%)")
    if record.objects_total:
        table.add_row("objects", f"{record.objects_done} of {record.objects_total} rendered")
    if record.error:
        table.add_row("error", record.error)
    if record.manifest_uri:
        table.add_row("manifest", record.manifest_uri)
    for output in record.outputs:
        table.add_row("output", output)
    out_console.print(table)


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


if __name__ == "__main__":
    main()
