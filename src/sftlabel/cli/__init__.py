"""The ``sftlabel`` command line: a Typer app whose commands are entry-point plugins.

Every command, the built-in ones included, is registered in the ``sftlabel.commands`` entry-point
group. An entry point names either a function (registered as a command under the entry point's
name; an optional ``command_settings`` attribute holds extra keyword arguments for
``Typer.command``) or a :class:`typer.Typer` app (added as a group of subcommands). A plugin
that fails to load prints one warning line; the rest of the CLI keeps working.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from sftlabel._version import __version__
from sftlabel.cli._common import guard, stderr, warn
from sftlabel.plugins import COMMANDS_GROUP, load_group

HELP = """Label SFT training data with LLMs.

Reads ShareGPT, Pangu, OpenAI-messages and Copilot turn-record data (JSON, JSONL, .gz, whole
directory trees), slices multi-turn conversations into one sample per assistant reply, labels
them on a 9-dimension taxonomy (`label`) and every user turn with a reasoning soft label
(`softlabel`) through any OpenAI-compatible endpoint, then reports (`report`), exports for human
review (`review`) and compares runs and models (`compare`).
"""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sftlabel {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Show the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Label SFT training data with LLMs."""


def build_app() -> typer.Typer:
    """The CLI with every command registered through the ``sftlabel.commands`` entry points."""
    app = typer.Typer(
        name="sftlabel",
        help=HELP,
        no_args_is_help=True,
        add_completion=True,  # --install-completion, --show-completion
        pretty_exceptions_show_locals=False,  # locals would leak API keys
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode="markdown",
    )
    app.callback()(_root)
    loaded = load_group(COMMANDS_GROUP)
    for info in loaded.failures:
        warn(
            f"plugin command {info.name!r} ({info.value}, from {info.dist}) "
            f"failed to load: {info.error}"
        )
    for name, obj in loaded.objects.items():
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=name)
        elif callable(obj):
            settings = getattr(obj, "command_settings", None) or {}
            app.command(name=name, **settings)(guard(obj))
        else:
            warn(f"plugin command {name!r} is neither a function nor a Typer app; ignored")
    return app


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app = build_app()
    try:
        app(args=argv, prog_name="sftlabel")
    except KeyboardInterrupt:
        stderr.print("interrupted", style="yellow")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("SFTLABEL_DEBUG"):
            raise
        stderr.print(
            f"internal error: {type(exc).__name__}: {exc} — this is a bug in sftlabel or a plugin; "
            "rerun with SFTLABEL_DEBUG=1 to see the traceback and report it",
            style="bold red",
            markup=False,
        )
        sys.exit(70)
