"""Errors a user can act on.

Every error that reaches a user (the CLI, the job status, the manifest) is a
:class:`VtrackError` whose message is one line that says what is wrong and where.
Anything else that escapes is a bug and is reported with its traceback.
"""

from __future__ import annotations


class VtrackError(Exception):
    """Base class of the errors vtrack reports to its users as one line."""


class InputError(VtrackError):
    """The input is wrong: a missing file, a file that is not a video, malformed JSON..."""


class AnnotationFormatError(InputError):
    """An annotation file that cannot be read; the message names the file and the field."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")


class StorageError(VtrackError):
    """A storage operation failed (missing object, refused path, unreachable bucket)."""


class NotFoundError(StorageError, InputError):
    """The file or object does not exist."""


class UnsafePathError(StorageError, InputError):
    """A local path or object name that resolves outside its configured root."""


class UnsupportedURIError(InputError):
    """A URI whose scheme vtrack does not handle."""


class VideoError(InputError):
    """A file that cannot be decoded as a video (not a video, truncated, no video stream)."""


class BackendError(VtrackError):
    """An annotation backend failed in a way that retrying will not fix."""


class TransientBackendError(VtrackError):
    """An annotation backend failed in a way that may succeed when tried again."""


class ConfigurationError(VtrackError):
    """A setting is missing or wrong; the message names the setting."""


class ServiceUnavailableError(VtrackError):
    """The broker or the result backend cannot be reached: nothing was started.

    The message names the URL (without its password) and the setting that holds it.
    """
