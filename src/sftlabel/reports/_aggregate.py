"""One streaming pass over a run's records into counters: what the dashboard and report.md show.

Memory depends on the number of distinct tags, parts and unmapped values, never on the number of
samples: confidences and soft labels go into fixed histograms, examples are a bounded handful.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sftlabel.model import TurnLabel
from sftlabel.reports._runs import RunData, TaxonomyRecord

CONFIDENCE_BINS = 20
"""Confidence histograms have bins of 0.05."""
SOFT_BINS = 20
"""The soft-label histogram has bins of 0.05."""
CALIBRATION_BINS = 10
"""The reliability diagram groups soft labels in bins of 0.1."""
EXAMPLES = 3
"""Examples kept per kind (first seen, least confident) for report.md."""
LOWEST_KEPT = 2 * EXAMPLES
UNMAPPED_EXAMPLES = 2
"""Example queries kept per unmapped value."""
UNMAPPED_EXAMPLE_VALUES = 100_000
"""Distinct unmapped values that get example queries (counts go on beyond it)."""
QUERY_CHARS = 160
"""Example queries are shortened to this many characters."""
BATCH = 4096
"""Samples whose tags and confidences are buffered before they are counted."""
DEFAULT_THRESHOLD = 0.65
NONE_TAG = "(none)"
"""How samples without any tag in a dimension are shown."""
UNKNOWN_DIMENSION = ""
"""The dimension of an unmapped value the labeler gave without one (older runs)."""


def shorten(text: str, limit: int = QUERY_CHARS) -> str:
    """One line of at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _bin(value: float, bins: int) -> int:
    return min(max(int(value * bins), 0), bins - 1)


@dataclass
class Example:
    id: str
    query: str
    labels: dict[str, Any]
    min_confidence: float
    position: int = 0
    """The sample's place in the run (ties of confidence keep the earlier sample)."""


@dataclass
class DimensionConfidence:
    histogram: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    count: int = 0
    total: float = 0.0
    min: float = 1.0
    max: float = 0.0
    below: int = 0

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def below_share(self) -> float:
        return self.below / self.count if self.count else 0.0

    def add(self, other: DimensionConfidence) -> None:
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.below += other.below


@dataclass
class TaxonomySummary:
    """Everything a taxonomy run's views show, aggregated."""

    dimensions: list[str]
    threshold: float
    samples: int = 0
    """Labeled samples."""
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    calls_per_sample: Counter[int] = field(default_factory=Counter)
    arbitrated: int = 0
    validation_issues: int = 0
    consistency_warnings: int = 0
    duplicates: int = 0
    """Samples labeled as a copy of an identical earlier one (``duplicate_of``)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    cost_unknown: int = 0
    """Samples whose monitor has no cost (and that were not served from the cache)."""
    distributions: dict[str, Counter[str]] = field(default_factory=dict)
    empty: Counter[str] = field(default_factory=Counter)
    """Samples without any tag, per dimension (an empty multi-select list, a missing value)."""
    confidence: dict[str, DimensionConfidence] = field(default_factory=dict)
    cross: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(intent, difficulty) counts."""
    unmapped: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(dimension, value) counts; dimension ``""`` when the labeler gave none."""
    unmapped_samples: int = 0
    unmapped_examples: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    parts: dict[str, tuple[int, int]] = field(default_factory=dict)
    """part -> (labeled, failed)."""
    first: list[Example] = field(default_factory=list)
    least_confident: list[tuple[float, int, Example]] = field(default_factory=list)
    """A max-heap (negated) of the least confident samples (every sample is a candidate, the
    first ones too: twice as many as shown, so that as many are left beside the first)."""

    def __post_init__(self) -> None:
        for dim in self.dimensions:
            self.distributions.setdefault(dim, Counter())
            self.confidence.setdefault(dim, DimensionConfidence())
        self._buffers: list[tuple[str, list[Any], list[float]]] = [
            (dim, [], []) for dim in self.dimensions
        ]
        """Per dimension the tags and confidences seen since the last :meth:`flush`: appending
        is the cheapest thing a Python loop can do; they are counted in C in batches."""
        self._pending = 0
        self._monitors: list[dict[str, Any]] = []
        self._cross: list[tuple[Any, Any]] = []

    @property
    def total(self) -> int:
        return self.samples + self.failed

    @property
    def success_rate(self) -> float:
        return self.samples / self.total if self.total else 0.0

    @property
    def calls_per_sample_mean(self) -> float:
        return self.calls / self.samples if self.samples else 0.0

    @property
    def arbitrated_rate(self) -> float:
        return self.arbitrated / self.samples if self.samples else 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def examples(self) -> list[Example]:
        low = [e for _, _, e in sorted(self.least_confident, key=lambda t: (-t[0], -t[1]))]
        first = {e.position for e in self.first}
        return self.first + [e for e in low if e.position not in first][:EXAMPLES]

    def add_record(self, record: TaxonomyRecord) -> None:
        labels = record.labels
        self.samples += 1
        self._monitors.append(record.monitor)
        self._cross.append((labels.get("intent"), labels.get("difficulty")))
        confidences = labels.get("confidence")
        if not isinstance(confidences, dict):
            confidences = {}
        lowest = 1.0
        empty = self.empty
        # the hot loop (9 dimensions x every sample): appends only, counted in flush()
        for dim, tags, scores in self._buffers:
            value = labels.get(dim)
            if type(value) is list:
                if value:
                    tags.extend(value)
                else:
                    empty[dim] += 1
            elif value:
                tags.append(value)
            else:
                empty[dim] += 1
            score = confidences.get(dim)
            if type(score) is float or type(score) is int:
                scores.append(score)
                lowest = score if score < lowest else lowest
        unmapped = labels.get("unmapped")
        if isinstance(unmapped, list) and unmapped:
            self.unmapped_samples += 1
            for key in {_unmapped_key(item, self.dimensions) for item in unmapped}:
                if not key[1]:
                    continue
                self.unmapped[key] += 1
                examples = self.unmapped_examples.get(key)
                if examples is None:
                    if len(self.unmapped_examples) < UNMAPPED_EXAMPLE_VALUES:
                        self.unmapped_examples[key] = [shorten(record.query)]
                elif len(examples) < UNMAPPED_EXAMPLES:
                    examples.append(shorten(record.query))
        part = self.parts.get(record.part, (0, 0))
        self.parts[record.part] = (part[0] + 1, part[1])
        self._keep_example(record, lowest)
        self._pending += 1
        if self._pending >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Count the buffered tags, confidences and monitors (done before the summary is
        read)."""
        self._pending = 0
        self._flush_monitors(self._monitors)
        self._monitors.clear()
        self.cross.update([(str(i or "—"), str(d or "—")) for i, d in self._cross])
        self._cross.clear()
        threshold = self.threshold
        for dim, tags, scores in self._buffers:
            if tags:
                counter = self.distributions[dim]
                counter.update(tags)
                tags.clear()
                if any(type(t) is not str for t in counter):  # a number given as a tag
                    for tag in [t for t in counter if type(t) is not str]:
                        counter[str(tag)] += counter.pop(tag)
            if scores:
                stats = self.confidence[dim]
                last = CONFIDENCE_BINS - 1
                bins = Counter([int(v * CONFIDENCE_BINS) for v in scores])
                for position, count in bins.items():
                    stats.histogram[last if position > last else max(position, 0)] += count
                stats.count += len(scores)
                stats.total += sum(scores)
                stats.min = min(stats.min, *scores)
                stats.max = max(stats.max, *scores)
                stats.below += sum(1 for v in scores if v < threshold)
                scores.clear()

    def _flush_monitors(self, monitors: list[dict[str, Any]]) -> None:
        # one pass, the checks inlined: this runs for every sample of a 10^8-sample report
        calls: list[int] = []
        arbitrated = issues = warnings = prompt = completion = cached = unknown = duplicates = 0
        cost = 0.0
        value: Any
        for monitor in monitors:
            get = monitor.get
            value = get("llm_calls")
            kind = type(value)
            calls.append(value if kind is int else int(value) if kind is float else 0)
            if get("arbitrated"):
                arbitrated += 1
            value = get("validation_issues")
            if type(value) is list:
                issues += len(value)
            value = get("consistency_warnings")
            if type(value) is list:
                warnings += len(value)
            value = get("prompt_tokens")
            kind = type(value)
            prompt += value if kind is int else int(value) if kind is float else 0
            value = get("completion_tokens")
            kind = type(value)
            completion += value if kind is int else int(value) if kind is float else 0
            value = get("cached_tokens")
            kind = type(value)
            cached += value if kind is int else int(value) if kind is float else 0
            if get("duplicate_of") is not None:
                duplicates += 1
            value = get("cost")
            kind = type(value)
            if kind is float or kind is int:
                cost += value
            elif not get("from_cache"):
                unknown += 1
        self.calls += sum(calls)
        self.calls_per_sample.update(calls)
        self.arbitrated += arbitrated
        self.validation_issues += issues
        self.consistency_warnings += warnings
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cost += cost
        self.cost_unknown += unknown
        self.cached_tokens += cached
        self.duplicates += duplicates

    def _keep_example(self, record: TaxonomyRecord, lowest: float) -> None:
        heap = self.least_confident
        if len(self.first) < EXAMPLES:
            self.first.append(_example(record, lowest))
        if len(heap) == LOWEST_KEPT and -heap[0][0] <= lowest:
            return  # the common case: not among the least confident
        self._keep_lowest(_example(record, lowest))

    def _keep_lowest(self, example: Example) -> None:
        heap = self.least_confident
        entry = (-example.min_confidence, -example.position, example)
        if len(heap) < LOWEST_KEPT:
            heapq.heappush(heap, entry)
        elif entry > heap[0][:2]:  # lower confidence, or as low and earlier
            heapq.heapreplace(heap, entry)

    def add_failure(self, part: str, failure: dict[str, Any]) -> None:
        self.failed += 1
        self.failures[str(failure.get("reason") or "unknown")] += 1
        labeled, failed = self.parts.get(part, (0, 0))
        self.parts[part] = (labeled, failed + 1)

    def merge(self, other: TaxonomySummary) -> None:
        """Add another summary (of another part) into this one."""
        self.flush()
        other.flush()
        for name in ("samples", "failed", "calls", "arbitrated", "validation_issues"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("consistency_warnings", "prompt_tokens", "completion_tokens", "cost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("duplicates", "cached_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost_unknown += other.cost_unknown
        self.unmapped_samples += other.unmapped_samples
        self.failures.update(other.failures)
        self.calls_per_sample.update(other.calls_per_sample)
        self.cross.update(other.cross)
        self.empty.update(other.empty)
        self.unmapped.update(other.unmapped)
        for dim in self.dimensions:
            self.distributions[dim].update(other.distributions[dim])
            self.confidence[dim].add(other.confidence[dim])
        for key, examples in other.unmapped_examples.items():
            mine = self.unmapped_examples.get(key)
            if mine is None:
                if len(self.unmapped_examples) < UNMAPPED_EXAMPLE_VALUES:
                    self.unmapped_examples[key] = list(examples)
            else:
                mine.extend(examples[: UNMAPPED_EXAMPLES - len(mine)])
        for part, (labeled, failed) in other.parts.items():
            mine_labeled, mine_failed = self.parts.get(part, (0, 0))
            self.parts[part] = (mine_labeled + labeled, mine_failed + failed)
        for example in other.first:
            if len(self.first) < EXAMPLES:
                self.first.append(example)
        for _, _, example in other.least_confident:
            self._keep_lowest(example)


def _example(record: TaxonomyRecord, lowest: float) -> Example:
    labels = {k: v for k, v in record.labels.items() if k not in ("confidence", "unmapped")}
    return Example(
        id=record.id,
        query=shorten(record.query),
        labels=labels,
        min_confidence=lowest,
        position=record.position,
    )


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _unmapped_key(item: Any, dimensions: list[str]) -> tuple[str, str]:
    """``(dimension, value)`` of one ``unmapped`` entry: ``{"dimension", "value"}``,
    ``"dimension:value"`` or a bare ``"value"`` (the shapes found in the baseline runs)."""
    if isinstance(item, dict):
        return str(item.get("dimension") or UNKNOWN_DIMENSION), str(item.get("value") or "").strip()
    text = str(item).strip()
    head, sep, tail = text.partition(":")
    if sep and head in dimensions:
        return head, tail.strip()
    return UNKNOWN_DIMENSION, text


def merge_parts(
    parts: Iterable[TaxonomySummary], dims: list[str], threshold: float
) -> TaxonomySummary:
    whole = TaxonomySummary(dimensions=dims, threshold=threshold)
    for part in parts:
        whole.merge(part)
    return whole


@dataclass
class Calibration:
    count: int = 0
    soft: float = 0.0
    hard: int = 0
    """Turns whose hard label is 1."""


@dataclass
class SoftSummary:
    """Everything a soft-label run's views show, aggregated."""

    turns: int = 0
    labeled: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    hard: Counter[int] = field(default_factory=Counter)
    by_group: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    """(split, bucket) -> counts of ``labeled``, ``hard1``, ``failed``."""
    histogram: list[list[int]] = field(default_factory=lambda: [[0] * SOFT_BINS, [0] * SOFT_BINS])
    """Soft-label histogram, one row per hard label (0, 1)."""
    calibration: list[Calibration] = field(
        default_factory=lambda: [Calibration() for _ in range(CALIBRATION_BINS)]
    )
    soft_total: float = 0.0
    disagree: int = 0
    """Turns whose hard label is not the soft label rounded (the generated token was the less
    likely label)."""
    censored_turns: int = 0
    censored: Counter[str] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)
    strategies: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    rationales: int = 0
    calls: int = 0
    duplicates: int = 0
    """Turns labeled as a copy of an identical earlier one (``duplicate_of``)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    uncertain: list[tuple[float, int, TurnLabel]] = field(default_factory=list)
    first: list[TurnLabel] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def success_rate(self) -> float:
        return self.labeled / self.turns if self.turns else 0.0

    @property
    def soft_mean(self) -> float:
        return self.soft_total / self.labeled if self.labeled else 0.0

    @property
    def calibration_error(self) -> float:
        """Self-consistency gap (not calibration: the hard label comes from the same answer):
        the count-weighted mean |mean soft − share of own hard label 1| over the soft bins."""
        if not self.labeled:
            return 0.0
        gap = sum(abs(b.soft - b.hard) for b in self.calibration if b.count)
        return gap / self.labeled

    @property
    def examples(self) -> list[TurnLabel]:
        ordered = [t for _, _, t in sorted(self.uncertain, key=lambda e: (-e[0], e[1]))]
        return self.first + ordered

    def add(self, turn: TurnLabel) -> None:
        self.turns += 1
        group = self.by_group.setdefault((turn.split, turn.bucket), Counter())
        if turn.model:
            self.models[turn.model] += 1
        if turn.strategy:
            self.strategies[turn.strategy] += 1
        monitor = turn.monitor
        self.calls += _int(monitor.get("llm_calls", monitor.get("calls")))
        self.prompt_tokens += _int(monitor.get("prompt_tokens"))
        self.completion_tokens += _int(monitor.get("completion_tokens"))
        self.cached_tokens += _int(monitor.get("cached_tokens"))
        self.duplicates += monitor.get("duplicate_of") is not None
        cost = monitor.get("cost")
        if isinstance(cost, int | float):
            self.cost += float(cost)
        soft, hard = turn.soft_label, turn.hard_label
        if turn.failed or not isinstance(soft, float | int) or not isinstance(hard, int):
            self.failed += 1
            self.failures[turn.reason or "error"] += 1
            group["failed"] += 1
            return
        soft = float(soft)
        hard = 1 if hard else 0
        self.labeled += 1
        group["labeled"] += 1
        group["hard1"] += hard
        self.hard[hard] += 1
        self.histogram[hard][_bin(soft, SOFT_BINS)] += 1
        bucket = self.calibration[_bin(soft, CALIBRATION_BINS)]
        bucket.count += 1
        bucket.soft += soft
        bucket.hard += hard
        self.soft_total += soft
        self.disagree += hard != (soft >= 0.5)
        if turn.censored:
            self.censored_turns += 1
            self.censored.update(turn.censored)
        self.methods[turn.method or "unknown"] += 1
        self.rationales += isinstance(turn.rationale, str) and bool(turn.rationale)
        if len(self.first) < EXAMPLES:
            self.first.append(turn)
            return
        closeness = abs(soft - 0.5)
        entry = (-closeness, -self.turns, turn)
        if len(self.uncertain) < EXAMPLES:
            heapq.heappush(self.uncertain, entry)
        elif -self.uncertain[0][0] > closeness:
            heapq.heapreplace(self.uncertain, entry)


def summarize_soft(run: RunData) -> SoftSummary:
    """One pass over a soft-label output."""
    summary = SoftSummary()
    for _, turn in run.soft_records():
        summary.add(turn)
    return summary
