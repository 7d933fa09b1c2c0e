"""The project's exception hierarchy.

Every error the project raises on purpose derives from :class:`SftlabelError`. The CLI catches it at
the command boundary and prints one line (``error: <message>``) plus an optional hint saying how to
fix it, never a traceback.
"""

from __future__ import annotations


class SftlabelError(Exception):
    """Base class of every error sftlabel raises on purpose.

    ``hint`` tells the user how to fix the problem; ``exit_code`` is what the CLI exits with.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(SftlabelError):
    """The command line or the configuration asks for something impossible."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file or environment variable holds an invalid value."""


class TaxonomyError(SftlabelError):
    """A taxonomy directory is missing, unreadable or inconsistent."""


class InputError(SftlabelError):
    """An input path cannot be read at all (missing, not a file or directory, permission)."""
