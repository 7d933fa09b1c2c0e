"""Input formats and the streaming reader.

>>> from sftlabel.formats import Reader
>>> for item in Reader().read(["data/"]):
...     if isinstance(item, Conversation): ...   # a normalized conversation
...     else: ...                                # a Problem (error or warning) with file:line

Formats are plugins (entry-point group ``sftlabel.formats``); detection is per record, trying the
formats by ascending ``priority``: Copilot turn records (``turnsArray``), ShareGPT
(``conversations``), OpenAI messages (``messages``), Pangu (``data``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from sftlabel.formats._base import InputFormat, RecordContext
from sftlabel.formats._ids import IdTable
from sftlabel.formats._normalize import RecordError
from sftlabel.formats._source import RawRecord, discover, iter_raw, scan
from sftlabel.model import Conversation, Location, Problem, Sample
from sftlabel.plugins import FORMATS_GROUP, load_group

__all__ = [
    "LONG_MESSAGE_CHARS",
    "InputFormat",
    "Item",
    "Reader",
    "RecordContext",
    "RecordError",
    "detect_format",
    "discover",
    "load_formats",
    "scan",
]

LONG_MESSAGE_CHARS = 1_000_000
"""Messages longer than this get a ``long-message`` warning (a model's context will not hold
them; ``--max-chars`` shortens what the labeler sees)."""

_sorted_encoder = msgspec.json.Encoder(order="sorted")
Item = Conversation | Sample | Problem
"""What a :class:`Reader` yields."""
_SLICE_SUFFIX = re.compile(r"_t(\d+)$")


def load_formats() -> list[InputFormat]:
    """The registered input formats, in detection order."""
    loaded = load_group(FORMATS_GROUP).objects.values()
    formats = [fmt for fmt in loaded if isinstance(fmt, InputFormat)]
    return sorted(formats, key=lambda fmt: fmt.priority)


def detect_format(record: Any, formats: Iterable[InputFormat] | None = None) -> InputFormat | None:
    """The first format that claims ``record``, or None."""
    if not isinstance(record, dict):
        return None
    for fmt in formats if formats is not None else load_formats():
        if fmt.matches(record):
            return fmt
    return None


WRAPPER_KEYS = (
    "data",
    "train",
    "validation",
    "valid",
    "dev",
    "test",
    "rows",
    "records",
    "examples",
    "instances",
    "samples",
    "items",
)
"""Keys of a record *wrapper*: ``{"data": [record, ...]}``, ``{"train": [...], "test": [...]}``.
The records inside are read one by one (with an ``unwrapped-records`` note)."""

_MESSAGE_KEYS = ("role", "from", "content", "value")
_SPLIT_KEYS = frozenset({"train", "validation", "valid", "dev", "test"})


class Reader:
    """Streams normalized conversations, samples and problems out of files and directory trees.

    Records in the sample format (what ``sftlabel slice`` writes) come out as
    :class:`~sftlabel.model.Sample` objects, to be passed on unchanged (never sliced again);
    every other record as a :class:`~sftlabel.model.Conversation`.

    Ids depend only on a record and its own file, never on the order of the files of a run:
    a record without an id gets ``rec-<hash of its content>``; an id repeated *within a file*
    gets ``~2``, ``~3`` ... in the order of the file; an id already used by *another file* of the
    run gets ``@<file>`` (the file's path relative to the input directory, or its name). Either
    way a ``duplicate-id`` warning says so. One Reader keeps the ids it has handed out (one
    hash per conversation, not per sample).
    """

    def __init__(self, formats: Iterable[InputFormat] | None = None) -> None:
        self.formats = list(formats) if formats is not None else load_formats()
        self._seen = IdTable()  # id -> (number of the file that handed it out, replies)
        self._files = 0

    def read(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[Item]:
        """Every conversation, sample and problem of every input file, in a stable order.

        Directory walks first yield a note (a file-level ``skipped-files`` warning) for the
        files they leave out, by reason.
        """
        found = scan(paths)
        yield from found.notes
        for path, tag in found.files:
            yield from self.read_file(path, tag=tag)

    def read_file(self, path: Path, *, tag: str | None = None) -> Iterator[Item]:
        """Every conversation, sample and problem of one file. ``tag`` names the file in ids
        that clash with another file's (default: the file name)."""
        self._files += 1
        file_number = self._files
        tag = tag or path.name
        for raw in iter_raw(path):
            if isinstance(raw, Problem):
                yield raw
            else:
                yield from self._convert(raw, path, file_number, tag)

    def _convert(
        self, raw: RawRecord, path: Path, file_number: int, tag: str, *, nested: bool = False
    ) -> Iterator[Item]:
        record = raw.data
        if not isinstance(record, dict):
            yield Problem(
                severity="error",
                code="not-an-object",
                message=f"record is a JSON {_json_type(record)}, not an object",
                location=raw.location,
            )
            return
        candidates = self._candidates(record)
        if not nested and (not candidates or _key(candidates[0]) in WRAPPER_KEYS):
            wrapped = _wrapped(record, self.formats)
            if wrapped:
                yield from self._unwrap(
                    record, wrapped, raw, path, file_number=file_number, tag=tag
                )
                return
        if not candidates:
            keys = ", ".join(sorted(map(str, record))[:8]) or "none"
            yield Problem(
                severity="error",
                code="unknown-format",
                message=(
                    f"record matches no known format (its keys: {keys}); expected one of "
                    f"{', '.join(repr(k) for k in _source_keys(self.formats, skip='sample'))} "
                    "(docs/formats.md; `sftlabel info` lists the format plugins)"
                ),
                location=raw.location,
                record_id=_plain_id(record),
            )
            return
        ctx = RecordContext(path, raw.location)
        notes: list[str] = []
        parsed: Conversation | Sample | None = None
        for number, fmt in enumerate(candidates):
            ctx = RecordContext(path, raw.location)
            try:
                parsed = fmt.parse(record, ctx)
            except RecordError as exc:
                later = [f for f in candidates[number + 1 :] if _key(f) != _key(fmt)]
                if exc.code == "empty-conversation" and later:
                    notes.append(
                        f"{_key(fmt)!r} has no usable messages ({exc.message}); "
                        f"read {_key(later[0])!r} instead"
                    )
                    continue
                yield from ctx.problems
                yield Problem(
                    severity="error",
                    code=exc.code,
                    message=exc.message,
                    location=raw.location,
                    record_id=_plain_id(record),
                )
                return
            except Exception as exc:  # a reader bug (or a plugin's) must not stop the run
                yield Problem(
                    severity="error",
                    code="reader-failed",
                    message=f"the {fmt.name} reader failed: {type(exc).__name__}: {exc}",
                    location=raw.location,
                    record_id=_plain_id(record),
                )
                return
            later = [f for f in candidates[number + 1 :] if _key(f) != _key(fmt)]
            if later and isinstance(parsed, Conversation) and _blank(parsed):
                notes.append(
                    f"every message of {_key(fmt)!r} is blank; read {_key(later[0])!r} instead"
                )
                parsed = None
                continue
            losers = [
                key
                for key in dict.fromkeys(_key(f) for f in candidates[number + 1 :])
                if key != _key(fmt) and record.get(key) not in (None, "", [], {})
            ]
            if losers:
                ctx.warn(
                    "ambiguous-source",
                    f"record has {' and '.join(repr(k) for k in [_key(fmt), *losers])}; read "
                    f"{_key(fmt)!r}, which comes first (docs/formats.md: source priority); "
                    f"{' and '.join(repr(k) for k in losers)} kept in metadata",
                )
            break
        for note in notes:
            ctx.warn("fallback-source", note)
        if parsed is None:  # pragma: no cover - the loop returns or breaks
            return
        if isinstance(parsed, Sample):
            if parsed.location is None:
                parsed.location = raw.location
            self._assign_id(parsed, record, ctx, file_number, tag, replies=1)
            for problem in ctx.problems:
                problem.record_id = parsed.id
                yield problem
            yield parsed
            return
        conversation = parsed
        conversation.location = raw.location
        replies = sum(1 for m in conversation.messages if m.role == "assistant")
        self._assign_id(conversation, record, ctx, file_number, tag, replies=replies)
        for index, message in enumerate(conversation.messages):
            if len(message.content) > LONG_MESSAGE_CHARS:
                ctx.warn(
                    "long-message",
                    f"message {index} has {len(message.content):,} characters; "
                    "use --max-chars to shorten what the labeler sees",
                )
        for problem in ctx.problems:
            problem.record_id = conversation.id
            yield problem
        yield conversation

    def _candidates(self, record: dict[str, Any]) -> list[InputFormat]:
        """The formats that claim ``record``, by priority: the first one, and those after it
        whose source key the record has (checked by key first: most records have one)."""
        for index, fmt in enumerate(self.formats):
            if fmt.matches(record):
                others = [
                    later
                    for later in self.formats[index + 1 :]
                    if (_key(later) in record or not hasattr(later, "source_key"))
                    and later.matches(record)
                ]
                return [fmt, *others]
        return []

    def _unwrap(
        self,
        record: dict[str, Any],
        keys: list[str],
        raw: RawRecord,
        path: Path,
        *,
        file_number: int,
        tag: str,
    ) -> Iterator[Item]:
        counts = ", ".join(f"{key!r} holds {len(record[key]):,}" for key in keys)
        others = sorted(set(map(str, record)) - set(keys))
        yield Problem(
            severity="warning",
            code="unwrapped-records",
            message=f"record is a wrapper ({counts} records): each is read on its own"
            + (f"; its other keys ({', '.join(others[:8])}) are ignored" if others else ""),
            location=raw.location,
        )
        for key in keys:
            for index, item in enumerate(record[key]):
                location = Location(path=raw.location.path, line=raw.location.line, index=index)
                for out in self._convert(
                    RawRecord(item, location), path, file_number, tag, nested=True
                ):
                    if isinstance(out, Conversation) and key in _SPLIT_KEYS and not out.split:
                        out.split = key
                    yield out

    def _assign_id(
        self,
        item: Conversation | Sample,
        record: dict[str, Any],
        ctx: RecordContext,
        file_number: int,
        tag: str,
        *,
        replies: int,
    ) -> None:
        generated = isinstance(item, Conversation) and not item.id
        if generated and isinstance(item, Conversation):
            digest = hashlib.blake2b(_sorted_encoder.encode(record), digest_size=10).hexdigest()
            item.id = f"rec-{digest}"
            item.id_generated = True
        base = item.id
        candidate = base
        owner = self._owner(candidate, replies)
        if owner is not None and owner != file_number:
            candidate = f"{base}@{tag}"
            owner = self._owner(candidate, replies)
        stem = candidate
        counter = 1
        while owner is not None:
            counter += 1
            candidate = f"{stem}~{counter}"
            owner = self._owner(candidate, replies)
        if candidate != base:
            item.id = candidate
            what = "identical content" if getattr(item, "id_generated", False) else "id"
            where = "in this file" if "@" not in candidate[len(base) :] else "in another file"
            ctx.warn(
                "duplicate-id",
                f"{what} {base!r} (or the sample ids it gives) seen before {where}; "
                f"renamed to {candidate!r}",
            )
        self._seen.put(candidate, file_number, replies)

    def _owner(self, candidate: str, replies: int) -> int | None:
        """The file that handed out ``candidate`` or a sample id it gives, if any.

        Sample ids are ``<id>_t<k>`` for a conversation with several replies and ``<id>`` for
        one with a single reply, so record ``a_t1`` (one reply) and record ``a`` (two replies)
        would both give ``a_t1``. Memory stays per conversation, not per sample.
        """
        found = self._seen.get(candidate)
        if found is not None:
            return found[0]
        if replies > 1:
            for k in range(1, replies + 1):
                found = self._seen.get(f"{candidate}_t{k}")
                if found is not None:
                    return found[0]
            return None
        suffix = _SLICE_SUFFIX.search(candidate)
        if suffix is None:
            return None
        stem = self._seen.get(candidate[: suffix.start()])
        if stem is not None and stem[1] > 1 and stem[1] >= int(suffix.group(1)):
            return stem[0]
        return None


def _blank(conversation: Conversation) -> bool:
    return not any(m.content.strip() or m.tool_calls or m.reasoning for m in conversation.messages)


def _key(fmt: InputFormat) -> str:
    return str(getattr(fmt, "source_key", fmt.name))


def _source_keys(formats: Iterable[InputFormat], skip: str = "") -> list[str]:
    keys: list[str] = []
    for fmt in formats:
        if fmt.name == skip:
            continue
        key = _key(fmt)
        if key not in keys:
            keys.append(key)
    return keys


def _wrapped(record: dict[str, Any], formats: list[InputFormat]) -> list[str]:
    """The wrapper keys of ``record`` whose lists hold records (not messages), or ``[]``."""
    found: list[str] = []
    for key in WRAPPER_KEYS:
        value = record.get(key)
        if not isinstance(value, list) or not value:
            continue
        first = value[0]
        if not isinstance(first, dict) or any(k in first for k in _MESSAGE_KEYS):
            continue
        if any(fmt.matches(first) for fmt in formats):
            found.append(key)
    return found


def _plain_id(record: dict[str, Any]) -> str | None:
    for key in ("id", "conversationId"):
        value = record.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__
