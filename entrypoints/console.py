"""What every ``vtrack`` command shares: exit codes, the consoles, one line per error.

A module of its own so that :mod:`entrypoints.cli` and the command groups kept in their own
modules (:mod:`entrypoints.models_cli`) import it without importing each other.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn

import click

from workers.errors import InputError, ServiceUnavailableError, VtrackError

if TYPE_CHECKING:
    from rich.console import Console

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_COMPLETED_WITH_ERRORS = 3
EXIT_TIMEOUT = 4
EXIT_STDOUT_CLOSED = 128 + 13  # as a shell reports a command ended by SIGPIPE


@cache
def consoles() -> tuple[Console, Console]:
    """``(stderr, stdout)`` rich consoles, made on first use (rich takes time to import)."""
    from rich.console import Console

    return Console(stderr=True), Console()


def err_print(*args: Any, **kwargs: Any) -> None:
    """A message on stderr, one line per line given: never wrapped at the console's width
    (80 columns when stderr is a file or a pipe), so paths and job ids stay whole for scripts
    and logs; a terminal wraps long lines itself."""
    kwargs.setdefault("soft_wrap", True)
    consoles()[0].print(*args, **kwargs)


def fail(message: str, code: int) -> NoReturn:
    err_print(f"[bold red]error:[/] {message}", highlight=False)
    sys.exit(code)


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """One line per error and a non-zero exit; the traceback only with ``--debug``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            result = command(*args, **kwargs)
            sys.stdout.flush()  # a reader gone shows here, where it is handled, not at exit
            return result
        except (click.exceptions.Exit, click.ClickException):
            raise
        except BrokenPipeError:
            _stdout_closed()
        except Exception as exc:
            if debug:
                traceback.print_exc()
            if type(exc).__name__ == "JobFailed":  # tasks.api's, not imported for every command
                fail(str(exc), EXIT_FAILED)
            if isinstance(exc, InputError | ServiceUnavailableError) or type(exc).__name__ in (
                "JobNotFound",
                "JobFinished",
            ):
                fail(str(exc), EXIT_BAD_INPUT)
            if isinstance(exc, VtrackError):
                fail(str(exc), EXIT_FAILED)
            if isinstance(exc, TimeoutError):
                fail(str(exc), EXIT_TIMEOUT)
            fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)

    return wrapper


def _stdout_closed() -> NoReturn:
    """The reader of standard output went away (``vtrack jobs | head``): end quietly, with
    the status of a Unix tool ended by SIGPIPE, and nothing more written to the closed pipe
    (Python would otherwise complain while flushing it at exit)."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(EXIT_STDOUT_CLOSED)
