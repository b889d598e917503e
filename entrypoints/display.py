"""How the CLI shows job records: ``vtrack status`` and ``vtrack jobs``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
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
        width = max(len(name) for name, _ in rows) + 1  # "started by" and its value apart
        for name, value in rows:
            click.echo(f"{name:<{width}}{value}")
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


JOB_LIST_COLUMNS = ("job", "status", "stage", "source", "video", "started")
# Below this many columns for the stage and for the video, the table would drop them: each
# job is shown on two lines instead (see print_job_list).
FOLDED_COLUMN_MIN_WIDTH = 16


def job_list_row(record: JobRecord) -> tuple[str, ...]:
    return (
        record.job_id,
        record.status,
        stage_text(record),
        record.source or "-",
        record.video_uri,
        started_text(record.created_at),
    )


def started_text(timestamp: float) -> str:
    if not timestamp:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def print_job_list(records: Sequence[JobRecord], console: Console) -> None:
    """A table on a terminal (ids and times whole, stages and videos fold); otherwise
    tab-separated lines under a header line, one job per line, for ``cut``, ``grep`` and
    scripts.

    A terminal too narrow for every column of the table (80 columns is) gets two lines per
    job instead, so no column is dropped: the id, status, source and start time, then the
    stage and the video, indented.
    """
    rows = [job_list_row(record) for record in records]
    if not console.is_terminal:
        for row in (JOB_LIST_COLUMNS, *rows):
            click.echo("\t".join(value.replace("\t", " ") for value in row))
        return
    if console.width < _table_width(rows):
        _print_stacked(rows, console)
        return
    from rich.table import Table

    table = Table(box=None)
    for column in JOB_LIST_COLUMNS:  # the stage and the video fold; the rest stay whole
        table.add_column(column, no_wrap=column not in ("stage", "video"), overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _table_width(rows: Sequence[tuple[str, ...]]) -> int:
    """Columns the table needs to show every column: whole ones whole, folded ones at
    least FOLDED_COLUMN_MIN_WIDTH wide, two spaces between and around columns."""
    widths = [
        FOLDED_COLUMN_MIN_WIDTH
        if name in ("stage", "video")
        else max(len(value) for value in (name, *(row[i] for row in rows)))
        for i, name in enumerate(JOB_LIST_COLUMNS)
    ]
    return sum(widths) + 2 * len(widths)


def _print_stacked(rows: Sequence[tuple[str, ...]], console: Console) -> None:
    """Two lines per job: ``job status source started``, then the stage and the video
    (whole: the terminal wraps a long path itself)."""
    from rich.text import Text

    status_width = max(len(row[1]) for row in rows) if rows else 0
    source_width = max(len(row[3]) for row in rows) if rows else 0
    for job_id, status, stage, source, video, started in rows:
        first = f"{job_id}  {status:<{status_width}}  {source:<{source_width}}  {started}"
        console.print(Text(first, style="bold"), soft_wrap=True)
        console.print(Text(f"  {stage} · {video}"), soft_wrap=True)
