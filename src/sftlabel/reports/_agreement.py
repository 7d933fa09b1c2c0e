"""Agreement statistics in plain Python (no numpy): Cohen's kappa, Krippendorff's alpha,
Jaccard, Pearson / Spearman correlation, Brier score and expected calibration error.

Every function returns ``None`` where the statistic is undefined (no data, or a zero
denominator such as a run that gives one same value to every sample), never ``nan``, so the
results encode to JSON as ``null``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

EMPTY: frozenset[str] = frozenset()


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b|; two empty sets agree completely (1.0)."""
    if a is b or a == b:
        return 1.0
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def cohen_kappa(confusion: Mapping[tuple[Hashable, Hashable], int]) -> float | None:
    """Cohen's kappa from a confusion table ``{(value_a, value_b): count}``.

    kappa = (p_o − p_e) / (1 − p_e) with p_o the observed agreement and p_e the agreement
    expected from the two marginal distributions. None when p_e is 1 (both raters give one
    same value to everything: kappa is 0/0) or the table is empty.
    """
    total = sum(confusion.values())
    if not total:
        return None
    rows: Counter[Hashable] = Counter()
    cols: Counter[Hashable] = Counter()
    agree = 0
    for (a, b), count in confusion.items():
        rows[a] += count
        cols[b] += count
        if a == b:
            agree += count
    observed = agree / total
    expected = sum(rows[v] * cols.get(v, 0) for v in rows) / (total * total)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


class AlphaAccumulator:
    """Krippendorff's alpha, fed one unit (the values the raters gave one sample) at a time.

    ``metric="nominal"``: δ(c, k) = 0 when c == k else 1. ``metric="jaccard"``: the values are
    sets (multi-select dimensions) and δ(c, k) = 1 − Jaccard(c, k), two empty sets at distance 0.

    alpha = 1 − D_o / D_e = 1 − (n − 1) · Σ_u Σ_{i≠j} δ(v_ui, v_uj) / (m_u − 1)
                                    / Σ_{c,k} n_c · n_k · δ(c, k)
    over the units with at least two values (m_u ≥ 2); n_c counts the pairable values equal to
    c and n their total. Missing values (a run without the sample) are simply absent.
    """

    def __init__(self, metric: str = "nominal") -> None:
        if metric not in ("nominal", "jaccard"):
            raise ValueError(f"unknown metric {metric!r}")
        self.metric = metric
        self.units = 0
        self._observed = 0.0
        self._values: Counter[Hashable] = Counter()

    def _distance(self, a: Hashable, b: Hashable) -> float:
        if a == b:
            return 0.0
        if self.metric == "nominal":
            return 1.0
        return 1.0 - jaccard(a, b)  # type: ignore[arg-type]

    def add(self, values: Sequence[Hashable]) -> None:
        m = len(values)
        if m < 2:
            return
        if m == 2:
            self.add_pair(values[0], values[1])
            return
        self.units += 1
        disagreement = 0.0
        for i in range(m):
            for j in range(i + 1, m):
                disagreement += self._distance(values[i], values[j])
        self._observed += 2.0 * disagreement / (m - 1)
        self._values.update(values)

    def add_pair(self, a: Hashable, b: Hashable) -> None:
        """A unit with exactly two values (the common case: two runs)."""
        self.units += 1
        if a is not b and a != b:
            self._observed += 2.0 * self._distance(a, b)
        counts = self._values
        counts[a] = counts.get(a, 0) + 1
        counts[b] = counts.get(b, 0) + 1

    def add_pairs(self, counts: Mapping[tuple[Hashable, Hashable], int]) -> None:
        """Units of exactly two values, as counts of each (a, b) pair: the same as calling
        :meth:`add_pair` that many times."""
        values = self._values
        for (a, b), count in counts.items():
            self.units += count
            if a is not b and a != b:
                self._observed += 2.0 * self._distance(a, b) * count
            values[a] = values.get(a, 0) + count
            values[b] = values.get(b, 0) + count

    @property
    def pairable(self) -> int:
        return sum(self._values.values())

    def alpha(self) -> float | None:
        n = self.pairable
        if n < 2:
            return None
        expected = self._expected_pairs(n)
        if expected <= 0.0:
            return None  # every pairable value is the same: alpha is undefined
        return 1.0 - (n - 1) * self._observed / expected

    def _expected_pairs(self, n: int) -> float:
        """Σ_{c,k} n_c · n_k · δ(c, k) over ordered pairs of distinct values."""
        if self.metric == "nominal":
            return float(n * n - sum(c * c for c in self._values.values()))
        similar = jaccard_pair_sum(self._values)  # type: ignore[arg-type]
        return n * n - similar


LARGE_SET = 12
"""Tag sets bigger than this are paired one by one in :func:`jaccard_pair_sum` (their subsets
would be too many to enumerate)."""


def jaccard_pair_sum(counts: Mapping[frozenset[str], int]) -> float:
    """Σ over ordered pairs (c, k) of the sets (c = k included) of ``n_c · n_k · J(c, k)``.

    Pairing every set with every other one is quadratic in the number of distinct sets (tens of
    thousands for 10^5 samples of a 75-tag dimension). Instead, with N_a(s) the number of values
    of size a that contain the subset s, Σ_{|s|=j} N_a(s) · N_b(s) = Σ_{c,k} n_c n_k C(|c∩k|, j)
    over sets of sizes a and b; binomial inversion gives how many pairs of sizes (a, b) share
    exactly i tags, and J = i / (a + b − i) depends on nothing else. Cost: Σ_c 2^|c| (exact
    integer arithmetic; sets larger than :data:`LARGE_SET` are paired directly).
    """
    small = {s: n for s, n in counts.items() if len(s) <= LARGE_SET}
    large = [(s, n) for s, n in counts.items() if len(s) > LARGE_SET]
    by_subset: dict[tuple[str, ...], dict[int, int]] = {}
    for value, count in small.items():
        tags = sorted(value)
        size = len(tags)
        for j in range(size + 1):
            for subset in itertools.combinations(tags, j):  # sorted tuples: canonical keys
                sizes = by_subset.get(subset)
                if sizes is None:
                    sizes = by_subset[subset] = {}
                sizes[size] = sizes.get(size, 0) + count
    # P[a, b][j] = Σ_{|s| = j} N_a(s) N_b(s)
    shared: dict[tuple[int, int], dict[int, int]] = {}
    for subset, sizes in by_subset.items():
        j = len(subset)
        for a, n_a in sizes.items():
            for b, n_b in sizes.items():
                row = shared.setdefault((a, b), {})
                row[j] = row.get(j, 0) + n_a * n_b
    total = 0.0
    for (a, b), row in shared.items():
        top = min(a, b)
        for i in range(top + 1):
            exactly = sum(
                (-1) ** (j - i) * math.comb(j, i) * row.get(j, 0) for j in range(i, top + 1)
            )
            if exactly:
                union = a + b - i
                total += exactly * (i / union if union else 1.0)
    for position, (value, count) in enumerate(large):
        for other, other_count in small.items():
            total += 2 * count * other_count * jaccard(value, other)
        for other, other_count in large[position:]:
            factor = 1 if other is value else 2
            total += factor * count * other_count * jaccard(value, other)
    return total


def krippendorff_alpha(
    units: Iterable[Sequence[Hashable]], metric: str = "nominal"
) -> float | None:
    """Krippendorff's alpha of ``units`` (each the values the raters gave one item)."""
    accumulator = AlphaAccumulator(metric)
    for values in units:
        accumulator.add(values)
    return accumulator.alpha()


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's r (centered two-pass, for precision); None with < 2 points or no variance."""
    n = len(xs)
    if n < 2 or n != len(ys):
        return None
    mx = math.fsum(xs) / n
    my = math.fsum(ys) / n
    cov = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    vx = math.fsum((x - mx) ** 2 for x in xs)
    vy = math.fsum((y - my) ** 2 for y in ys)
    if vx <= 0.0 or vy <= 0.0:
        return None
    return max(-1.0, min(1.0, cov / math.sqrt(vx * vy)))


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; ties get the mean of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        rank = (start + end) / 2.0 + 1.0
        for position in range(start, end + 1):
            result[order[position]] = rank
        start = end + 1
    return result


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson's r of the (tie-averaged) ranks."""
    if len(xs) < 2:
        return None
    return pearson(ranks(xs), ranks(ys))


@dataclass
class CalibrationBin:
    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    """Mean soft label (P(label 1)) of the bin."""
    observed: float | None
    """Share of hard label 1 among the bin's turns."""


@dataclass
class CalibrationAccumulator:
    """Brier score and expected calibration error of probabilities P(label 1) against 0/1
    outcomes, in ``bins`` equal-width bins over [0, 1] (1.0 falls in the last bin)."""

    bins: int = 10
    n: int = 0
    squared: float = 0.0

    def __post_init__(self) -> None:
        self._count = [0] * self.bins
        self._predicted = [0.0] * self.bins
        self._positive = [0] * self.bins

    def add(self, probability: float, outcome: int) -> None:
        p = min(1.0, max(0.0, probability))
        self.n += 1
        self.squared += (p - outcome) ** 2
        b = min(self.bins - 1, int(p * self.bins))
        self._count[b] += 1
        self._predicted[b] += p
        self._positive[b] += outcome

    def add_counts(self, probability: float, count: int, positives: int) -> None:
        """``count`` outcomes at one same probability, ``positives`` of them 1: the same as
        calling :meth:`add` that many times."""
        if count <= 0:
            return
        p = min(1.0, max(0.0, probability))
        self.n += count
        self.squared += positives * (p - 1.0) ** 2 + (count - positives) * p * p
        b = min(self.bins - 1, int(p * self.bins))
        self._count[b] += count
        self._predicted[b] += p * count
        self._positive[b] += positives

    def brier(self) -> float | None:
        return self.squared / self.n if self.n else None

    def ece(self) -> float | None:
        if not self.n:
            return None
        total = 0.0
        for count, predicted, positive in zip(
            self._count, self._predicted, self._positive, strict=True
        ):
            if count:
                total += count / self.n * abs(predicted / count - positive / count)
        return total

    def table(self) -> list[CalibrationBin]:
        width = 1.0 / self.bins
        return [
            CalibrationBin(
                lower=round(b * width, 6),
                upper=round((b + 1) * width, 6),
                count=self._count[b],
                mean_predicted=self._predicted[b] / self._count[b] if self._count[b] else None,
                observed=self._positive[b] / self._count[b] if self._count[b] else None,
            )
            for b in range(self.bins)
        ]


@dataclass
class TagCounts:
    """Per-tag true positives, false positives and false negatives of run A against a reference."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else None
