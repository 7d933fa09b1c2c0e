"""Spreadsheet files of ``review``: CSV (UTF-8 with BOM), TSV and xlsx, written and read back.

Writing streams row by row (xlsx through openpyxl's write-only mode). Reading is tolerant of
what spreadsheet programs do to a file on save: a byte-order mark (UTF-8 or UTF-16), a
semicolon or tab instead of a comma (Excel in many locales), a legacy code page, CRLF line ends,
blank rows, trailing empty columns, numbers where text was.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from sftlabel.errors import InputError, UsageError

TableFormat = Literal["csv", "tsv", "xlsx"]
FORMATS: tuple[TableFormat, ...] = ("csv", "tsv", "xlsx")
Cell = str | int | float | None

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""What a spreadsheet may take for the start of a formula (full-width forms included)."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_XLSX_HINT = "install the xlsx extra: pip install 'sftlabel[xlsx]' (it adds openpyxl)"


def format_for(path: str | Path, explicit: str | None = None) -> TableFormat:
    """The table format: ``explicit`` if given, else from the file name (``.tsv``/``.tab``:
    TSV, ``.xlsx``: xlsx, anything else: CSV)."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise UsageError(f"unknown format {explicit!r}", hint="use csv, tsv or xlsx")
        return explicit
    suffix = Path(str(path)).suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix == ".xlsx":
        return "xlsx"
    return "csv"


def text_cell(value: str) -> str:
    """The one neutralizer of every text cell of a review file (the table writer applies it):
    control characters (ANSI escapes included) dropped and a leading ``= + - @`` (or their
    full-width forms), tab or line break quoted with ``'``, so that a spreadsheet shows the
    text instead of running a formula (``=HYPERLINK(…)``, ``+cmd|' /C calc'!A0``).
    :func:`restore_cell` undoes the quote when the file is read back."""
    value = _CONTROL.sub("", value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def restore_cell(value: str) -> str:
    """A cell as written before :func:`text_cell` quoted it (``'=x`` -> ``=x``)."""
    if value.startswith("'") and value[1:].startswith(_FORMULA_START):
        return value[1:]
    return value


def read_back(value: str) -> str:
    """What a text cell written from ``value`` holds when the file is read back (control
    characters gone, the formula quote undone, surrounding space stripped)."""
    return _CONTROL.sub("", value).strip()


def _neutral(row: Sequence[Cell]) -> list[Cell]:
    return [text_cell(v) if isinstance(v, str) else v for v in row]


class RowWriter(Protocol):
    def __call__(self, row: Sequence[Cell]) -> None: ...


@contextmanager
def table_writer(
    out: IO[bytes],
    fmt: TableFormat,
    header: Sequence[str],
    *,
    bom: bool = True,
    widths: Sequence[int] = (),
) -> Iterator[RowWriter]:
    """Write ``header`` then yield a function that writes one row; the file is complete when
    the context exits. ``out`` is not closed."""
    if fmt == "xlsx":
        with _xlsx_writer(out, header, widths) as write:
            yield write
        return
    text = io.TextIOWrapper(out, encoding="utf-8-sig" if bom else "utf-8", newline="")
    try:
        writer = csv.writer(text, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\r\n")
        writer.writerow(_neutral(header))

        def write(row: Sequence[Cell]) -> None:
            writer.writerow(_neutral(row))

        yield write
        text.flush()
    finally:
        text.detach()


@contextmanager
def _xlsx_writer(
    out: IO[bytes], header: Sequence[str], widths: Sequence[int]
) -> Iterator[RowWriter]:
    openpyxl = _openpyxl()
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("review")
    sheet.freeze_panes = "B2"
    for number, width in enumerate(widths, 1):
        sheet.column_dimensions[get_column_letter(number)].width = width
    bold = Font(bold=True)
    cells = []
    for name in header:
        cell = WriteOnlyCell(sheet, value=text_cell(name))
        cell.font = bold
        cells.append(cell)
    sheet.append(cells)

    def write(row: Sequence[Cell]) -> None:
        values: list[Any] = []
        for value in _neutral(row):
            if isinstance(value, str) and value.startswith("="):
                cell = WriteOnlyCell(sheet, value=value)
                cell.data_type = "s"  # text, never a formula
                values.append(cell)
            else:
                values.append(value)
        sheet.append(values)

    yield write
    book.save(out)


def _openpyxl() -> Any:
    try:
        import openpyxl
    except ImportError:
        message = "xlsx files need openpyxl, which is not installed"
        raise UsageError(message, hint=_XLSX_HINT) from None
    return openpyxl


# --- reading ---------------------------------------------------------------------------------


class Table:
    """A review file opened for reading: its header and its rows, streamed.

    Row numbers are those a spreadsheet shows: the header is row 1.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        with path.open("rb") as handle:
            magic = handle.read(4)
        self.format: TableFormat = "xlsx" if magic.startswith(b"PK\x03\x04") else "csv"
        if self.format == "csv":
            self.encoding = _encoding(path)
            self.delimiter = self._delimiter()
            if self.delimiter == "\t":
                self.format = "tsv"
        rows = self._raw_rows()
        first = next(rows, None)
        if first is None:
            raise InputError(f"{path}: the file is empty", hint="pass the file `review` wrote")
        self.header = [_header_name(cell) for cell in first[1]]
        self._rows = rows

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """``(row number, cells)`` of every non-blank row after the header; cells are stripped
        strings, as many as the header has columns."""
        width = len(self.header)
        for number, raw in self._rows:
            if not any(c.strip() for c in raw):
                continue
            cells = [restore_cell(c.strip()) for c in raw[:width]]
            cells.extend([""] * (width - len(cells)))
            yield number, cells

    def _delimiter(self) -> str:
        with self.path.open(encoding=self.encoding, newline="") as handle:
            first = handle.readline()
        counts = {d: first.count(d) for d in ("\t", ",", ";")}
        best = max(counts, key=lambda d: counts[d])
        if counts[best] == 0:
            return "\t" if self.path.suffix.lower() in (".tsv", ".tab") else ","
        return best

    def _raw_rows(self) -> Iterator[tuple[int, list[str]]]:
        if self.format == "xlsx":
            yield from self._xlsx_rows()
            return
        with self.path.open(encoding=self.encoding, errors="replace", newline="") as handle:
            reader = csv.reader(handle, delimiter=self.delimiter, strict=False)
            try:
                yield from enumerate(reader, 1)
            except csv.Error as exc:
                raise InputError(f"{self.path} row {reader.line_num}: {exc}") from None

    def _xlsx_rows(self) -> Iterator[tuple[int, list[str]]]:
        openpyxl = _openpyxl()
        try:
            book = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:
            raise InputError(f"{self.path}: not a readable xlsx file: {exc}") from None
        try:
            sheet = book["review"] if "review" in book.sheetnames else book.worksheets[0]
            for number, values in enumerate(sheet.iter_rows(values_only=True), 1):
                yield number, [_xlsx_text(v) for v in values]
        finally:
            book.close()


def _xlsx_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _header_name(cell: str) -> str:
    return cell.strip().lstrip("\ufeff").strip().strip('"').strip()


def _encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM (Excel's "Unicode text"), else cp1252
    (Excel's plain "CSV" on Western Windows; tag ids are ASCII, so they survive it)."""
    with path.open("rb") as handle:
        head = handle.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        decoder = codecs.getincrementaldecoder("utf-8")()
        handle.seek(0)
        try:
            while chunk := handle.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"
    return "utf-8-sig"
