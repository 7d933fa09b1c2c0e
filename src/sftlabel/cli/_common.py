"""What every command shares: the stderr console, error reporting, output files."""

from __future__ import annotations

import functools
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated, Any, ParamSpec, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sftlabel.errors import SftlabelError, UsageError
from sftlabel.reports._safe import visible

P = ParamSpec("P")
R = TypeVar("R")


def _no_type_on_flags() -> None:
    """Typer's rich help shows a ``<bool>`` type beside every flag (``--json <bool>``), as if it
    took a value: show nothing for flags, as the plain help does."""
    from typer.core import TyperOption

    original = TyperOption.display_type_rich
    if getattr(original, "_sftlabel", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if (self.is_flag or self.count) and self.metavar is None:
            return None
        return original(self, ctx)

    display_type_rich._sftlabel = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


class _HelpTable(Table):
    """The options table of Typer's rich help, with the option names never cut: at 80 columns
    rich shrinks every column alike (``--sparse-thresh…``); names stay whole and the type and
    help columns (the last two) wrap instead."""

    def add_row(self, *renderables: Any, **options: Any) -> None:
        super().add_row(*renderables, **options)
        for column in self.columns[:-2]:
            column.no_wrap = True
        if self.columns:
            self.columns[-1].overflow = "fold"  # a long default folds rather than being cut


def _whole_option_names() -> None:
    import typer.rich_utils

    typer.rich_utils.Table = _HelpTable  # type: ignore[attr-defined]


_no_type_on_flags()
_whole_option_names()

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

JobsOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Processes reading a big run (over 128 MiB of labels) [default: one per core].",
        show_default=False,
    ),
]
"""``--jobs`` of the commands that read a whole run (report, compare)."""


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


def _words(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)


def fit_tables(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: str,
    width: int,
) -> list[Table]:
    """A table that fits ``width`` columns without cutting a figure: right-aligned (number)
    columns keep their full width, text wraps (folds) and headers wrap between words; when the
    columns still do not fit, the table is split into several that repeat the first column.

    Every value is shown as text (no rich markup) with control characters made visible.
    """
    count = len(header)
    needed = []
    for column in range(count):
        cells = [row[column] for row in rows]
        if align[column] == "r":
            cell = max((len(c) for c in cells), default=0)
        elif column == 0:
            cell = min(max((len(c) for c in cells), default=0), 30)
        else:  # text folds; keep room for a short word
            cell = min(max((len(c) for c in cells), default=0), max(12, _words(" ".join(cells))))
            cell = min(cell, 30)
        needed.append(max(cell, _words(header[column]), 1))
    # a column takes its width, one space of padding each side and one separator
    first = 1 + needed[0] + 3
    chunks: list[list[int]] = [[]]
    used = first
    for column in range(1, count):
        if chunks[-1] and used + needed[column] + 3 > width:
            chunks.append([])
            used = first
        chunks[-1].append(column)
        used += needed[column] + 3
    tables = []
    for number, chunk in enumerate(chunks):
        suffix = f" ({number + 1}/{len(chunks)})" if len(chunks) > 1 else ""
        table = Table(
            title=Text(visible(title + suffix)),
            title_justify="left",
            title_style="italic",
            box=box.SIMPLE_HEAD,
        )
        for column in [0, *chunk]:
            keep = column == 0 or align[column] == "r"  # never narrower than its figures
            name = visible(header[column])
            if keep:
                name = "\n".join(textwrap.wrap(name, needed[column])) or name
            table.add_column(
                Text(name),
                justify="right" if align[column] == "r" else "left",
                overflow="fold",
                width=needed[column] if keep else None,
            )
        for row in rows:
            table.add_row(*(Text(visible(row[column])) for column in [0, *chunk]))
        tables.append(table)
    return tables
