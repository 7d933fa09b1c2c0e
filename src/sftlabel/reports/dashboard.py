"""A self-contained, offline HTML dashboard of a run's stats (plotly.js embedded, no CDN).

Built from ``stats.json`` alone (aggregates, never every sample), so it stays small and fast
whatever the run's size.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

TOP_TAGS = 25

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin-bottom: 4px; } .sub { color: #666; margin-bottom: 18px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 20px; }
.card { background: #fff; border: 1px solid #e3e3e3; border-radius: 8px; padding: 10px 14px;
        min-width: 130px; }
.card .v { font-size: 20px; font-weight: 600; } .card .k { color: #666; font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 14px; }
.panel { background: #fff; border: 1px solid #e3e3e3; border-radius: 8px; padding: 6px; }
"""


def _card(label: str, value: Any) -> str:
    return (
        f'<div class="card"><div class="v">{html.escape(str(value))}</div>'
        f'<div class="k">{html.escape(label)}</div></div>'
    )


def _figure(fig: go.Figure, height: int = 360) -> str:
    fig.update_layout(
        height=height, margin={"l": 40, "r": 10, "t": 40, "b": 40}, template="plotly_white"
    )
    body: str = fig.to_html(full_html=False, include_plotlyjs=False)
    return f'<div class="panel">{body}</div>'


def _cards(stats: dict[str, Any]) -> str:
    cost = stats.get("cost_usd")
    throughput = stats.get("throughput_samples_per_second")
    cards = [
        ("samples", f"{stats.get('total_samples', 0):,}"),
        ("success rate", f"{stats.get('success_rate', 0) * 100:.1f}%"),
        ("failed", f"{stats.get('failed', 0):,}"),
        ("LLM calls", f"{stats.get('total_llm_calls', 0):,}"),
        ("calls / sample", stats.get("avg_calls_per_sample", 0)),
        ("tokens", f"{stats.get('total_tokens', 0):,}"),
        ("cost", "n/a" if cost is None else f"${cost:,.4f}"),
        ("arbitrated", f"{stats.get('arbitrated_rate', 0) * 100:.1f}%"),
        ("unmapped tags", stats.get("unmapped_unique_count", 0)),
        ("429s", stats.get("rate_limited_429", 0)),
        ("elapsed", f"{stats.get('total_elapsed_seconds', 0):,.1f} s"),
        ("samples / s", "n/a" if throughput is None else f"{throughput:,.2f}"),
    ]
    return '<div class="cards">' + "".join(_card(k, v) for k, v in cards) + "</div>"


def render_dashboard(stats: dict[str, Any], *, title: str) -> str:
    """The dashboard page as one HTML string."""
    panels: list[str] = []
    for dim, counts in stats.get("tag_distributions", {}).items():
        if not counts:
            continue
        top = list(counts.items())[:TOP_TAGS]
        fig = go.Figure(
            go.Bar(x=[c for _, c in top][::-1], y=[t for t, _ in top][::-1], orientation="h")
        )
        fig.update_layout(title=f"{dim} ({len(counts)} tags used)")
        panels.append(_figure(fig, height=max(260, 22 * len(top) + 80)))
    confidence = stats.get("confidence_stats", {})
    if confidence:
        dims = list(confidence)
        fig = go.Figure()
        fig.add_bar(name="mean", x=dims, y=[confidence[d]["mean"] for d in dims])
        fig.add_scatter(name="min", x=dims, y=[confidence[d]["min"] for d in dims], mode="markers")
        fig.update_layout(title="confidence per dimension", yaxis={"range": [0, 1]})
        panels.append(_figure(fig))
        below = [confidence[d]["below_threshold"] for d in dims]
        fig = go.Figure(go.Bar(x=dims, y=below))
        fig.update_layout(
            title=f"samples below the confidence threshold ({stats.get('confidence_threshold')})"
        )
        panels.append(_figure(fig))
    cross = stats.get("intent_x_difficulty", {})
    if cross:
        intents = sorted(cross)
        levels = sorted({d for row in cross.values() for d in row})
        z = [[cross[i].get(d, 0) for d in levels] for i in intents]
        fig = go.Figure(
            go.Heatmap(z=z, x=levels, y=intents, colorscale="Blues", text=z, texttemplate="%{text}")
        )
        fig.update_layout(title="intent × difficulty")
        panels.append(_figure(fig))
    files = stats.get("files", {})
    if files:
        names = list(files)
        fig = go.Figure()
        fig.add_bar(name="labeled", x=names, y=[files[n]["success"] for n in names])
        fig.add_bar(name="failed", x=names, y=[files[n]["failed"] for n in names])
        fig.update_layout(title="samples per input file", barmode="stack")
        panels.append(_figure(fig))
    failures = stats.get("failures_by_reason", {})
    if failures:
        fig = go.Figure(go.Bar(x=list(failures), y=list(failures.values())))
        fig.update_layout(title="failures by reason")
        panels.append(_figure(fig))
    subtitle = f"model {stats.get('model', '?')} · {', '.join(map(str, stats.get('inputs', [])))}"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1><div class='sub'>{html.escape(subtitle)}</div>"
        f"{_cards(stats)}<div class='grid'>{''.join(panels)}</div></body></html>"
    )


def write_dashboard(stats: dict[str, Any], path: Path, *, title: str) -> Path:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(render_dashboard(stats, title=title), encoding="utf-8")
    partial.replace(path)
    return path
