"""``sftlabel info``: version, effective configuration, taxonomy and plugins."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from sftlabel._version import __version__
from sftlabel.cli._common import stdout
from sftlabel.cli._examples import epilog
from sftlabel.config import COMMANDS, defined_profiles, resolve_settings
from sftlabel.model import encode
from sftlabel.plugins import all_plugins
from sftlabel.taxonomy import load_taxonomy


def info(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object to stdout.")
    ] = False,
    taxonomy: Annotated[
        Path | None,
        typer.Option(
            help="Taxonomy directory to load and validate (env SFTLABEL_TAXONOMY).",
            show_default="built-in",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Config file (env SFTLABEL_CONFIG; default ./sftlabel.toml, "
            "then the user config dir)."
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            help="Show the configuration with this [profiles.NAME] table applied.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show the version, the effective configuration (secrets redacted) and where each value comes
    from (with `--profile NAME`: that profile applied), the profiles of the config file, the
    taxonomy (categories, tag counts, select modes) and the registered plugins."""
    settings = resolve_settings({"taxonomy": taxonomy}, config_file=config, profile=profile)
    tax = load_taxonomy(settings.get("taxonomy"))
    data: dict[str, Any] = {
        "version": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "config_file": settings.config_file,
        "config": settings.redacted(),
        "profile": profile,
        "profiles": defined_profiles(config),
        "defaults": _job_defaults(config, profile),
        "taxonomy": {
            "version": tax.version,
            "name": tax.name,
            "path": str(tax.path),
            "total": tax.total,
            "categories": tax.summary(),
        },
        "plugins": [
            {
                k: v
                for k, v in {
                    "group": p.group,
                    "name": p.name,
                    "value": p.value,
                    "dist": p.dist,
                    "builtin": p.builtin,
                    "status": p.status,
                    "error": p.error,
                }.items()
                if v is not None
            }
            for p in all_plugins()
        ],
    }
    if json_output:
        sys.stdout.buffer.write(encode(data) + b"\n")
        return
    _render(data)


def _job_defaults(config: Path | None, profile: str | None) -> dict[str, dict[str, Any]]:
    """Each run command's effective settings and job defaults from its config table (and the
    selected profile)."""
    shown: dict[str, dict[str, Any]] = {}
    for command in COMMANDS:
        settings = resolve_settings(config_file=config, command=command, profile=profile)
        entries: dict[str, Any] = {}
        for key, value in settings.defaults.items():
            if key in settings.profile_defaults:
                where = f"{settings.config_file} [profiles.{profile}]"
                entries[key] = {"value": value, "source": "profile", "profile": profile}
                entries[key]["from"] = where
            else:
                entries[key] = {"value": value, "source": "config", "from": settings.config_file}
        for key, entry in settings.redacted().items():
            if entry.get("source") == "config" and f"[{command}]" in str(entry.get("from", "")):
                entries[key] = entry
        shown[command] = entries
    return shown


def _source(entry: dict[str, Any]) -> str:
    """``profile gold (file [profiles.gold])``, ``env (SFTLABEL_MODEL)``, ``default`` ..."""
    source = str(entry["source"])
    if source == "profile" and entry.get("profile"):
        source = f"profile {entry['profile']}"
    return source + (f" ({entry['from']})" if "from" in entry else "")


def _profiles_table(profiles: dict[str, dict[str, Any]], selected: str | None) -> Table:
    """One row per key of each profile (long values fold; nothing is cut at 80 columns)."""
    table = Table(
        title=Text("profiles ([profiles.NAME] of the config file; select with --profile NAME)"),
        title_justify="left",
        box=None,
        header_style="dim",
    )
    table.add_column("profile", no_wrap=True)
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, values in profiles.items():
        label = name + (" (selected)" if name == selected else "")
        for position, (key, value) in enumerate(values.items()):
            table.add_row(Text(label if position == 0 else ""), Text(key), Text(str(value)))
        if not values:
            table.add_row(Text(label), Text("—"), Text("(empty)"))
    return table


def _render(data: dict[str, Any]) -> None:
    out = stdout
    out.print(
        Text(f"sftlabel {data['version']}", style="bold"),
        Text(f"(Python {data['python']})", style="dim"),
    )
    out.print()
    config = Table(title="configuration", title_justify="left", box=None, header_style="dim")
    for column in ("setting", "value", "source"):
        config.add_column(column)
    for key, entry in data["config"].items():
        source = _source(entry)
        value = entry["value"]
        shown = Text("—" if value is None else str(value), style="dim" if value is None else "")
        config.add_row(Text(key), shown, Text(source, style="dim"))
    out.print(config)
    out.print(Text(f"config file: {data['config_file'] or 'none'}", style="dim"))
    if data["profiles"]:
        out.print()
        out.print(_profiles_table(data["profiles"], data["profile"]))
    for command, values in data["defaults"].items():
        if not values:
            continue
        out.print()
        table = Table(
            title=Text(
                f"defaults of `sftlabel {command}` ([{command}] of the config file"
                + (f", profile {data['profile']})" if data["profile"] else ")")
            ),
            title_justify="left",
            box=None,
            header_style="dim",
        )
        for column in ("option", "value", "source"):
            table.add_column(column)
        for key, entry in values.items():
            source = _source(entry)
            table.add_row(Text(key), Text(str(entry["value"])), Text(source, style="dim"))
        out.print(table)
    out.print()
    tax = data["taxonomy"]
    table = Table(
        title=f"taxonomy {tax['name']} v{tax['version']} — {tax['total']} tags ({tax['path']})",
        title_justify="left",
        box=None,
        header_style="dim",
    )
    for column in ("category", "tags", "select", "subcategories"):
        table.add_column(column, justify="right" if column == "tags" else "left")
    for cid, cat in tax["categories"].items():
        table.add_row(
            cid, str(cat["count"]), cat["select"], ", ".join(cat.get("subcategories", []))
        )
    out.print(table)
    out.print()
    plugins = Table(title="plugins", title_justify="left", box=None, header_style="dim")
    for column in ("group", "name", "from", "status"):
        plugins.add_column(column)
    for plugin in data["plugins"]:
        status = plugin["status"] + (f": {plugin['error']}" if "error" in plugin else "")
        style = {"loaded": "", "failed": "red", "disabled": "yellow"}[plugin["status"]]
        plugins.add_row(
            plugin["group"], plugin["name"], Text(plugin["value"]), Text(status, style=style)
        )
    out.print(plugins)


info.command_settings = {"epilog": epilog("info")}  # type: ignore[attr-defined]
