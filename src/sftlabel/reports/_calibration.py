"""Calibration of a labeler's self-reported confidence against gold labels
(``sftlabel compare RUN --gold GOLD``).

Per dimension, every sample paired with the gold run is one observation: the run's confidence
for the dimension and whether the run's value *agrees* with the gold value. Agreement is the
``exact`` agreement of ``compare`` (the same value; for multi-select dimensions the same tag set,
two empty sets agreeing), counted in the same pass over the paired samples as the agreement
figures. The observations are tallied per distinct confidence value (``{confidence: [samples,
errors]}``: labelers give a few dozen distinct values), so the reliability table, the expected
calibration error and the arbitration thresholds are computed from a small table.

* Reliability: 10 equal-width confidence bins over [0, 1] (1.0 in the last): count, mean
  confidence, agreement (share of samples agreeing with gold), gap = mean confidence −
  agreement (positive: over-confident).
* ECE = Σ_bins (n_bin / n) · |gap_bin| (the :class:`CalibrationAccumulator` of ``compare``).
* Arbitration thresholds: for a threshold t (``arbitrate --threshold t`` re-asks a dimension
  whose confidence is below t), ``cost`` = share of the samples below t (the share arbitrated)
  and ``caught`` = share of the errors (disagreements with gold) below t. The recommended
  threshold is the smallest t on a 0.01 grid up to 1.0 with ``caught`` ≥ ``catch``; ``None`` when
  no such t exists (errors at confidence 1.0 cannot be caught) or there is no error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from sftlabel.reports._agreement import CalibrationAccumulator

BINS = 10
DEFAULT_CATCH = 0.8
"""Share of the errors the recommended arbitration threshold must catch."""
SHOWN_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)
"""Thresholds listed in every report (besides the recommended one)."""
GRID = tuple(k / 100 for k in range(1, 101))
"""Thresholds searched for the recommendation."""

Tally = dict[float, list[int]]
"""``{confidence: [samples, errors]}`` of one dimension."""


class ReliabilityBin(msgspec.Struct, kw_only=True):
    lower: float
    upper: float
    count: int
    mean_confidence: float | None
    agreement: float | None
    """Share of the bin's samples whose value agrees with gold."""
    gap: float | None
    """mean_confidence − agreement (positive: over-confident)."""


class ThresholdPoint(msgspec.Struct, kw_only=True):
    threshold: float
    below: int
    """Samples whose confidence is below the threshold (would be arbitrated)."""
    cost: float | None
    """below / samples."""
    errors_caught: int
    caught: float | None
    """errors_caught / errors."""


class DimensionCalibration(msgspec.Struct, kw_only=True):
    name: str
    select: str
    samples: int
    """Paired samples with a confidence for the dimension."""
    without_confidence: int
    """Paired samples without one (left out of every figure here)."""
    errors: int
    """Samples (with a confidence) whose value differs from gold."""
    agreement: float | None
    mean_confidence: float | None
    ece: float | None
    brier: float | None
    """Mean (confidence − agreed)²."""
    bins: list[ReliabilityBin]
    thresholds: list[ThresholdPoint]
    """The :data:`SHOWN_THRESHOLDS` and the recommended one, in increasing order."""
    recommended: ThresholdPoint | None
    """The smallest threshold (0.01 grid) catching ``catch`` of the errors."""


class ConfidenceCalibration(msgspec.Struct, kw_only=True):
    run: str
    gold: str
    paired: int
    catch: float
    """The share of errors the recommendation must catch."""
    dimensions: list[DimensionCalibration]


def new_tallies(count: int) -> list[Tally]:
    return [{} for _ in range(count)]


def tally_pair(
    rows: Mapping[str, tuple[object, ...]],
    gold: Mapping[str, tuple[object, ...]],
    n_dims: int,
) -> tuple[list[Tally], int]:
    """Tallies of a run against gold when the gold run is not the reference (the pass over
    the pairs of the reference comparison does this itself otherwise)."""
    tallies = new_tallies(n_dims)
    paired = 0
    indexes = range(n_dims)
    for key, row in rows.items():
        truth = gold.get(key)
        if truth is None:
            continue
        paired += 1
        for i in indexes:
            confidence = row[n_dims + i]
            if confidence is None:
                continue
            va, vb = row[i], truth[i]
            cell = tallies[i].get(confidence)  # type: ignore[call-overload]
            if cell is None:
                cell = tallies[i][confidence] = [0, 0]  # type: ignore[index]
            cell[0] += 1
            if va is not vb and va != vb:
                cell[1] += 1
    return tallies, paired


def _point(threshold: float, tally: Tally, samples: int, errors: int) -> ThresholdPoint:
    below = caught = 0
    for confidence, (count, wrong) in tally.items():
        if confidence < threshold:
            below += count
            caught += wrong
    return ThresholdPoint(
        threshold=threshold,
        below=below,
        cost=below / samples if samples else None,
        errors_caught=caught,
        caught=caught / errors if errors else None,
    )


def calibrate_dimension(
    name: str, select: str, tally: Tally, paired: int, catch: float
) -> DimensionCalibration:
    acc = CalibrationAccumulator(bins=BINS)
    samples = errors = 0
    total_confidence = 0.0
    for confidence, (count, wrong) in sorted(tally.items()):
        acc.add_counts(confidence, count, count - wrong)
        samples += count
        errors += wrong
        total_confidence += min(1.0, max(0.0, confidence)) * count
    bins = [
        ReliabilityBin(
            lower=b.lower,
            upper=b.upper,
            count=b.count,
            mean_confidence=b.mean_predicted,
            agreement=b.observed,
            gap=None
            if b.mean_predicted is None or b.observed is None
            else b.mean_predicted - b.observed,
        )
        for b in acc.table()
    ]
    recommended = None
    if errors:
        for threshold in GRID:
            point = _point(threshold, tally, samples, errors)
            if point.caught is not None and point.caught >= catch - 1e-12:
                recommended = point
                break
    shown = {t: _point(t, tally, samples, errors) for t in SHOWN_THRESHOLDS}
    if recommended is not None:
        shown[recommended.threshold] = recommended
    return DimensionCalibration(
        name=name,
        select=select,
        samples=samples,
        without_confidence=paired - samples,
        errors=errors,
        agreement=(samples - errors) / samples if samples else None,
        mean_confidence=total_confidence / samples if samples else None,
        ece=acc.ece(),
        brier=acc.brier(),
        bins=bins,
        thresholds=[shown[t] for t in sorted(shown)],
        recommended=recommended,
    )


def calibration_report(
    run: str,
    gold: str,
    dims: Sequence[tuple[str, str]],
    tallies: Sequence[Tally],
    *,
    paired: int,
    catch: float,
) -> ConfidenceCalibration:
    """The report of one run from its tallies; ``dims`` are (name, select) pairs."""
    return ConfidenceCalibration(
        run=run,
        gold=gold,
        paired=paired,
        catch=catch,
        dimensions=[
            calibrate_dimension(name, select, tally, paired, catch)
            for (name, select), tally in zip(dims, tallies, strict=True)
        ],
    )


__all__ = [
    "DEFAULT_CATCH",
    "ConfidenceCalibration",
    "DimensionCalibration",
    "ReliabilityBin",
    "ThresholdPoint",
    "calibration_report",
    "new_tallies",
    "tally_pair",
]
