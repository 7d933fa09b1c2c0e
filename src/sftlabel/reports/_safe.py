"""Values from the data made inert for each kind of output.

Ids, tags, file names, model names and excerpts come from files anyone can write. Every output
passes them through one of these:

* :func:`md` for Markdown (``report.md``, compare's ``.md``): one line, HTML escaped
  (``&lt;script&gt;`` shows as text in a viewer that renders raw HTML), Markdown syntax
  (table pipes, emphasis, links, code spans) backslash-escaped, control characters shown;
* :func:`visible` for a terminal: control characters (ANSI escapes included) shown as
  ``\\x1b`` instead of being sent to the terminal;
* spreadsheets: :func:`sftlabel.reports._table.text_cell`, applied by the table writer to every
  text cell;
* HTML: ``html.escape`` (the dashboard and compare pages), plotly texts entity-escaped.
"""

from __future__ import annotations

import html
import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_MD_SYNTAX = re.compile(r"([\\`*\[\]|~]|(?<![^\W_])_|_(?![^\W_]))")
"""Markdown syntax to escape; ``_`` inside a word (``run_a``) makes no emphasis and stays."""


def _show(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def visible(text: object) -> str:
    """``text`` with control characters (but tab and newline) written as ``\\xNN``."""
    return _CONTROL.sub(_show, str(text))


def one_line(text: object) -> str:
    return " ".join(visible(text).split())


def esc(text: object) -> str:
    """A value as HTML text (escaped, control characters shown)."""
    return html.escape(visible(text))


def md(text: object) -> str:
    """A value as inline Markdown text: one line, HTML and Markdown syntax escaped."""
    flat = one_line(text)
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SYNTAX.sub(r"\\\1", flat)


def code(text: object) -> str:
    """A value as an inline code span outside tables (HTML inside a code span is never
    interpreted): fenced with more backticks than any run inside it."""
    flat = one_line(text)
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat else ""
    return f"{fence}{pad}{flat}{pad}{fence}"
