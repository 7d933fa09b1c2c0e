"""The writers of ``sftlabel select``: source format, Sample JSONL, parquet (labels as columns).

A ``.json`` output is one JSON array (streamed), any other name JSON Lines.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from sftlabel.api._select_native import (
    cut,
    is_sample,
    location_of,
    raw_position,
    raw_record,
    rebuild,
)
from sftlabel.errors import UsageError
from sftlabel.formats import RecordContext, RecordError, detect_format
from sftlabel.formats._source import RawRecord, iter_raw
from sftlabel.model import Conversation, LabeledSample, Location
from sftlabel.taxonomy import Taxonomy

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
_BATCH = 5_000


def _record(payload: bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(payload, dict):
        return payload
    data = _decoder.decode(payload)
    return data if isinstance(data, dict) else {}


class _Lines:
    """JSON Lines, or a streamed JSON array for a ``.json`` name."""

    def __init__(self, handle: IO[bytes], array: bool) -> None:
        self.handle = handle
        self.array = array
        self.count = 0
        if array:
            handle.write(b"[")

    def put(self, data: bytes) -> None:
        if self.array:
            self.handle.write(b"\n" if not self.count else b",\n")
            self.handle.write(data)
        else:
            self.handle.write(data)
            self.handle.write(b"\n")
        self.count += 1

    def close(self) -> None:
        if self.array:
            self.handle.write(b"\n]\n" if self.count else b"]\n")


class SourceWriter:
    """The records in the format they came in (see :mod:`._select_native`)."""

    def __init__(self, lines: _Lines, kind: str, roots: list[Path], tmp: Path) -> None:
        self.lines = lines
        self.kind = kind
        self.roots = roots
        self.rebuilt = 0
        self._db: sqlite3.Connection | None = None
        self._tmp = tmp
        self._deferred = 0

    def write(self, fields: Any, payload: bytes | dict[str, Any], part: str) -> None:
        if self.kind == "soft":
            self.lines.put(
                payload.rstrip() if isinstance(payload, bytes) else _encoder.encode(payload)
            )
            return
        record = _record(payload)
        if not is_sample(record):
            self.lines.put(_encoder.encode(raw_record(record)))
            return
        where = location_of(record)
        if self._db is None:
            self._db = sqlite3.connect(self._tmp / "native.sqlite")
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA cache_size=-16384")
            self._db.execute("PRAGMA temp_store=FILE")
            self._db.execute(
                "CREATE TABLE deferred (n INTEGER PRIMARY KEY, path TEXT, pos INTEGER, data BLOB)"
            )
        path, pos = where if where is not None else ("", -1)
        self._db.execute(
            "INSERT INTO deferred VALUES (?, ?, ?, ?)",
            (self._deferred, path, pos, _encoder.encode(record)),
        )
        self._deferred += 1

    def finish(self) -> int:
        """Write the deferred samples, raw record by raw record (input order); the number
        rebuilt from normalized messages."""
        db = self._db
        if db is None:
            return 0
        db.execute("CREATE INDEX deferred_at ON deferred (path, pos, n)")
        paths = [p for (p,) in db.execute("SELECT DISTINCT path FROM deferred ORDER BY path")]
        for path in paths:
            rows = db.execute(
                "SELECT pos, data FROM deferred WHERE path = ? ORDER BY pos, n", (path,)
            )
            self._restore(path, rows)
        db.close()
        return self.rebuilt

    def _file(self, path: str) -> Path | None:
        if not path:
            return None
        given = Path(path)
        for candidate in (given, *(root / given for root in self.roots)):
            if candidate.is_file():
                return candidate
        return None

    def _restore(self, path: str, rows: Iterator[tuple[int, bytes]]) -> None:
        file = self._file(path)
        pending = next(rows, None)
        if file is not None and pending is not None:
            for raw in iter_raw(file):
                if not isinstance(raw, RawRecord):
                    continue
                position = raw_position(raw.location)
                while pending is not None and position is not None and pending[0] < position:
                    self._rebuild(pending[1])
                    pending = next(rows, None)
                while pending is not None and pending[0] == position:
                    sample = _record(pending[1])
                    out = cut(raw.data, sample, file) if isinstance(raw.data, dict) else None
                    if out is None:
                        self._rebuild(pending[1])
                    else:
                        self.lines.put(_encoder.encode(out))
                    pending = next(rows, None)
                if pending is None:
                    break
        while pending is not None:
            self._rebuild(pending[1])
            pending = next(rows, None)

    def _rebuild(self, data: bytes) -> None:
        self.rebuilt += 1
        self.lines.put(_encoder.encode(rebuild(_record(data))))


class SampleWriter:
    """Sample JSONL (``LabeledSample``: what ``sftlabel slice`` writes, with the labels)."""

    def __init__(self, lines: _Lines, kind: str) -> None:
        self.lines = lines
        self.kind = kind

    def write(self, fields: Any, payload: bytes | dict[str, Any], part: str) -> None:
        if self.kind == "soft" or (isinstance(payload, bytes) and b'"source_format"' in payload):
            self.lines.put(
                payload.rstrip() if isinstance(payload, bytes) else _encoder.encode(payload)
            )
            return
        record = _record(payload)
        self.lines.put(_encoder.encode(as_sample(record) if not is_sample(record) else record))

    def finish(self) -> int:
        return 0


def as_sample(record: dict[str, Any]) -> Any:
    """A labeled raw record (baseline shape) as one labeled sample of its whole conversation."""
    fmt = detect_format(record)
    if fmt is None:
        return record
    try:
        parsed = fmt.parse(record, RecordContext(Path("<run>"), Location(path="<run>")))
    except RecordError:
        return record
    if not isinstance(parsed, Conversation):
        return parsed
    replies = sum(1 for m in parsed.messages if m.role == "assistant")
    return LabeledSample(
        id=str(record.get("id") or parsed.id),
        source_id=str(record.get("id") or parsed.id),
        source_format=parsed.source_format,
        turn_index=replies,
        total_turns=replies,
        messages=parsed.messages,
        system=parsed.system,
        tools=parsed.tools,
        metadata=parsed.metadata,
        labels=record.get("labels") or {},
        labeling_monitor=record.get("labeling_monitor") or {},
    )


class ParquetWriter:
    """One row per sample: ids, every dimension (a string or a list of strings),
    ``confidence_<dim>``, ``unmapped`` (``dim:value``) and ``record`` (the JSON of the sample
    without its labels); soft labels: the fields of the output records."""

    def __init__(self, target: Path, kind: str, taxonomy: Taxonomy | None) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise UsageError(
                "--format parquet needs pyarrow", hint="pip install 'sftlabel[parquet]'"
            ) from None
        self.pa = pa
        self.kind = kind
        self.taxonomy = taxonomy
        self.rows: list[dict[str, Any]] = []
        self.schema = self._schema()
        self.writer = pq.ParquetWriter(str(target), self.schema)

    def _schema(self) -> Any:
        pa = self.pa
        if self.kind == "soft":
            return pa.schema(
                [
                    ("conversationId", pa.string()),
                    ("messageId", pa.string()),
                    ("part", pa.string()),
                    ("split", pa.string()),
                    ("bucket", pa.string()),
                    ("turnIndex", pa.int64()),
                    ("hard_label", pa.int64()),
                    ("soft_label", pa.float64()),
                    ("p0", pa.float64()),
                    ("p1", pa.float64()),
                    ("method", pa.string()),
                    ("strategy", pa.string()),
                    ("model", pa.string()),
                    ("rationale", pa.string()),
                ]
            )
        assert self.taxonomy is not None
        columns: list[tuple[str, Any]] = [
            ("id", pa.string()),
            ("part", pa.string()),
            ("source_format", pa.string()),
            ("turn_index", pa.int64()),
            ("total_turns", pa.int64()),
        ]
        for dim, category in self.taxonomy.categories.items():
            multi = category.select != "single"
            columns.append((dim, pa.list_(pa.string()) if multi else pa.string()))
        for dim in self.taxonomy.categories:
            columns.append((f"confidence_{dim}", pa.float64()))
        columns += [("unmapped", pa.list_(pa.string())), ("record", pa.string())]
        return pa.schema(columns)

    def write(self, fields: Any, payload: bytes | dict[str, Any], part: str) -> None:
        record = _record(payload)
        if self.kind == "soft":
            row = {name: record.get(name) for name in self.schema.names}
            row["part"] = part
        else:
            row = self._taxonomy_row(record, part)
        for name in self.schema.names:
            row.setdefault(name, None)
        self.rows.append(row)
        if len(self.rows) >= _BATCH:
            self._flush()

    def _taxonomy_row(self, record: dict[str, Any], part: str) -> dict[str, Any]:
        assert self.taxonomy is not None
        labels = record.get("labels") if isinstance(record.get("labels"), dict) else {}
        assert isinstance(labels, dict)
        confidence = labels.get("confidence") if isinstance(labels.get("confidence"), dict) else {}
        assert isinstance(confidence, dict)
        row: dict[str, Any] = {
            "id": None if record.get("id") is None else str(record["id"]),
            "part": part,
            "source_format": record.get("source_format"),
            "turn_index": record.get("turn_index"),
            "total_turns": record.get("total_turns"),
        }
        for dim, category in self.taxonomy.categories.items():
            value = labels.get(dim)
            if category.select != "single":
                items = value if isinstance(value, list) else ([] if value is None else [value])
                row[dim] = [str(v) for v in items]
            else:
                row[dim] = None if value is None else str(value)
            number = confidence.get(dim)
            ok = isinstance(number, int | float) and not isinstance(number, bool)
            row[f"confidence_{dim}"] = float(number) if ok and number is not None else None
        row["unmapped"] = [
            f"{u.get('dimension')}:{u.get('value')}"
            for u in labels.get("unmapped") or []
            if isinstance(u, dict)
        ]
        row["record"] = _encoder.encode(raw_record(record)).decode()
        return row

    def _flush(self) -> None:
        if self.rows:
            table = self.pa.Table.from_pylist(self.rows, schema=self.schema)
            self.writer.write_table(table)
            self.rows = []

    def finish(self) -> int:
        self._flush()
        self.writer.close()
        return 0


@contextlib.contextmanager
def open_writer(
    target: Path,
    fmt: str,
    kind: str,
    taxonomy: Taxonomy | None,
    *,
    roots: list[Path] | None = None,
    scratch: Path | None = None,
) -> Iterator[Any]:
    """A writer with ``write(fields, payload, part)`` and ``finish() -> rebuilt``."""
    if fmt == "parquet":
        parquet = ParquetWriter(target, kind, taxonomy)
        try:
            yield parquet
        finally:
            parquet.writer.close()
        return
    with tempfile.TemporaryDirectory(prefix="out-", dir=scratch) as tmp:
        stdout = str(target) == "/dev/stdout"
        handle: IO[bytes]
        with contextlib.ExitStack() as stack:
            if stdout:
                import sys

                handle = sys.stdout.buffer
            else:
                handle = stack.enter_context(target.open("wb"))
            lines = _Lines(handle, array=target.suffix.lower() == ".json" and not stdout)
            writer: Any = (
                SourceWriter(lines, kind, roots or [], Path(tmp))
                if fmt == "source"
                else SampleWriter(lines, kind)
            )
            yield writer
            lines.close()
            handle.flush()
