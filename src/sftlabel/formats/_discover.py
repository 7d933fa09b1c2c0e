"""Finding input files: directory walks, and what they leave out (and why)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from sftlabel.errors import InputError
from sftlabel.model import Location, Problem

COLUMNAR_SUFFIXES = (".parquet", ".arrow")
"""Parquet and Arrow files (``datasets`` ``save_to_disk`` / ``push_to_hub``); read with pyarrow,
the ``sftlabel[parquet]`` extra."""

SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz", *COLUMNAR_SUFFIXES)
"""File names a directory walk picks up."""

SKIPPED_NAMES = frozenset(
    {
        "metadata.json",
        "labeling_metadata.json",
        # Hugging Face `datasets` save_to_disk: beside the .arrow files
        "dataset_info.json",
        "state.json",
        "dataset_dict.json",
    }
)
"""Dataset-level metadata files next to the data; skipped by directory walks (never by name)."""

RUN_MANIFESTS = ("run.json", "labeling_metadata.json")
"""Files that mark a folder as sftlabel's own output (a run directory, a ``LABELED_`` folder):
directory walks below the named input skip such folders whole."""


class Scan(NamedTuple):
    """The input files of a set of paths, and notes about what directory walks left out."""

    files: list[tuple[Path, str]]
    """Each file and its tag: its path relative to the directory it was found in (or its name,
    for a file named explicitly), used to tell apart the ids of different files."""
    notes: list[Problem]
    """One ``skipped-files`` warning per walked directory that left out files other than
    dataset metadata (sftlabel outputs, files that are not data), by reason."""


def discover(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and directories into the list of input files, in a stable order (see
    :func:`scan`)."""
    return [path for path, _ in scan(paths).files]


def scan(paths: Iterable[str | os.PathLike[str]]) -> Scan:
    """Expand files and directories into the input files, in a stable order.

    Directories are searched recursively for ``*.json``/``*.jsonl`` (optionally ``.gz``),
    ``*.parquet`` and ``*.arrow``, skipping hidden entries, dataset metadata files and
    sftlabel's own outputs below the named directory (folders with a ``run.json`` or a
    ``labeling_metadata.json``); what was skipped is counted in the notes. Raises
    :class:`InputError` for a path that does not exist or when nothing readable is found.
    """
    paths = list(paths)
    found: list[tuple[Path, str]] = []
    notes: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            skipped: dict[str, list[tuple[str, int]]] = {}
            found.extend(_walk(path, skipped))
            if set(skipped) - {"dataset metadata"}:
                # (the metadata files of a dataset layout alone are expected: no note)
                notes.append(_skipped_note(path, skipped))
        elif path.is_file() or (path.exists() and not path.is_dir()):
            found.append((path, path.name))
        else:
            raise InputError(
                f"no such file or directory: {path}",
                hint="check the path; inputs are files or directories of .json/.jsonl files",
            )
    if not found:
        shown = ", ".join(str(p) for p in paths)
        why = "; ".join(note.message for note in notes)
        raise InputError(
            f"no .json, .jsonl, .parquet or .arrow files found in {shown}"
            + (f" ({why})" if why else ""),
            hint="point at a file or a directory tree containing *.json / *.jsonl (optionally "
            ".gz), *.parquet or *.arrow",
        )
    return Scan(found, notes)


def _walk(root: Path, skipped: dict[str, list[tuple[str, int]]]) -> Iterator[tuple[Path, str]]:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here != root and _is_sftlabel_output(here, filenames):
            kind = "a run" if "run.json" in filenames else "soft labels"
            inside = sum(
                sum(1 for name in files if not name.startswith("."))
                for _, _, files in os.walk(here)
            )
            skipped.setdefault("in sftlabel outputs", []).append(
                (f"{here.relative_to(root).as_posix()}/ ({kind})", inside)
            )
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            relative = (here / name).relative_to(root).as_posix()
            if name in SKIPPED_NAMES:
                skipped.setdefault("dataset metadata", []).append((relative, 1))
            elif name.lower().endswith(SUFFIXES):
                yield here / name, relative
            else:
                skipped.setdefault("not data files", []).append((relative, 1))


def _is_sftlabel_output(folder: Path, filenames: list[str]) -> bool:
    if "labeling_metadata.json" in filenames:
        return True
    if "run.json" not in filenames:
        return False
    try:
        with (folder / "run.json").open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return b'"sftlabel"' in head


def _skipped_note(root: Path, skipped: dict[str, list[tuple[str, int]]]) -> Problem:
    parts = []
    total = 0
    for reason, entries in skipped.items():
        count = sum(n for _, n in entries)
        total += count
        names = [name for name, _ in entries]
        shown = ", ".join(names[:3]) + (f", … {len(names) - 3:,} more" if len(names) > 3 else "")
        parts.append(f"{count:,} {reason} ({shown})")
    return Problem(
        severity="warning",
        code="skipped-files",
        message=f"the directory walk skipped {total:,} file(s): {'; '.join(parts)}; "
        "name a file explicitly to read it",
        location=Location(path=str(root)),
    )
