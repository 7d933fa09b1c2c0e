"""The parts of a directory run side by side: links, totals and tag-distribution drift.

Drift is the total variation distance between two tag distributions (half the sum of the
absolute differences of the tag shares, ``(none)`` included): 0 when they are the same, 1 when
they share no tag. A part is compared with the rest of the run; for a dataset laid out in
splits (``train/…``, ``val/…``, ``test/…``, the Copilot layout) every split is also compared
with every other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from urllib.parse import quote

from sftlabel.reports._aggregate import NONE_TAG, TaxonomySummary, merge_parts
from sftlabel.reports._plot import Fig, figure, trace
from sftlabel.reports._safe import esc

TOP_PARTS = 60
"""Parts drawn in the drift chart (the largest ones; the table lists every part)."""
SMALL_PART = 30
"""Parts with fewer samples than this have a drift that says little (marked in the table)."""


def shares(summary: TaxonomySummary, dim: str) -> dict[str, float]:
    """The share of each tag among the tags given in ``dim`` (``(none)`` for samples with no
    tag)."""
    counts = dict(summary.distributions[dim])
    if summary.empty.get(dim):
        counts[NONE_TAG] = summary.empty[dim]
    total = sum(counts.values())
    return {tag: count / total for tag, count in counts.items()} if total else {}


def distance(a: Mapping[str, float], b: Mapping[str, float]) -> float | None:
    """Total variation distance of two share distributions (None when one is empty)."""
    if not a or not b:
        return None
    return 0.5 * sum(abs(a.get(t, 0.0) - b.get(t, 0.0)) for t in a.keys() | b.keys())


@dataclass
class PartDrift:
    part: str
    labeled: int
    failed: int
    drift: dict[str, float | None] = field(default_factory=dict)
    """Per dimension: the distance between this part and the rest of the run."""

    @property
    def worst(self) -> tuple[str, float] | None:
        known = [(d, v) for d, v in self.drift.items() if v is not None]
        return max(known, key=lambda item: item[1]) if known else None


@dataclass
class SplitDrift:
    a: str
    b: str
    samples: tuple[int, int]
    drift: dict[str, float | None]


def part_drift(parts: Mapping[str, TaxonomySummary], whole: TaxonomySummary) -> list[PartDrift]:
    """Every named part compared with the rest of the run, in part order."""
    dims = whole.dimensions
    totals = {d: _counts(whole, d) for d in dims}
    rows = []
    for name in sorted(p for p in parts if p):
        part = parts[name]
        row = PartDrift(part=name, labeled=part.samples, failed=part.failed)
        for dim in dims:
            mine = _counts(part, dim)
            rest = {t: totals[dim].get(t, 0) - mine.get(t, 0) for t in totals[dim]}
            row.drift[dim] = distance(_normal(mine), _normal(rest))
        rows.append(row)
    return rows


def splits_of(parts: Mapping[str, TaxonomySummary]) -> dict[str, list[str]]:
    """``split -> parts`` when every part lies in a first-level folder and there are two such
    folders or more (``train/…``, ``test/…``); else empty."""
    named = [p for p in parts if p]
    if not named or any("/" not in p for p in named):
        return {}
    groups: dict[str, list[str]] = {}
    for name in named:
        groups.setdefault(name.split("/", 1)[0], []).append(name)
    return groups if len(groups) > 1 else {}


def split_drift(parts: Mapping[str, TaxonomySummary], whole: TaxonomySummary) -> list[SplitDrift]:
    groups = splits_of(parts)
    merged = {
        split: merge_parts((parts[p] for p in members), whole.dimensions, whole.threshold)
        for split, members in sorted(groups.items())
    }
    rows = []
    for a, b in combinations(sorted(merged), 2):
        drift = {d: distance(shares(merged[a], d), shares(merged[b], d)) for d in whole.dimensions}
        rows.append(SplitDrift(a, b, (merged[a].samples, merged[b].samples), drift))
    return rows


def _counts(summary: TaxonomySummary, dim: str) -> dict[str, int]:
    counts = dict(summary.distributions[dim])
    if summary.empty.get(dim):
        counts[NONE_TAG] = summary.empty[dim]
    return counts


def _normal(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {t: c / total for t, c in counts.items() if c} if total else {}


def _short(name: str, limit: int = 32) -> str:
    """A part name short enough for a chart axis (its end: where file names differ)."""
    return name if len(name) <= limit else "…" + name[-(limit - 1) :]


def _labels(names: list[str]) -> list[str]:
    """Short axis labels, unique (a category axis merges equal labels)."""
    labels: list[str] = []
    for name in names:
        label = _short(name)
        while label in labels:
            label += "\u200b"  # an invisible difference
        labels.append(label)
    return labels


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def render_parts(parts: Mapping[str, TaxonomySummary], whole: TaxonomySummary, *, page: str) -> str:
    """The global dashboard's section on parts: a table linking every part's ``page`` with its
    totals and drift, a drift chart of the largest parts and the split-vs-split drift."""
    rows = part_drift(parts, whole)
    if not rows:
        return ""
    dims = whole.dimensions
    head = "".join(
        f"<th>{esc(h)}</th>"
        for h in ("part", "labeled", "failed", "success", "largest drift", *dims)
    )
    body = []
    for row in rows:
        total = row.labeled + row.failed
        worst = row.worst
        link = quote(f"{row.part}/{page}")
        small = " <span class='muted'>(small)</span>" if row.labeled < SMALL_PART else ""
        cells = [
            f"<td><a href='{esc(link)}'>{esc(row.part)}</a>{small}</td>",
            f"<td class='n'>{row.labeled:,}</td>",
            f"<td class='n'>{row.failed:,}</td>",
            f"<td class='n'>{row.labeled / total:.1%}</td>" if total else "<td>—</td>",
            f"<td>{esc(worst[0])} {worst[1]:.2f}</td>" if worst else "<td>—</td>",
            *(f"<td class='n'>{_fmt(row.drift.get(d))}</td>" for d in dims),
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<div class='panel scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>"
    note = (
        f"{len(rows):,} parts (one per input file); drift = total variation distance between a "
        "part's tag shares and the rest of the run (0 same, 1 disjoint); parts under "
        f"{SMALL_PART} samples are marked small: their drift says little"
    )
    out = [f"<h2>Parts</h2><div class='sub'>{esc(note)}</div>", table]
    largest = sorted(rows, key=lambda r: (-r.labeled, r.part))[:TOP_PARTS]
    if len(largest) > 1:
        shown = [r.part for r in sorted(largest, key=lambda r: r.part)]
        by_name = {r.part: r for r in largest}
        z = [[by_name[p].drift.get(d) for d in dims] for p in shown]
        fig = Fig(
            trace(
                "heatmap",
                z=z,
                x=dims,
                y=_labels(shown),
                text=[[p] * len(dims) for p in shown],
                colorscale="Reds",
                zmin=0,
                zmax=1,
                hovertemplate="%{text} %{x}: %{z:.2f}<extra></extra>",
            ),
            title="drift from the rest of the run per dimension"
            + (f" (the {len(largest)} largest parts)" if len(rows) > len(largest) else ""),
            yaxis={"type": "category", "automargin": True, "autorange": "reversed"},
            xaxis={"type": "category"},
        )
        out.append(f"<div class='grid'>{figure(fig, height=max(300, 22 * len(shown) + 100))}</div>")
    out.append(render_splits(parts, whole))
    return "".join(out)


def render_splits(parts: Mapping[str, TaxonomySummary], whole: TaxonomySummary) -> str:
    rows = split_drift(parts, whole)
    if not rows:
        return ""
    dims = whole.dimensions
    head = "".join(f"<th>{esc(h)}</th>" for h in ("splits", "samples", *dims))
    body = "".join(
        "<tr>"
        + f"<td>{esc(r.a)} vs {esc(r.b)}</td>"
        + f"<td class='n'>{r.samples[0]:,} / {r.samples[1]:,}</td>"
        + "".join(f"<td class='n'>{_fmt(r.drift.get(d))}</td>" for d in dims)
        + "</tr>"
        for r in rows
    )
    names = [f"{r.a} vs {r.b}" for r in rows]
    fig = Fig(
        trace(
            "heatmap",
            z=[[r.drift.get(d) for d in dims] for r in rows],
            x=dims,
            y=names,
            colorscale="Reds",
            zmin=0,
            zmax=1,
            text=[[_fmt(r.drift.get(d)) for d in dims] for r in rows],
            texttemplate="%{text}",
        ),
        title="split vs split drift per dimension",
        yaxis={"type": "category", "automargin": True},
        xaxis={"type": "category"},
    )
    return (
        "<h2>Split vs split drift</h2><div class='sub'>total variation distance between the "
        "tag shares of two splits (first-level folders of the input)</div>"
        f"<div class='panel'><table><tr>{head}</tr>{body}</table></div>"
        f"<div class='grid'>{figure(fig, height=max(260, 40 * len(rows) + 100))}</div>"
    )


def markdown_split_rows(
    parts: Mapping[str, TaxonomySummary], whole: TaxonomySummary
) -> list[tuple[str, ...]]:
    """Rows of report.md's split drift table (empty when the run has no splits)."""
    return [
        (f"{r.a} vs {r.b}", *(_fmt(r.drift.get(d)) for d in whole.dimensions))
        for r in split_drift(parts, whole)
    ]
