"""Parquet and Arrow files: what Hugging Face ``datasets`` writes and the Hub serves.

``push_to_hub`` layouts (``data/train-00000-of-00001.parquet``) and ``save_to_disk`` folders
(``data-00000-of-00001.arrow`` beside ``dataset_info.json`` and ``state.json``; one folder per
split with a ``dataset_dict.json`` above them) are read row by row: record batches of
:data:`BATCH_ROWS` rows are decoded one at a time, so memory stays flat whatever the file size.
Each row is one record (its columns are the record's keys), detected like a JSON record.

pyarrow is an optional dependency: ``pip install 'sftlabel[parquet]'``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sftlabel.model import Location, Problem

BATCH_ROWS = 256
"""Rows decoded at a time (a batch of long conversations can hold megabytes)."""

PARQUET_MAGIC = b"PAR1"
ARROW_FILE_MAGIC = b"ARROW1"
ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"

EXTRA_HINT = "pip install 'sftlabel[parquet]' (pyarrow)"


def columnar_kind(path: Path, head: bytes) -> str | None:
    """``"parquet"``, ``"arrow"`` or None, from the file's first bytes (or its suffix)."""
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith((ARROW_FILE_MAGIC, ARROW_STREAM_MAGIC)):
        return "arrow"
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".arrow") and head.lstrip()[:1] not in (b"{", b"["):
        return suffix[1:]
    return None


def iter_columnar(path: Path, kind: str) -> Iterator[tuple[Any, Location] | Problem]:
    """Every row of a Parquet or Arrow file as a dict, with its 0-based row index."""
    where = str(path)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        yield Problem(
            severity="error",
            code="needs-parquet",
            message=f"reading {kind} files needs pyarrow, which is not installed: {EXTRA_HINT}",
            location=Location(path=where),
        )
        return
    produced = 0
    try:
        if kind == "parquet":
            # No pre-buffering and no threads: pyarrow would otherwise read ahead whole row
            # groups (tens of MB each in `datasets` files of long conversations).
            parquet = pq.ParquetFile(where, memory_map=False, buffer_size=1 << 20, pre_buffer=False)
            batches: Iterator[Any] = parquet.iter_batches(batch_size=BATCH_ROWS, use_threads=False)
        else:
            batches = _arrow_batches(pa, where)
        for batch in batches:
            for start in range(0, batch.num_rows, BATCH_ROWS):
                for row in batch.slice(start, BATCH_ROWS).to_pylist():
                    yield _drop_nulls(row), Location(path=where, index=produced)
                    produced += 1
    except (OSError, pa.ArrowException) as exc:
        yield Problem(
            severity="error",
            code="unreadable-file",
            message=f"cannot read {kind} file after {produced:,} rows: {exc}",
            location=Location(path=where, index=produced) if produced else Location(path=where),
        )
        return
    if not produced:
        yield Problem(
            severity="warning",
            code="empty-file",
            message=f"{kind} file has no rows",
            location=Location(path=where),
        )


def _drop_nulls(value: Any) -> Any:
    """``value`` without the null fields of its objects.

    A column holds every key any row has, so a row gets ``null`` for the keys it lacks (and a
    struct for the fields other rows' structs have): in columnar data a null and a missing key
    are the same, and dropping them reads a row exactly as its JSON twin.
    """
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _arrow_batches(pa: Any, where: str) -> Iterator[Any]:
    """Record batches of an Arrow IPC stream (what ``save_to_disk`` writes) or file."""
    with pa.OSFile(where, "rb") as source:
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            source.seek(0)
            file_reader = pa.ipc.open_file(source)
            for index in range(file_reader.num_record_batches):
                yield file_reader.get_batch(index)
            return
        yield from reader
