"""``sftlabel arbitrate``: re-ask the low-confidence dimensions of a run, into a new run."""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import msgspec

from sftlabel.errors import UsageError
from sftlabel.labeling import Labeler, LabelingFailed
from sftlabel.llm import AuthenticationError, ClientConfig, ClientStats, LLMClient
from sftlabel.model import LabeledSample
from sftlabel.runs._files import FAILURES, LABELED, PROBLEMS, RunFiles
from sftlabel.runs._manifest import Session, now, read_manifest, write_manifest
from sftlabel.runs._pool import for_each
from sftlabel.taxonomy import Taxonomy

_decoder = msgspec.json.Decoder(LabeledSample)


@dataclass
class ArbitrateReport:
    samples: int = 0
    arbitrated: int = 0
    kept_first: int = 0
    failed: int = 0
    changed: Counter[str] = field(default_factory=Counter)
    client: ClientStats = field(default_factory=ClientStats)
    aborted: str | None = None


async def arbitrate_run(
    source: Path,
    target: Path,
    *,
    taxonomy: Taxonomy,
    client_config: ClientConfig,
    threshold: float,
    concurrency: int,
) -> ArbitrateReport:
    """Copy ``source`` to ``target``, re-asking every dimension below ``threshold``.

    Samples that need nothing, and failures, are copied as they are; the new run's ``run.json``
    records where it came from.
    """
    manifest = read_manifest(source)
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"output directory {target} already exists and is not empty")
    target.mkdir(parents=True, exist_ok=True)
    origin = RunFiles(source)
    parts = origin.parts()
    for part in parts:
        if origin.path(FAILURES, part).exists():
            origin.path(FAILURES, part).parent.mkdir(parents=True, exist_ok=True)
            (target / part).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(origin.path(FAILURES, part), target / part / FAILURES)
    if origin.path(PROBLEMS).exists():
        shutil.copyfile(origin.path(PROBLEMS), target / PROBLEMS)
    manifest.options.confidence_threshold = threshold
    manifest.options.arbitration = True
    if client_config.model != manifest.options.model:
        manifest.options.arbitration_model = client_config.model
    manifest.sessions = [Session(started=now(), message=f"arbitrate {source}")]
    write_manifest(target, manifest)
    report = ArbitrateReport()
    out = RunFiles(target)
    started = anyio.current_time()
    async with LLMClient(client_config) as client:
        labeler = Labeler(client, taxonomy, confidence_threshold=threshold)

        async def one(item: tuple[str, LabeledSample]) -> None:
            part, record = item
            report.samples += 1
            try:
                result = await labeler.rearbitrate(record, record.labels)
            except LabelingFailed as exc:
                report.failed += 1
                record.labeling_monitor = {
                    **record.labeling_monitor,
                    "rearbitration_error": str(exc),
                }
                result = None
            except AuthenticationError as exc:
                report.aborted = str(exc)
                scope.cancel()
                return
            if result is not None:
                report.arbitrated += 1
                for entry in result.monitor["arbitration"]:
                    if entry["chosen"] == "second" and entry["first"] != entry["second"]:
                        report.changed[entry["dimension"]] += 1
                    else:
                        report.kept_first += 1
                previous = record.labeling_monitor
                record.labels = result.labels
                record.labeling_monitor = {
                    **previous,
                    "llm_calls": int(previous.get("llm_calls", 0)) + result.monitor["llm_calls"],
                    "arbitrated": True,
                    "arbitration": [
                        *previous.get("arbitration", []),
                        *result.monitor["arbitration"],
                    ],
                    "consistency_warnings": result.monitor["consistency_warnings"],
                    "calls": [*previous.get("calls", []), *result.monitor["calls"]],
                }
            out.append(LABELED, record, part)

        records = (
            (part, _decoder.decode(line)) for part in parts for line in origin.lines(LABELED, part)
        )
        try:
            with anyio.CancelScope() as scope:
                await for_each(records, one, concurrency=concurrency)
        finally:
            out.close()
            report.client = client.stats
    session = manifest.sessions[-1]
    session.finished = now()
    session.status = "aborted" if report.aborted else "completed"
    session.labeled = report.samples
    session.requests, session.cache_hits = client.stats.requests, client.stats.cache_hits
    session.retries, session.rate_limited = client.stats.retries, client.stats.rate_limited
    session.prompt_tokens = client.stats.prompt_tokens
    session.completion_tokens = client.stats.completion_tokens
    session.cost = client.stats.cost
    session.elapsed = round(anyio.current_time() - started, 3)
    write_manifest(target, manifest)
    return report
