"""Entry-point plugins: commands, input formats and soft-label strategies.

Built-ins are registered through the very same entry-point groups as third-party plugins, so the
plugin path is always exercised. A plugin that fails to load is recorded (and reported by the CLI
as one warning line); it never breaks the rest of sftlabel.

``SFTLABEL_LOAD_PLUGINS`` restricts third-party plugins to a comma-separated list of distribution
names (empty: none); the built-ins always load. Useful to rule a plugin out when debugging.
"""

from __future__ import annotations

import functools
import os
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

import msgspec

COMMANDS_GROUP = "sftlabel.commands"
FORMATS_GROUP = "sftlabel.formats"
STRATEGIES_GROUP = "sftlabel.strategies"
GROUPS = (COMMANDS_GROUP, FORMATS_GROUP, STRATEGIES_GROUP)
BUILTIN_DIST = "sftlabel"
ALLOW_ENV = "SFTLABEL_LOAD_PLUGINS"


class PluginInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One entry point of a plugin group and what became of it."""

    group: str
    name: str
    value: str
    dist: str
    builtin: bool
    status: Literal["loaded", "failed", "disabled"]
    error: str | None = None


class Loaded(msgspec.Struct, kw_only=True):
    """The loaded objects of a group (in discovery order) and the record of every entry point."""

    objects: dict[str, Any]
    infos: list[PluginInfo]

    @property
    def failures(self) -> list[PluginInfo]:
        return [info for info in self.infos if info.status == "failed"]


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "?"


def _allowed() -> set[str] | None:
    raw = os.environ.get(ALLOW_ENV)
    if raw is None:
        return None
    return {part.strip().lower() for part in raw.split(",") if part.strip()}


def _info(
    group: str,
    ep: EntryPoint,
    status: Literal["loaded", "failed", "disabled"],
    error: str | None = None,
) -> PluginInfo:
    dist = _dist_name(ep)
    return PluginInfo(
        group=group,
        name=ep.name,
        value=ep.value,
        dist=dist,
        builtin=dist.lower() == BUILTIN_DIST,
        status=status,
        error=error,
    )


@functools.cache
def load_group(group: str) -> Loaded:
    """Load every entry point of ``group`` once per process (built-ins first, then by name)."""
    allowed = _allowed()
    points = sorted(
        entry_points(group=group),
        key=lambda ep: (_dist_name(ep).lower() != BUILTIN_DIST, _dist_name(ep).lower(), ep.name),
    )
    objects: dict[str, Any] = {}
    infos: list[PluginInfo] = []
    for ep in points:
        builtin = _dist_name(ep).lower() == BUILTIN_DIST
        if not builtin and allowed is not None and _dist_name(ep).lower() not in allowed:
            infos.append(_info(group, ep, "disabled", f"not listed in {ALLOW_ENV}"))
        elif ep.name in objects:
            infos.append(_info(group, ep, "failed", f"name {ep.name!r} is already taken"))
        else:
            try:
                objects[ep.name] = ep.load()
            except Exception as exc:  # a broken plugin must not break the CLI
                infos.append(_info(group, ep, "failed", f"{type(exc).__name__}: {exc}".strip()))
            else:
                infos.append(_info(group, ep, "loaded"))
    return Loaded(objects=objects, infos=infos)


def all_plugins() -> list[PluginInfo]:
    """Every entry point of every sftlabel group, loaded or not."""
    return [info for group in GROUPS for info in load_group(group).infos]
