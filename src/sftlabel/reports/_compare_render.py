"""Views of a :class:`~sftlabel.reports.compare.CompareResult`: tables (shared by the terminal,
Markdown and HTML outputs), ``report.md`` and a self-contained ``report.html`` (plotly.js
embedded, as the dashboard does; no CDN, no network)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sftlabel.reports._calibration import ConfidenceCalibration
from sftlabel.reports._compare_types import (
    Calibration,
    CompareResult,
    DimensionAgreement,
    PairReport,
    Ratio,
    SoftPairReport,
    Unpaired,
)
from sftlabel.reports._safe import esc, md

DASH = "—"
TOP_OVERALL = 12
"""Disagreements listed across all dimensions of a comparison."""


def pct(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value * 100:.{digits}f}%"


def num(value: float | None, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _figure_value(value: float | None, digits: int = 2) -> str:
    if value is None:
        return DASH
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1 or value == 0:
        return f"{value:,.{digits}f}"
    return f"{value:.4g}"


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    align: str = ""
    """One letter per column, ``l`` or ``r`` (default: first left, the rest right)."""
    detail: bool = False
    """Only in the report files (too long for the terminal)."""

    def alignment(self) -> str:
        return self.align or "l" + "r" * (len(self.header) - 1)


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    source: PairReport | SoftPairReport | ConfidenceCalibration | Literal["gold", "all", ""] = ""
    """What the section's charts are drawn from (HTML)."""


def _unpaired_lines(unpaired: Unpaired, a: str, b: str, paired: int, unit: str) -> list[str]:
    lines = [
        f"{paired:,} {unit} paired by id; {unpaired.a_only:,} only in {a}, "
        f"{unpaired.b_only:,} only in {b}."
    ]
    if unpaired.a_only_examples:
        lines.append(f"Only in {a}, e.g.: {', '.join(unpaired.a_only_examples)}")
    if unpaired.b_only_examples:
        lines.append(f"Only in {b}, e.g.: {', '.join(unpaired.b_only_examples)}")
    return lines


def _runs_table(result: CompareResult) -> Table:
    rows = []
    for run in result.runs:
        mark = " (reference)" if run.name == result.reference else ""
        rows.append(
            [
                run.name + mark,
                run.model or DASH,
                f"{run.records:,}",
                f"{run.failed:,}",
                f"{run.duplicates:,}",
                run.path,
            ]
        )
    return Table(
        title="runs",
        header=["run", "model", "labeled", "failed", "duplicate ids", "path"],
        rows=rows,
        align="llrrrl",
    )


def _ratio_table(ratios: list[Ratio], a: str, b: str) -> Table | None:
    if not ratios:
        return None
    return Table(
        title="cost (per sample)",
        header=["", a, b, f"{a} / {b}"],
        rows=[[r.metric, _figure_value(r.a), _figure_value(r.b), num(r.ratio, 2)] for r in ratios],
    )


def _alpha_by_dimension(result: CompareResult) -> dict[str, float | None]:
    return {a.dimension: a.alpha for a in result.alpha}


def _dimension_table(pair: PairReport, alpha: dict[str, float | None], runs: int) -> Table:
    alpha_title = "alpha" if runs == 2 else "alpha (all runs)"
    rows = [
        [
            d.name,
            d.select,
            pct(d.exact),
            pct(d.partial),
            num(d.jaccard),
            num(d.kappa),
            num(alpha.get(d.name)),
            num(d.micro_f1),
            num(d.macro_f1),
            num(d.confidence_a),
            num(d.confidence_b),
        ]
        for d in pair.dimensions
    ]
    return Table(
        title=f"agreement per dimension ({pair.b} is the reference)",
        header=[
            "dimension",
            "select",
            "exact",
            "partial",
            "Jaccard",
            "kappa",
            alpha_title,
            "micro F1",
            "macro F1",
            f"conf. {pair.a}",
            f"conf. {pair.b}",
        ],
        rows=rows,
        align="llrrrrrrrrr",
    )


def _disagreement_table(pair: PairReport, limit: int = TOP_OVERALL) -> Table:
    items = [(d.name, x) for d in pair.dimensions for x in d.disagreements]
    items.sort(key=lambda item: -item[1].count)
    return Table(
        title="most frequent disagreements",
        header=["dimension", pair.a, pair.b, "count", "examples"],
        rows=[[dim, x.a, x.b, f"{x.count:,}", ", ".join(x.examples)] for dim, x in items[:limit]],
        align="lllrl",
    )


def _tag_table(dim: DimensionAgreement, a: str, b: str) -> Table:
    return Table(
        title=f"{dim.name}: per-tag precision / recall / F1 ({a} against {b})",
        header=["tag", f"in {b}", f"in {a}", "both", "precision", "recall", "F1"],
        rows=[
            [
                t.tag,
                f"{t.support:,}",
                f"{t.predicted:,}",
                f"{t.true_positives:,}",
                num(t.precision),
                num(t.recall),
                num(t.f1),
            ]
            for t in dim.tags
        ],
        detail=True,
    )


def confusion_order(confusion: dict[str, dict[str, int]]) -> list[str]:
    """The values of both runs, most frequent first (rows and columns in the same order, so
    agreement is the diagonal)."""
    totals: dict[str, int] = {}
    for a, row in confusion.items():
        for b, count in row.items():
            totals[a] = totals.get(a, 0) + count
            totals[b] = totals.get(b, 0) + count
    return sorted(totals, key=lambda value: (-totals[value], value))


def _confusion_table(dim: DimensionAgreement, a: str, b: str) -> Table | None:
    if not dim.confusion:
        return None
    columns = confusion_order(dim.confusion)
    return Table(
        title=f"{dim.name}: confusion (rows {a}, columns {b})",
        header=[f"{a} \\ {b}", *columns],
        rows=[
            [value, *[str(dim.confusion.get(value, {}).get(c, 0)) for c in columns]]
            for value in columns
        ],
        detail=True,
    )


def _taxonomy_sections(result: CompareResult) -> list[Section]:
    sections: list[Section] = []
    alpha = _alpha_by_dimension(result)
    for pair in result.comparisons:
        section = Section(title=f"{pair.a} vs {pair.b}", source=pair)
        section.lines = _unpaired_lines(pair.unpaired, pair.a, pair.b, pair.paired, "samples")
        section.lines.append(
            f"Overall: all {len(pair.dimensions)} dimensions agree on "
            f"{pct(pair.all_dimensions_exact)} of the paired samples; mean per-dimension exact "
            f"agreement {pct(pair.mean_dimension_exact)}."
        )
        section.tables.append(_dimension_table(pair, alpha, len(result.runs)))
        ratios = _ratio_table(pair.resources, pair.a, pair.b)
        if ratios:
            section.tables.append(ratios)
        section.tables.append(_disagreement_table(pair))
        for dim in pair.dimensions:
            confusion = _confusion_table(dim, pair.a, pair.b)
            if confusion:
                section.tables.append(confusion)
        for dim in pair.dimensions:
            if dim.tags:
                section.tables.append(_tag_table(dim, pair.a, pair.b))
        sections.append(section)
    if result.confidence_calibration:
        from sftlabel.reports._calibration_render import confidence_section

        sections += [confidence_section(c) for c in result.confidence_calibration]
    return sections


def _calibration_lines(calibration: Calibration, subject: str) -> list[str]:
    return [
        f"Calibration of {subject}'s soft labels against the hard labels of "
        f"{calibration.against} ({calibration.turns:,} turns): Brier score "
        f"{num(calibration.brier)}, expected calibration error (10 bins) {num(calibration.ece)}."
    ]


def _calibration_table(calibration: Calibration, subject: str) -> Table:
    return Table(
        title=f"calibration bins: {subject} against {calibration.against}",
        header=["soft label", "turns", "mean soft label", "share of hard label 1"],
        rows=[
            [f"{b.lower:.1f}–{b.upper:.1f}", f"{b.count:,}", num(b.mean_soft), num(b.observed)]
            for b in calibration.bins
        ],
        detail=True,
    )


def _soft_sections(result: CompareResult) -> list[Section]:
    sections: list[Section] = []
    for pair in result.soft_comparisons:
        section = Section(title=f"{pair.a} vs {pair.b}", source=pair)
        section.lines = _unpaired_lines(pair.unpaired, pair.a, pair.b, pair.paired, "turns")
        section.lines += _calibration_lines(pair.calibration, pair.a)
        section.tables.append(
            Table(
                title="hard and soft labels",
                header=["", "value"],
                rows=[
                    ["hard-label agreement", pct(pair.hard_agreement)],
                    ["Cohen's kappa (hard labels)", num(pair.kappa)],
                    ["turns with both soft labels", f"{pair.soft_paired:,}"],
                    ["Pearson r (soft labels)", num(pair.pearson)],
                    ["Spearman rho (soft labels)", num(pair.spearman)],
                    [f"mean soft label {pair.a}", num(pair.mean_soft_a)],
                    [f"mean soft label {pair.b}", num(pair.mean_soft_b)],
                    ["mean |difference|", num(pair.mean_abs_difference)],
                    [f"Brier score ({pair.a} vs {pair.b} hard)", num(pair.calibration.brier)],
                    [f"ECE ({pair.a} vs {pair.b} hard)", num(pair.calibration.ece)],
                ],
            )
        )
        section.tables.append(
            Table(
                title=f"hard labels (rows {pair.a}, columns {pair.b})",
                header=[f"{pair.a} \\ {pair.b}", "0", "1"],
                rows=[
                    [x, *[f"{row[y]:,}" for y in ("0", "1")]] for x, row in pair.confusion.items()
                ],
            )
        )
        ratios = _ratio_table(pair.resources, pair.a, pair.b)
        if ratios:
            ratios.title = "cost (per turn)"
            section.tables.append(ratios)
        if pair.disagreements:
            section.tables.append(
                Table(
                    title="hard-label disagreements",
                    header=[pair.a, pair.b, "count", "examples"],
                    rows=[
                        [x.a, x.b, f"{x.count:,}", ", ".join(x.examples)]
                        for x in pair.disagreements
                    ],
                    align="llrl",
                )
            )
        section.tables.append(_calibration_table(pair.calibration, pair.a))
        sections.append(section)
    if result.gold:
        gold = result.gold[0].gold
        section = Section(title=f"against the gold labels ({gold})", source="gold")
        section.tables.append(
            Table(
                title="runs against the gold hard labels",
                header=[
                    "run",
                    "paired",
                    "not in gold",
                    "gold only",
                    "agreement",
                    "kappa",
                    "Brier",
                    "ECE",
                ],
                rows=[
                    [
                        g.run,
                        f"{g.paired:,}",
                        f"{g.unpaired.a_only:,}",
                        f"{g.unpaired.b_only:,}",
                        pct(g.hard_agreement),
                        num(g.kappa),
                        num(g.calibration.brier),
                        num(g.calibration.ece),
                    ]
                    for g in result.gold
                ],
            )
        )
        for g in result.gold:
            section.tables.append(_calibration_table(g.calibration, g.run))
        sections.append(section)
    return sections


def _all_runs_section(result: CompareResult) -> Section | None:
    if len(result.runs) < 3 and not result.alpha:
        return None
    section = Section(title="all runs", source="all")
    for matrix in result.matrices:
        section.tables.append(
            Table(
                title=f"pairwise {matrix.metric.replace('_', ' ')}",
                header=["", *matrix.runs],
                rows=[
                    [name, *[pct(v) for v in row]]
                    for name, row in zip(matrix.runs, matrix.values, strict=True)
                ],
            )
        )
    if result.alpha:
        section.lines.append(
            "Krippendorff's alpha over every run: nominal for single-select dimensions, "
            "Jaccard distance (1 − |A∩B| / |A∪B|, two empty sets agree) for multi-select ones."
        )
        section.tables.append(
            Table(
                title="Krippendorff's alpha",
                header=["dimension", "distance", "samples", "alpha"],
                rows=[
                    [a.dimension, a.distance, f"{a.units:,}", num(a.alpha)] for a in result.alpha
                ],
                align="llrr",
            )
        )
    return section


def sections(result: CompareResult, *, detail: bool = True) -> list[Section]:
    """Everything a report shows, as titled tables; ``detail=False`` leaves out the long
    per-tag, confusion and calibration-bin tables (for the terminal)."""
    names = ", ".join(r.name for r in result.runs)
    overview = Section(
        title=f"comparison of {names}",
        lines=[
            f"{result.kind} labels; the reference is {result.reference}.",
        ],
        tables=[_runs_table(result)],
    )
    body = _taxonomy_sections(result) if result.kind == "taxonomy" else _soft_sections(result)
    every = [overview, *body]
    if len(result.runs) >= 3:
        extra = _all_runs_section(result)
        if extra:
            every.append(extra)
    if not detail:
        for section in every:
            section.tables = [t for t in section.tables if not t.detail]
    return every


# --------------------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return md(text)


def _md_table(table: Table) -> list[str]:
    marks = {"l": ":--", "r": "--:"}
    lines = [
        f"**{_md_cell(table.title)}**",
        "",
        "| " + " | ".join(_md_cell(h) for h in table.header) + " |",
        "|" + "|".join(marks[a] for a in table.alignment()) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return [*lines, ""]


def render_markdown(result: CompareResult) -> str:
    """``report.md``: every section with its tables."""
    out: list[str] = []
    for position, section in enumerate(sections(result)):
        out.append(("# " if position == 0 else "## ") + md(section.title))
        out.append("")
        for line in section.lines:
            out += [md(line), ""]
        for table in section.tables:
            out += _md_table(table)
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------- HTML


def _html_table(table: Table) -> str:
    align = table.alignment()
    head = "".join(
        f"<th style='text-align:{'left' if a == 'l' else 'right'}'>{esc(h)}</th>"
        for h, a in zip(table.header, align, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td style='text-align:{'left' if a == 'l' else 'right'}'>{esc(c)}</td>"
            for c, a in zip(row, align, strict=True)
        )
        + "</tr>"
        for row in table.rows
    )
    return (
        f"<div class='table'><div class='tt'>{esc(table.title)}</div>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


_EXTRA_STYLE = """
h2 { font-size: 18px; margin-top: 28px; } p { margin: 6px 0; }
.table { background: #fff; border: 1px solid #e3e3e3; border-radius: 8px; padding: 8px 12px;
         margin: 12px 0; overflow-x: auto; }
.tt { font-weight: 600; margin-bottom: 6px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; white-space: nowrap; }
th { color: #555; font-weight: 600; }
details { margin: 10px 0; } summary { cursor: pointer; color: #335; }
"""


def _figures_taxonomy(pair: PairReport, alpha: dict[str, float | None]) -> list[str]:
    import plotly.graph_objects as go

    from sftlabel.reports._html import _figure

    panels: list[str] = []
    names = [d.name for d in pair.dimensions]

    bars: dict[str, list[float | None]] = {
        "exact": [d.exact for d in pair.dimensions],
        "partial": [d.partial for d in pair.dimensions],
        "mean Jaccard": [d.jaccard for d in pair.dimensions],
        "Cohen's kappa": [d.kappa for d in pair.dimensions],
        "Krippendorff's alpha": [alpha.get(n) for n in names],
    }
    fig = go.Figure()
    for label, values in bars.items():
        fig.add_bar(name=label, x=names, y=values)
    lowest = min([0.0, *(v for values in bars.values() for v in values if v is not None)])
    fig.update_layout(
        title=f"agreement per dimension: {pair.a} vs {pair.b}",
        barmode="group",
        yaxis={"range": [lowest, 1.0]},
    )
    panels.append(_figure(fig, height=380))
    fig = go.Figure()
    fig.add_bar(name=pair.a, x=names, y=[d.confidence_a for d in pair.dimensions])
    fig.add_bar(name=pair.b, x=names, y=[d.confidence_b for d in pair.dimensions])
    fig.update_layout(
        title="mean confidence per dimension", barmode="group", yaxis={"range": [0, 1]}
    )
    panels.append(_figure(fig))
    for dim in pair.dimensions:
        if not dim.confusion:
            continue
        order = confusion_order(dim.confusion)
        z = [[dim.confusion.get(r, {}).get(c, 0) for c in order] for r in order]
        heat = go.Heatmap(z=z, x=order, y=order, colorscale="Blues", text=z, texttemplate="%{text}")
        fig = go.Figure(heat)
        fig.update_layout(
            title=f"{dim.name}: {pair.a} (rows) × {pair.b} (columns)",
            xaxis={"title": {"text": pair.b}, "type": "category"},
            yaxis={"title": {"text": pair.a}, "type": "category", "autorange": "reversed"},
        )
        panels.append(_figure(fig, height=max(320, 36 * len(order) + 160)))
    for dim in pair.dimensions:
        if dim.select != "multi" or not dim.tags:
            continue
        top = dim.tags[:25]
        fig = go.Figure()
        fig.add_bar(
            name="F1",
            y=[f"{t.tag} ({t.support}/{t.predicted})" for t in top][::-1],
            x=[t.f1 for t in top][::-1],
            orientation="h",
            hovertemplate="%{y}: F1 %{x:.3f}<extra></extra>",
        )
        fig.update_layout(
            title=f"{dim.name}: F1 per tag (samples in {pair.b}/{pair.a})",
            xaxis={"range": [0, 1]},
        )
        panels.append(_figure(fig, height=max(260, 20 * len(top) + 100)))
    return panels


def _calibration_figure(calibration: Calibration, subject: str) -> str:
    import plotly.graph_objects as go

    from sftlabel.reports._html import _figure

    used = [b for b in calibration.bins if b.count]
    fig = go.Figure()
    fig.add_scatter(
        name="perfect", x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "#999"}
    )
    fig.add_scatter(
        name=subject,
        x=[b.mean_soft for b in used],
        y=[b.observed for b in used],
        mode="lines+markers",
        text=[f"{b.count} turns" for b in used],
        marker={"size": [min(24, 6 + b.count**0.5) for b in used]},
    )
    fig.update_layout(
        title=f"calibration: {subject} soft labels vs {calibration.against} hard labels "
        f"(ECE {num(calibration.ece)})",
        xaxis={"title": {"text": "mean soft label"}, "range": [0, 1]},
        yaxis={"title": {"text": "share of hard label 1"}, "range": [0, 1]},
    )
    return str(_figure(fig))


def _figures_soft(pair: SoftPairReport) -> list[str]:
    import plotly.graph_objects as go

    from sftlabel.reports._html import _figure

    edges = [f"{b / 10:.1f}" for b in range(10)]
    fig = go.Figure(
        go.Heatmap(
            z=pair.soft_grid,
            x=edges,
            y=edges,
            colorscale="Blues",
            text=pair.soft_grid,
            texttemplate="%{text}",
        )
    )
    fig.update_layout(
        title=f"soft labels: {pair.a} (rows) × {pair.b} (columns), Pearson {num(pair.pearson)}",
        xaxis={"title": {"text": f"{pair.b} soft label (bin start)"}, "type": "category"},
        yaxis={"title": {"text": f"{pair.a} soft label (bin start)"}, "type": "category"},
    )
    return [str(_figure(fig, height=420)), _calibration_figure(pair.calibration, pair.a)]


def _figures_all(result: CompareResult) -> list[str]:
    import plotly.graph_objects as go

    from sftlabel.reports._html import _figure

    panels: list[str] = []
    for matrix in result.matrices:
        z = [[None if v is None else round(v, 4) for v in row] for row in matrix.values]
        fig = go.Figure(
            go.Heatmap(
                z=z,
                x=matrix.runs,
                y=matrix.runs,
                colorscale="Greens",
                zmin=0,
                zmax=1,
                text=[[pct(v) for v in row] for row in matrix.values],
                texttemplate="%{text}",
            )
        )
        fig.update_layout(
            title=f"pairwise {matrix.metric.replace('_', ' ')}",
            xaxis={"type": "category"},
            yaxis={"type": "category", "autorange": "reversed"},  # as in the table
        )
        panels.append(_figure(fig))
    if result.alpha and len(result.runs) >= 3:
        fig = go.Figure(
            go.Bar(x=[a.dimension for a in result.alpha], y=[a.alpha for a in result.alpha])
        )
        fig.update_layout(title="Krippendorff's alpha per dimension (all runs)")
        panels.append(_figure(fig))
    return panels


def render_html(result: CompareResult, *, title: str | None = None) -> str:
    """``report.html``: cards, charts and every table, one self-contained offline file."""
    from sftlabel.reports._html import _STYLE, _card
    from sftlabel.reports._plot import PLOT_STYLE, script_tag

    every = sections(result)
    title = title or every[0].title
    alpha = _alpha_by_dimension(result)
    cards: list[tuple[str, str]] = [
        ("runs", str(len(result.runs))),
        ("reference", result.reference),
    ]
    for pair in result.comparisons:
        cards += [
            (f"paired {pair.a}/{pair.b}", f"{pair.paired:,}"),
            ("all dimensions agree", pct(pair.all_dimensions_exact)),
            ("mean per-dimension", pct(pair.mean_dimension_exact)),
        ]
    for soft in result.soft_comparisons:
        cards += [
            (f"paired {soft.a}/{soft.b}", f"{soft.paired:,}"),
            ("hard-label agreement", pct(soft.hard_agreement)),
            ("kappa", num(soft.kappa)),
            ("Pearson (soft)", num(soft.pearson)),
        ]
    parts: list[str] = ["<div class='cards'>" + "".join(_card(k, v) for k, v in cards) + "</div>"]
    for position, section in enumerate(every):
        if position:
            parts.append(f"<h2>{esc(section.title)}</h2>")
            parts += [f"<p>{esc(line)}</p>" for line in section.lines]
        source = section.source
        panels: list[str] = []
        if isinstance(source, PairReport):
            panels = _figures_taxonomy(source, alpha)
        elif isinstance(source, SoftPairReport):
            panels = _figures_soft(source)
        elif source == "all":
            panels = _figures_all(result)
        elif source == "gold":
            panels = [_calibration_figure(g.calibration, g.run) for g in result.gold]
        elif isinstance(source, ConfidenceCalibration):
            from sftlabel.reports._calibration_render import reliability_figures

            panels = reliability_figures(source)
        main = [t for t in section.tables if not t.detail]
        detail = [t for t in section.tables if t.detail]
        parts += [_html_table(t) for t in main]
        if panels:
            parts.append(f"<div class='grid'>{''.join(panels)}</div>")
        if detail:
            parts.append(
                "<details><summary>per-tag scores, confusion tables and calibration bins"
                f" ({len(detail)} table{'' if len(detail) == 1 else 's'})</summary>"
                + "".join(_html_table(t) for t in detail)
                + "</details>"
            )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{_STYLE}{PLOT_STYLE}{_EXTRA_STYLE}</style>"
        f"{script_tag(None)}</head><body>"
        f"<h1>{esc(title)}</h1>"
        f"<div class='sub'>{esc(every[0].lines[0])}</div>"
        f"{''.join(parts)}</body></html>"
    )
