"""The dashboard of a run: an offline HTML page (plotly.js embedded once, or loaded from the
one shared copy at the root of a multi-part run).

Only aggregates go into the page (counts per tag, histograms, per-part totals), so its size does
not grow with the number of samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sftlabel.reports._aggregate import (
    CONFIDENCE_BINS,
    NONE_TAG,
    UNKNOWN_DIMENSION,
    TaxonomySummary,
)
from sftlabel.reports._plot import PLOT_STYLE, Fig, figure, missing_notice, script_tag, trace
from sftlabel.reports._safe import esc
from sftlabel.taxonomy import Taxonomy

TOP_TAGS = 25
"""Tags shown per dimension (the rest are counted in the title)."""
TOP_UNMAPPED = 30
TOP_PARTS = 60

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin-bottom: 4px; overflow-wrap: anywhere; }
.sub { color: #666; margin-bottom: 18px; }
h2 { font-size: 17px; margin: 26px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 10px; }
.card { background: #fff; border: 1px solid #e3e3e3; border-radius: 8px; padding: 10px 14px;
        min-width: 120px; max-width: 100%; box-sizing: border-box; overflow-wrap: anywhere; }
.card .v { font-size: 20px; font-weight: 600; } .card .k { color: #666; font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 14px; }
.panel { background: #fff; border: 1px solid #e3e3e3; border-radius: 8px; padding: 6px; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
td, th { border: 1px solid #e3e3e3; padding: 4px 8px; text-align: left; vertical-align: top; }
td.n { text-align: right; } .muted { color: #888; }
td { overflow-wrap: anywhere; } .scroll { max-height: 520px; overflow: auto; }
"""


@dataclass
class RunFacts:
    """What a run's side files (run.json, stats.json, labeling_metadata.json) add to the records."""

    model: str = ""
    inputs: list[str] = field(default_factory=list)
    elapsed: float | None = None
    requests: int | None = None
    rate_limited: int | None = None
    cache_hits: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    """Prompt tokens the provider served from its prefix cache (billed at the cached price)."""
    cost: float | None = None
    created: str = ""


def _num(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _card(label: str, value: Any) -> str:
    return (
        f'<div class="card"><div class="v">{esc(str(value))}</div>'
        f'<div class="k">{esc(label)}</div></div>'
    )


def _cards(cards: Sequence[tuple[str, Any]]) -> str:
    return '<div class="cards">' + "".join(_card(k, v) for k, v in cards) + "</div>"


_figure = figure
"""One chart panel (compare's pages use it with plotly figures)."""


def _section(title: str, panels: Sequence[str], *, note: str = "") -> str:
    if not panels:
        return ""
    extra = f"<div class='sub'>{esc(note)}</div>" if note else ""
    return f"<h2>{esc(title)}</h2>{extra}<div class='grid'>{''.join(panels)}</div>"


def _page(title: str, subtitle: str, body: str, plotly_src: str | None = None) -> str:
    """A whole page; plotly.js inline, or from ``plotly_src`` (a relative URL) when given."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{_STYLE}{PLOT_STYLE}</style>"
        f"{script_tag(plotly_src)}</head><body>"
        f"<h1>{esc(title)}</h1><div class='sub'>{esc(subtitle)}</div>"
        f"{missing_notice(plotly_src)}{body}</body></html>"
    )


def _bins(count: int) -> list[str]:
    width = 1 / count
    return [f"{i * width:.2f}–{(i + 1) * width:.2f}" for i in range(count)]


def _throughput(samples: int, elapsed: float | None) -> str:
    return _num(samples / elapsed, 2) if elapsed else "n/a"


def _tokens(computed: int, fact: int | None) -> int | None:
    return computed if computed else fact


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='n'>{v:,}</td>" if isinstance(v, int) else f"<td>{esc(str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<div class='panel'><table><tr>{head}</tr>{body}</table></div>"


def taxonomy_cards(summary: TaxonomySummary, facts: RunFacts) -> list[tuple[str, str]]:
    """Counts from the records; tokens and cost from the run's sessions when known (they include
    arbitration, failed samples and resumed work), else from the records' monitors."""
    tokens = (facts.prompt_tokens or 0) + (facts.completion_tokens or 0) or summary.tokens
    cost = facts.cost
    if cost is None and summary.cost and not summary.cost_unknown:
        cost = summary.cost
    return [
        ("samples", f"{summary.total:,}"),
        ("success rate", f"{summary.success_rate:.1%}"),
        ("failed", f"{summary.failed:,}"),
        ("duplicates (labeled once)", f"{summary.duplicates:,}"),
        ("LLM calls", f"{summary.calls:,}"),
        ("calls / sample", f"{summary.calls_per_sample_mean:.2f}"),
        ("tokens", f"{tokens:,}" if tokens else "n/a"),
        ("cost", "n/a" if cost is None else f"${cost:,.4f}"),
        ("cached prompt share", cached_share(facts, summary.prompt_tokens, summary.cached_tokens)),
        ("arbitrated", f"{summary.arbitrated_rate:.1%}"),
        ("unmapped values", f"{len(summary.unmapped):,}"),
        ("samples with unmapped", f"{summary.unmapped_samples:,}"),
        ("elapsed", _num(facts.elapsed, 1, " s")),
        ("samples / s", _throughput(summary.total, facts.elapsed)),
    ]


def cached_share(facts: RunFacts, prompt: int, cached: int) -> str:
    """The share of prompt tokens served from the provider's prefix cache (the sessions' figures
    when known, else the records')."""
    if facts.prompt_tokens:
        prompt, cached = facts.prompt_tokens, facts.cached_tokens or 0
    return f"{cached / prompt:.1%}" if prompt else "n/a"


def _observations(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{esc(note)}</li>" for note in notes)
    return f"<h2>Observations</h2><div class='panel'><ul>{items}</ul></div>"


def render_taxonomy(
    summary: TaxonomySummary,
    taxonomy: Taxonomy,
    facts: RunFacts,
    *,
    title: str,
    observations: Sequence[str] = (),
    plotly_src: str | None = None,
    parts_section: str = "",
) -> str:
    """The dashboard of a taxonomy run (or of one part of it). ``plotly_src``: load plotly.js
    from there instead of embedding it; ``parts_section``: HTML of the per-part view (the
    global dashboard of a multi-part run)."""
    body = [_cards(taxonomy_cards(summary, facts)), _observations(observations), parts_section]
    body.append(_section("Tag distributions", _distributions(summary, taxonomy)))
    body.append(
        _section(
            "Confidence",
            _confidence(summary),
            note=f"threshold {summary.threshold:g}: dimensions below it are candidates for "
            "arbitration",
        )
    )
    body.append(_section("Intent × difficulty", [_heatmap(summary, taxonomy)]))
    body.append(_section("Taxonomy coverage", _coverage(summary, taxonomy)))
    body.append(_section("Unmapped tags", _unmapped(summary)))
    body.append(_section("Calls, failures and parts", _operations(summary)))
    subtitle = f"model {facts.model or '?'}"
    if facts.inputs:
        subtitle += " · " + ", ".join(facts.inputs[:5])
        if len(facts.inputs) > 5:
            subtitle += f" … ({len(facts.inputs):,} inputs)"
    return _page(title, subtitle, "".join(body), plotly_src)


def _hbar(names: list[str], counts: list[int], color: str) -> dict[str, Any]:
    return trace("bar", x=counts[::-1], y=names[::-1], orientation="h", marker={"color": color})


def _distributions(summary: TaxonomySummary, taxonomy: Taxonomy) -> list[str]:
    panels = []
    for dim in summary.dimensions:
        counts = summary.distributions[dim]
        empty = summary.empty.get(dim, 0)
        if not counts and not empty:
            continue
        top = counts.most_common(TOP_TAGS)
        more = len(counts) - len(top)
        size = len(taxonomy.categories[dim].tags) if dim in taxonomy.categories else 0
        names, values = [t for t, _ in top], [c for _, c in top]
        if empty:  # samples without any tag in this dimension
            names.append(NONE_TAG)
            values.append(empty)
        extra = f", top {len(top)} shown" if more > 0 else ""
        if empty and summary.samples:
            extra += f"; {NONE_TAG} {empty / summary.samples:.1%}"
        fig = Fig(
            _hbar(names, values, "#4c78a8"),
            title=f"{dim}: {len(counts)} of {size} tags used{extra}",
            yaxis={"type": "category", "automargin": True},
        )
        panels.append(figure(fig, height=max(240, 20 * len(names) + 70)))
    return panels


def _confidence(summary: TaxonomySummary) -> list[str]:
    dims = [d for d in summary.dimensions if summary.confidence[d].count]
    if not dims:
        return []
    labels = _bins(CONFIDENCE_BINS)
    z = []
    for dim in dims:
        stats = summary.confidence[dim]
        z.append([round(c / stats.count, 4) for c in stats.histogram])
    heat = Fig(
        trace(
            "heatmap",
            z=z,
            x=labels,
            y=dims,
            colorscale="Blues",
            colorbar={"title": {"text": "share"}},
            hovertemplate="%{y} %{x}: %{z:.1%}<extra></extra>",
        ),
        title="confidence distribution per dimension (share of samples)",
    )
    below = Fig(
        trace(
            "bar",
            x=dims,
            y=[summary.confidence[d].below_share for d in dims],
            text=[f"{summary.confidence[d].below:,}" for d in dims],
            name="below threshold",
            marker={"color": "#e45756"},
        ),
        title=f"share of samples below {summary.threshold:g}",
        yaxis={"tickformat": ".0%", "rangemode": "nonnegative"},
    )
    mean = Fig(
        trace("bar", x=dims, y=[summary.confidence[d].mean for d in dims], name="mean"),
        trace(
            "scatter",
            x=dims,
            y=[summary.confidence[d].min for d in dims],
            name="min",
            mode="markers",
        ),
        title="mean and minimum confidence",
        yaxis={"range": [0, 1]},
    )
    return [figure(heat, height=max(300, 28 * len(dims) + 100)), figure(below), figure(mean)]


def _heatmap(summary: TaxonomySummary, taxonomy: Taxonomy) -> str:
    def order(dim: str, seen: set[str]) -> list[str]:
        known = taxonomy.categories[dim].ids if dim in taxonomy.categories else []
        return [t for t in known if t in seen] + sorted(seen - set(known))

    intents = order("intent", {i for i, _ in summary.cross})
    levels = order("difficulty", {d for _, d in summary.cross})
    z = [[summary.cross.get((i, d), 0) for d in levels] for i in intents]
    fig = Fig(
        trace(
            "heatmap",
            z=z,
            x=levels,
            y=intents,
            colorscale="Blues",
            text=z,
            texttemplate="%{text}",
        ),
        title="samples by intent and difficulty",
        xaxis={"type": "category"},
        yaxis={"type": "category", "automargin": True},
    )
    return figure(fig, height=max(300, 40 * len(intents) + 100))


def _coverage(summary: TaxonomySummary, taxonomy: Taxonomy) -> list[str]:
    dims = [d for d in summary.dimensions if d in taxonomy.categories]
    used, unused, rows = [], [], []
    for dim in dims:
        ids = taxonomy.categories[dim].ids
        never = [t for t in ids if t not in summary.distributions[dim]]
        used.append(len(ids) - len(never))
        unused.append(len(never))
        rows.append((dim, len(ids) - len(never), len(never), ", ".join(never) or "—"))
    fig = Fig(
        trace("bar", x=dims, y=used, name="used", marker={"color": "#54a24b"}),
        trace("bar", x=dims, y=unused, name="never used", marker={"color": "#bab0ac"}),
        title="tags used and never used per category",
        barmode="stack",
    )
    return [figure(fig), _table(("category", "used", "never used", "never-used tags"), rows)]


def _unmapped(summary: TaxonomySummary) -> list[str]:
    if not summary.unmapped:
        return []
    top = summary.unmapped.most_common(TOP_UNMAPPED)
    names = [f"{d or '?'}:{v}" for (d, v), _ in top]
    more = len(summary.unmapped) - len(top)
    fig = Fig(
        _hbar(names, [c for _, c in top], "#f58518"),
        title=f"unmapped values ({len(summary.unmapped):,} distinct"
        + (f", top {len(top)} shown)" if more > 0 else ")"),
        yaxis={"type": "category", "automargin": True},
    )
    per_dim: dict[str, int] = {}
    for (dim, _), count in summary.unmapped.items():
        per_dim[dim or UNKNOWN_DIMENSION] = per_dim.get(dim or UNKNOWN_DIMENSION, 0) + count
    dims = sorted(per_dim, key=lambda d: -per_dim[d])
    by_dim = Fig(
        trace("bar", x=[d or "?" for d in dims], y=[per_dim[d] for d in dims]),
        title="unmapped values per dimension (? = none given)",
        xaxis={"type": "category"},
    )
    return [figure(fig, height=max(260, 20 * len(top) + 70)), figure(by_dim)]


def _operations(summary: TaxonomySummary) -> list[str]:
    panels = []
    if summary.calls_per_sample:
        calls = sorted(summary.calls_per_sample)
        fig = Fig(
            trace("bar", x=[str(c) for c in calls], y=[summary.calls_per_sample[c] for c in calls]),
            title="LLM calls per sample",
            xaxis={"type": "category"},
        )
        panels.append(figure(fig))
    if summary.failures:
        reasons = summary.failures.most_common()
        fig = Fig(
            trace(
                "bar",
                x=[r for r, _ in reasons],
                y=[c for _, c in reasons],
                marker={"color": "#e45756"},
            ),
            title=f"failures by reason ({summary.failed:,})",
            xaxis={"type": "category"},
        )
        panels.append(figure(fig))
    named = {p: v for p, v in summary.parts.items() if p}
    if len(named) > 1:
        parts = sorted(named, key=lambda p: -sum(named[p]))[:TOP_PARTS]
        shown = f", the {len(parts)} largest of {len(named):,}" if len(named) > len(parts) else ""
        fig = Fig(
            trace("bar", name="labeled", x=parts, y=[named[p][0] for p in parts]),
            trace("bar", name="failed", x=parts, y=[named[p][1] for p in parts]),
            title=f"samples per input file (part){shown}",
            barmode="stack",
            xaxis={"type": "category", "automargin": True},
        )
        panels.append(figure(fig))
    return panels
