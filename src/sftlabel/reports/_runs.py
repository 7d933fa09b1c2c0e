"""Open any RUN argument of ``report``/``review``/``compare`` as one streaming view.

A RUN is:

* a ``label`` run directory (``labeled.jsonl`` in the root or in parts, ``run.json``,
  ``stats.json``, ``failures.jsonl``);
* a ``labeled.json`` array or ``labeled.jsonl`` file (the baseline runs of ``../shared`` are
  arrays of raw records with ``labels`` and ``labeling_monitor``);
* a soft-label output: a ``LABELED_<dataset>`` folder (``<split>/<bucket>.jsonl`` and
  ``labeling_metadata.json``) or one of its ``.jsonl`` files.

Records are streamed (never all in memory): :meth:`RunData.taxonomy_records` and
:meth:`RunData.soft_records` read the files again on every call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from sftlabel.errors import InputError
from sftlabel.formats._source import iter_raw
from sftlabel.model import Problem, TurnLabel

RunKind = Literal["taxonomy", "soft"]

SOFT_METADATA = "labeling_metadata.json"


class TaxonomyRecord(msgspec.Struct, kw_only=True):
    """One labeled sample as the views need it, decoded straight from a labeled.jsonl line
    (the messages stay undecoded JSON until a view needs them: most records of a report are
    only counted)."""

    id: str = ""
    index: int = -1
    labels: dict[str, Any] = None  # type: ignore[assignment]
    """(None only while a line without labels is read: such a line is skipped.)"""
    monitor: dict[str, Any] = msgspec.field(
        default=None,  # type: ignore[arg-type]
        name="labeling_monitor",
    )
    messages: msgspec.Raw = msgspec.Raw()
    conversations: msgspec.Raw = msgspec.Raw()
    data: msgspec.Raw = msgspec.Raw()
    """(Undecoded; empty when the record has no such key.)"""
    part: str = msgspec.field(default="", name="sftlabel.part")
    """The run part (input file) the sample belongs to; ``""`` for the root (never read from
    the record)."""
    position: int = msgspec.field(default=-1, name="sftlabel.position")
    """The record's place among the samples of the run (or of its span); never read from the
    record."""

    @property
    def turns(self) -> list[Any]:
        """The sample's messages (``messages``, ``conversations`` or ``data``)."""
        for raw in (self.messages, self.conversations, self.data):
            turns = _decoded(raw)
            if turns:
                return turns
        return []

    @property
    def query(self) -> str:
        """The first user message (as the labeler saw it)."""
        return first_user_message({"messages": self.turns})

    def labeled_turn(self) -> tuple[str, str]:
        """``(last user message, the reply being labeled)``: what the labels describe."""
        return labeled_turn({"messages": self.turns})


@dataclass(frozen=True)
class Span:
    """A byte range of one labeled-records file (``end`` None: to its end)."""

    part: str
    path: Path
    start: int = 0
    end: int | None = None


_record_decoder = msgspec.json.Decoder(TaxonomyRecord)
_encoder = msgspec.json.Encoder()


def _decoded(turns: Any) -> list[Any]:
    if isinstance(turns, msgspec.Raw):
        if not len(turns):
            return []
        try:
            turns = msgspec.json.decode(turns)
        except msgspec.DecodeError:
            return []
    return turns if isinstance(turns, list) else []


@dataclass
class RunData:
    """A run opened for reading."""

    path: Path
    kind: RunKind
    name: str
    files: list[tuple[str, Path]]
    """(part, file) of every labeled-records file."""
    failure_files: list[tuple[str, Path]] = field(default_factory=list)
    stats: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    """``labeling_metadata.json`` of a soft-label output."""

    @property
    def root(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent

    @property
    def model(self) -> str:
        for source in (self.manifest, self.metadata):
            if source and isinstance(source.get("model"), str):
                return str(source["model"])
            options = source.get("options") if source else None
            if isinstance(options, dict) and isinstance(options.get("model"), str):
                return str(options["model"])  # run.json records the model with the options
        return ""

    def taxonomy_records(self) -> Iterator[TaxonomyRecord]:
        """Every labeled sample of a taxonomy run, file by file, in file order."""
        position = 0
        for part, path in self.files:
            for record in self.span_records(Span(part, path)):
                record.position = position
                if not record.id:
                    record.id = str(position)
                if record.index < 0:
                    record.index = position
                yield record
                position += 1

    def spans(self, size: int) -> list[Span]:
        """The run's labeled-records files cut into spans of about ``size`` bytes (at line
        ends; a file that is not ``.jsonl`` is one span), in record order: what
        :func:`read_span` reads, one span per worker."""
        spans: list[Span] = []
        for part, path in self.files:
            total = path.stat().st_size if path.suffix.lower() == ".jsonl" else 0
            if total <= size:
                spans.append(Span(part, path))
                continue
            with path.open("rb") as handle:
                start = 0
                while start < total:
                    handle.seek(min(start + size, total))
                    if handle.tell() < total:
                        handle.readline()  # to the end of the line the cut fell in
                    end = handle.tell()
                    spans.append(Span(part, path, start, end))
                    start = end
        return spans

    def span_records(self, span: Span) -> Iterator[TaxonomyRecord]:
        """The labeled samples of one span (:func:`read_span`)."""
        if self.kind != "taxonomy":
            raise InputError(f"{self.path} holds soft labels, not taxonomy labels")
        return read_span(span)

    def soft_records(self) -> Iterator[tuple[str, TurnLabel]]:
        """``(part, record)`` for every turn of a soft-label output, failed ones included."""
        if self.kind != "soft":
            raise InputError(f"{self.path} holds taxonomy labels, not soft labels")
        decoder = msgspec.json.Decoder(TurnLabel)
        for part, path in self.files:
            with path.open("rb") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    try:
                        yield part, decoder.decode(line)
                    except msgspec.DecodeError as exc:
                        message = f"{path}:{number}: not a soft-label record: {exc}"
                        raise InputError(message) from None

    def failures(self) -> Iterator[dict[str, Any]]:
        """The failed samples of a taxonomy run (``failures.jsonl``)."""
        for _, path in self.failure_files:
            for record in _records(path):
                if isinstance(record, dict):
                    yield record


def open_run(path: str | Path) -> RunData:
    """Open a run directory, a labeled file or a soft-label output (see the module doc)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        return _open_directory(path)
    kind = _sniff_kind(path)
    if kind is None:
        raise InputError(
            f"{path}: neither taxonomy labels nor soft labels",
            hint="pass a run directory, labeled.json/labeled.jsonl or a softlabel output",
        )
    root = path.parent
    run = RunData(path=path, kind=kind, name=_run_name(path), files=[("", path)])
    if kind == "taxonomy":
        stem = path.name.split(".")[0]
        if stem == "labeled":  # inside a run directory
            run.stats = _json_file(root / "stats.json")
            run.manifest = _json_file(root / "run.json")
        elif stem.startswith("labeled_"):  # labeled_<name>.json beside stats_<name>.json
            run.stats = _json_file(root / f"stats_{stem.removeprefix('labeled_')}.json")
        failures = root / "failures.jsonl"
        if run.manifest is not None and failures.exists():
            run.failure_files = [("", failures)]
    else:
        run.metadata = _json_file(_find_upwards(root, SOFT_METADATA))
    return run


def first_user_message(record: dict[str, Any]) -> str:
    """The first user message of a sample (``messages``) or of a raw record (``conversations``,
    ``data``), as text."""
    for key in ("messages", "conversations", "data"):
        turns = record.get(key)
        if not isinstance(turns, list):
            continue
        for turn in turns:
            if not isinstance(turn, dict):
                continue
            role = turn.get("role", turn.get("from"))
            if role in ("user", "human"):
                content = turn.get("content", turn.get("value", ""))
                return content if isinstance(content, str) else str(content)
    return ""


def _turns(record: dict[str, Any]) -> list[Any]:
    for key in ("messages", "conversations", "data"):
        turns = record.get(key)
        if isinstance(turns, list):
            return turns
    return []


def _text(turn: dict[str, Any]) -> str:
    content = turn.get("content", turn.get("value", ""))
    return content if isinstance(content, str) else str(content)


def labeled_turn(record: dict[str, Any]) -> tuple[str, str]:
    """The last user message of a sample and the reply after it (the last assistant message:
    the reply a slice's labels describe); ``""`` for what is missing."""
    user, reply = "", ""
    for turn in _turns(record):
        if not isinstance(turn, dict):
            continue
        role = turn.get("role", turn.get("from"))
        if role in ("user", "human"):
            user, reply = _text(turn), ""
        elif role in ("assistant", "gpt", "model"):
            reply = _text(turn) or reply
    return user, reply


def _open_directory(path: Path) -> RunData:
    labeled = sorted(path.rglob("labeled.jsonl"))
    if labeled:
        return RunData(
            path=path,
            kind="taxonomy",
            name=path.name,
            files=[(_part(path, f), f) for f in labeled],
            failure_files=[(_part(path, f), f) for f in sorted(path.rglob("failures.jsonl"))],
            stats=_json_file(path / "stats.json"),
            manifest=_json_file(path / "run.json"),
        )
    arrays = sorted(path.rglob("labeled.json"))
    if arrays:
        return RunData(
            path=path,
            kind="taxonomy",
            name=path.name,
            files=[(_part(path, f), f) for f in arrays],
            stats=_json_file(path / "stats.json"),
            manifest=_json_file(path / "run.json"),
        )
    soft = sorted(f for f in path.rglob("*.jsonl") if _sniff_kind(f) == "soft")
    if soft:
        return RunData(
            path=path,
            kind="soft",
            name=path.name,
            files=[(_part(path, f, strip_suffix=True), f) for f in soft],
            metadata=_json_file(path / SOFT_METADATA),
        )
    raise InputError(
        f"{path}: no labeled data found (no labeled.jsonl, labeled.json or soft-label .jsonl)",
        hint="pass a run directory written by `sftlabel label` or a LABELED_ folder",
    )


def _part(root: Path, file: Path, *, strip_suffix: bool = False) -> str:
    relative = file.relative_to(root)
    if strip_suffix:
        return relative.with_suffix("").as_posix()
    parent = relative.parent.as_posix()
    return "" if parent == "." else parent


def _run_name(path: Path) -> str:
    stem = path.name.split(".")[0]
    if stem in ("labeled", "") and path.parent.name:
        return path.parent.name
    return stem.removeprefix("labeled_") or stem


def _sniff_kind(path: Path) -> RunKind | None:
    """Look at the first record of a file to tell taxonomy labels from soft labels."""
    for record in _records(path):
        if not isinstance(record, dict):
            return None
        if "labels" in record:
            return "taxonomy"
        if "conversationId" in record and ("soft_label" in record or "error" in record):
            return "soft"
        return None
    return None


def read_span(span: Span) -> Iterator[TaxonomyRecord]:
    """The labeled samples of one span of a taxonomy run; ``position`` counts from 0 in the
    span and ``id`` is empty for a record without one (:meth:`RunData.taxonomy_records`
    numbers the whole run)."""
    position = 0
    for line in _lines(span.path, span.start, span.end):
        record = line if isinstance(line, TaxonomyRecord) else _from_dict(line)
        labels: Any = record.labels if record is not None else None
        if record is None or labels is None:
            continue
        record.position = position
        monitor: Any = record.monitor
        if monitor is None:
            record.monitor = {}
        record.part = span.part
        yield record
        position += 1


def decode_span(span: Span, decoder: msgspec.json.Decoder[Any]) -> Iterator[Any]:
    """The lines of one span decoded by ``decoder`` (a Struct of only the fields a view needs
    reads fastest); a line it cannot decode (another shape), and every record of a file that
    is not ``.jsonl``, come as a :class:`TaxonomyRecord`, or None when not a labeled record."""
    wanted = decoder.type
    for line in _lines(span.path, span.start, span.end, decoder):
        yield line if line.__class__ is wanted else _from_dict(line)


def _lines(
    path: Path,
    start: int = 0,
    end: int | None = None,
    decoder: msgspec.json.Decoder[Any] = _record_decoder,
) -> Iterator[Any]:
    """The records of a file (of its bytes ``start:end``, cut at line ends): a plain
    ``.jsonl`` file is read line by line by ``decoder`` (into :class:`TaxonomyRecord`: only
    the fields the views use; a line of another shape is decoded as it is), any other file
    through :func:`_records`."""
    if path.suffix.lower() != ".jsonl":
        yield from _records(path)
        return
    with path.open("rb") as handle:
        handle.seek(start)
        left = -1 if end is None else end - start
        for number, raw in enumerate(handle, 1):
            if left >= 0:
                if left == 0:
                    return
                left -= len(raw)
            line = raw.removeprefix(b"\xef\xbb\xbf") if number == 1 and not start else raw
            if line.isspace() or not line:
                continue
            try:
                yield decoder.decode(line)
            except msgspec.DecodeError:  # another shape (an int id, no object): decoded as is
                before = _lines_before(path, start) if start else 0
                yield _generic(line.strip(), path, before + number)


def _lines_before(path: Path, offset: int) -> int:
    """How many lines the first ``offset`` bytes of a file hold (for an error message)."""
    with path.open("rb") as handle:
        return handle.read(offset).count(b"\n")


def _from_dict(record: Any) -> TaxonomyRecord | None:
    """A record read as plain JSON (a .json array, or a line of an unusual shape)."""
    if not isinstance(record, dict) or not isinstance(record.get("labels"), dict):
        return None
    index, monitor, sample_id = (
        record.get("index"),
        record.get("labeling_monitor"),
        record.get("id"),
    )
    turns = _turns(record)
    return TaxonomyRecord(
        id="" if sample_id is None else str(sample_id),
        index=index if type(index) is int else -1,
        labels=record["labels"],
        monitor=monitor if isinstance(monitor, dict) else {},
        messages=msgspec.Raw(_encoder.encode(turns)) if turns else msgspec.Raw(),
    )


def _generic(data: bytes, path: Path, number: int) -> Any:
    """A line that is not a labeled record's object: decoded as it is (invalid UTF-8
    replaced), or an :class:`InputError` naming the line when it is not JSON."""
    try:
        try:
            return msgspec.json.decode(data)
        except msgspec.DecodeError:
            return msgspec.json.decode(data.decode("utf-8", "replace"))
    except msgspec.DecodeError as exc:
        raise InputError(f"{path}:{number}: invalid JSON: {exc}") from None


def _records(path: Path) -> Iterator[Any]:
    """The JSON values of a JSON array / object / JSONL file, streamed."""
    for item in iter_raw(path):
        if isinstance(item, Problem):
            if item.severity == "error":
                raise InputError(f"{item.location}: {item.message}")
            continue
        yield item.data


def _json_file(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    try:
        data = msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else None


def _find_upwards(start: Path, name: str) -> Path | None:
    for folder in (start, *start.parents[:2]):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None
