"""What compare's taxonomy and soft-label comparisons share: how values are shown, the most
frequent disagreements, unpaired samples, confusion tables and cost ratios."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sftlabel.reports._compare_load import LoadedRun, show_key
from sftlabel.reports._compare_types import (
    Disagreement,
    Ratio,
    Resources,
    Unpaired,
)

NONE = "(none)"
"""How an empty value (no tag) is shown in disagreements and confusion tables."""


def show_value(value: Any) -> str:
    if isinstance(value, frozenset):
        return ", ".join(sorted(value)) if value else NONE
    return NONE if value is None else str(value)


def mean_of(total: float, count: int) -> float | None:
    return total / count if count else None


def share_of(count: int, total: int) -> float | None:
    return count / total if total else None


class Disagreements:
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

    def top(self, n: int, show: Callable[[Any], str] = show_value) -> list[Disagreement]:
        return [
            Disagreement(
                a=show(a),
                b=show(b),
                count=count,
                examples=[show_key(k) for k in self.examples[a, b]],
            )
            for (a, b), count in self.counts.most_common(n)
        ]


def unpaired(a: LoadedRun, b: LoadedRun, examples: int) -> Unpaired:
    a_only = [k for k in a.rows if k not in b.rows]
    b_only = [k for k in b.rows if k not in a.rows]
    return Unpaired(
        a_only=len(a_only),
        b_only=len(b_only),
        a_only_examples=[show_key(k) for k in a_only[:examples]],
        b_only_examples=[show_key(k) for k in b_only[:examples]],
    )


def confusion_table(confusion: Counter[tuple[Any, Any]]) -> dict[str, dict[str, int]]:
    rows: Counter[Any] = Counter()
    for (a, _), count in confusion.items():
        rows[a] += count
    table: dict[str, dict[str, int]] = {show_value(a): {} for a, _ in rows.most_common()}
    for (a, b), count in sorted(confusion.items(), key=lambda item: -item[1]):
        table[show_value(a)][show_value(b)] = count
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


def ratios(a: Resources, b: Resources) -> list[Ratio]:
    left, right = _per_sample(a), _per_sample(b)
    ratios: list[Ratio] = []
    for metric, value_a in left.items():
        value_b = right[metric]
        if value_a is None and value_b is None:
            continue
        ratio = value_a / value_b if value_a is not None and value_b else None
        ratios.append(Ratio(metric=metric, a=value_a, b=value_b, ratio=ratio))
    return ratios
