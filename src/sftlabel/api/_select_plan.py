"""The query plan of ``sftlabel select``: the parsed options and the per-record checks."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from sftlabel.api._select_query import (
    NONE,
    SOFT_TEXTS,
    parse_min_confidence,
    parse_where,
)
from sftlabel.errors import UsageError
from sftlabel.taxonomy import Taxonomy

if TYPE_CHECKING:
    from sftlabel.reports._runs import RunData


class Light(msgspec.Struct):
    """The fields of a labeled record that selection needs (messages left undecoded)."""

    id: Any = None
    labels: Any = None
    conversationId: Any = None
    messageId: Any = None
    soft_label: Any = None
    hard_label: Any = None
    p0: Any = None
    p1: Any = None
    method: Any = None
    split: Any = None
    bucket: Any = None
    strategy: Any = None
    error: Any = None


light_decoder = msgspec.json.Decoder(Light)


@dataclass
class SelectQuery:
    """What to choose (the options of ``sftlabel select``)."""

    where: list[str] = field(default_factory=list)
    min_confidence: list[str] = field(default_factory=list)
    balance: str | None = None
    per_value: int | None = None
    mix: str | os.PathLike[str] | dict[str, Any] | None = None
    limit: int | None = None
    seed: int = 0


class Plan:
    """The parsed query: conditions, the value a record is balanced on, the quotas."""

    def __init__(self, query: SelectQuery, run: RunData, taxonomy: Taxonomy | None) -> None:
        self.soft = run.kind == "soft"
        self.taxonomy = taxonomy
        self.conditions = [parse_where(w, taxonomy, soft=self.soft) for w in query.where]
        self.overall: float | None = None
        self.per_dimension: dict[str, float] = {}
        if query.min_confidence:
            if self.soft or taxonomy is None:
                raise UsageError(
                    "--min-confidence needs taxonomy labels",
                    hint='soft labels: use a range such as --where "p_no_reasoning>=0.8"',
                )
            self.overall, self.per_dimension = parse_min_confidence(query.min_confidence, taxonomy)
        self.dimensions = self._dimensions()
        self.balance = self._balance(query)
        self.shares = self._shares(query)
        self.per_value = query.per_value
        self.limit = query.limit
        self.seed = query.seed
        if self.per_value is not None and self.balance is None:
            raise UsageError("--per-value goes with --balance DIM")
        unbounded = self.per_value is None and self.limit is None and self.shares is None
        if self.balance is not None and unbounded:
            raise UsageError("--balance needs --per-value N or --limit N")
        if self.shares is not None and self.limit is None:
            raise UsageError("--mix needs a total: --limit N or `total` in the mix file")

    def _dimensions(self) -> list[str]:
        if self.soft:
            return ["hard_label", "method", "bucket"]
        assert self.taxonomy is not None
        return self.taxonomy.dimensions()

    def _balance(self, query: SelectQuery) -> str | None:
        name = query.balance
        if isinstance(query.mix, dict | str | os.PathLike):
            mix = mix_file(query.mix)
            name = str(mix.get("dimension") or name or "")
            total = mix.get("total")
            if query.limit is None and isinstance(total, int):
                query.limit = total
        if not name:
            return None
        if self.soft:
            allowed = ["hard_label", *SOFT_TEXTS]
            if name not in allowed:
                raise UsageError(f"cannot balance on {name!r}", hint="use " + ", ".join(allowed))
            return name
        assert self.taxonomy is not None
        if name not in self.taxonomy.dimensions():
            dims = self.taxonomy.dimensions()
            raise UsageError(f"--balance: unknown dimension {name!r}", hint=", ".join(dims))
        if self.taxonomy.category(name).select != "single":
            raise UsageError(
                f"--balance {name}: a multi-select dimension has no single value per sample",
                hint="balance on intent, difficulty or context; filter the others with --where",
            )
        return name

    def _shares(self, query: SelectQuery) -> dict[str, float] | None:
        if query.mix is None:
            return None
        mix = mix_file(query.mix)
        raw = mix.get("shares")
        if not isinstance(raw, dict) or not raw:
            raise UsageError("the mix file needs `shares`: {value: share, ...}")
        shares: dict[str, float] = {}
        for value, share in raw.items():
            tag = str(value)
            if self.taxonomy is not None and not self.soft and self.balance and tag != NONE:
                resolved = self.taxonomy.resolve(self.balance, tag)
                if resolved is None:
                    ids = self.taxonomy.category(self.balance).ids
                    raise UsageError(
                        f"mix: {tag!r} is not a tag of {self.balance}", hint=", ".join(ids)
                    )
                tag = resolved
            if not isinstance(share, int | float) or share < 0:
                raise UsageError(f"mix: the share of {tag!r} must be a number >= 0")
            shares[tag] = float(share)
        if sum(shares.values()) <= 0:
            raise UsageError("mix: the shares add up to 0")
        return shares

    # -- per record ------------------------------------------------------------------------

    def value(self, fields: Light, name: str) -> Any:
        if self.soft:
            if name in ("soft_label", "p_no_reasoning"):
                return fields.soft_label
            if name == "p_reasoning":
                s = fields.soft_label
                return 1 - s if isinstance(s, int | float) else None
            return getattr(fields, name, None)
        labels = fields.labels if isinstance(fields.labels, dict) else {}
        return label_value(labels, name)

    def confident(self, fields: Light) -> bool:
        if self.overall is None and not self.per_dimension:
            return True
        labels = fields.labels if isinstance(fields.labels, dict) else {}
        confidence = labels.get("confidence")
        if not isinstance(confidence, dict):
            return False
        for dim, bound in self.per_dimension.items():
            value = confidence.get(dim)
            if not isinstance(value, int | float) or value < bound:
                return False
        if self.overall is not None:
            values = [v for d, v in confidence.items() if isinstance(v, int | float)]
            if not values or min(values) < self.overall:
                return False
        return True

    def group(self, fields: Light) -> str:
        value = self.value(fields, self.balance) if self.balance else None
        if value is None or value == "":
            return NONE
        return str(value)

    def priority(self, key: str) -> int:
        digest = hashlib.blake2b(f"{self.seed}\0{key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 1


def label_value(labels: dict[str, Any], name: str) -> Any:
    if name == "unmapped":
        return [u.get("dimension") for u in labels.get("unmapped") or [] if isinstance(u, dict)]
    value = labels.get(name)
    if value is None and name.startswith("confidence."):
        confidence = labels.get("confidence")
        return confidence.get(name[11:]) if isinstance(confidence, dict) else None
    return value


def mix_file(mix: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(mix, dict):
        return mix
    import yaml  # only for a mix file

    path = Path(mix)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))  # YAML is a superset of JSON
    except OSError as exc:
        raise UsageError(f"--mix {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--mix {path}: not YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--mix {path}: expected a mapping with `dimension` and `shares`")
    return data


def failed(fields: Light, plan: Plan) -> bool:
    if plan.soft:
        return fields.error is not None or fields.soft_label is None
    return not isinstance(fields.labels, dict)


def evaluate(plan: Plan, fields: Light, counts: Counter[str]) -> bool:
    passed = True
    if plan.soft:
        for condition in plan.conditions:
            if condition.test(plan.value(fields, condition.field)):
                counts[condition.text] += 1
            else:
                passed = False
    else:
        labels = fields.labels
        for condition in plan.conditions:
            if condition.test(label_value(labels, condition.field)):
                counts[condition.text] += 1
            else:
                passed = False
    if plan.overall is not None or plan.per_dimension:
        if plan.confident(fields):
            counts["min-confidence"] += 1
        else:
            passed = False
    return passed


def values_of(value: Any) -> list[str]:
    if value is None or value in ("", []):
        return [NONE]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]
