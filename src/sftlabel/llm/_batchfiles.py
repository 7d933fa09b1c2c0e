"""The files of a batch: its output lines (an answer or an error per ``custom_id``), and
durable writes (batch files fsynced, answers in the response cache before a batch counts as
collected)."""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any

import msgspec

REQUESTS = ".requests.ndjson"
"""A batch's input file in the run directory (not ``.jsonl``: softlabel outputs are every
``*.jsonl`` of their directory); uploaded as ``<local>.jsonl``."""
KEYS = ".keys.ndjson"
"""``[custom_id, cache key, model, logprobs]`` per line of a batch."""


class RequestTag:
    """The stable key of the item whose requests run in this context, and a call counter:
    ``custom_id`` = ``<key>#<n>`` (call 1, call 2, arbitration ... in the order they are made)."""

    __slots__ = ("calls", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self.calls = 0

    def next_id(self) -> str:
        self.calls += 1
        return f"{self.key}#{self.calls}"


request_tag: contextvars.ContextVar[RequestTag | None] = contextvars.ContextVar(
    "sftlabel_request_tag", default=None
)


class Line(msgspec.Struct):
    custom_id: str | None = None
    response: Response | None = None
    error: Any = None


class Response(msgspec.Struct):
    status_code: int | None = None
    body: msgspec.Raw = msgspec.Raw(b"null")


_line_decoder = msgspec.json.Decoder(Line)


def parse_line(line: bytes) -> tuple[str, int | None, bytes, Any] | None:
    """``(custom_id, status_code or None for an error line, body, error)`` of an output line."""
    if not line.strip():
        return None
    try:
        parsed = _line_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if parsed.custom_id is None:
        return None
    response = parsed.response
    if response is None or response.status_code is None:
        return parsed.custom_id, None, b"", parsed.error or {"message": "no response"}
    return parsed.custom_id, response.status_code, bytes(response.body), parsed.error


def write_files(directory: Path, name: str, data: bytes, keys: bytes) -> None:
    for target, content in ((name, data), (name.removesuffix(REQUESTS) + KEYS, keys)):
        path = directory / target
        with path.open("wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())


def put_all(cache: Any, puts: list[tuple[str, str, bytes]]) -> None:
    cache.flush()
    for key, model, raw in puts:
        cache.put(key, model, raw)
