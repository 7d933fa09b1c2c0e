"""What an input format plugin provides, and the context a reader gets for one record."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sftlabel.model import Conversation, Location, Problem, Sample


class RecordContext:
    """Passed to :meth:`InputFormat.parse`: where the record is, and a place to put warnings."""

    __slots__ = ("location", "path", "problems")

    def __init__(self, path: Path, location: Location) -> None:
        self.path = path
        self.location = location
        self.problems: list[Problem] = []

    def warn(self, code: str, message: str) -> None:
        """Record a warning about this record (it is still used)."""
        self.problems.append(
            Problem(severity="warning", code=code, message=message, location=self.location)
        )


@runtime_checkable
class InputFormat(Protocol):
    """An input format: registered in the ``sftlabel.formats`` entry-point group.

    ``matches`` decides per record (formats are tried by ascending ``priority``); ``parse`` turns a
    matching record into a :class:`Conversation` (``id`` may be left empty: the reader then derives
    a stable one from the content), or into a :class:`Sample` that is passed on unchanged (the
    ``sample`` format), or raises :class:`~sftlabel.formats.RecordError` when the record cannot
    be used. An optional ``source_key`` attribute names the key the format reads its messages
    from (when several formats' keys are in one record, the first by priority wins, and one that
    is empty falls back to the next).
    """

    name: str
    description: str
    priority: int

    def matches(self, record: dict[str, Any]) -> bool: ...

    def parse(self, record: dict[str, Any], ctx: RecordContext) -> Conversation | Sample: ...
