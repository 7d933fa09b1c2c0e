"""The soft-label output: a ``LABELED_<dataset>`` folder beside the raw one, mirroring it.

``<raw>/train/short_3_to_5_turns.json`` becomes ``LABELED_<raw>/train/short_3_to_5_turns.jsonl``
(one line per user turn, appended and flushed as each turn is done, so ``kill -9`` loses at most
the turns in flight), plus ``labeling_metadata.json``. The raw folder is never written.
"""

from __future__ import annotations

import itertools
import shutil
from collections import Counter
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from sftlabel.errors import UsageError
from sftlabel.model import TurnLabel
from sftlabel.runs._files import OFFSET_MASK, WORK, last_newline, line_order
from sftlabel.runs._paths import PartMap, bare, inside

METADATA = "labeling_metadata.json"
PROBLEMS = "problems.jsonl"
PREFIX = "LABELED_"

_encoder = msgspec.json.Encoder()


class _Key(msgspec.Struct):
    conversationId: str
    messageId: str
    turnIndex: int = 0
    error: str | None = None


_key_decoder = msgspec.json.Decoder(_Key)
_record_decoder = msgspec.json.Decoder(TurnLabel)


def default_output(inputs: list[Path]) -> Path:
    """``LABELED_<name>`` beside the (first) input."""
    first = inputs[0].resolve()  # `.` and `..` have a name once resolved
    return first.parent / f"{PREFIX}{bare(first.name)}"


class SoftOutput:
    """Writers and readers of one soft-label output folder."""

    MAX_OPEN = 128

    def __init__(self, root: Path, inputs: list[Path] | None = None) -> None:
        self.root = root
        self.inputs = inputs or []
        self._parts = PartMap([str(i) for i in self.inputs])
        self._handles: dict[str, IO[bytes]] = {}
        self._relative: dict[str | None, str] = {}
        self._problems: IO[bytes] | None = None

    def relative(self, source: str | None) -> str:
        """The output file (relative to the root) of the turns read from ``source``."""
        known = self._relative.get(source)
        if known is None:
            if source is None:
                known = "turns.jsonl"
            else:
                known = (self._parts(source) or bare(Path(source).name)) + ".jsonl"
            self._relative[source] = known
        return known

    def check(self, *, overwrite: bool, resume: bool) -> None:
        """Refuse to write into a raw input or over an output without --overwrite/--resume."""
        root = self.root.resolve()
        for source in self.inputs:
            raw = source.resolve()
            folder = raw if raw.is_dir() else raw.parent
            if root == folder or (raw.is_dir() and root.is_relative_to(folder)):
                raise UsageError(
                    f"refusing to write into the raw dataset {source}",
                    hint=f"the default output is {default_output(self.inputs)}; pass -o elsewhere",
                )
            if raw.is_relative_to(root):
                raise UsageError(f"the output {self.root} contains the input {source}")
        if not self.root.exists() or not any(self.root.iterdir()):
            return
        if resume:
            return
        if not overwrite:
            raise UsageError(
                f"{self.root} already exists",
                hint="pass --resume to finish it or --overwrite to replace it",
            )
        if not (self.root / METADATA).exists():
            raise UsageError(
                f"{self.root} is not a softlabel output (no {METADATA}); not overwriting it",
                hint="pass another -o",
            )
        shutil.rmtree(self.root)

    def files(self) -> list[Path]:
        """The output files (a sharded run's work directory, ``.shards/``, is not a part)."""
        if not self.root.exists():
            return []
        found = []
        for path in self.root.rglob("*.jsonl"):
            relative = path.relative_to(self.root)
            if relative.parts[0].startswith(WORK) or relative.as_posix() == PROBLEMS:
                continue
            if path.is_file():
                found.append(path)
        return sorted(found)

    def record_files(self) -> list[str]:
        """The output files relative to the root (what a sharded run merges)."""
        return [p.relative_to(self.root).as_posix() for p in self.files()]

    def repair(self) -> int:
        """Cut a partial last line (left by a crash) off every output file."""
        repaired = 0
        for path in self.files():
            size = path.stat().st_size
            if size == 0:
                continue
            with path.open("rb+") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    handle.truncate(last_newline(handle, size))
                    repaired += 1
        return repaired

    def done_keys(self) -> set[tuple[str, str, int]]:
        """Turns already written (labeled or failed)."""
        labeled, failed = self.done()
        return {k for k in labeled | failed if isinstance(k, tuple)}

    def done(self) -> tuple[set[Hashable], set[Hashable]]:
        """Turns written with a label, and turns with a failure record."""
        labeled: set[Hashable] = set()
        failed: set[Hashable] = set()
        for line in self.lines():
            key = _key_decoder.decode(line)
            (failed if key.error is not None else labeled).add(
                (key.conversationId, key.messageId, key.turnIndex)
            )
        return labeled, failed

    def open(self) -> None:
        """Start a session: ``problems.jsonl`` is written anew (the inputs are read again), and
        only when there is a problem to report."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / PROBLEMS).unlink(missing_ok=True)

    def problem(self, problem: Any) -> None:
        if self._problems is None:
            self._problems = (self.root / PROBLEMS).open("wb")
        self._problems.write(_encoder.encode(problem) + b"\n")
        self._problems.flush()

    def lines(self) -> Iterator[bytes]:
        for path in self.files():
            with path.open("rb") as handle:
                for line in handle:
                    if line.strip():
                        yield line

    def records(self) -> Iterator[tuple[str, TurnLabel]]:
        for path in self.files():
            relative = path.relative_to(self.root).as_posix()
            with path.open("rb") as handle:
                for line in handle:
                    if line.strip():
                        yield relative, _record_decoder.decode(line)

    def append(self, relative: str, record: Any, part: str = "") -> None:
        handle = self._handles.get(relative)
        if handle is None:
            if len(self._handles) >= self.MAX_OPEN:
                self._handles.pop(next(iter(self._handles))).close()
            path = inside(self.root, self.root / relative)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = self._handles[relative] = path.open("ab")
        handle.write(_encoder.encode(record) + b"\n")
        handle.flush()

    def sort_files(self) -> None:
        """Rewrite every output file in input order (records are appended as they finish), one
        record per turn: a turn that failed in one session and was labeled (or failed again) in
        a later one keeps its latest record. Streamed: memory holds one packed int per record
        of the file at hand (and the keys of the turns written more than once)."""
        self.close()
        for path in self.files():
            order = line_order(path)
            drop = _superseded(path)
            in_order = all(a <= b for a, b in itertools.pairwise(k & OFFSET_MASK for k in order))
            if in_order and not drop:
                continue  # already in input order, one record per turn
            partial = path.with_name(path.name + ".partial")
            with path.open("rb") as source, partial.open("wb") as out:
                for key in order:
                    offset = key & OFFSET_MASK
                    if offset in drop:
                        continue
                    source.seek(offset)
                    out.write(source.readline())
            partial.replace(path)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        if self._problems is not None:
            self._problems.close()
            self._problems = None

    def write_metadata(self, metadata: dict[str, Any]) -> Path:
        path = self.root / METADATA
        self.root.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(msgspec.json.format(_encoder.encode(metadata), indent=2) + b"\n")
        partial.replace(path)
        return path

    def read_metadata(self) -> dict[str, Any] | None:
        path = self.root / METADATA
        if not path.exists():
            return None
        data = msgspec.json.decode(path.read_bytes())
        return data if isinstance(data, dict) else None


def summarize(output: SoftOutput) -> dict[str, Any]:
    """Counts over the whole output (right after any number of resumes)."""
    totals: Counter[str] = Counter()
    hard: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    censored: Counter[str] = Counter()
    per_file: dict[str, Counter[str]] = {}
    prompt = completion = cached = 0
    cost = 0.0
    priced = 0
    soft_sum = 0.0
    for relative, record in output.records():
        counts = per_file.setdefault(relative, Counter())
        counts["turns"] += 1
        totals["turns"] += 1
        monitor = record.monitor
        totals["llm_calls"] += int(monitor.get("llm_calls", 0))
        prompt += int(monitor.get("prompt_tokens", 0))
        completion += int(monitor.get("completion_tokens", 0))
        cached += int(monitor.get("cached_tokens", 0))
        if "cost" in monitor:
            cost += float(monitor["cost"])
            priced += 1
        if record.failed:
            totals["failed"] += 1
            counts["failed"] += 1
            reasons[record.reason or "unknown"] += 1
            continue
        totals["labeled"] += 1
        counts["labeled"] += 1
        if monitor.get("duplicate_of") is not None:
            totals["duplicates"] += 1
            counts["duplicates"] += 1
        hard[str(record.hard_label)] += 1
        counts[f"hard_label_{record.hard_label}"] += 1
        methods[record.method] += 1
        for label in record.censored:
            censored[label] += 1
        if isinstance(record.soft_label, float):
            soft_sum += record.soft_label
        if record.rationale is not None:
            totals["rationales"] += 1
        elif "rationale_error" in monitor:
            totals["rationale_errors"] += 1
    labeled = totals["labeled"]
    return {
        "turns": totals["turns"],
        "labeled": labeled,
        "failed": totals["failed"],
        "duplicates": totals["duplicates"],
        "hard_labels": dict(sorted(hard.items())),
        "mean_soft_label": round(soft_sum / labeled, 6) if labeled else None,
        "methods": dict(methods.most_common()),
        "censored": dict(sorted(censored.items())),
        "failure_reasons": dict(reasons.most_common()),
        "rationales": totals["rationales"],
        "rationale_errors": totals["rationale_errors"],
        "llm_calls": totals["llm_calls"],
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": cached,
        "cached_share": round(cached / prompt, 4) if prompt else 0.0,
        "cost_usd": round(cost, 6) if priced or not totals["llm_calls"] else None,
        "files": {name: dict(counts) for name, counts in sorted(per_file.items())},
    }


def _superseded(path: Path) -> set[int]:
    """Offsets of records replaced by a later record of the same turn (a labeled record wins
    over failures, else the last failure). Two passes: the first keeps one hash per record,
    the second looks only at the turns seen more than once."""
    seen: set[int] = set()
    repeated: set[int] = set()
    for _, turn, _ in _keys(path):
        digest = hash(turn)
        (repeated if digest in seen else seen).add(digest)
    if not repeated:
        return set()
    kept: dict[tuple[str, str, int], tuple[int, bool]] = {}
    drop: set[int] = set()
    for offset, turn, labeled in _keys(path):
        if hash(turn) not in repeated:
            continue
        previous = kept.get(turn)
        if previous is None:
            kept[turn] = (offset, labeled)
        elif labeled or not previous[1]:
            drop.add(previous[0])
            kept[turn] = (offset, labeled)
        else:
            drop.add(offset)
    return drop


def _keys(path: Path) -> Iterator[tuple[int, tuple[str, str, int], bool]]:
    offset = 0
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                key = _key_decoder.decode(line)
                yield offset, (key.conversationId, key.messageId, key.turnIndex), key.error is None
            offset += len(line)
