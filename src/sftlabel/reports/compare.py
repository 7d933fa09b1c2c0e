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
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from sftlabel.errors import InputError, UsageError
from sftlabel.reports._agreement import (
    AlphaAccumulator,
    CalibrationAccumulator,
    TagCounts,
    cohen_kappa,
    jaccard,
    pearson,
    spearman,
)
from sftlabel.reports._calibration import (
    DEFAULT_CATCH,
    ConfidenceCalibration,
    Tally,
    calibration_report,
    new_tallies,
    tally_pair,
)
from sftlabel.reports._compare_load import (
    Interner,
    LoadedRun,
    load_gold,
    load_soft_run,
    load_taxonomy_run,
    show_key,
)
from sftlabel.reports._compare_types import (
    AlphaReport,
    Calibration,
    CalibrationBin,
    CompareResult,
    DimensionAgreement,
    DimensionSpec,
    Disagreement,
    GoldReport,
    Matrix,
    PairReport,
    Ratio,
    Resources,
    RunInfo,
    SoftPairReport,
    TagScore,
    Unpaired,
)
from sftlabel.reports._runs import RunData, open_run
from sftlabel.taxonomy import Taxonomy, load_taxonomy

SCHEMA = "sftlabel.compare/1"
NONE = "(none)"
"""How an empty value (no tag) is shown in disagreements and confusion tables."""
SOFT_BINS = 10


# --------------------------------------------------------------------------- comparing


def _show(value: Any) -> str:
    if isinstance(value, frozenset):
        return ", ".join(sorted(value)) if value else NONE
    return NONE if value is None else str(value)


def _mean(total: float, count: int) -> float | None:
    return total / count if count else None


def _share(count: int, total: int) -> float | None:
    return count / total if total else None


class _Disagreements:
    """Counts of (value A, value B) pairs with a few example keys each."""

    def __init__(self, examples: int) -> None:
        self.counts: Counter[tuple[Any, Any]] = Counter()
        self.examples: dict[tuple[Any, Any], list[str]] = {}
        self.limit = examples

    def add(self, a: Any, b: Any, key: str) -> None:
        pair = (a, b)
        self.counts[pair] += 1
        kept = self.examples.setdefault(pair, [])
        if len(kept) < self.limit:
            kept.append(key)

    def top(self, n: int, show: Callable[[Any], str] = _show) -> list[Disagreement]:
        return [
            Disagreement(
                a=show(a),
                b=show(b),
                count=count,
                examples=[show_key(k) for k in self.examples[a, b]],
            )
            for (a, b), count in self.counts.most_common(n)
        ]


def _unpaired(a: LoadedRun, b: LoadedRun, examples: int) -> Unpaired:
    a_only = [k for k in a.rows if k not in b.rows]
    b_only = [k for k in b.rows if k not in a.rows]
    return Unpaired(
        a_only=len(a_only),
        b_only=len(b_only),
        a_only_examples=[show_key(k) for k in a_only[:examples]],
        b_only_examples=[show_key(k) for k in b_only[:examples]],
    )


def _confusion_table(confusion: Counter[tuple[Any, Any]]) -> dict[str, dict[str, int]]:
    rows: Counter[Any] = Counter()
    for (a, _), count in confusion.items():
        rows[a] += count
    table: dict[str, dict[str, int]] = {_show(a): {} for a, _ in rows.most_common()}
    for (a, b), count in sorted(confusion.items(), key=lambda item: -item[1]):
        table[_show(a)][_show(b)] = count
    return table


def _per_sample(resources: Resources) -> dict[str, float | None]:
    n = resources.samples

    def each(value: float | None) -> float | None:
        return None if value is None or not n else value / n

    return {
        "calls per sample": each(resources.calls),
        "tokens per sample": each(resources.tokens),
        "prompt tokens per sample": each(resources.prompt_tokens),
        "completion tokens per sample": each(resources.completion_tokens),
        "cost per sample (USD)": each(resources.cost_usd),
        "wall seconds per sample": each(resources.elapsed_seconds),
        "latency per sample (s)": resources.latency_mean,
    }


def _ratios(a: Resources, b: Resources) -> list[Ratio]:
    left, right = _per_sample(a), _per_sample(b)
    ratios: list[Ratio] = []
    for metric, value_a in left.items():
        value_b = right[metric]
        if value_a is None and value_b is None:
            continue
        ratio = value_a / value_b if value_a is not None and value_b else None
        ratios.append(Ratio(metric=metric, a=value_a, b=value_b, ratio=ratio))
    return ratios


@dataclass
class _DimAccumulator:
    multi: bool
    examples: int
    exact: int = 0
    partial: int = 0
    jaccard: float = 0.0
    conf_a: float = 0.0
    conf_a_n: int = 0
    conf_b: float = 0.0
    conf_b_n: int = 0
    confusion: Counter[tuple[Any, Any]] = field(default_factory=Counter)
    tags: dict[str, TagCounts] = field(default_factory=dict)
    disagreements: _Disagreements = field(init=False)

    def __post_init__(self) -> None:
        self.disagreements = _Disagreements(self.examples)

    def tag(self, name: str) -> TagCounts:
        counts = self.tags.get(name)
        if counts is None:
            counts = self.tags[name] = TagCounts()
        return counts


def _add_pairs(
    acc: _DimAccumulator,
    counts: dict[tuple[Any, Any], int],
    examples_of: dict[tuple[Any, Any], list[str]],
) -> None:
    """The figures of one dimension from its (value A, value B) pair counts."""
    for pair, count in counts.items():
        va, vb = pair
        same = va is vb or va == vb
        if same:
            acc.exact += count
        else:
            acc.disagreements.counts[pair] = count
            acc.disagreements.examples[pair] = examples_of[pair]
        if acc.multi:
            if same:
                acc.partial += count
                acc.jaccard += float(count)
                for tag in va:
                    acc.tag(tag).tp += count
            else:
                common = va & vb
                if common:
                    acc.partial += count
                acc.jaccard += jaccard(va, vb) * count
                for tag in common:
                    acc.tag(tag).tp += count
                for tag in va - common:
                    acc.tag(tag).fp += count
                for tag in vb - common:
                    acc.tag(tag).fn += count
        else:
            acc.confusion[va, vb] += count
            if same:
                if va is not None:
                    acc.tag(va).tp += count
            else:
                if va is not None:
                    acc.tag(va).fp += count
                if vb is not None:
                    acc.tag(vb).fn += count


def _compare_taxonomy_pair(
    a: LoadedRun,
    b: LoadedRun,
    dims: Sequence[DimensionSpec],
    *,
    top: int,
    examples: int,
    tallies: list[Tally] | None = None,
    counted: list[dict[tuple[Any, Any], int]] | None = None,
) -> PairReport:
    """``tallies`` (when ``b`` is the gold run): filled with A's confidence tallies in the same
    pass over the pairs; ``counted``: filled with each dimension's (value A, value B) counts
    (Krippendorff's alpha of two runs needs nothing else)."""
    n_dims = len(dims)
    calibrate = tallies is not None
    accs = [_DimAccumulator(multi=d.select == "multi", examples=examples) for d in dims]
    paired = all_match = 0
    b_rows = b.rows
    # per dimension the count of each (value A, value B) pair, and a few example keys of the
    # pairs that differ: the per-tag figures are then computed once per distinct pair
    pairs: list[dict[tuple[Any, Any], int]] = [{} for _ in range(n_dims)]
    kept: list[dict[tuple[Any, Any], list[str]]] = [{} for _ in range(n_dims)]
    indexes = range(n_dims)
    for key, row_a in a.rows.items():
        row_b = b_rows.get(key)
        if row_b is None:
            continue
        paired += 1
        matched = True
        for i in indexes:
            va, vb = row_a[i], row_b[i]
            pair = (va, vb)
            counts = pairs[i]
            seen = counts.get(pair)
            same = va is vb or va == vb
            if same:
                counts[pair] = 1 if seen is None else seen + 1
            else:
                matched = False
                if seen is None:
                    counts[pair] = 1
                    kept[i][pair] = [key]
                else:
                    counts[pair] = seen + 1
                    keys = kept[i][pair]
                    if len(keys) < examples:
                        keys.append(key)
            ca, cb = row_a[n_dims + i], row_b[n_dims + i]
            if calibrate and ca is not None:
                cell = tallies[i].get(ca)  # type: ignore[index]
                if cell is None:
                    cell = tallies[i][ca] = [0, 0]  # type: ignore[index]
                cell[0] += 1
                if not same:
                    cell[1] += 1
            if ca is not None or cb is not None:
                acc = accs[i]
                if ca is not None:
                    acc.conf_a += ca
                    acc.conf_a_n += 1
                if cb is not None:
                    acc.conf_b += cb
                    acc.conf_b_n += 1
        if matched:
            all_match += 1
    for acc, counts, examples_of in zip(accs, pairs, kept, strict=True):
        _add_pairs(acc, counts, examples_of)
    if counted is not None:
        counted[:] = pairs
    dimensions = [
        _dimension_report(spec, acc, paired, top) for spec, acc in zip(dims, accs, strict=True)
    ]
    exact = [d.exact for d in dimensions if d.exact is not None]
    return PairReport(
        a=a.name,
        b=b.name,
        paired=paired,
        unpaired=_unpaired(a, b, examples=5),
        all_dimensions_exact=_share(all_match, paired),
        mean_dimension_exact=sum(exact) / len(exact) if exact else None,
        dimensions=dimensions,
        resources=_ratios(a.resources, b.resources),
    )


def _dimension_report(
    spec: DimensionSpec, acc: _DimAccumulator, paired: int, top: int
) -> DimensionAgreement:
    scores = [
        TagScore(
            tag=tag,
            support=c.tp + c.fn,
            predicted=c.tp + c.fp,
            true_positives=c.tp,
            precision=c.precision,
            recall=c.recall,
            f1=c.f1,
        )
        for tag, c in acc.tags.items()
    ]
    scores.sort(key=lambda s: (-s.support, -s.predicted, s.tag))
    micro = TagCounts(
        tp=sum(c.tp for c in acc.tags.values()),
        fp=sum(c.fp for c in acc.tags.values()),
        fn=sum(c.fn for c in acc.tags.values()),
    )
    f1s = [s.f1 for s in scores if s.f1 is not None]
    return DimensionAgreement(
        name=spec.name,
        select=spec.select,
        exact=_share(acc.exact, paired),
        partial=_share(acc.partial, paired) if acc.multi else None,
        jaccard=_mean(acc.jaccard, paired) if acc.multi else None,
        kappa=None if acc.multi else cohen_kappa(acc.confusion),
        confidence_a=_mean(acc.conf_a, acc.conf_a_n),
        confidence_b=_mean(acc.conf_b, acc.conf_b_n),
        micro_precision=micro.precision,
        micro_recall=micro.recall,
        micro_f1=micro.f1,
        macro_f1=sum(f1s) / len(f1s) if f1s else None,
        tags=scores,
        disagreements=acc.disagreements.top(top),
        confusion=None if acc.multi else _confusion_table(acc.confusion),
    )


def _pairwise_matrices(
    runs: Sequence[LoadedRun], n_dims: int, metrics: Sequence[str]
) -> list[Matrix]:
    """``all_dimensions_exact`` and ``mean_dimension_exact`` (taxonomy) or ``hard_agreement``
    (soft, one dimension) for every pair of runs."""
    size = len(runs)
    tables: list[list[list[float | None]]] = [
        [[1.0 if i == j else None for j in range(size)] for i in range(size)] for _ in metrics
    ]
    for i in range(size):
        for j in range(i + 1, size):
            left, right = runs[i].rows, runs[j].rows
            paired = all_match = 0
            per_dim = [0] * n_dims
            for key, row_a in left.items():
                row_b = right.get(key)
                if row_b is None:
                    continue
                paired += 1
                matched = True
                for d in range(n_dims):
                    if row_a[d] is row_b[d] or row_a[d] == row_b[d]:
                        per_dim[d] += 1
                    else:
                        matched = False
                all_match += matched
            values = [
                _share(all_match, paired),
                sum(per_dim) / (n_dims * paired) if paired else None,
            ]
            for table, value in zip(tables, values, strict=False):
                table[i][j] = table[j][i] = value
    names = [r.name for r in runs]
    return [
        Matrix(metric=metric, runs=names, values=table)
        for metric, table in zip(metrics, tables, strict=True)
    ]


def _alpha(
    runs: Sequence[LoadedRun],
    dims: Sequence[DimensionSpec],
    counted: list[dict[tuple[Any, Any], int]] | None = None,
) -> list[AlphaReport]:
    """Krippendorff's alpha per dimension over all runs; ``counted``: the (value of run 0,
    value of run 1) counts of two runs' comparison, when there are only those two (their
    units are exactly the pairs counted)."""
    accumulators = [AlphaAccumulator("jaccard" if d.select == "multi" else "nominal") for d in dims]
    pairs: list[dict[tuple[Any, Any], int]] = [{} for _ in dims]
    """Units of two values, counted per (a, b) pair (the distances are computed once each)."""
    if counted is not None and len(runs) == 2:
        for accumulator, known in zip(accumulators, counted, strict=True):
            accumulator.add_pairs(known)
        return _alpha_reports(dims, accumulators)
    for position, run in enumerate(runs):
        earlier = [r.rows for r in runs[:position]]
        later = [r.rows for r in runs[position + 1 :]]
        for key, row in run.rows.items():
            if any(key in rows for rows in earlier):
                continue  # this unit was gathered with an earlier run
            unit = [row]
            for rows in later:
                other = rows.get(key)
                if other is not None:
                    unit.append(other)
            if len(unit) == 2:
                first, second = unit
                for d, counts in enumerate(pairs):
                    pair = (first[d], second[d])
                    counts[pair] = counts.get(pair, 0) + 1
            elif len(unit) > 2:
                for d, accumulator in enumerate(accumulators):
                    accumulator.add([r[d] for r in unit])
    for accumulator, counts in zip(accumulators, pairs, strict=True):
        accumulator.add_pairs(counts)
    return _alpha_reports(dims, accumulators)


def _swapped(counts: dict[tuple[Any, Any], int]) -> dict[tuple[Any, Any], int]:
    return {(b, a): n for (a, b), n in counts.items()}


def _alpha_reports(
    dims: Sequence[DimensionSpec], accumulators: Sequence[AlphaAccumulator]
) -> list[AlphaReport]:
    return [
        AlphaReport(dimension=spec.name, distance=acc.metric, units=acc.units, alpha=acc.alpha())
        for spec, acc in zip(dims, accumulators, strict=True)
    ]


def _calibration(pairs: Iterator[tuple[float, int]], against: str) -> Calibration:
    acc = CalibrationAccumulator(bins=SOFT_BINS)
    for probability, outcome in pairs:
        acc.add(probability, outcome)
    return Calibration(
        against=against,
        turns=acc.n,
        brier=acc.brier(),
        ece=acc.ece(),
        bins=[
            CalibrationBin(
                lower=b.lower,
                upper=b.upper,
                count=b.count,
                mean_soft=b.mean_predicted,
                observed=b.observed,
            )
            for b in acc.table()
        ],
    )


def _soft_bin(value: float) -> int:
    return min(SOFT_BINS - 1, max(0, int(value * SOFT_BINS)))


def _show_hard(value: Any) -> str:
    return str(value)


def _compare_soft_pair(a: LoadedRun, b: LoadedRun, *, top: int, examples: int) -> SoftPairReport:
    confusion: Counter[tuple[Any, Any]] = Counter()
    disagreements = _Disagreements(examples)
    xs: list[float] = []
    ys: list[float] = []
    grid = [[0] * SOFT_BINS for _ in range(SOFT_BINS)]
    outcomes: list[tuple[float, int]] = []
    for key, (hard_a, soft_a) in a.rows.items():
        row_b = b.rows.get(key)
        if row_b is None:
            continue
        hard_b, soft_b = row_b
        confusion[hard_a, hard_b] += 1
        if hard_a != hard_b:
            disagreements.add(hard_a, hard_b, key)
        if soft_a is not None:
            outcomes.append((soft_a, hard_b))
            if soft_b is not None:
                xs.append(soft_a)
                ys.append(soft_b)
                grid[_soft_bin(soft_a)][_soft_bin(soft_b)] += 1
    paired = sum(confusion.values())
    agree = sum(count for (x, y), count in confusion.items() if x == y)
    table = {str(x): {str(y): confusion.get((x, y), 0) for y in (0, 1)} for x in (0, 1)}
    n_soft = len(xs)
    return SoftPairReport(
        a=a.name,
        b=b.name,
        paired=paired,
        unpaired=_unpaired(a, b, examples=5),
        hard_agreement=_share(agree, paired),
        kappa=cohen_kappa(confusion),
        confusion=table,
        disagreements=disagreements.top(top, _show_hard),
        soft_paired=n_soft,
        pearson=pearson(xs, ys),
        spearman=spearman(xs, ys),
        mean_soft_a=_mean(sum(xs), n_soft),
        mean_soft_b=_mean(sum(ys), n_soft),
        mean_abs_difference=_mean(sum(abs(x - y) for x, y in zip(xs, ys, strict=True)), n_soft),
        soft_grid=grid,
        calibration=_calibration(iter(outcomes), against=b.name),
        resources=_ratios(a.resources, b.resources),
    )


def _against_gold(run: LoadedRun, gold: dict[str, int], gold_name: str) -> GoldReport:
    confusion: Counter[tuple[Any, Any]] = Counter()
    outcomes: list[tuple[float, int]] = []
    for key, (hard, soft) in run.rows.items():
        truth = gold.get(key)
        if truth is None:
            continue
        confusion[hard, truth] += 1
        if soft is not None:
            outcomes.append((soft, truth))
    paired = sum(confusion.values())
    run_only = [k for k in run.rows if k not in gold]
    gold_only = [k for k in gold if k not in run.rows]
    return GoldReport(
        run=run.name,
        gold=gold_name,
        paired=paired,
        unpaired=Unpaired(
            a_only=len(run_only),
            b_only=len(gold_only),
            a_only_examples=[show_key(k) for k in run_only[:5]],
            b_only_examples=[show_key(k) for k in gold_only[:5]],
        ),
        hard_agreement=_share(sum(c for (x, y), c in confusion.items() if x == y), paired),
        kappa=cohen_kappa(confusion),
        calibration=_calibration(iter(outcomes), against=gold_name),
    )


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
            _compare_taxonomy_pair(
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
            pair_counts = counted if ref == 1 else [_swapped(c) for c in counted]
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
            _compare_soft_pair(r, runs[ref], top=top, examples=examples) for r in others
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
            gold_reports = [_against_gold(r, labels, Path(gold).name) for r in runs]
    return CompareResult(
        schema=SCHEMA,
        kind=kind,
        reference=runs[ref].name,
        runs=[r.info() for r in runs],
        dimensions=dims if kind == "taxonomy" else [],
        comparisons=comparisons,
        soft_comparisons=soft_comparisons,
        matrices=_pairwise_matrices(runs, len(dims), metrics) if len(runs) >= 3 else [],
        alpha=_alpha(runs, dims, pair_counts),
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
