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
from sftlabel.formats._normalize import RecordError
from sftlabel.formats._source import RawRecord, discover, iter_raw
from sftlabel.model import Conversation, Problem
from sftlabel.plugins import FORMATS_GROUP, load_group

__all__ = [
    "LONG_MESSAGE_CHARS",
    "InputFormat",
    "Reader",
    "RecordContext",
    "RecordError",
    "detect_format",
    "discover",
    "load_formats",
]

LONG_MESSAGE_CHARS = 1_000_000
"""Messages longer than this get a ``long-message`` warning (a model's context will not hold
them; ``--max-chars`` shortens what the labeler sees)."""

_sorted_encoder = msgspec.json.Encoder(order="sorted")
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


class Reader:
    """Streams normalized conversations (and problems) out of files and directory trees.

    One Reader keeps the ids it has handed out, so ids stay unique across all the files it reads:
    a record without an id gets ``rec-<hash of its content>``; a repeated id gets a ``~2``, ``~3``
    ... suffix and a ``duplicate-id`` warning.
    """

    def __init__(self, formats: Iterable[InputFormat] | None = None) -> None:
        self.formats = list(formats) if formats is not None else load_formats()
        self._seen: set[int] = set()  # hashes of the conversation ids handed out
        self._multi: dict[int, int] = {}  # id hash -> replies, for multi-reply conversations

    def read(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[Conversation | Problem]:
        """Every conversation and problem of every input file, in a stable order."""
        for path in discover(paths):
            yield from self.read_file(path)

    def read_file(self, path: Path) -> Iterator[Conversation | Problem]:
        """Every conversation and problem of one file."""
        for raw in iter_raw(path):
            if isinstance(raw, Problem):
                yield raw
            else:
                yield from self._convert(raw, path)

    def _convert(self, raw: RawRecord, path: Path) -> Iterator[Conversation | Problem]:
        record = raw.data
        if not isinstance(record, dict):
            yield Problem(
                severity="error",
                code="not-an-object",
                message=f"record is a JSON {_json_type(record)}, not an object",
                location=raw.location,
            )
            return
        fmt = detect_format(record, self.formats)
        if fmt is None:
            keys = ", ".join(sorted(map(str, record))[:8]) or "none"
            yield Problem(
                severity="error",
                code="unknown-format",
                message=(
                    f"record matches no known format (its keys: {keys}); expected "
                    "'conversations' (ShareGPT), 'messages' (OpenAI), 'data' (Pangu) "
                    "or 'turnsArray' (Copilot)"
                ),
                location=raw.location,
                record_id=_plain_id(record),
            )
            return
        ctx = RecordContext(path, raw.location)
        try:
            conversation = fmt.parse(record, ctx)
        except RecordError as exc:
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
        conversation.location = raw.location
        self._assign_id(conversation, record, ctx)
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

    def _assign_id(
        self, conversation: Conversation, record: dict[str, Any], ctx: RecordContext
    ) -> None:
        if not conversation.id:
            digest = hashlib.blake2b(_sorted_encoder.encode(record), digest_size=10).hexdigest()
            conversation.id = f"rec-{digest}"
            conversation.id_generated = True
        replies = sum(1 for m in conversation.messages if m.role == "assistant")
        base = conversation.id
        candidate = base
        counter = 1
        while self._collides(candidate, replies):
            counter += 1
            candidate = f"{base}~{counter}"
        if candidate != base:
            conversation.id = candidate
            what = "identical content" if conversation.id_generated else "id"
            ctx.warn(
                "duplicate-id",
                f"{what} {base!r} (or the sample ids it gives) seen before in this run; "
                f"renamed to {candidate!r}",
            )
        self._seen.add(hash(candidate))
        if replies > 1:
            self._multi[hash(candidate)] = replies

    def _collides(self, candidate: str, replies: int) -> bool:
        """Whether ``candidate`` or the sample ids it gives clash with ids handed out before.

        Sample ids are ``<id>_t<k>`` for a conversation with several replies and ``<id>`` for
        one with a single reply, so record ``a_t1`` (one reply) and record ``a`` (two replies)
        would both give ``a_t1``. Memory stays per conversation, not per sample.
        """
        if hash(candidate) in self._seen:
            return True
        if replies > 1:
            return any(hash(f"{candidate}_t{k}") in self._seen for k in range(1, replies + 1))
        found = _SLICE_SUFFIX.search(candidate)
        if found is None:
            return False
        return self._multi.get(hash(candidate[: found.start()]), 0) >= int(found.group(1))


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
