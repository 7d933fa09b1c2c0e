"""What is in a set of input files: formats, records, turns, samples and problems, per file."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import msgspec

from sftlabel.formats import Reader, scan
from sftlabel.model import Conversation, Problem, Sample
from sftlabel.slicing import check_conversation, reply_positions


class RecordSummary(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One readable record, as ``detect --records`` lists it."""

    id: str
    format: str
    where: str
    messages: int
    user_turns: int
    replies: int
    samples: int
    variants: list[str] = []


class FileReport(msgspec.Struct, kw_only=True):
    """What ``sftlabel detect`` reports for one file."""

    path: str
    formats: dict[str, int]
    records: int
    """Records found: readable ones plus those that could not be used."""
    readable: int
    unreadable: int
    file_errors: int
    """Errors about the file as a whole (cannot be opened, decompressed ...): its records are
    not counted because they could not be seen."""
    warnings: int
    messages: int
    user_turns: int
    assistant_replies: int
    tool_messages: int
    samples: int
    """Samples after slicing (one per assistant reply, except replies with ``weight: 0``; one
    per record of a sample file)."""
    pangu_variants: dict[str, int]
    problems: list[Problem]
    record_details: list[RecordSummary] = []
    """The first readable records (how many: the ``records`` argument of :func:`detect_file`)."""

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def detect_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    records: int | None = 0,
    reader: Reader | None = None,
    on_file: Callable[[Path], None] | None = None,
    on_note: Callable[[Problem], None] | None = None,
) -> Iterator[FileReport]:
    """One report per input file (directories are expanded), streaming. ``on_file`` is called
    with each file before it is read (for progress displays), ``on_note`` with each note about
    files a directory walk skipped (``skipped-files``)."""
    reader = reader or Reader()
    found = scan(paths)
    for note in found.notes:
        if on_note is not None:
            on_note(note)
    for path, tag in found.files:
        if on_file is not None:
            on_file(path)
        yield detect_file(path, reader=reader, records=records, tag=tag)


def detect_file(
    path: os.PathLike[str] | str,
    *,
    reader: Reader,
    records: int | None = 0,
    tag: str | None = None,
) -> FileReport:
    """Read one file and count what is in it. ``records``: how many record summaries to keep
    (``None``: all of them)."""
    formats: Counter[str] = Counter()
    variants: Counter[str] = Counter()
    problems: list[Problem] = []
    details: list[RecordSummary] = []
    readable = unreadable = file_errors = messages = users = replies = tools = samples = 0
    for item in reader.read_file(Path(path), tag=tag):
        if isinstance(item, Problem):
            problems.append(item)
            if item.severity == "error":
                if item.record_level:
                    unreadable += 1
                else:
                    file_errors += 1
            continue
        readable += 1
        if isinstance(item, Sample):  # read back from `sftlabel slice`: one sample each
            formats["sample"] += 1
            n_users = sum(1 for m in item.messages if m.role == "user")
            messages += len(item.messages)
            users += n_users
            replies += 1
            tools += sum(1 for m in item.messages if m.role == "tool")
            samples += 1
            if records is None or len(details) < records:
                details.append(
                    RecordSummary(
                        id=item.id,
                        format="sample",
                        where=str(item.location),
                        messages=len(item.messages),
                        user_turns=n_users,
                        replies=1,
                        samples=1,
                        variants=item.variants,
                    )
                )
            continue
        conversation: Conversation = item
        formats[conversation.source_format] += 1
        if conversation.source_format == "pangu":
            variants.update(conversation.variants)
        positions = reply_positions(conversation)
        problems.extend(check_conversation(conversation, positions))
        n_users = sum(1 for m in conversation.messages if m.role == "user")
        messages += len(conversation.messages)
        users += n_users
        trained = sum(1 for i in positions if conversation.messages[i].weight != 0)
        replies += len(positions)
        tools += sum(1 for m in conversation.messages if m.role == "tool")
        samples += trained
        if records is None or len(details) < records:
            details.append(
                RecordSummary(
                    id=conversation.id,
                    format=conversation.source_format,
                    where=str(conversation.location),
                    messages=len(conversation.messages),
                    user_turns=n_users,
                    replies=len(positions),
                    samples=trained,
                    variants=conversation.variants,
                )
            )
    return FileReport(
        path=str(path),
        formats=dict(formats.most_common()),
        records=readable + unreadable,
        readable=readable,
        unreadable=unreadable,
        file_errors=file_errors,
        warnings=sum(1 for p in problems if p.severity == "warning"),
        messages=messages,
        user_turns=users,
        assistant_replies=replies,
        tool_messages=tools,
        samples=samples,
        pangu_variants=dict(variants.most_common()),
        problems=problems,
        record_details=details,
    )
