"""Where the records of each input file go, and the guarantee that they stay inside the output.

A run over several inputs (or a directory) mirrors them: each input file gets a *part*, a
relative path inside the run (``train/short_3_to_5_turns``). Part names are built from resolved
paths, component by component, and no component can be empty, ``.`` or ``..``: an input of
``.``, ``..`` or a file named ``...json`` gives a named part, never a path that climbs out.
Every path a store opens is checked with :func:`inside` first.
"""

from __future__ import annotations

import re
from pathlib import Path

from sftlabel.errors import UsageError

DATA_SUFFIXES = (".json.gz", ".jsonl.gz", ".jsonl", ".json", ".gz", ".parquet", ".arrow")
_UNSAFE = re.compile(r"[\x00-\x1f/\\]")


def bare(name: str) -> str:
    """A file name without its data suffixes (``a.jsonl.gz`` -> ``a``), made safe as a path
    component (never empty, ``.`` or ``..``)."""
    lowered = name.lower()
    for suffix in DATA_SUFFIXES:
        if lowered.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return safe_component(name)


def safe_component(name: str) -> str:
    """One path component that cannot be empty, hidden-relative or climb out of its folder."""
    name = _UNSAFE.sub("_", name).strip()
    if not name:
        return "data"
    if set(name) == {"."}:
        return "_" * len(name)
    return name


class PartMap:
    """Which part (sub-directory of the run) the records of an input file go to."""

    def __init__(self, inputs: list[str]) -> None:
        self.inputs = [Path(i) for i in inputs]
        self.sources = [Path(i).resolve() for i in inputs]
        self.mirror = len(self.inputs) > 1 or any(p.is_dir() for p in self.inputs)
        names = [_source_name(p) for p in self.sources]
        # two inputs with the same name (a/data, b/data) get distinct, deterministic parts
        seen: dict[str, int] = {}
        self.prefixes: list[str] = []
        for name in names:
            count = seen.get(name, 0) + 1
            seen[name] = count
            self.prefixes.append(name if count == 1 else f"{name}~{count}")
        self._cache: dict[str, str] = {}

    def __call__(self, path: str | None) -> str:
        if not self.mirror or path is None:
            return ""
        known = self._cache.get(path)
        if known is None:
            known = self._cache[path] = self._part(Path(path).resolve())
        return known

    def _part(self, file: Path) -> str:
        several = len(self.sources) > 1
        for source, prefix in zip(self.sources, self.prefixes, strict=True):
            head = [prefix] if several else []
            if file == source:
                return prefix if several else bare(file.name)
            if file.is_relative_to(source):
                relative = file.relative_to(source)
                folders = [safe_component(p) for p in relative.parent.parts]
                return "/".join([*head, *folders, bare(relative.name)])
        return bare(file.name)


def _source_name(path: Path) -> str:
    return bare(path.name) if path.name else "root"


def inside(root: Path, path: Path) -> Path:
    """``path`` if it resolves inside ``root``; a :class:`UsageError` otherwise (a part name or a
    link that would write outside the output)."""
    resolved_root = root.resolve()
    resolved = path.resolve()
    if resolved != resolved_root and not resolved.is_relative_to(resolved_root):
        raise UsageError(f"refusing to write {path}: it resolves outside the output {root}")
    return path


def check_not_input(output: Path, inputs: list[str]) -> None:
    """An output must never be an input file, nor the folder of a raw input file itself."""
    out = output.resolve()
    for given in inputs:
        if "://" in given:
            continue
        source = Path(given).resolve()
        if out == source:
            raise UsageError(f"the output {output} is the input {given}")
        if source.is_relative_to(out):
            raise UsageError(
                f"the output {output} contains the input {given}",
                hint="write the run somewhere else with -o",
            )
