"""``sftlabel report``: regenerate a run's dashboards and report.md from its data alone.

Where the files go (``output``): a run directory (``label`` run or ``LABELED_`` folder) gets them
in place, a ``labeled.jsonl``/``labeled.json`` inside a run directory (beside ``run.json``) in that
directory. Any other file (the baseline runs, a copied labeled file) is not ours to write beside:
its report goes to ``./<name>_report/`` in the current directory unless ``-o`` says otherwise.
A directory run whose records are split in parts (one per input file) gets a dashboard per part
(``<part>/dashboard.html``) and a global one that links them and compares their tag
distributions (and its splits', for a ``train/``/``val/``/``test/`` layout). Those pages load
one shared ``plotly.min.js`` from the output root instead of embedding 4.8 MB each; a
single-part run's dashboard embeds it (one self-contained file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from sftlabel.errors import UsageError
from sftlabel.reports._aggregate import (
    DEFAULT_THRESHOLD,
    SoftSummary,
    TaxonomySummary,
    merge_parts,
    summarize_soft,
)
from sftlabel.reports._html import RunFacts, render_taxonomy
from sftlabel.reports._markdown import (
    part_drift_rows,
    render_soft_report,
    render_taxonomy_report,
    soft_observations,
    taxonomy_observations,
)
from sftlabel.reports._parts import render_parts
from sftlabel.reports._plot import relative_src, write_shared
from sftlabel.reports._runs import RunData, open_run
from sftlabel.reports._scan import summarize_taxonomy
from sftlabel.reports._soft_html import render_soft
from sftlabel.reports._unmapped import UnmappedFinding, analyse_unmapped
from sftlabel.taxonomy import Taxonomy, load_taxonomy

DASHBOARD = "dashboard.html"
REPORT = "report.md"
UNMAPPED_JSON = "unmapped.json"


@dataclass
class ReportResult:
    run: RunData
    output: Path
    written: list[Path]
    taxonomy: TaxonomySummary | None = None
    soft: SoftSummary | None = None
    unmapped: list[UnmappedFinding] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)


def default_output(run: RunData) -> Path:
    """Where ``report`` writes when no ``-o`` is given (see the module doc)."""
    if run.path.is_dir():
        return run.path
    if (run.path.parent / "run.json").is_file():
        return run.path.parent
    return Path.cwd() / f"{run.name}_report"


def resolve_threshold(run: RunData, threshold: float | None) -> float:
    """``threshold``, else the run's (run.json options, stats.json), else 0.65."""
    if threshold is not None:
        return threshold
    options = (run.manifest or {}).get("options")
    for source in (options if isinstance(options, dict) else {}, run.stats or {}):
        value = source.get("confidence_threshold")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return DEFAULT_THRESHOLD


def run_taxonomy(run: RunData, taxonomy: Taxonomy | str | Path | None) -> Taxonomy:
    """The given taxonomy, else the run's own (run.json) when it still exists, else the
    built-in one."""
    if isinstance(taxonomy, Taxonomy):
        return taxonomy
    if taxonomy is not None:
        return load_taxonomy(taxonomy)
    ref = (run.manifest or {}).get("taxonomy")
    if isinstance(ref, dict) and isinstance(ref.get("path"), str):
        path = Path(ref["path"])
        if (path / "taxonomy.yaml").is_file():
            return load_taxonomy(path)
    return load_taxonomy()


def run_facts(run: RunData) -> RunFacts:
    """Model, time, tokens and cost from run.json / stats.json / labeling_metadata.json."""
    facts = RunFacts(model=run.model)
    manifest, stats, metadata = run.manifest or {}, run.stats or {}, run.metadata or {}
    sessions = [s for s in manifest.get("sessions", []) if isinstance(s, dict)]
    if sessions:
        facts.elapsed = sum(float(s.get("elapsed", 0)) for s in sessions)
        facts.requests = sum(int(s.get("requests", 0)) for s in sessions)
        facts.rate_limited = sum(int(s.get("rate_limited", 0)) for s in sessions)
        facts.cache_hits = sum(int(s.get("cache_hits", 0)) for s in sessions)
        facts.prompt_tokens = sum(int(s.get("prompt_tokens", 0)) for s in sessions)
        facts.completion_tokens = sum(int(s.get("completion_tokens", 0)) for s in sessions)
        facts.cached_tokens = sum(int(s.get("cached_tokens", 0)) for s in sessions)
        facts.cost = sum(float(s.get("cost", 0)) for s in sessions)
    options = manifest.get("options")
    if isinstance(options, dict) and not facts.model:
        facts.model = str(options.get("model", ""))
    facts.created = str(manifest.get("created", metadata.get("created", "")))
    inputs = manifest.get("inputs") or stats.get("inputs")
    if isinstance(inputs, list):
        facts.inputs = [str(i) for i in inputs]
    elif isinstance(stats.get("input_file"), str):
        facts.inputs = [stats["input_file"]]
    for source in (stats, metadata):
        facts.model = facts.model or str(source.get("model", ""))
        facts.elapsed = facts.elapsed or _number(
            source, "total_elapsed_seconds", "elapsed_seconds", "elapsed"
        )
        facts.prompt_tokens = facts.prompt_tokens or _integer(
            source, "total_prompt_tokens", "prompt_tokens"
        )
        facts.completion_tokens = facts.completion_tokens or _integer(
            source, "total_completion_tokens", "completion_tokens"
        )
        facts.cost = facts.cost or _number(source, "cost_usd", "cost")
        facts.requests = facts.requests or _integer(source, "requests", "total_llm_calls")
    for key in ("usage", "counts"):  # nested shapes of labeling_metadata.json
        nested = metadata.get(key)
        if isinstance(nested, dict):
            facts.prompt_tokens = facts.prompt_tokens or _integer(nested, "prompt_tokens")
            facts.completion_tokens = facts.completion_tokens or _integer(
                nested, "completion_tokens"
            )
            facts.cost = facts.cost or _number(nested, "cost_usd", "cost")
            facts.requests = facts.requests or _integer(nested, "requests", "calls")
    return facts


def _number(source: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = source.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _integer(source: dict[str, Any], *keys: str) -> int | None:
    value = _number(source, *keys)
    return None if value is None else int(value)


def build_report(
    run: RunData | str | Path,
    output: Path | None = None,
    *,
    taxonomy: Taxonomy | str | Path | None = None,
    threshold: float | None = None,
    unmapped_json: bool = False,
    jobs: int | None = None,
) -> ReportResult:
    """Read the run once and write ``dashboard.html`` (per part and global) and ``report.md``
    into ``output`` (default: :func:`default_output`); with ``unmapped_json`` also
    ``unmapped.json`` (every unmapped value with its recommendation). A big taxonomy run is
    read by ``jobs`` processes (default: one per core; :mod:`sftlabel.reports._scan`)."""
    data = run if isinstance(run, RunData) else open_run(run)
    target = output if output is not None else default_output(data)
    if target.exists() and not target.is_dir():
        raise UsageError(f"output {target} is a file", hint="give a directory to -o")
    target.mkdir(parents=True, exist_ok=True)
    facts = run_facts(data)
    title = f"sftlabel report: {data.name}"
    if data.kind == "soft":
        soft = summarize_soft(data)
        notes = soft_observations(soft)
        result = ReportResult(run=data, output=target, written=[], soft=soft, observations=notes)
        result.written.append(
            _write(target / DASHBOARD, render_soft(soft, facts, title=title, observations=notes))
        )
        report = render_soft_report(soft, facts, title=title, observations=notes)
        result.written.append(_write(target / REPORT, report))
        return result
    tax = run_taxonomy(data, taxonomy)
    limit = resolve_threshold(data, threshold)
    parts = summarize_taxonomy(data, tax, limit, jobs=jobs)
    whole = merge_parts(parts.values(), tax.dimensions(), limit)
    findings = analyse_unmapped(whole, tax)
    notes = taxonomy_observations(whole, tax)
    result = ReportResult(
        run=data, output=target, written=[], taxonomy=whole, unmapped=findings, observations=notes
    )
    named = sorted(p for p in parts if p)
    if named:
        result.written.append(write_shared(target))
    for part in named:
        part_facts = RunFacts(model=facts.model)
        page = render_taxonomy(
            parts[part],
            tax,
            part_facts,
            title=f"{title}: {part}",
            observations=taxonomy_observations(parts[part], tax),
            plotly_src=relative_src(len(Path(part).parts)),
        )
        result.written.append(_write(target / part / DASHBOARD, page))
    label = f"{title} (all files)" if named else title
    page = render_taxonomy(
        whole,
        tax,
        facts,
        title=label,
        observations=notes,
        plotly_src=relative_src(0) if named else None,
        parts_section=render_parts(parts, whole, page=DASHBOARD) if named else "",
    )
    result.written.append(_write(target / DASHBOARD, page))
    report = render_taxonomy_report(
        whole,
        tax,
        facts,
        findings,
        title=label,
        observations=notes,
        splits=part_drift_rows(parts, whole),
    )
    result.written.append(_write(target / REPORT, report))
    if unmapped_json:
        payload = [
            {
                "dimension": f.dimension,
                "value": f.value,
                "count": f.count,
                "share": round(f.share, 6),
                "recommendation": f.action,
                "target": f.target,
                "reason": f.reason,
                "examples": f.examples,
            }
            for f in findings
        ]
        encoded = msgspec.json.format(msgspec.json.encode(payload), indent=2) + b"\n"
        del payload  # tens of thousands of findings at 10^6 samples: one copy at a time
        result.written.append(_write(target / UNMAPPED_JSON, encoded))
    return result


def _write(path: Path, text: str | bytes) -> Path:
    """Write ``path`` atomically; an unchanged file is left alone (a resume that had nothing to
    do rewrites none of a thousand part dashboards)."""
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return path
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)
    return path
