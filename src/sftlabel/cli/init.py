"""``sftlabel init``: write a commented example config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sftlabel.cli._common import stderr
from sftlabel.cli._examples import epilog
from sftlabel.config import CONFIG_NAME, load_config_file
from sftlabel.config_example import EXAMPLE_CONFIG
from sftlabel.errors import UsageError


def init(
    path: Annotated[
        Path,
        typer.Argument(help="Where to write it.", show_default=False),
    ] = Path(CONFIG_NAME),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write a commented example config file (`sftlabel.toml` here by default).

    Every line is commented out: uncomment what you need. The `[label]` and `[softlabel]`
    tables hold the defaults of those commands (the dataset, the output, the model, the
    endpoint or Azure deployment, the Key Vault secret ...), so that `sftlabel softlabel
    --no-rationales` runs the configured job.
    """
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXAMPLE_CONFIG, "utf-8")
    load_config_file(path)  # what we write must load
    stderr.print(f"wrote {path}: uncomment the settings you need", markup=False)


init.command_settings = {"epilog": epilog("init")}  # type: ignore[attr-defined]
