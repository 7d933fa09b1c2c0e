"""Terminal safety: values from the data printed inertly, and a closed stdout pipe."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

# C0 and C1 control characters, DEL, and the bidirectional overrides/isolates that can make a
# line display something else than it holds ("Trojan source").
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\x00``,
    ``\\u202e``), so ids and values from the data cannot move the cursor, change colours or
    reorder a line; tabs and line breaks are kept."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


@contextmanager
def closed_pipe_is_fine(console: Console | None = None) -> Iterator[None]:
    """End the command quietly with exit 0 when stdout's reader goes away (``| head``).

    ``console``: a rich Console writing to stdout; rich ends the process with exit 1 on a
    broken pipe by default (``Console.on_broken_pipe``), which is replaced here.
    """

    def broken() -> None:
        raise BrokenPipeError

    if console is not None:
        console.on_broken_pipe = broken  # type: ignore[method-assign]
    try:
        yield
    except BrokenPipeError:
        # Python would report the failed final flush of stdout at exit: point it at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None
    finally:
        if console is not None:
            del console.on_broken_pipe
