"""Two soft-label runs compared (hard-label agreement and kappa, correlation of the soft labels,
calibration against the reference's hard labels), and a run against gold hard labels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from sftlabel.reports._agreement import (
    CalibrationAccumulator,
    cohen_kappa,
    pearson,
    spearman,
)
from sftlabel.reports._compare_common import (
    Disagreements,
    mean_of,
    ratios,
    share_of,
    unpaired,
)
from sftlabel.reports._compare_load import LoadedRun, show_key
from sftlabel.reports._compare_types import (
    Calibration,
    CalibrationBin,
    GoldReport,
    SoftPairReport,
    Unpaired,
)

SOFT_BINS = 10


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


def compare_soft_pair(a: LoadedRun, b: LoadedRun, *, top: int, examples: int) -> SoftPairReport:
    confusion: Counter[tuple[Any, Any]] = Counter()
    disagreements = Disagreements(examples)
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
        unpaired=unpaired(a, b, examples=5),
        hard_agreement=share_of(agree, paired),
        kappa=cohen_kappa(confusion),
        confusion=table,
        disagreements=disagreements.top(top, _show_hard),
        soft_paired=n_soft,
        pearson=pearson(xs, ys),
        spearman=spearman(xs, ys),
        mean_soft_a=mean_of(sum(xs), n_soft),
        mean_soft_b=mean_of(sum(ys), n_soft),
        mean_abs_difference=mean_of(sum(abs(x - y) for x, y in zip(xs, ys, strict=True)), n_soft),
        soft_grid=grid,
        calibration=_calibration(iter(outcomes), against=b.name),
        resources=ratios(a.resources, b.resources),
    )


def against_gold(run: LoadedRun, gold: dict[str, int], gold_name: str) -> GoldReport:
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
        hard_agreement=share_of(sum(c for (x, y), c in confusion.items() if x == y), paired),
        kappa=cohen_kappa(confusion),
        calibration=_calibration(iter(outcomes), against=gold_name),
    )
