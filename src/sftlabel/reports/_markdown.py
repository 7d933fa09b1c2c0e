"""``report.md``: the run in words (overview, confidence, top tags, unmapped, examples,
observations with the thresholds that triggered them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sftlabel.reports._aggregate import NONE_TAG, SoftSummary, TaxonomySummary, shorten
from sftlabel.reports._html import RunFacts, taxonomy_cards
from sftlabel.reports._parts import markdown_split_rows
from sftlabel.reports._safe import code, md
from sftlabel.reports._soft_html import soft_cards
from sftlabel.reports._unmapped import UnmappedFinding
from sftlabel.taxonomy import Taxonomy

LOW_SUCCESS = 0.95
"""Below this success rate a run is worth a look at its failures."""
MANY_CALLS = 2.5
"""A sample normally takes 2 calls; above this mean, retries or arbitration cost extra."""
HIGH_ARBITRATION = 0.20
WEAK_MEAN = 0.75
"""A dimension is weak when its mean confidence is below this ..."""
WEAK_BELOW_SHARE = 0.10
"""... or when this share of its samples is below the confidence threshold."""
UNMAPPED_SHARE = 0.05
"""Above this share of samples with unmapped values the taxonomy may miss tags."""
SOFT_FAILED = 0.02
SOFT_CENSORED = 0.10
SOFT_DISAGREE = 0.02
"""Share of turns whose hard label is not the soft label rounded."""
SOFT_SKEW = 0.95
"""A soft-label run where one hard label has more than this share is lopsided."""
TOP_TAGS = 5
UNMAPPED_ROWS = 50


_md = md


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(md(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def part_drift_rows(
    parts: Mapping[str, TaxonomySummary], whole: TaxonomySummary
) -> list[tuple[str, ...]]:
    """The split-vs-split drift rows of report.md (none for a run without splits)."""
    return markdown_split_rows(parts, whole)


def taxonomy_observations(summary: TaxonomySummary, taxonomy: Taxonomy) -> list[str]:
    notes: list[str] = []
    if summary.total and summary.success_rate < LOW_SUCCESS:
        reasons = ", ".join(f"{r} {c:,}" for r, c in summary.failures.most_common(3))
        notes.append(
            f"Low success: {summary.success_rate:.1%} of the samples were labeled "
            f"(threshold {LOW_SUCCESS:.0%}); failures: {reasons}."
        )
    if summary.calls_per_sample_mean > MANY_CALLS:
        notes.append(
            f"Many calls per sample: {summary.calls_per_sample_mean:.2f} on average "
            f"(2 is nominal; threshold {MANY_CALLS}): retries, repairs or arbitration."
        )
    if summary.arbitrated_rate > HIGH_ARBITRATION:
        notes.append(
            f"High arbitration rate: {summary.arbitrated_rate:.1%} "
            f"(threshold {HIGH_ARBITRATION:.0%})."
        )
    for dim in summary.dimensions:
        stats = summary.confidence[dim]
        if stats.count and (stats.mean < WEAK_MEAN or stats.below_share > WEAK_BELOW_SHARE):
            notes.append(
                f"Weak dimension {dim}: mean confidence {stats.mean:.2f} "
                f"(threshold {WEAK_MEAN}), {stats.below_share:.1%} of samples below "
                f"{summary.threshold:g} (threshold {WEAK_BELOW_SHARE:.0%})."
            )
    if summary.samples:
        share = summary.unmapped_samples / summary.samples
        if share > UNMAPPED_SHARE:
            notes.append(
                f"Unmapped values in {share:.1%} of the samples (threshold "
                f"{UNMAPPED_SHARE:.0%}): see `sftlabel report RUN --unmapped`."
            )
    never = []
    for dim in summary.dimensions:
        if dim not in taxonomy.categories:
            continue
        ids = taxonomy.categories[dim].ids
        unused = [t for t in ids if t not in summary.distributions[dim]]
        if unused:
            named = f" ({', '.join(unused)})" if len(unused) <= 8 else ""
            never.append(f"{dim} {len(unused)}/{len(ids)}{named}")
    if never and summary.samples:
        notes.append("Tags never used: " + "; ".join(never) + ".")
    return notes


def render_taxonomy_report(
    summary: TaxonomySummary,
    taxonomy: Taxonomy,
    facts: RunFacts,
    findings: list[UnmappedFinding],
    *,
    title: str,
    observations: list[str],
    splits: Sequence[Sequence[str]] = (),
) -> str:
    lines = [f"# {md(title)}", ""]
    lines.append(
        f"Model {code(facts.model or '?')}"
        + (f", created {md(facts.created)}" if facts.created else "")
        + "."
    )
    if facts.inputs:
        more = f" … ({len(facts.inputs):,} inputs)" if len(facts.inputs) > 10 else ""
        lines.append("Inputs: " + ", ".join(code(i) for i in facts.inputs[:10]) + more + ".")
    lines += ["", "## Overview", ""]
    lines += _table(("", "value"), taxonomy_cards(summary, facts))
    named = {p: v for p, v in summary.parts.items() if p}
    if named:
        part_rows = [
            (p, f"{lab:,}", f"{fail:,}", f"{lab / (lab + fail):.1%}" if lab + fail else "—")
            for p, (lab, fail) in sorted(named.items())
        ]
        lines += _table(("part", "labeled", "failed", "success"), part_rows)
    if splits:
        lines += ["Split vs split drift (total variation distance of the tag shares).", ""]
        lines += _table(("splits", *summary.dimensions), splits)
    if summary.failures:
        lines += _table(("failure reason", "samples"), summary.failures.most_common())
    lines += ["## Confidence", "", f"Threshold {summary.threshold:g}.", ""]
    confidence_rows = []
    for dim in summary.dimensions:
        stats = summary.confidence[dim]
        if stats.count:
            confidence_rows.append(
                (dim, f"{stats.mean:.3f}", f"{stats.min:.2f}", f"{stats.below:,}",
                 f"{stats.below_share:.1%}")
            )  # fmt: skip
    lines += _table(("dimension", "mean", "min", "below threshold", "share below"), confidence_rows)
    lines += ["## Top tags", ""]
    tag_rows = []
    for dim in summary.dimensions:
        counts = summary.distributions[dim]
        shown = counts.most_common(TOP_TAGS)
        if summary.empty.get(dim):
            shown.append((NONE_TAG, summary.empty[dim]))
        top = ", ".join(
            f"{tag} {count / summary.samples:.0%}" for tag, count in shown
        ) if summary.samples else ""  # fmt: skip
        size = len(taxonomy.categories[dim].tags) if dim in taxonomy.categories else 0
        tag_rows.append((dim, f"{len(counts)}/{size}", top or "—"))
    lines += _table(("dimension", "tags used", f"top {TOP_TAGS} (share of samples)"), tag_rows)
    lines += ["## Unmapped", ""]
    if not findings:
        lines += ["No unmapped values.", ""]
    else:
        share = summary.unmapped_samples / summary.samples if summary.samples else 0.0
        lines += [
            f"{len(summary.unmapped):,} distinct values in {summary.unmapped_samples:,} samples "
            f"({share:.1%}).",
            "",
        ]
        lines += unmapped_table(findings[:UNMAPPED_ROWS])
        if len(findings) > UNMAPPED_ROWS:
            lines += [f"… and {len(findings) - UNMAPPED_ROWS:,} more (`--unmapped` lists all).", ""]
    lines += ["## Examples", ""]
    for example in summary.examples:
        labels = "; ".join(
            f"{k}={', '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in example.labels.items()
            if v
        )
        lines.append(
            f"- {code(example.id)} (lowest confidence {example.min_confidence:.2f}): "
            f"“{md(example.query)}” → {md(labels)}"
        )
    lines += ["", "## Observations", ""]
    lines += [f"- {md(note)}" for note in observations] or ["- Nothing stands out."]
    return "\n".join(lines) + "\n"


def unmapped_table(findings: list[UnmappedFinding]) -> list[str]:
    rows = [
        (
            f.dimension or "?",
            f.value,
            f"{f.count:,}",
            f"{f.share:.2%}",
            f.recommendation,
            f.reason,
            " / ".join(f"“{shorten(e, 80)}”" for e in f.examples),
        )
        for f in findings
    ]
    return _table(
        ("dimension", "value", "samples", "share", "recommendation", "why", "examples"), rows
    )


def soft_observations(summary: SoftSummary) -> list[str]:
    notes: list[str] = []
    if summary.turns and summary.failed / summary.turns > SOFT_FAILED:
        reasons = ", ".join(f"{r} {c:,}" for r, c in summary.failures.most_common(3))
        notes.append(
            f"Failed turns: {summary.failed / summary.turns:.1%} (threshold {SOFT_FAILED:.0%}); "
            f"{reasons}."
        )
    if summary.labeled:
        censored = summary.censored_turns / summary.labeled
        if censored > SOFT_CENSORED:
            notes.append(
                f"Censored soft labels: {censored:.1%} of the turns miss a label token in "
                f"top_logprobs (threshold {SOFT_CENSORED:.0%}); their soft labels are bounds."
            )
        disagree = summary.disagree / summary.labeled
        if disagree > SOFT_DISAGREE:
            notes.append(
                f"Hard and soft labels disagree on {disagree:.1%} of the turns (threshold "
                f"{SOFT_DISAGREE:.0%}): the generated token was the less likely label (sampling, "
                "or logprobs read before a bias)."
            )
        share1 = summary.hard[1] / summary.labeled
        if share1 > SOFT_SKEW or share1 < 1 - SOFT_SKEW:
            notes.append(
                f"Lopsided hard labels: {share1:.1%} are 1 (outside "
                f"{1 - SOFT_SKEW:.0%}–{SOFT_SKEW:.0%}): a router trained on it sees few of the "
                "other class."
            )
    return notes


def render_soft_report(
    summary: SoftSummary, facts: RunFacts, *, title: str, observations: list[str]
) -> str:
    models = ", ".join(summary.models) or facts.model or "?"
    lines = [f"# {md(title)}", "", f"Model {code(models)}.", ""]
    lines += ["## Overview", ""]
    lines += _table(("", "value"), soft_cards(summary, facts))
    rows = []
    for (split, bucket), counts in sorted(summary.by_group.items()):
        labeled = counts["labeled"]
        rows.append(
            (split or "?", bucket or "?", f"{labeled:,}", f"{counts['failed']:,}",
             f"{counts['hard1'] / labeled:.1%}" if labeled else "—")
        )  # fmt: skip
    lines += _table(("split", "bucket", "labeled", "failed", "hard label 1"), rows)
    lines += [
        "## Self-consistency: soft vs own hard labels",
        "",
        "Not calibration (the hard label comes from the same answer); calibration against gold "
        "labels: `sftlabel compare RUN --gold GOLD`.",
        "",
    ]
    calibration = [
        (f"{i / len(summary.calibration):.1f}–{(i + 1) / len(summary.calibration):.1f}",
         f"{b.count:,}", f"{b.soft / b.count:.3f}", f"{b.hard / b.count:.1%}")
        for i, b in enumerate(summary.calibration)
        if b.count
    ]  # fmt: skip
    lines += _table(("soft label", "turns", "mean soft", "share hard = 1"), calibration)
    lines += [
        f"Turns whose hard label is not the rounded soft label: {summary.disagree:,}.",
        "",
        "## Censored tokens and methods",
        "",
    ]
    lines += _table(
        ("", "turns"),
        [("censored (a label token missing)", f"{summary.censored_turns:,}")]
        + [(f"'{k}' missing", f"{v:,}") for k, v in sorted(summary.censored.items())]
        + [(f"method {k}", f"{v:,}") for k, v in summary.methods.most_common()],
    )
    if summary.failures:
        lines += _table(("failure reason", "turns"), summary.failures.most_common())
    lines += ["## Examples", ""]
    for turn in summary.examples:
        rationale = turn.rationale if isinstance(turn.rationale, str) else ""
        lines.append(
            f"- {code(f'{turn.conversationId}/{turn.messageId}')} "
            f"({md(turn.split)}/{md(turn.bucket)}): "
            f"hard {turn.hard_label}, soft {turn.soft_label:.3f}"
            + (f" — “{md(shorten(rationale))}”" if rationale else "")
        )
    lines += ["", "## Observations", ""]
    lines += [f"- {md(note)}" for note in observations] or ["- Nothing stands out."]
    return "\n".join(lines) + "\n"
