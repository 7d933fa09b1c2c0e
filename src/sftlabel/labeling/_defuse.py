"""Data that cannot pass for the prompt around it: delimiter and role-marker look-alikes escaped.

A sample (or a soft-label turn) is shown between delimiters (``<<<SAMPLE`` ... ``SAMPLE>>>``,
``<<<TURN`` ... ``TURN>>>``) and its messages behind the renderer's role markers (``[assistant]``
at a line start, ``USER:`` in soft-label strategies). Text inside that looks like either is
escaped, wherever a model could read it so: the text is matched in a *skeleton* of itself (every
character NFKC-normalized and case-folded, invisible characters removed: format characters such
as zero-width spaces, joiners and bidi controls, variation selectors, control characters other
than tab and line breaks; every line break counts as one), and each match is rewritten in the
original text:

- a delimiter look-alike loses its invisible characters and its angle brackets become ``‹``/``›``
  (``SAMPLE\\u200b>>>`` -> ``SAMPLE›››``, ``<<<sample`` -> ``‹‹‹sample``);
- a role-marker look-alike at a line start gets a backslash before it (``[assistant]`` ->
  ``\\[assistant]``).

No nonce: the escaping is a pure function of the text, so equal samples render equal prompts
(provider prefix caching, the response cache) and the static prompt never changes. Text without
a match (nearly all of it) comes back unchanged after one normalization and one regex search.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_EXTRA_INVISIBLE = (
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u180f\u3164\uffa0"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
)
_SUPPLEMENTARY_INVISIBLE = (
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),  # tags and the variation selectors supplement
)
"""Format characters (and variation selectors) beyond the BMP (Unicode 15)."""


@functools.cache
def _invisible_table() -> dict[int, int | None]:
    """Characters the skeleton drops (None) and line breaks it maps to ``\\n``."""
    table: dict[int, int | None] = {}
    for code in range(0x10000):
        category = unicodedata.category(chr(code))
        if category == "Cf" or (category == "Cc" and chr(code) not in _LINE_BREAKS + "\t"):
            table[code] = None
    for char in _EXTRA_INVISIBLE:
        table[ord(char)] = None
    for first, last in _SUPPLEMENTARY_INVISIBLE:
        for code in range(first, last + 1):
            table[code] = None
    for char in _LINE_BREAKS:
        table[ord(char)] = ord("\n")
    return table


@functools.cache
def _invisible_pattern() -> re.Pattern[str]:
    """One character the skeleton drops (a class of ranges: a quick test before translating)."""
    codes = sorted(code for code, mapped in _invisible_table().items() if mapped is None)
    return re.compile(f"[{_ranges_class(codes)}]")


_ASCII_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1b\x7f]")


def _fold(char: str) -> str:
    return unicodedata.normalize("NFKC", char).casefold()


def skeleton(text: str) -> str:
    """``text`` as the matching sees it (NFKC, case-folded, invisible characters dropped; line
    breaks are left as they are)."""
    if text.isascii():
        if _ASCII_INVISIBLE.search(text):
            text = text.translate(_invisible_table())
        return text.lower()
    if _has_invisible(text):
        text = text.translate(_invisible_table())
    if _compatibility_pattern().search(text):  # NFKC is slow on long CJK texts: only if needed
        text = unicodedata.normalize("NFKC", text)
    return text.casefold()


def _ranges_class(codes: list[int]) -> str:
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(f"\\U{a:08x}" + (f"-\\U{b:08x}" if b > a else "") for a, b in ranges)


@functools.cache
def _compatibility_pattern() -> re.Pattern[str]:
    """A character that NFKC turns into something the patterns look at (letters, ``<>[]:.``,
    white space): fullwidth and mathematical letters, ``＞``, ``…`` ..."""
    relevant = set("abcdefghijklmnopqrstuvwxyz<>[]:. \t\n")
    codes = []
    # the planes with compatibility characters (plane 2: the CJK compatibility ideographs)
    for code in (*range(0x80, 0xD800), *range(0xF900, 0x20000), *range(0x2F800, 0x2FA20)):
        char = chr(code)
        if unicodedata.is_normalized("NFKC", char):
            continue
        folded = unicodedata.normalize("NFKC", char).casefold()
        if set(folded) & relevant:
            codes.append(code)
    return re.compile(f"[{_ranges_class(codes)}]")


_EXTRA_PATTERN = re.compile(f"[{_EXTRA_INVISIBLE}]")


def _has_invisible(text: str) -> bool:
    """Whether ``text`` (not ASCII) has a character the skeleton drops. ``isprintable`` is the
    quick test (format and control characters are not printable); the class of ranges, slow on
    long texts, only runs when it fails (a no-break space fails it too)."""
    visible = text.replace("\n", "").replace("\t", "").replace("\r", "")
    if not visible.isprintable():
        return _invisible_pattern().search(text) is not None
    return _EXTRA_PATTERN.search(text) is not None


def _mapped(text: str) -> tuple[str, list[int]]:
    """The skeleton built character by character, with the original index of each position
    (every line break mapped to ``\\n``)."""
    table = _invisible_table()
    pieces: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if ord(char) in table:
            mapped = table[ord(char)]
            if mapped is None:
                continue
            folded = chr(mapped)
        else:
            folded = _fold(char).translate(table)
        pieces.append(folded)
        origin.extend([index] * len(folded))
    return "".join(pieces), origin


def _at_line_start(folded: str, index: int) -> bool:
    while index > 0 and folded[index - 1] in " \t":
        index -= 1
    return index == 0 or folded[index - 1] in _LINE_BREAKS


class Defuser:
    """Escapes the delimiter look-alikes of ``words`` (e.g. ``SAMPLE``: ``<<<SAMPLE`` and
    ``SAMPLE>>>``) and, when ``markers`` is given (a regex over the skeleton, in lower case, of
    a role marker), the role-marker look-alikes at a line start. ``edges``: also ``<<<`` at the
    end and ``>>>`` at the start of the text, which would complete the delimiters around it."""

    def __init__(
        self, words: tuple[str, ...], markers: str | None = None, *, edges: bool = False
    ) -> None:
        alternatives = "|".join(re.escape(w.casefold()) for w in words)
        pattern = rf"<<<\s*(?:{alternatives})|(?:{alternatives})\s*>>>"
        if edges:  # the text goes right between delimiters: "<<<" at its end, ">>>" at its start
            pattern += r"|<<<\s*\Z|\A\s*>>>"
        self.delimiters = re.compile(pattern)
        self.markers = re.compile(markers) if markers else None

    def _hit(self, folded: str) -> bool:
        if ("<<<" in folded or ">>>" in folded) and self.delimiters.search(folded):
            return True
        if self.markers is not None:
            return any(_at_line_start(folded, m.start()) for m in self.markers.finditer(folded))
        return False

    def __call__(self, text: str) -> str:
        passes = 0
        while text and self._hit(skeleton(text)):
            text = self._escape(text)
            passes += 1
            if passes == 8:  # overlapping look-alikes ("<<<sample>>>") take a pass each
                break
        return text

    def _escape(self, text: str) -> str:
        folded, origin = _mapped(text)
        edits: list[tuple[int, int, str]] = []  # (start, end, replacement) in the original
        table = _invisible_table()
        for match in self.delimiters.finditer(folded):
            start, end = origin[match.start()], origin[match.end() - 1] + 1
            kept = []
            for char in text[start:end]:
                if table.get(ord(char), 0) is None:
                    continue
                folded_char = _fold(char)
                kept.append("‹" if folded_char == "<" else "›" if folded_char == ">" else char)
            edits.append((start, end, "".join(kept)))
        if self.markers is not None:
            for match in self.markers.finditer(folded):
                if _at_line_start(folded, match.start()):
                    start = origin[match.start()]
                    edits.append((start, start, "\\"))
        out: list[str] = []
        done = 0
        for start, end, replacement in sorted(edits):
            if start < done:
                continue  # overlaps an edit already made
            out.append(text[done:start] + replacement)
            done = max(done, end)
        out.append(text[done:])
        return "".join(out)
