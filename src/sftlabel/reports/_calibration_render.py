"""Views of the confidence calibration of ``compare --gold`` (taxonomy runs): the tables of the
terminal / Markdown / HTML outputs and the HTML figures (plotly, offline)."""

from __future__ import annotations

from sftlabel.reports._calibration import ConfidenceCalibration
from sftlabel.reports._compare_render import DASH, Section, Table, num, pct


def _threshold(value: float) -> str:
    return f"{value:.2f}"


def confidence_section(cal: ConfidenceCalibration) -> Section:
    """Confidence calibration of one run against the gold run (``compare --gold``)."""
    target = pct(cal.catch, 0)
    section = Section(title=f"confidence calibration: {cal.run} against gold {cal.gold}")
    section.source = cal
    section.lines = [
        f"{cal.paired:,} samples paired with the gold run. Agreement: the dimension has the "
        "gold value (multi-select: the same tag set). Gap = mean confidence − agreement "
        "(positive: over-confident); ECE over 10 confidence bins.",
        f"Arbitration at threshold t re-asks a dimension whose confidence is below t: cost = "
        f"share of the samples arbitrated, caught = share of the errors among them. "
        f"Recommended (*): the smallest t (0.01 steps) catching at least {target} of the errors.",
    ]
    summary: list[list[str]] = []
    reliability: list[list[str]] = []
    thresholds: list[list[str]] = []
    for dim in cal.dimensions:
        best = dim.recommended
        summary.append(
            [
                dim.name,
                f"{dim.samples:,}",
                f"{dim.errors:,}",
                pct(dim.agreement),
                num(dim.mean_confidence),
                num(dim.ece),
                num(dim.brier),
                DASH if best is None else _threshold(best.threshold),
                DASH if best is None else pct(best.cost),
                DASH if best is None else pct(best.caught),
            ]
        )
        for b in dim.bins:
            if b.count:
                reliability.append(
                    [
                        dim.name,
                        f"{b.lower:.1f}–{b.upper:.1f}",
                        f"{b.count:,}",
                        num(b.mean_confidence),
                        pct(b.agreement),
                        num(b.gap),
                    ]
                )
        previous: int | None = None
        for point in dim.thresholds:
            chosen = best is not None and point.threshold == best.threshold
            if point.below == previous and not chosen:
                continue  # the same samples as the threshold before
            previous = point.below
            thresholds.append(
                [
                    dim.name,
                    _threshold(point.threshold) + ("*" if chosen else ""),
                    f"{point.below:,}",
                    pct(point.cost),
                    f"{point.errors_caught:,}",
                    pct(point.caught),
                ]
            )
        if dim.without_confidence:
            section.lines.append(
                f"{dim.name}: {dim.without_confidence:,} paired samples without a confidence "
                "are left out."
            )
    section.tables = [
        Table(
            title=f"calibration per dimension ({cal.run} against {cal.gold})",
            header=[
                "dimension",
                "samples",
                "errors",
                "agreement",
                "mean conf.",
                "ECE",
                "Brier",
                f"threshold ({target} caught)",
                "arbitrated",
                "errors caught",
            ],
            rows=summary,
        ),
        Table(
            title="reliability: confidence bins",
            header=["dimension", "confidence", "samples", "mean conf.", "agreement", "gap"],
            rows=reliability,
            align="llrrrr",
        ),
        Table(
            title="arbitration thresholds (rows that change something)",
            header=["dimension", "threshold", "arbitrated", "cost", "errors caught", "caught"],
            rows=thresholds,
            align="lrrrrr",
        ),
    ]
    return section


def reliability_figures(cal: ConfidenceCalibration) -> list[str]:
    """One reliability curve per dimension (agreement with gold against mean confidence) and
    the errors caught against the arbitration cost."""
    import plotly.graph_objects as go

    from sftlabel.reports._html import _figure

    fig = go.Figure()
    fig.add_scatter(
        name="perfect", x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "#999"}
    )
    trade = go.Figure()
    for dim in cal.dimensions:
        used = [b for b in dim.bins if b.count]
        if not used:
            continue
        fig.add_scatter(
            name=f"{dim.name} (ECE {num(dim.ece)})",
            x=[b.mean_confidence for b in used],
            y=[b.agreement for b in used],
            mode="lines+markers",
            text=[f"{b.count:,} samples" for b in used],
            hovertemplate="confidence %{x:.3f}, agreement %{y:.1%} (%{text})<extra></extra>",
        )
        trade.add_scatter(
            name=dim.name,
            x=[p.cost for p in dim.thresholds],
            y=[p.caught for p in dim.thresholds],
            text=[_threshold(p.threshold) for p in dim.thresholds],
            mode="lines+markers",
            hovertemplate="threshold %{text}: arbitrated %{x:.1%}, errors caught %{y:.1%}"
            "<extra></extra>",
        )
    fig.update_layout(
        title=f"reliability: {cal.run} confidence vs agreement with {cal.gold}",
        xaxis={"title": {"text": "mean confidence"}, "range": [0, 1]},
        yaxis={"title": {"text": "agreement with gold"}, "range": [0, 1]},
    )
    trade.update_layout(
        title="arbitration: errors caught against the share arbitrated",
        xaxis={"title": {"text": "share of samples arbitrated"}, "range": [0, 1]},
        yaxis={"title": {"text": "share of errors caught"}, "range": [0, 1]},
    )
    return [str(_figure(fig, height=420)), str(_figure(trade, height=420))]


__all__ = ["confidence_section", "reliability_figures"]
