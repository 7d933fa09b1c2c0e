"""The dashboard of a soft-label output (the page's frame and cards are those of ``_html``)."""

from __future__ import annotations

from collections.abc import Sequence

from sftlabel.reports._aggregate import CALIBRATION_BINS, SOFT_BINS, SoftSummary
from sftlabel.reports._html import (
    RunFacts,
    _bins,
    _cards,
    _num,
    _observations,
    _page,
    _section,
    _throughput,
    _tokens,
    cached_share,
)
from sftlabel.reports._plot import Fig, figure, trace


def soft_cards(summary: SoftSummary, facts: RunFacts) -> list[tuple[str, str]]:
    tokens = _tokens(summary.tokens, (facts.prompt_tokens or 0) + (facts.completion_tokens or 0))
    cost = summary.cost if summary.cost else facts.cost
    calls = summary.calls or facts.requests
    share1 = summary.hard[1] / summary.labeled if summary.labeled else 0.0
    censored = summary.censored_turns / summary.labeled if summary.labeled else 0.0
    return [
        ("turns", f"{summary.turns:,}"),
        ("success rate", f"{summary.success_rate:.1%}"),
        ("failed", f"{summary.failed:,}"),
        ("duplicates (labeled once)", f"{summary.duplicates:,}"),
        ("LLM calls", _num(calls)),
        ("tokens", f"{tokens:,}" if tokens else "n/a"),
        ("cost", "n/a" if cost is None else f"${cost:,.4f}"),
        ("cached prompt share", cached_share(facts, summary.prompt_tokens, summary.cached_tokens)),
        ("hard label 1 (no reasoning)", f"{share1:.1%}"),
        ("mean soft label", f"{summary.soft_mean:.3f}"),
        ("censored turns", f"{censored:.1%}"),
        ("self-consistency gap (soft vs own hard)", f"{summary.calibration_error:.3f}"),
        ("hard ≠ rounded soft", f"{summary.disagree:,}"),
        ("elapsed", _num(facts.elapsed, 1, " s")),
        ("turns / s", _throughput(summary.turns, facts.elapsed)),
    ]


def render_soft(
    summary: SoftSummary, facts: RunFacts, *, title: str, observations: Sequence[str] = ()
) -> str:
    """The dashboard of a soft-label output."""
    body = [_cards(soft_cards(summary, facts)), _observations(observations)]
    body.append(
        _section(
            "Soft labels",
            _soft_histogram(summary) + _groups(summary),
            note="soft label = P('1') / (P('0') + P('1')); 1 = does not require reasoning",
        )
    )
    body.append(
        _section(
            "Self-consistency: soft vs own hard labels",
            _calibration(summary),
            note="not calibration: the hard label comes from the same answer; calibration "
            "against gold labels is `sftlabel compare RUN --gold GOLD`",
        )
    )
    body.append(_section("Censored tokens, methods and failures", _soft_operations(summary)))
    models = ", ".join(summary.models) or facts.model or "?"
    return _page(title, f"model {models}", "".join(body))


def _soft_histogram(summary: SoftSummary) -> list[str]:
    if not summary.labeled:
        return []
    labels = _bins(SOFT_BINS)
    fig = Fig(
        trace("bar", x=labels, y=summary.histogram[0], name="hard 0 (requires reasoning)"),
        trace("bar", x=labels, y=summary.histogram[1], name="hard 1 (no reasoning)"),
        title="soft-label histogram by hard label",
        barmode="stack",
    )
    return [figure(fig)]


def _groups(summary: SoftSummary) -> list[str]:
    groups = sorted(summary.by_group)
    if not groups:
        return []
    names = [f"{s or '?'}/{b or '?'}" for s, b in groups]
    shares, failed = [], []
    for group in groups:
        counts = summary.by_group[group]
        shares.append(counts["hard1"] / counts["labeled"] if counts["labeled"] else 0.0)
        failed.append(counts["failed"])
    fig = Fig(
        trace(
            "bar",
            x=names,
            y=shares,
            text=[f"{summary.by_group[g]['labeled']:,} turns" for g in groups],
            name="hard label 1",
        ),
        title="share of hard label 1 by split / bucket",
        yaxis={"tickformat": ".0%"},
        xaxis={"type": "category"},
    )
    panels = [figure(fig)]
    if any(failed):
        fail = Fig(
            trace("bar", x=names, y=failed, marker={"color": "#e45756"}),
            title="failed turns by split / bucket",
            xaxis={"type": "category"},
        )
        panels.append(figure(fail))
    return panels


def _calibration(summary: SoftSummary) -> list[str]:
    bins = [b for b in summary.calibration if b.count]
    if not bins:
        return []
    fig = Fig(
        trace(
            "scatter",
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="perfect",
            line={"dash": "dot", "color": "#999"},
        ),
        trace(
            "scatter",
            x=[b.soft / b.count for b in bins],
            y=[b.hard / b.count for b in bins],
            mode="lines+markers",
            name="observed",
            text=[f"{b.count:,} turns" for b in bins],
            hovertemplate="mean soft %{x:.2f}, hard=1 %{y:.1%} (%{text})<extra></extra>",
        ),
        title="self-consistency: share of own hard label 1 per soft-label bin "
        f"(gap {summary.calibration_error:.3f})",
        xaxis={"title": {"text": "mean soft label"}, "range": [0, 1]},
        yaxis={"title": {"text": "share hard = 1"}, "range": [0, 1]},
    )
    counts = Fig(
        trace("bar", x=_bins(CALIBRATION_BINS), y=[b.count for b in summary.calibration]),
        title="turns per soft-label bin",
    )
    return [figure(fig), figure(counts)]


def _soft_operations(summary: SoftSummary) -> list[str]:
    panels = []
    if summary.censored_turns:
        censored = [("0", summary.censored["0"]), ("1", summary.censored["1"])]
        censored += [(k, v) for k, v in summary.censored.items() if k not in ("0", "1")]
        fig = Fig(
            trace("bar", x=[f"'{k}' missing" for k, _ in censored], y=[v for _, v in censored]),
            title=f"label tokens missing from top_logprobs ({summary.censored_turns:,} turns)",
            xaxis={"type": "category"},
        )
        panels.append(figure(fig))
    if summary.methods:
        methods = summary.methods.most_common()
        fig = Fig(
            trace("bar", x=[m for m, _ in methods], y=[c for _, c in methods]),
            title="how the soft labels were obtained (method)",
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
    return panels
