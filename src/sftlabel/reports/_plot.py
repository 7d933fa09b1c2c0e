"""Plotly charts as plain JSON: no plotly figure objects on the hot path.

A dashboard of a 1,000-part run renders 1,000 pages of a dozen charts each: building them as
``plotly.graph_objects`` (validated on every assignment) cost ~40 ms a page. Here a chart is a
dict of traces and a layout, encoded once with msgspec and drawn by ``Plotly.newPlot`` in the
page. The chart title is HTML above the chart (plotly's mode bar covered titles drawn inside
it), and every string that plotly would render as its own pseudo-HTML (tick labels, legend
names, texts) is entity-escaped, so a hostile tag name is shown as text.

plotly.js itself goes into a page once: inline (a self-contained single file) or as a
``<script src>`` to one shared ``plotly.min.js`` beside the pages (multi-part runs).
"""

from __future__ import annotations

import functools
import hashlib
import html
from pathlib import Path
from typing import Any

import msgspec

from sftlabel.reports._safe import esc, visible

PLOTLY_JS = "plotly.min.js"
"""The shared copy of plotly.js at the root of a multi-part run."""

_CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": "hover"}
_MARGIN = {"l": 50, "r": 16, "t": 28, "b": 46}
_TEXT_KEYS = ("x", "y", "text", "name", "labels")
_encoder = msgspec.json.Encoder()


class Fig:
    """A chart: ``traces`` (plotly trace dicts), ``layout`` and a ``title`` shown above it."""

    def __init__(self, *traces: dict[str, Any], title: str = "", **layout: Any) -> None:
        self.traces: list[dict[str, Any]] = list(traces)
        self.layout: dict[str, Any] = dict(layout)
        self.title = title

    def add(self, kind: str, **trace: Any) -> Fig:
        self.traces.append({"type": kind, **trace})
        return self


def trace(kind: str, **values: Any) -> dict[str, Any]:
    return {"type": kind, **values}


@functools.cache
def _template() -> Any:
    """The ``plotly_white`` template as plain JSON, built once."""
    import plotly.io as pio

    template = pio.templates["plotly_white"].to_plotly_json()
    return msgspec.json.decode(_encoder.encode(template))


@functools.cache
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def _escape_text(value: Any) -> Any:
    if isinstance(value, str):
        return html.escape(visible(value), quote=False)
    if isinstance(value, list):
        return [_escape_text(v) for v in value]
    return value


def _safe_json(value: Any) -> str:
    """JSON that can sit inside a ``<script>`` element."""
    text = _encoder.encode(value).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def figure(fig: Any, height: int = 360) -> str:
    """One chart panel: ``fig`` is a :class:`Fig` or a plotly ``Figure``."""
    if isinstance(fig, Fig):
        data, layout, title = fig.traces, dict(fig.layout), fig.title
    else:  # a plotly graph_objects.Figure (compare's pages)
        spec = fig.to_plotly_json()
        data, layout = spec["data"], dict(spec["layout"])
        raw = layout.pop("title", "")
        title = raw.get("text", "") if isinstance(raw, dict) else str(raw or "")
        data = msgspec.json.decode(_plain(data))
    traces = [{k: (_escape_text(v) if k in _TEXT_KEYS else v) for k, v in t.items()} for t in data]
    for axis in ("xaxis", "yaxis"):
        spec_axis = layout.get(axis)
        if isinstance(spec_axis, dict) and isinstance(spec_axis.get("title"), dict):
            title_spec = dict(spec_axis["title"])
            title_spec["text"] = _escape_text(title_spec.get("text", ""))
            layout[axis] = {**spec_axis, "title": title_spec}
    for axis in ("xaxis", "yaxis"):  # tick labels never cut (rotated bins, long tags)
        found = layout.get(axis)
        layout[axis] = {"automargin": True, **(found if isinstance(found, dict) else {})}
    layout.update(height=height, margin=_MARGIN)
    data_json, layout_json = _safe_json(traces), _safe_json(layout)
    # a stable id (the same chart gets the same page, so an unchanged page is not rewritten)
    digest = hashlib.blake2s(f"{title}\0{data_json}\0{layout_json}".encode(), digest_size=8)
    ident = f"plot-{digest.hexdigest()}"
    heading = f"<div class='pt'>{esc(title)}</div>" if title else ""
    return (
        f"<div class='panel'>{heading}<div id='{ident}' class='plotly-graph-div plot' "
        f"style='height:{height}px'></div><script>if (window.Plotly) Plotly.newPlot("
        f"'{ident}', {data_json}, Object.assign({{template: window.sftlabelTemplate}}, "
        f"{layout_json}), {_safe_json(_CONFIG)});</script></div>"
    )


def _plain(data: Any) -> bytes:
    """Plotly figure JSON (numpy arrays included) as plain JSON bytes."""
    import json

    from plotly.utils import PlotlyJSONEncoder

    return json.dumps(data, cls=PlotlyJSONEncoder).encode()


PLOT_STYLE = """
.pt { font-size: 14px; font-weight: 600; margin: 4px 6px 0; overflow-wrap: anywhere; }
.noplotly { background: #fff3cd; border: 1px solid #e0c36c; padding: 8px 12px;
            border-radius: 6px; }
"""


@functools.cache
def _script() -> str:
    """plotly.js and the chart template (``window.sftlabelTemplate``), one script."""
    return f"{plotly_js()}\n;window.sftlabelTemplate = {_safe_json(_template())};\n"


def script_tag(src: str | None) -> str:
    """plotly.js for a page: inline when ``src`` is None, else loaded from ``src``."""
    if src is None:
        return f"<script type='text/javascript'>{_script()}</script>"
    return f"<script type='text/javascript' src='{html.escape(src)}'></script>"


def missing_notice(src: str | None) -> str:
    """A line that shows when the shared plotly.js could not be loaded."""
    if src is None:
        return ""
    return (
        "<script>if (!window.Plotly) document.write(\"<p class='noplotly'>The charts need "
        f"{html.escape(src)} beside this page (it is in the run directory): copy the "
        'whole run directory, not only this page.</p>");</script>'
    )


def write_shared(root: Path) -> Path:
    """Write ``plotly.min.js`` (with the chart template) at ``root`` once (kept when it is
    already the same)."""
    path = root / PLOTLY_JS
    text = _script().encode()
    if path.is_file() and path.stat().st_size == len(text):
        return path
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(text)
    partial.replace(path)
    return path


def relative_src(depth: int) -> str:
    """The ``src`` of the shared plotly.js from a page ``depth`` folders below the root."""
    return "../" * depth + PLOTLY_JS
