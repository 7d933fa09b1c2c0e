"""What every command shares: the stderr console, error reporting, output files."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from sftlabel.errors import SftlabelError, UsageError

P = ParamSpec("P")
R = TypeVar("R")

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
"""Progress, warnings and summaries go to stderr; data goes to stdout or files."""

stdout = Console(highlight=False)
"""Human-readable reports of commands whose output *is* the report (detect, info)."""


InputPaths = Annotated[
    list[Path],
    typer.Argument(
        help="Files or directories (searched recursively for .json/.jsonl[.gz], .parquet, .arrow).",
        show_default=False,
        metavar="PATH",
    ),
]
"""The input argument of every command that reads conversations."""


def error_line(exc: SftlabelError) -> str:
    """The one line an error is reported with."""
    return f"error: {exc.message}" + (f" — {exc.hint}" if exc.hint else "")


def print_error(exc: SftlabelError) -> None:
    stderr.print(error_line(exc), style="bold red", markup=False)


def warn(message: str) -> None:
    stderr.print(f"warning: {message}", style="yellow", markup=False)


def guard(func: Callable[P, R]) -> Callable[P, R]:
    """Report the project's errors as one line on stderr and exit with their code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SftlabelError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


@contextmanager
def output_stream(target: str) -> Iterator[IO[bytes]]:
    """A binary stream for ``-o``: ``-`` is stdout; a file is written as ``<name>.partial`` and
    renamed on success, so an interrupted run never leaves a half-written file under the name."""
    if target == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(target)
    if path.exists() and not path.is_file() and not path.is_dir():
        # a device or a pipe (/dev/null, a FIFO): write to it directly
        with path.open("wb") as handle:
            yield handle
        return
    if path.is_dir():
        raise UsageError(
            f"output {path} is a directory", hint="give a file name, e.g. -o out.jsonl"
        )
    if not path.parent.exists():
        raise UsageError(f"output directory {path.parent} does not exist", hint="create it first")
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb", buffering=1024 * 1024) as handle:
            yield handle
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)


@contextmanager
def progress(label: str) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr (only when it is a terminal); yields ``update(text)``."""
    if not stderr.is_terminal:
        yield lambda _text: None
        return
    with stderr.status(label) as status:
        yield lambda text: status.update(f"{label} {text}")


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (many or word + 's')}"
