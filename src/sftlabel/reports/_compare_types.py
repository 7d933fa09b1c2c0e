"""The result of ``sftlabel compare``: msgspec Structs whose ``to_builtins()`` is the JSON of
``compare --json`` (keys documented in docs/compare.md)."""

from __future__ import annotations

from typing import Any

import msgspec

from sftlabel.reports._calibration import ConfidenceCalibration


class Resources(msgspec.Struct, kw_only=True):
    """What a run cost, from ``stats.json`` (or ``labeling_metadata.json``) where it has the
    figure, otherwise summed over the per-sample monitors; ``None`` when neither has it."""

    source: str
    samples: int
    calls: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens: int | None = None
    cost_usd: float | None = None
    elapsed_seconds: float | None = None
    """Wall-clock time of the run."""
    latency_mean: float | None = None
    """Mean time spent on one sample (its calls), from the monitors."""


class RunInfo(msgspec.Struct, kw_only=True):
    name: str
    path: str
    kind: str
    model: str
    records: int
    """Labeled samples (taxonomy) or labeled turns (soft), each id counted once."""
    failed: int
    """Failed samples / turns: counted, never paired."""
    duplicates: int
    """Records whose id was already seen in the same run (the first one is kept)."""
    resources: Resources


class DimensionSpec(msgspec.Struct, kw_only=True):
    name: str
    select: str


class Unpaired(msgspec.Struct, kw_only=True):
    a_only: int
    b_only: int
    a_only_examples: list[str]
    b_only_examples: list[str]


class TagScore(msgspec.Struct, kw_only=True):
    tag: str
    support: int
    """Samples where the reference has the tag."""
    predicted: int
    """Samples where run A has the tag."""
    true_positives: int
    precision: float | None
    recall: float | None
    f1: float | None


class Disagreement(msgspec.Struct, kw_only=True):
    a: str
    b: str
    count: int
    examples: list[str]


class DimensionAgreement(msgspec.Struct, kw_only=True):
    name: str
    select: str
    exact: float | None
    """Share of paired samples with the same value (the same tag set for multi-select)."""
    partial: float | None
    """Multi-select: share with at least one common tag or both empty (None for single)."""
    jaccard: float | None
    """Multi-select: mean Jaccard similarity, both empty = 1.0 (None for single)."""
    kappa: float | None
    """Single-select: Cohen's kappa (None for multi-select, or when undefined)."""
    confidence_a: float | None
    confidence_b: float | None
    micro_precision: float | None
    micro_recall: float | None
    micro_f1: float | None
    macro_f1: float | None
    """Mean F1 over the tags either run used."""
    tags: list[TagScore]
    disagreements: list[Disagreement]
    confusion: dict[str, dict[str, int]] | None
    """Single-select: ``{value_a: {value_b: count}}`` (None for multi-select)."""


class Ratio(msgspec.Struct, kw_only=True):
    metric: str
    a: float | None
    b: float | None
    ratio: float | None
    """a / b."""


class PairReport(msgspec.Struct, kw_only=True):
    a: str
    b: str
    """The reference run."""
    paired: int
    unpaired: Unpaired
    all_dimensions_exact: float | None
    """Share of paired samples whose every dimension matches."""
    mean_dimension_exact: float | None
    """Mean of the per-dimension exact match rates."""
    dimensions: list[DimensionAgreement]
    resources: list[Ratio]


class CalibrationBin(msgspec.Struct, kw_only=True):
    lower: float
    upper: float
    count: int
    mean_soft: float | None
    observed: float | None
    """Share of hard label 1 (does not require reasoning) in the bin."""


class Calibration(msgspec.Struct, kw_only=True):
    against: str
    """The run or gold file whose hard labels are the outcomes."""
    turns: int
    brier: float | None
    ece: float | None
    bins: list[CalibrationBin]


class SoftPairReport(msgspec.Struct, kw_only=True):
    a: str
    b: str
    paired: int
    unpaired: Unpaired
    hard_agreement: float | None
    kappa: float | None
    confusion: dict[str, dict[str, int]]
    disagreements: list[Disagreement]
    soft_paired: int
    """Pairs where both runs have a soft label."""
    pearson: float | None
    spearman: float | None
    mean_soft_a: float | None
    mean_soft_b: float | None
    mean_abs_difference: float | None
    soft_grid: list[list[int]]
    """10×10 counts of (soft label of A, soft label of B) in 0.1 bins: ``grid[bin_a][bin_b]``."""
    calibration: Calibration
    """A's soft labels against B's hard labels."""
    resources: list[Ratio]


class GoldReport(msgspec.Struct, kw_only=True):
    run: str
    gold: str
    paired: int
    unpaired: Unpaired
    hard_agreement: float | None
    kappa: float | None
    calibration: Calibration


class Matrix(msgspec.Struct, kw_only=True):
    metric: str
    runs: list[str]
    values: list[list[float | None]]
    """``values[i][j]``: the metric between runs i and j (1.0 on the diagonal)."""


class AlphaReport(msgspec.Struct, kw_only=True):
    dimension: str
    distance: str
    """``nominal`` or ``jaccard`` (1 − Jaccard between tag sets)."""
    units: int
    """Samples labeled by at least two runs."""
    alpha: float | None


class CompareResult(msgspec.Struct, kw_only=True):
    schema: str
    kind: str
    """``taxonomy`` or ``soft``."""
    reference: str
    runs: list[RunInfo]
    dimensions: list[DimensionSpec]
    comparisons: list[PairReport]
    """Taxonomy runs: every run against the reference."""
    soft_comparisons: list[SoftPairReport]
    """Soft-label runs: every run against the reference."""
    matrices: list[Matrix]
    """With three or more runs: pairwise agreement of every pair."""
    alpha: list[AlphaReport]
    gold: list[GoldReport]
    """Soft-label runs with a gold file: every run against it."""
    confidence_calibration: list[ConfidenceCalibration] = msgspec.field(default_factory=list)
    """Taxonomy runs with ``gold``: every other run's confidence against agreement with gold."""

    def to_builtins(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data
