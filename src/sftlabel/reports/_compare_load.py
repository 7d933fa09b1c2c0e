"""Reading the runs ``sftlabel compare`` pairs: one compact row per sample (interned tag values
and confidences, keyed by id, or by ``(conversationId, messageId)`` for soft labels), so memory
grows with the number of samples, not with the size of the conversations; and the hard labels
of a gold file.

A taxonomy record is decoded into only the fields a row needs (the conversation is skipped
unparsed); a big run is read by forked workers span by span (:func:`map_spans`), each sending
its rows back as integer codes into its table of distinct values, merged in record order."""

from __future__ import annotations

import csv
import functools
import math
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from sftlabel.errors import InputError
from sftlabel.formats._source import iter_raw
from sftlabel.model import Problem
from sftlabel.reports._agreement import EMPTY
from sftlabel.reports._compare_types import DimensionSpec, Resources, RunInfo
from sftlabel.reports._runs import RunData, Span, decode_span
from sftlabel.reports._scan import map_spans

KEY_SEPARATOR = "\x1f"


@dataclass
class LoadedRun:
    """A run as compare holds it: ``rows`` per pairing key (the first record of a key; later
    ones are counted in ``duplicates``)."""

    data: RunData
    name: str
    rows: dict[str, tuple[Any, ...]]
    failed: int = 0
    duplicates: int = 0
    resources: Resources = field(default_factory=lambda: Resources(source="", samples=0))

    def info(self) -> RunInfo:
        return RunInfo(
            name=self.name,
            path=str(self.data.path),
            kind=self.data.kind,
            model=self.data.model or str((self.data.stats or {}).get("model") or ""),
            records=len(self.rows),
            failed=self.failed,
            duplicates=self.duplicates,
            resources=self.resources,
        )


class Interner:
    """One shared object per distinct value: tag sets and confidences repeat a lot."""

    def __init__(self) -> None:
        self._values: dict[Any, Any] = {}

    def __call__(self, value: Any) -> Any:
        return self._values.setdefault(value, value)


def _single(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple):
        items = sorted({str(v) for v in value if v not in (None, "")})
        return ", ".join(items) if items else None
    return sys.intern(str(value))


def _multi(value: Any) -> frozenset[str]:
    if value is None or value == "":
        return EMPTY
    if isinstance(value, list | tuple):
        return frozenset(sys.intern(str(v)) for v in value if v not in (None, ""))
    return frozenset((sys.intern(str(value)),))


class _Totals:
    """Monitor sums of one run (only the figures some record had)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.latency_n = 0

    def add(self, monitor: dict[str, Any], keys: dict[str, tuple[str, ...]]) -> None:
        """The first figure among each name's candidate keys."""
        found: Any = None
        values = []
        for candidates in keys.values():
            for key in candidates:
                found = monitor.get(key)
                kind = found.__class__
                if kind is float or kind is int:
                    break
            values.append(found)
        self.add_values(keys, values)

    def merge(self, sums: dict[str, float], latency_n: int) -> None:
        for name, value in sums.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.latency_n += latency_n

    def add_values(self, names: Iterable[str], values: Iterable[Any]) -> None:
        """Figures in the order of ``names``; anything but an int or a float (a bool is not a
        figure) is skipped."""
        # once per record: exact type tests instead of isinstance with a union built per call
        sums = self.sums
        for name, value in zip(names, values):  # noqa: B905
            kind = value.__class__
            if kind is float or kind is int:
                sums[name] = sums.get(name, 0.0) + value
                if name == "latency":
                    self.latency_n += 1

    def resources(self, samples: int, facts: dict[str, Any] | None, facts_name: str) -> Resources:
        facts = facts or {}
        used: set[str] = set()

        def pick(name: str, *keys: str) -> float | None:
            for key in keys:
                value = facts.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    used.add(facts_name)
                    return float(value)
            if name in self.sums:
                used.add("monitors")
                return self.sums[name]
            return None

        def whole(value: float | None) -> int | None:
            return None if value is None else int(value)

        prompt = whole(pick("prompt_tokens", "total_prompt_tokens"))
        completion = whole(pick("completion_tokens", "total_completion_tokens"))
        tokens = whole(pick("tokens", "total_tokens"))
        if tokens is None and prompt is not None and completion is not None:
            tokens = prompt + completion
        latency = self.sums.get("latency")
        resources = Resources(
            source="",
            samples=samples,
            calls=whole(pick("calls", "total_llm_calls", "llm_calls", "total_calls")),
            prompt_tokens=prompt,
            completion_tokens=completion,
            tokens=tokens,
            cost_usd=pick("cost", "cost_usd", "total_cost_usd"),
            elapsed_seconds=pick("elapsed", "total_elapsed_seconds", "elapsed_seconds"),
            latency_mean=latency / self.latency_n
            if latency is not None and self.latency_n
            else None,
        )
        if latency is not None:
            used.add("monitors")
        resources.source = "+".join(sorted(used))
        return resources


_SOFT_MONITOR: dict[str, tuple[str, ...]] = {
    "calls": ("llm_calls", "calls", "requests"),
    "prompt_tokens": ("prompt_tokens",),
    "completion_tokens": ("completion_tokens",),
    "cost": ("cost", "cost_usd"),
    "latency": ("latency", "elapsed"),
}


class _Codes:
    """Small-integer codes of the values one span's rows hold: a row travels from a worker to
    the calling process as codes into :attr:`table`, not as a tuple of objects."""

    def __init__(self) -> None:
        self.table: list[Any] = []
        self._of: dict[Any, int] = {}

    def __call__(self, value: Any) -> int:
        code = self._of.get(value)
        if code is None:
            code = self._of[value] = len(self.table)
            self.table.append(value)
        return code


class _ValueCache:
    """The code of one dimension's label value, memoised on the JSON value (a str, or a tuple
    of the array): a repeated tag set costs one dict lookup."""

    def __init__(self, multi: bool, codes: _Codes) -> None:
        self.multi = multi
        self.codes = codes
        self.seen: dict[Any, int] = {}

    def __call__(self, value: Any) -> int:
        try:
            return self.seen[value]
        except KeyError:
            pass
        except TypeError:  # unhashable (a dict in an array ...): no memo
            return self.codes(_multi(value) if self.multi else _single(value))
        code = self.seen[value] = self.codes(_multi(value) if self.multi else _single(value))
        return code


_MISS = -1
"""Not memoised yet (no code is negative)."""

_SCALAR = tuple[Any, ...] | str | int | float | bool | None
_VALUE = _SCALAR | dict[str, Any]
"""Any JSON value, arrays as tuples (hashable: the memo key of a tag set)."""


class _Monitor(msgspec.Struct):
    """The figures of a ``labeling_monitor`` that compare sums, in the order of
    ``_MONITOR_NAMES``."""

    llm_calls: Any = None
    prompt_tokens: Any = None
    completion_tokens: Any = None
    cost: Any = None
    elapsed: Any = None


_MONITOR_NAMES = ("calls", "prompt_tokens", "completion_tokens", "cost", "latency")


@functools.cache
def _record_decoder(names: tuple[str, ...]) -> tuple[msgspec.json.Decoder[Any], Any, Any]:
    """A decoder of only what compare keeps of a labeled record: the id, each dimension's
    value, the confidences and the monitor figures (the conversation is skipped unparsed);
    with the record's labels and confidence Struct types."""
    fields = [f"d{i}" for i in range(len(names))]
    rename = dict(zip(fields, names, strict=True))
    confidence = msgspec.defstruct("Confidence", [(f, Any, None) for f in fields], rename=rename)
    labels = msgspec.defstruct(
        "Labels",
        [*((f, _VALUE, None) for f in fields), ("confidence", confidence | _SCALAR, None)],
        rename={**rename, "confidence": "confidence"},
    )
    record = msgspec.defstruct(
        "CompareRecord",
        [("id", str, ""), ("labels", labels | None, None), ("monitor", _Monitor | None, None)],
        rename={"monitor": "labeling_monitor"},
    )
    return msgspec.json.Decoder(record), labels, confidence


@dataclass
class _SpanRows:
    """The rows of one span: ids (``""`` for a record without one), codes (a row after row,
    each ``2 x dimensions`` long: values, then confidences) into ``table``, monitor sums."""

    ids: list[str]
    codes: array[int]
    table: list[Any]
    sums: dict[str, float]
    latency_n: int


def read_span_rows(span: Span, dims: Sequence[DimensionSpec]) -> _SpanRows:
    """The rows of one span of a taxonomy run (in a worker process for a big run)."""
    names = tuple(d.name for d in dims)
    decoder, labels_type, confidence_type = _record_decoder(names)
    fast = decoder.type
    codes = _Codes()
    caches = [_ValueCache(d.select == "multi", codes) for d in dims]
    getters = [cache.seen.get for cache in caches]
    scores_seen: dict[Any, int] = {}
    seen_get = scores_seen.get
    no_scores = [codes(None)] * len(names)
    astuple = msgspec.structs.astuple
    ids: list[str] = []
    flat: array[int] = array("I")
    totals = _Totals()
    add = totals.add_values
    for decoded in decode_span(span, decoder):
        if decoded is None:
            continue
        record = decoded
        if record.__class__ is not fast:  # another shape, read as a dict: the same fields
            record = fast(
                id=record.id,
                labels=msgspec.convert(record.labels, labels_type),
                monitor=msgspec.convert(record.monitor, _Monitor),
            )
        labels = record.labels
        if labels is None:
            continue
        ids.append(record.id)
        given = astuple(labels)
        # the common case in comprehensions (one memo lookup per value), the rest one by one
        try:
            values = [get(v, _MISS) for get, v in zip(getters, given)]  # noqa: B905
        except TypeError:  # an unhashable value
            values = [_MISS] * len(caches)
        if values.count(_MISS):
            values = [
                cache(given[i]) if v == _MISS else v
                for i, (cache, v) in enumerate(zip(caches, values, strict=True))
            ]
        scores = given[-1]
        if scores.__class__ is confidence_type:
            found = astuple(scores)
            try:
                marks = [seen_get(v, _MISS) for v in found]
            except TypeError:
                marks = [_MISS] * len(found)
            if marks.count(_MISS):
                marks = [
                    _score_code(v, scores_seen, codes) if m == _MISS else m
                    for v, m in zip(found, marks, strict=True)
                ]
            values += marks
        else:
            values += no_scores
        flat.extend(values)
        monitor = record.monitor
        if monitor is not None:
            add(_MONITOR_NAMES, astuple(monitor))
    return _SpanRows(ids, flat, codes.table, totals.sums, totals.latency_n)


def load_taxonomy_run(
    run: RunData,
    name: str,
    dims: Sequence[DimensionSpec],
    intern: Interner,
    *,
    jobs: int | None = None,
) -> LoadedRun:
    """The rows of a taxonomy run: per sample id, the shared value of every dimension and its
    confidence (a float, or None); a big run is read on ``jobs`` processes (default: every
    core), span by span, and merged in record order (the first record of an id is kept)."""
    width = 2 * len(dims)
    rows: dict[str, tuple[Any, ...]] = {}
    totals = _Totals()
    duplicates = position = 0
    for _, found in map_spans(run, read_span_rows, dims, jobs=jobs):
        shared = [intern(value) for value in found.table]
        values = iter(map(shared.__getitem__, found.codes))
        tuples = zip(*[values] * width, strict=True)  # rows of `width` values, cut in C
        for given, row in zip(found.ids, tuples, strict=True):
            key = sys.intern(given or str(position))
            position += 1
            if key in rows:
                duplicates += 1
            else:
                rows[key] = row
        totals.merge(found.sums, found.latency_n)
    failed = sum(1 for _ in run.failures())
    loaded = LoadedRun(data=run, name=name, rows=rows, failed=failed, duplicates=duplicates)
    loaded.resources = totals.resources(len(rows), run.stats, "stats")
    return loaded


def _score_code(value: Any, seen: dict[Any, int], codes: _Codes) -> int:
    """The code of a confidence: the float, or None for anything else (a bool, a string, a
    non-finite number)."""
    ok = value.__class__ is float or value.__class__ is int
    code = codes(float(value) if ok and math.isfinite(value) else None)
    try:
        return seen.setdefault(value, code)
    except TypeError:  # unhashable
        return code


def soft_key(conversation: str, message: str) -> str:
    return sys.intern(f"{conversation}{KEY_SEPARATOR}{message}")


def show_key(key: str) -> str:
    """A pairing key as shown to people: ``conversationId/messageId`` for soft labels."""
    return key.replace(KEY_SEPARATOR, "/")


def load_soft_run(run: RunData, name: str, intern: Interner) -> LoadedRun:
    rows: dict[str, tuple[Any, ...]] = {}
    totals = _Totals()
    failed = duplicates = 0
    for _, record in run.soft_records():
        totals.add(record.monitor, _SOFT_MONITOR)
        if record.failed or not isinstance(record.hard_label, int):
            failed += 1
            continue
        key = soft_key(record.conversationId, record.messageId)
        if key in rows:
            duplicates += 1
            continue
        soft = record.soft_label if isinstance(record.soft_label, float | int) else None
        rows[key] = (record.hard_label, None if soft is None else intern(float(soft)))
    loaded = LoadedRun(data=run, name=name, rows=rows, failed=failed, duplicates=duplicates)
    loaded.resources = totals.resources(len(rows), run.metadata, "metadata")
    return loaded


_GOLD_COLUMNS = {
    "conversation": ("conversationId", "conversation_id", "conversationid"),
    "message": ("messageId", "message_id", "messageid"),
    "label": ("hard_label", "label", "gold", "hard"),
}


def _gold_field(record: dict[str, Any], which: str) -> Any:
    for key in _GOLD_COLUMNS[which]:
        if key in record:
            return record[key]
    return None


def load_gold(path: str | Path) -> dict[str, int]:
    """Hard labels of a gold file: JSONL / JSON (objects) or CSV / TSV (a header row) with
    ``conversationId``, ``messageId`` and ``hard_label`` (0 or 1)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"gold file {path}: no such file")
    gold: dict[str, int] = {}
    for where, record in _gold_records(path):
        conversation = _gold_field(record, "conversation")
        message = _gold_field(record, "message")
        label = _gold_field(record, "label")
        if conversation in (None, "") or message in (None, ""):
            raise InputError(
                f"{where}: gold record without conversationId / messageId",
                hint="every row needs conversationId, messageId and hard_label",
            )
        text = str(label).strip()
        if text not in ("0", "1"):
            raise InputError(f"{where}: hard_label must be 0 or 1, not {label!r}")
        gold.setdefault(soft_key(str(conversation), str(message)), int(text))
    if not gold:
        raise InputError(f"gold file {path} holds no labels")
    return gold


def _gold_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            for number, row in enumerate(reader, 2):
                yield f"{path}:{number}", {k.strip(): v for k, v in row.items() if k}
        return
    for item in iter_raw(path):
        if isinstance(item, Problem):
            if item.severity == "error":
                raise InputError(f"{item.location}: {item.message}")
            continue
        if isinstance(item.data, dict):
            yield str(item.location), item.data
