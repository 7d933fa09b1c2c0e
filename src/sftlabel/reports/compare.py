"""Agreement between two or more runs over the same samples (``sftlabel compare``).

Taxonomy runs are paired by sample ``id``, soft-label runs by ``(conversationId, messageId)``,
never by position. Each run is read once, as a stream (on every core for a big one); only a
compact tuple per sample is kept (``reports/_compare_load.py``), so memory grows with the number
of samples, not with the size of the conversations.

Every run other than the reference is compared with the reference (the second run, or
``reference=``): exact match, partial match and mean Jaccard for multi-select dimensions, Cohen's
kappa for single-select ones, per-tag precision / recall / F1 (the reference as truth),
confidence means, the most frequent disagreements with example ids and the cost ratios. With
three or more runs: a pairwise matrix of overall agreement. Krippendorff's alpha per dimension
over all runs (nominal for single-select dimensions, Jaccard distance for multi-select ones).

The result is a :class:`CompareResult` (msgspec Structs); ``to_builtins()`` gives the JSON of
``sftlabel compare --json``, whose keys are documented in docs/compare.md.

This module is the entry point; the pieces: ``_compare_load`` (reading runs and gold),
``_compare_taxonomy`` and ``_compare_soft`` (the comparisons), ``_compare_common`` (what both
share), ``_compare_types`` (the result) and ``_compare_render`` (tables, Markdown, HTML).
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from sftlabel.errors import InputError, UsageError
from sftlabel.reports._calibration import (
    DEFAULT_CATCH,
    ConfidenceCalibration,
    calibration_report,
    new_tallies,
    tally_pair,
)
from sftlabel.reports._compare_load import (
    Interner,
    load_gold,
    load_soft_run,
    load_taxonomy_run,
    show_key,
)
from sftlabel.reports._compare_soft import against_gold, compare_soft_pair
from sftlabel.reports._compare_taxonomy import (
    alpha_per_dimension,
    compare_taxonomy_pair,
    pairwise_matrices,
    swapped,
)
from sftlabel.reports._compare_types import (
    AlphaReport,
    Calibration,
    CompareResult,
    DimensionAgreement,
    DimensionSpec,
    GoldReport,
    Matrix,
    PairReport,
    RunInfo,
    SoftPairReport,
)
from sftlabel.reports._runs import RunData, open_run
from sftlabel.taxonomy import Taxonomy, load_taxonomy

SCHEMA = "sftlabel.compare/1"
SOFT_BINS = 10


# --------------------------------------------------------------------------- entry point


def _unique_names(runs: Sequence[RunData]) -> list[str]:
    names: list[str] = []
    for run in runs:
        name = run.name or run.path.name
        candidate, number = name, 2
        while candidate in names:
            candidate = f"{name} ({number})"
            number += 1
        names.append(candidate)
    return names


def _path_index(runs: list[RunData], names: list[str], path: Path) -> int:
    """The position of the run at ``path`` among ``runs`` (added to them when missing)."""
    resolved = path.resolve()
    for position, run in enumerate(runs):
        if run.path.resolve() == resolved:
            return position
    runs.append(open_run(path))
    names[:] = _unique_names(runs)
    return len(runs) - 1


def _reference_index(runs: list[RunData], names: list[str], reference: str | None) -> int:
    if reference is None:
        return 1
    if reference in names:
        return names.index(reference)
    path = Path(reference)
    if path.exists():
        return _path_index(runs, names, path)
    raise UsageError(
        f"--reference {reference!r} is neither the name of a run nor a path",
        hint=f"runs are: {', '.join(names)}",
    )


def taxonomy_dimensions(taxonomy: Taxonomy) -> list[DimensionSpec]:
    return [DimensionSpec(name=cid, select=c.select) for cid, c in taxonomy.categories.items()]


def default_taxonomy_path(runs: Sequence[RunData]) -> Path | None:
    """The taxonomy a run was labeled with (``run.json``), when it is still there."""
    for run in runs:
        taxonomy = (run.manifest or {}).get("taxonomy")
        if isinstance(taxonomy, dict) and isinstance(taxonomy.get("path"), str):
            path = Path(taxonomy["path"])
            if (path / "taxonomy.yaml").is_file():
                return path
    return None


def compare_runs(
    paths: Sequence[str | Path],
    *,
    reference: str | None = None,
    taxonomy: Taxonomy | str | Path | None = None,
    gold: str | Path | None = None,
    top: int = 10,
    examples: int = 3,
    catch: float = DEFAULT_CATCH,
    jobs: int | None = None,
) -> CompareResult:
    """Compare runs (see the module doc). ``paths`` are RUN arguments (see :func:`open_run`);
    ``reference`` is a run's name or path (default: the second run; a path that is not among
    ``paths`` is added); ``taxonomy`` gives the dimensions and their select mode (default: the
    reference run's own taxonomy when it is recorded, else the built-in one); ``gold`` is, for
    taxonomy runs, a gold run (added to the runs, and the reference unless ``reference`` is
    given) against which every other run's confidence is calibrated (``catch``: the share of
    errors the recommended arbitration threshold must catch), for soft-label runs a file of
    hard labels; ``jobs``: processes reading a big taxonomy run (default: one per core)."""
    if not 0.0 < catch <= 1.0:
        raise UsageError(f"--catch {catch}: must be above 0 and at most 1", hint="e.g. --catch 0.8")
    # a million long-lived row tuples make the cyclic collector rescan them again and again;
    # nothing built here forms a cycle
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _compare_runs(
            paths,
            reference=reference,
            taxonomy=taxonomy,
            gold=gold,
            top=top,
            examples=examples,
            catch=catch,
            jobs=jobs,
        )
    finally:
        if enabled:
            gc.enable()


def _compare_runs(
    paths: Sequence[str | Path],
    *,
    reference: str | None,
    taxonomy: Taxonomy | str | Path | None,
    gold: str | Path | None,
    top: int,
    examples: int,
    catch: float,
    jobs: int | None,
) -> CompareResult:
    opened = [open_run(p) for p in paths]
    names = _unique_names(opened)
    if not opened:
        raise UsageError("give the runs to compare", hint="sftlabel compare RUN_A RUN_B")
    gold_index: int | None = None
    if gold is not None and all(run.kind == "taxonomy" for run in opened):
        if not Path(gold).exists():
            raise InputError(f"--gold {gold}: no such file or directory")
        gold_index = _path_index(opened, names, Path(gold))
    if reference is None and gold_index is not None:
        ref = gold_index
    else:
        ref = _reference_index(opened, names, reference)
    if len(opened) < 2:
        raise UsageError(
            "compare needs two runs or more", hint="sftlabel compare RUN_A RUN_B [RUN_C ...]"
        )
    kinds = {run.kind for run in opened}
    if len(kinds) > 1:
        listing = ", ".join(f"{n} ({r.kind})" for n, r in zip(names, opened, strict=True))
        raise UsageError(
            f"cannot compare taxonomy labels with soft labels: {listing}",
            hint="compare runs of the same kind",
        )
    kind = opened[0].kind
    intern = Interner()
    pair_counts: list[dict[tuple[Any, Any], int]] | None = None
    calibrations: list[ConfidenceCalibration] = []
    if kind == "taxonomy":
        if not isinstance(taxonomy, Taxonomy):
            if taxonomy is None:
                ordered = [opened[ref], *opened]
                taxonomy = default_taxonomy_path(ordered)
            taxonomy = load_taxonomy(taxonomy)
        dims = taxonomy_dimensions(taxonomy)
        runs = [
            load_taxonomy_run(run, name, dims, intern, jobs=jobs)
            for run, name in zip(opened, names, strict=True)
        ]
        others = [r for i, r in enumerate(runs) if i != ref]
        tallies = {id(r): new_tallies(len(dims)) for r in others} if gold_index == ref else {}
        counted: list[dict[tuple[Any, Any], int]] = []
        comparisons = [
            compare_taxonomy_pair(
                r,
                runs[ref],
                dims,
                top=top,
                examples=examples,
                tallies=tallies.get(id(r)),
                counted=counted,
            )
            for r in others
        ]
        if len(runs) == 2:  # alpha's units are the pairs just counted, as (run 0, run 1)
            pair_counts = counted if ref == 1 else [swapped(c) for c in counted]
        if gold_index is not None:
            specs = [(d.name, d.select) for d in dims]
            gold_run = runs[gold_index]
            for position, run in enumerate(runs):
                if position == gold_index:
                    continue
                if id(run) in tallies:
                    found = tallies[id(run)]
                    paired = next(p.paired for p in comparisons if p.a == run.name)
                else:
                    found, paired = tally_pair(run.rows, gold_run.rows, len(dims))
                calibrations.append(
                    calibration_report(
                        run.name, gold_run.name, specs, found, paired=paired, catch=catch
                    )
                )
        soft_comparisons: list[SoftPairReport] = []
        metrics = ["all_dimensions_exact", "mean_dimension_exact"]
        gold_reports: list[GoldReport] = []
    else:
        dims = [DimensionSpec(name="hard_label", select="single")]
        runs = [load_soft_run(run, name, intern) for run, name in zip(opened, names, strict=True)]
        others = [r for i, r in enumerate(runs) if i != ref]
        comparisons = []
        soft_comparisons = [
            compare_soft_pair(r, runs[ref], top=top, examples=examples) for r in others
        ]
        metrics = ["hard_agreement"]
        gold_reports = []
        if gold is not None:
            if Path(gold).is_dir():  # a soft-label output (a strong model's, say): its hard labels
                gold_data = open_run(gold)
                if gold_data.kind != "soft":
                    raise UsageError(
                        f"--gold {gold} holds taxonomy labels; these runs are soft-label runs",
                        hint="give a soft-label output or a file of hard labels",
                    )
                loaded = load_soft_run(gold_data, Path(gold).name, intern)
                labels = {key: hard for key, (hard, _) in loaded.rows.items()}
            else:
                labels = load_gold(gold)
            gold_reports = [against_gold(r, labels, Path(gold).name) for r in runs]
    return CompareResult(
        schema=SCHEMA,
        kind=kind,
        reference=runs[ref].name,
        runs=[r.info() for r in runs],
        dimensions=dims if kind == "taxonomy" else [],
        comparisons=comparisons,
        soft_comparisons=soft_comparisons,
        matrices=pairwise_matrices(runs, len(dims), metrics) if len(runs) >= 3 else [],
        alpha=alpha_per_dimension(runs, dims, pair_counts),
        gold=gold_reports,
        confidence_calibration=calibrations,
    )


def encode_result(result: CompareResult) -> bytes:
    """The ``--json`` output (indented, UTF-8)."""
    return msgspec.json.format(msgspec.json.encode(result), indent=2) + b"\n"


__all__ = [
    "SCHEMA",
    "AlphaReport",
    "Calibration",
    "CompareResult",
    "DimensionAgreement",
    "GoldReport",
    "Matrix",
    "PairReport",
    "RunInfo",
    "SoftPairReport",
    "compare_runs",
    "encode_result",
    "load_gold",
    "show_key",
]
