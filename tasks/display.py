"""How the CLI shows a job record: ``vtrack status``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tasks.jobstore import JobRecord

if TYPE_CHECKING:
    from rich.console import Console


def stage_text(record: JobRecord) -> str:
    """The stage with its percent, unless the stage says it already (``tracking (53%)``)."""
    if "%" in record.stage or record.finished:
        return record.stage
    return f"{record.stage} ({record.percent:.0f}%)"


def record_rows(record: JobRecord) -> list[tuple[str, str]]:
    rows = [
        ("job", record.job_id),
        ("video", record.video_uri),
        ("backend", record.backend),
        *([("started by", record.source)] if record.source else []),
        ("status", record.status),
        ("stage", stage_text(record)),
    ]
    if record.objects_total:
        rows.append(("objects", f"{record.objects_done} of {record.objects_total} rendered"))
    if record.error:
        rows.append(("error", record.error))
    if record.manifest_uri:
        rows.append(("manifest", record.manifest_uri))
    rows += [("output", output) for output in record.outputs]
    return rows


def print_record(record: JobRecord, console: Console) -> None:
    """A table on a terminal (long values fold, never cut); plain lines otherwise."""
    rows = record_rows(record)
    if not console.is_terminal:
        for name, value in rows:
            click.echo(f"{name:<10}{value}")
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
