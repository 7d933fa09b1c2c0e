"""Checking a model's answer against the taxonomy."""

from __future__ import annotations

from typing import Any

import msgspec

from sftlabel.taxonomy import Taxonomy

DEFAULT_CONFIDENCE = 0.5
"""Confidence assumed for a dimension the model gave none for (below the usual threshold, so it
is re-asked when arbitration is on)."""

Value = str | list[str] | None


class Unmapped(msgspec.Struct, frozen=True):
    """A tag outside the pool: given by the model for a dimension, or reported as needed."""

    dimension: str
    value: str


class Validated(msgspec.Struct, kw_only=True):
    """One call's answer after validation."""

    values: dict[str, Value]
    confidence: dict[str, float]
    unmapped: list[Unmapped]
    issues: list[str]


def validate(taxonomy: Taxonomy, dimensions: list[str], answer: dict[str, Any]) -> Validated:
    """Map aliases to ids, enforce single/multi select, move out-of-pool values to unmapped.

    Issues are phrased like ``"language: 'cuda' not in pool"``; nothing here rejects an answer.
    """
    values: dict[str, Value] = {}
    confidence: dict[str, float] = {}
    unmapped: list[Unmapped] = []
    issues: list[str] = []
    raw_confidence = answer.get("confidence")
    if not isinstance(raw_confidence, dict):
        raw_confidence = {}
    for dim in dimensions:
        category = taxonomy.categories[dim]
        raw = answer.get(dim)
        items = _as_list(raw)
        tags: list[str] = []
        for item in items:
            if not isinstance(item, str) or not item.strip():
                issues.append(f"{dim}: {item!r} is not a tag id")
                continue
            canonical = taxonomy.resolve(dim, item)
            if canonical is None:
                issues.append(f"{dim}: {item.strip()!r} not in pool")
                unmapped.append(Unmapped(dimension=dim, value=item.strip()))
            elif canonical not in tags:
                tags.append(canonical)
        if category.select == "single":
            if dim not in answer:
                issues.append(f"{dim}: missing")
            if len(tags) > 1:
                issues.append(f"{dim}: single-select but got {len(tags)} values; kept {tags[0]!r}")
            values[dim] = tags[0] if tags else None
        else:
            if dim not in answer:
                issues.append(f"{dim}: missing")
            values[dim] = tags
        confidence[dim] = _confidence(raw_confidence.get(dim), dim, issues)
    for entry in _as_list(answer.get("unmapped")):
        item = _unmapped(entry)
        if item is not None and item not in unmapped:
            unmapped.append(item)
    return Validated(values=values, confidence=confidence, unmapped=unmapped, issues=issues)


def _as_list(raw: Any) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return raw
    return [raw]


def _confidence(raw: Any, dim: str, issues: list[str]) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        if raw is not None:
            issues.append(f"{dim}: confidence {raw!r} is not a number")
        else:
            issues.append(f"{dim}: no confidence given")
        return DEFAULT_CONFIDENCE
    try:
        value = float(raw)
    except ValueError:
        issues.append(f"{dim}: confidence {raw!r} is not a number")
        return DEFAULT_CONFIDENCE
    if value > 1.0 and value <= 100.0:
        value /= 100.0  # a percentage
    return min(max(value, 0.0), 1.0)


def _unmapped(entry: Any) -> Unmapped | None:
    if isinstance(entry, dict):
        value = entry.get("value") or entry.get("tag")
        if isinstance(value, str) and value.strip():
            return Unmapped(dimension=str(entry.get("dimension") or ""), value=value.strip())
        return None
    if isinstance(entry, str) and entry.strip():
        return Unmapped(dimension="", value=entry.strip())
    return None
