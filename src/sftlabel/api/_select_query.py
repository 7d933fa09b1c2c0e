"""``sftlabel select`` expressions: ``--where`` conditions over the labels of one record.

Taxonomy runs: ``DIM=TAG``, ``DIM!=TAG``, ``DIM in A,B``, ``DIM not in A,B``, ``DIM has A,B``
(a multi-select dimension holds at least one of them), ``DIM lacks A,B`` (none of them), the
value ``none`` for an empty dimension, ``unmapped has DIM,…|any`` / ``unmapped lacks …`` and
``confidence.DIM>=X`` (also ``>``, ``<=``, ``<``). Soft-label outputs: numeric ranges over
``soft_label`` / ``p_no_reasoning`` (the same number: P(no reasoning needed)), ``p_reasoning``
(1 - it), ``p0``, ``p1``, ``hard_label``, and ``=``/``in`` over ``method``, ``split``,
``bucket``, ``strategy``. Names and tags are checked against the taxonomy (did-you-mean).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sftlabel.errors import UsageError
from sftlabel.taxonomy import Taxonomy

NONE = "none"
"""The value of an empty dimension (no tag, or an empty list)."""

SOFT_NUMBERS = ("soft_label", "p_no_reasoning", "p_reasoning", "p0", "p1", "hard_label")
SOFT_TEXTS = ("method", "split", "bucket", "strategy")

_EXPR = re.compile(
    r"^\s*(?P<field>[A-Za-z_][\w.\-]*)\s*"
    r"(?P<op>==|=|!=|>=|<=|>|<|\s+not\s+in\s+|\s+in\s+|\s+has\s+|\s+lacks\s+)"
    r"\s*(?P<value>.*?)\s*$",
    re.IGNORECASE,
)

Getter = Callable[[Any], Any]


@dataclass(frozen=True)
class Condition:
    """One parsed ``--where``: ``test(record_fields) -> bool``."""

    text: str
    """The expression in canonical spelling (what the manifest and the summary show)."""
    field: str
    op: str
    values: tuple[str, ...] = ()
    number: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_set", frozenset(self.values))
        object.__setattr__(self, "_negated", self.op in ("!=", "not in", "lacks"))

    def test(self, value: Any) -> bool:
        """Whether the field's value (a tag, a list of tags, a number or None) passes."""
        if self.number is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                return False
            return _compare(float(value), self.op, self.number)
        wanted: frozenset[str] = self._set  # type: ignore[attr-defined]
        if type(value) is str and value:  # the common case: a single-select tag
            hit = value in wanted
        else:
            held = _held(value)
            if self.field == "unmapped":
                hit = bool(held) if "any" in wanted else not wanted.isdisjoint(held)
                return hit if self.op == "has" else not hit
            hit = not wanted.isdisjoint(held) or (NONE in wanted and not held)
        return not hit if self._negated else hit  # type: ignore[attr-defined]


def _held(value: Any) -> set[str]:
    if value is None or value == "":
        return set()
    if isinstance(value, list | tuple | set):
        return {str(v) for v in value if v not in (None, "")}
    return {str(value)}


def _compare(value: float, op: str, bound: float) -> bool:
    if op == ">=":
        return value >= bound
    if op == ">":
        return value > bound
    if op == "<=":
        return value <= bound
    if op == "<":
        return value < bound
    if op == "=":
        return value == bound
    return value != bound


def _suggest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "known: " + ", ".join(known[:40]) + (" …" if len(known) > 40 else "")


def _split_values(raw: str) -> list[str]:
    values = [v.strip() for v in raw.split(",")]
    return [v for v in values if v]


def parse_where(text: str, taxonomy: Taxonomy | None, *, soft: bool = False) -> Condition:
    """One ``--where`` expression, checked against the taxonomy (or the soft-label fields)."""
    match = _EXPR.match(text)
    if match is None:
        raise UsageError(
            f"cannot read --where {text!r}",
            hint='write DIM=TAG, DIM!=TAG, "DIM in A,B", "DIM not in A,B", "DIM has A", '
            '"DIM lacks A", "confidence.DIM>=0.8" (soft labels: "p_no_reasoning>=0.8")',
        )
    field = match["field"].strip()
    op = " ".join(match["op"].lower().split())
    op = "=" if op == "==" else op
    raw_value = match["value"]
    if soft:
        return _soft_condition(text, field, op, raw_value)
    assert taxonomy is not None
    return _taxonomy_condition(text, field, op, raw_value, taxonomy)


def _number(text: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise UsageError(f"--where {text!r}: {raw!r} is not a number") from None


def _soft_condition(text: str, field: str, op: str, raw: str) -> Condition:
    known = [*SOFT_NUMBERS, *SOFT_TEXTS]
    if field not in known:
        raise UsageError(
            f"--where {text!r}: {field!r} is not a soft-label field", hint=_suggest(field, known)
        )
    if field in SOFT_NUMBERS:
        if op not in ("=", "!=", ">=", "<=", ">", "<"):
            raise UsageError(f"--where {text!r}: {field} is a number; use =, !=, >=, <=, > or <")
        number = _number(text, raw)
        return Condition(f"{field}{op}{raw}", field, op, number=number)
    if op not in ("=", "!=", "in", "not in"):
        raise UsageError(f"--where {text!r}: use =, !=, in or not in with {field}")
    values = tuple(_split_values(raw))
    if not values:
        raise UsageError(f"--where {text!r}: no value")
    return Condition(_canonical(field, op, values), field, op, values)


def _taxonomy_condition(text: str, field: str, op: str, raw: str, tax: Taxonomy) -> Condition:
    dims = tax.dimensions()
    if field.startswith("confidence."):
        dim = field.removeprefix("confidence.")
        if dim not in dims:
            raise UsageError(
                f"--where {text!r}: unknown dimension {dim!r}", hint=_suggest(dim, dims)
            )
        if op not in (">=", "<=", ">", "<", "=", "!="):
            raise UsageError(f"--where {text!r}: a confidence takes >=, <=, >, <, = or !=")
        return Condition(f"{field}{op}{raw}", field, op, number=_number(text, raw))
    values = tuple(_split_values(raw))
    if not values:
        raise UsageError(f"--where {text!r}: no value after {op!r}")
    if field == "unmapped":
        if op not in ("has", "lacks"):
            raise UsageError(f"--where {text!r}: write 'unmapped has DIM|any' or 'unmapped lacks'")
        for value in values:
            if value != "any" and value not in dims:
                raise UsageError(
                    f"--where {text!r}: unknown dimension {value!r}",
                    hint=_suggest(value, [*dims, "any"]),
                )
        return Condition(_canonical(field, op, values), field, op, values)
    if field not in dims:
        raise UsageError(
            f"--where {text!r}: unknown dimension {field!r}",
            hint=_suggest(field, [*dims, "unmapped", "confidence.<dim>"]),
        )
    if op in (">=", "<=", ">", "<"):
        raise UsageError(f"--where {text!r}: {field} holds tags; use =, !=, in, not in, has, lacks")
    category = tax.category(field)
    resolved: list[str] = []
    for value in values:
        if value.lower() == NONE:
            resolved.append(NONE)
            continue
        tag = tax.resolve(field, value)
        if tag is None:
            raise UsageError(
                f"--where {text!r}: {value!r} is not a tag of {field}",
                hint=_suggest(value, [*category.ids, NONE]),
            )
        resolved.append(tag)
    if op in ("=", "!=") and len(resolved) > 1:
        op = "in" if op == "=" else "not in"
    return Condition(_canonical(field, op, tuple(resolved)), field, op, tuple(resolved))


def _canonical(field: str, op: str, values: tuple[str, ...]) -> str:
    joined = ",".join(values)
    return f"{field}{op}{joined}" if op in ("=", "!=") else f"{field} {op} {joined}"


def parse_min_confidence(
    items: list[str], taxonomy: Taxonomy
) -> tuple[float | None, dict[str, float]]:
    """``--min-confidence X`` (every dimension of the record) and ``--min-confidence DIM=X``."""
    overall: float | None = None
    per_dimension: dict[str, float] = {}
    dims = taxonomy.dimensions()
    for item in items:
        dim, sep, raw = item.partition("=")
        if not sep:
            overall = _number(f"--min-confidence {item}", item)
            continue
        dim = dim.strip()
        if dim not in dims:
            raise UsageError(
                f"--min-confidence {item!r}: unknown dimension {dim!r}", hint=_suggest(dim, dims)
            )
        per_dimension[dim] = _number(f"--min-confidence {item}", raw.strip())
    for value in [overall, *per_dimension.values()]:
        if value is not None and not 0 <= value <= 1:
            raise UsageError(f"--min-confidence {value} is outside 0..1")
    return overall, per_dimension
