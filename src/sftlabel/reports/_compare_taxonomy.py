"""Two taxonomy runs compared dimension by dimension (exact match, partial match, Jaccard,
kappa, per-tag precision / recall / F1, confidence means, disagreements), the pairwise matrix of
three runs or more, and Krippendorff's alpha per dimension."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sftlabel.reports._agreement import (
    AlphaAccumulator,
    TagCounts,
    cohen_kappa,
    jaccard,
)
from sftlabel.reports._calibration import Tally
from sftlabel.reports._compare_common import (
    Disagreements,
    confusion_table,
    mean_of,
    ratios,
    share_of,
    unpaired,
)
from sftlabel.reports._compare_load import LoadedRun
from sftlabel.reports._compare_types import (
    AlphaReport,
    DimensionAgreement,
    DimensionSpec,
    Matrix,
    PairReport,
    TagScore,
)


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
    disagreements: Disagreements = field(init=False)

    def __post_init__(self) -> None:
        self.disagreements = Disagreements(self.examples)

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


def compare_taxonomy_pair(
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
        unpaired=unpaired(a, b, examples=5),
        all_dimensions_exact=share_of(all_match, paired),
        mean_dimension_exact=sum(exact) / len(exact) if exact else None,
        dimensions=dimensions,
        resources=ratios(a.resources, b.resources),
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
        exact=share_of(acc.exact, paired),
        partial=share_of(acc.partial, paired) if acc.multi else None,
        jaccard=mean_of(acc.jaccard, paired) if acc.multi else None,
        kappa=None if acc.multi else cohen_kappa(acc.confusion),
        confidence_a=mean_of(acc.conf_a, acc.conf_a_n),
        confidence_b=mean_of(acc.conf_b, acc.conf_b_n),
        micro_precision=micro.precision,
        micro_recall=micro.recall,
        micro_f1=micro.f1,
        macro_f1=sum(f1s) / len(f1s) if f1s else None,
        tags=scores,
        disagreements=acc.disagreements.top(top),
        confusion=None if acc.multi else confusion_table(acc.confusion),
    )


def pairwise_matrices(
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
                share_of(all_match, paired),
                sum(per_dim) / (n_dims * paired) if paired else None,
            ]
            for table, value in zip(tables, values, strict=False):
                table[i][j] = table[j][i] = value
    names = [r.name for r in runs]
    return [
        Matrix(metric=metric, runs=names, values=table)
        for metric, table in zip(metrics, tables, strict=True)
    ]


def alpha_per_dimension(
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


def swapped(counts: dict[tuple[Any, Any], int]) -> dict[tuple[Any, Any], int]:
    return {(b, a): n for (a, b), n in counts.items()}


def _alpha_reports(
    dims: Sequence[DimensionSpec], accumulators: Sequence[AlphaAccumulator]
) -> list[AlphaReport]:
    return [
        AlphaReport(dimension=spec.name, distance=acc.metric, units=acc.units, alpha=acc.alpha())
        for spec, acc in zip(dims, accumulators, strict=True)
    ]
