"""``sftlabel cache``: inspect and prune the response cache (``stats``, ``clear``, ``show``)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich import box
from rich.table import Table
from rich.text import Text

from sftlabel.cli._common import guard, plural, stderr, stdout
from sftlabel.cli._examples import epilog
from sftlabel.config import resolve_settings
from sftlabel.errors import UsageError
from sftlabel.llm._cache_admin import (
    CacheEntry,
    cache_entry,
    cache_stats,
    clear_cache,
    parse_duration,
    run_entries,
)
from sftlabel.reports._safe import visible

app = typer.Typer(
    help="Inspect and prune the response cache (responses.sqlite).",
    epilog=epilog("cache"),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

CachePath = Annotated[
    Path | None,
    typer.Option(
        "--cache",
        help="Response cache file [default: `<cache dir>/responses.sqlite`, see `sftlabel info`].",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")]


def _path(cache: Path | None) -> Path:
    if cache is not None:
        return cache
    folder = resolve_settings({}).get("cache_dir") or "."
    return Path(folder) / "responses.sqlite"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"


def _write_json(data: object) -> None:
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(data), indent=2) + b"\n")
    sys.stdout.buffer.flush()


@app.command()
@guard
def stats(cache: CachePath = None, json_output: JsonOption = False) -> None:
    """Entries, size, ages and models of the cache."""
    result = cache_stats(_path(cache))
    if json_output:
        _write_json(
            {
                "path": str(result.path),
                "file_bytes": result.file_bytes,
                "entries": result.entries,
                "body_bytes": result.body_bytes,
                "oldest": _when(result.oldest) if result.oldest else None,
                "newest": _when(result.newest) if result.newest else None,
                "models": [
                    {"model": m.model, "entries": m.entries, "bytes": m.bytes}
                    for m in result.models
                ],
            }
        )
        return
    table = Table(box=None, show_header=False)
    table.add_column(style="dim")
    table.add_column(overflow="fold")
    table.add_row("file", Text(str(result.path)))
    table.add_row("size on disk", _size(result.file_bytes))
    table.add_row("entries", f"{result.entries:,} ({_size(result.body_bytes)} of answers)")
    table.add_row("oldest", _when(result.oldest))
    table.add_row("newest", _when(result.newest))
    stdout.print(table)
    if result.models:
        models = Table(box=box.SIMPLE_HEAD, title="by model", title_justify="left")
        models.add_column("model", overflow="fold")
        models.add_column("entries", justify="right", no_wrap=True)
        models.add_column("size", justify="right", no_wrap=True)
        for use in result.models:
            models.add_row(Text(visible(use.model)), f"{use.entries:,}", _size(use.bytes))
        stdout.print(models)


@app.command()
@guard
def clear(
    older_than: Annotated[
        str | None,
        typer.Option(
            help="Only answers cached longer ago than this: 30d, 12h, 90m, 2w or seconds "
            "[default: every answer].",
            show_default=False,
            metavar="DURATION",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Only the answers of this model.", show_default=False)
    ] = None,
    cache: CachePath = None,
) -> None:
    """Delete cached answers (all, or the older ones), then compact the file.

    A run still in progress may use the cache at the same time; the answers it needs again are
    then paid for again.
    """
    seconds = parse_duration(older_than) if older_than is not None else None
    path = _path(cache)
    deleted = clear_cache(path, older_than=seconds, model=model)
    which = f" older than {older_than}" if older_than else ""
    which += f" of model {model}" if model else ""
    stderr.print(f"deleted {plural(deleted, 'cached answer')}{which} from {path}", markup=False)


@app.command()
@guard
def show(
    key: Annotated[
        str | None,
        typer.Argument(help="A cache key (or its first hex digits).", show_default=False),
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="List the answers a run cached (its model, during its sessions).",
            show_default=False,
            metavar="RUN",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="With --run: list at most N.", show_default=False)
    ] = None,
    cache: CachePath = None,
    json_output: JsonOption = False,
) -> None:
    """Show one cached answer (its response body, as JSON on stdout), or list a run's."""
    if (key is None) == (run is None):
        raise UsageError("give a KEY or --run RUN", hint="e.g. sftlabel cache show --run runs/r1")
    path = _path(cache)
    if key is not None:
        entry, body = cache_entry(path, key)
        stderr.print(
            f"{entry.key} · {entry.model} · cached {_when(entry.created)} · {_size(entry.size)}",
            markup=False,
        )
        sys.stdout.buffer.write(msgspec.json.format(body, indent=2) + b"\n")
        sys.stdout.buffer.flush()
        return
    assert run is not None
    entries = run_entries(path, run, limit=limit)
    if json_output:
        _write_json([_entry_json(e) for e in entries])
        return
    stderr.print(f"{plural(len(entries), 'answer')} cached by {run} in {path}", markup=False)
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("key", no_wrap=True)
    table.add_column("cached (UTC)", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("answer", overflow="fold")
    for entry in entries:
        table.add_row(
            entry.key[:12],
            _when(entry.created).removesuffix(" UTC"),
            _size(entry.size),
            Text(visible(entry.preview)),
        )
    stdout.print(table)


def _entry_json(entry: CacheEntry) -> dict[str, object]:
    return {
        "key": entry.key,
        "created": _when(entry.created),
        "model": entry.model,
        "bytes": entry.size,
        "preview": entry.preview,
    }
