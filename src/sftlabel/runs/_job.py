"""A label run end to end: prepare the directory, run (or resume), finalize the outputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from sftlabel.errors import UsageError
from sftlabel.labeling import build_messages
from sftlabel.llm import ChatRequest, ClientConfig, estimate_tokens
from sftlabel.model import Sample
from sftlabel.reports import build_report
from sftlabel.runs._files import STATS, SUMMARY_STATS, PartMap, RunFiles
from sftlabel.runs._manifest import (
    LabelOptions,
    RunManifest,
    Session,
    now,
    read_manifest,
    taxonomy_ref,
    write_manifest,
)
from sftlabel.runs._runner import Outcome, RunState, run_label, sample_stream
from sftlabel.runs._stats import compute_stats
from sftlabel.taxonomy import Taxonomy

_EMPTY = Sample(id="", source_id="", source_format="", turn_index=1, total_turns=1, messages=[])
COMPLETION_ESTIMATE = 180
"""Completion tokens assumed per labeling call for estimates (a JSON answer)."""


@dataclass
class LabelJob:
    root: Path
    inputs: list[str]
    options: LabelOptions
    taxonomy: Taxonomy
    client_config: ClientConfig
    concurrency: int
    max_cost: float | None = None
    arbitration_config: ClientConfig | None = None


def start(job: LabelJob, *, resume: bool) -> RunManifest:
    """Create the run directory (or check the one being resumed) and record a new session."""
    files = RunFiles(job.root)
    ref = taxonomy_ref(job.taxonomy)
    if resume:
        manifest = read_manifest(job.root)
        if manifest.taxonomy.hash != ref.hash:
            raise UsageError(
                f"the taxonomy changed since this run started ({manifest.taxonomy.path})",
                hint="resume with the run's taxonomy (--taxonomy), or start a new run",
            )
        files.repair()
    else:
        if job.root.exists() and any(job.root.iterdir()):
            raise UsageError(
                f"output directory {job.root} already exists and is not empty",
                hint=f"continue it with --resume {job.root}, or choose another --output",
            )
        job.root.mkdir(parents=True, exist_ok=True)
        manifest = RunManifest(
            created=now(),
            inputs=job.inputs,
            endpoint=job.client_config.endpoint(),
            options=job.options,
            taxonomy=ref,
        )
    manifest.sessions.append(Session(started=now()))
    write_manifest(job.root, manifest)
    return manifest


async def execute(
    job: LabelJob, manifest: RunManifest, on_update: Callable[[RunState], None] | None = None
) -> Outcome:
    """Run the labeling; whatever happens, record the session and refresh the outputs."""
    files = RunFiles(job.root)
    state = RunState()
    started = time.monotonic()
    session = manifest.sessions[-1]
    outcome: Outcome | None = None
    files.open()
    try:
        outcome = await run_label(
            files=files,
            inputs=job.inputs,
            options=job.options,
            taxonomy=job.taxonomy,
            client_config=job.client_config,
            concurrency=job.concurrency,
            max_cost=job.max_cost,
            arbitration_config=job.arbitration_config,
            state=state,
            on_update=on_update,
        )
        return outcome
    finally:
        files.close()
        stats = state.client
        session.finished = now()
        session.status = outcome.status if outcome is not None else "interrupted"
        session.message = outcome.message if outcome is not None else None
        session.labeled, session.failed = state.labeled, state.failed
        session.requests, session.cache_hits = stats.requests, stats.cache_hits
        session.retries, session.rate_limited = stats.retries, stats.rate_limited
        session.prompt_tokens, session.completion_tokens = (
            stats.prompt_tokens,
            stats.completion_tokens,
        )
        session.cost = stats.cost
        session.elapsed = round(time.monotonic() - started, 3)
        write_manifest(job.root, manifest)
        finalize(job.root, job.taxonomy)


def finalize(root: Path, taxonomy: Taxonomy) -> dict[str, Any]:
    """Write ``labeled.json`` (input order), ``stats.json`` and ``dashboard.html`` — per input
    file for a run that mirrors its inputs, plus ``summary_stats.json`` and a global dashboard
    at the root — and ``report.md`` (the dashboards and report are those of ``sftlabel
    report``)."""
    files = RunFiles(root)
    manifest = read_manifest(root)
    parts = files.parts()
    # the parts on disk decide (the recorded inputs may no longer exist where the run was made)
    mirror = any(parts) if parts else PartMap(manifest.inputs).mirror
    files.touch()
    if not mirror:
        files.write_ordered_array()
        stats = compute_stats(files, manifest, taxonomy)
        _write_json(root / STATS, stats)
        build_report(root, root, taxonomy=taxonomy)
        return stats
    per_file: dict[str, dict[str, Any]] = {}
    for part in files.parts():
        files.write_ordered_array(part)
        stats = compute_stats(files, manifest, taxonomy, part=part)
        _write_json(root / part / STATS, stats)
        per_file[part] = {
            k: stats[k] for k in ("total_samples", "success", "failed", "success_rate")
        }
    summary = compute_stats(files, manifest, taxonomy)
    summary["files"] = per_file
    _write_json(root / SUMMARY_STATS, summary)
    build_report(root, root, taxonomy=taxonomy)
    return summary


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(data), indent=2) + b"\n")


class Estimate(msgspec.Struct, kw_only=True):
    samples: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    problems: int


def estimate(
    inputs: list[str], options: LabelOptions, taxonomy: Taxonomy, client_config: ClientConfig
) -> Estimate:
    """What a run would send, without sending anything (two calls per sample, no arbitration)."""
    samples = problems = prompt = 0
    system_tokens = {
        call: estimate_tokens(
            ChatRequest(model="", messages=build_messages(taxonomy, call, _EMPTY)[:1])
        )
        for call in (1, 2)
    }

    def count_problem(_: object) -> None:
        nonlocal problems
        problems += 1

    for _, sample in sample_stream(inputs, options, count_problem):
        samples += 1
        user = estimate_tokens(
            ChatRequest(model="", messages=build_messages(taxonomy, 1, sample)[1:])
        )
        prompt += system_tokens[1] + system_tokens[2] + 2 * user + 60
    completion = samples * 2 * COMPLETION_ESTIMATE
    cost = client_config.prices.cost(options.model, prompt, completion)
    return Estimate(
        samples=samples,
        requests=samples * 2,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=cost,
        problems=problems,
    )
