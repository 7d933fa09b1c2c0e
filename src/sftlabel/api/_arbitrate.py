"""``sftlabel.arbitrate``: re-ask the low-confidence dimensions of a run, into a new run that
resumes like any other (same engine, same store, same budget and progress)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec

from sftlabel.api._endpoint import check_keywords, command_settings, run_client_config
from sftlabel.api._label import _result
from sftlabel.api._ray import check_engine, run_sharded, sharding
from sftlabel.api._session import (
    ProgressCallback,
    RunResult,
    new_session,
    record_session,
    run_sync,
    with_signals,
)
from sftlabel.errors import UsageError
from sftlabel.labeling import Labeler
from sftlabel.llm import Budget, LLMClient
from sftlabel.runs import (
    LABELED,
    ArbitrateTask,
    Engine,
    RateOptions,
    RunControl,
    RunFiles,
    RunState,
    copy_side_files,
    finalize,
    merge_options,
    merge_rate,
    now,
    read_manifest,
    write_manifest,
)
from sftlabel.taxonomy import Taxonomy, load_taxonomy

PathLike = str | os.PathLike[str]
_RATE = tuple(RateOptions.__struct_fields__)
_KNOWN = {*_RATE, "threshold", "output", "resume", "report", "engine", "ray_address", "shards"}


def arbitrate(
    run: PathLike,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_progress: ProgressCallback | None = None,
    control: RunControl | None = None,
    **options: Any,
) -> RunResult:
    """Re-ask every dimension of ``run`` whose confidence is below ``threshold`` (0.65) with
    ``model`` (the run's by default), into ``output`` (``<run>_arbitrated``); ``resume=True``
    continues an interrupted arbitration; ``engine="ray"`` (with ``ray_address``,
    ``shards``) runs it in shards on a Ray cluster. Counters say what changed
    (``changed:<dim>``)."""
    return run_sync(
        lambda: aarbitrate(
            run, transport=transport, on_progress=on_progress, control=control, **options
        )
    )


async def aarbitrate(
    run: PathLike,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_progress: ProgressCallback | None = None,
    control: RunControl | None = None,
    **options: Any,
) -> RunResult:
    """The async form of :func:`arbitrate`."""
    opts = _check(options)
    check_engine(opts)
    source = Path(run)
    source_manifest = read_manifest(source)
    output = opts.get("output")
    target = Path(output) if output else source.with_name(source.name + "_arbitrated")
    resume = bool(opts.get("resume"))
    existing = (target / "run.json").is_file()
    if existing and not resume:
        raise UsageError(
            f"{target} already holds an arbitration run",
            hint="continue it with --resume, or choose another --output",
        )
    if not existing and target.exists() and any(target.iterdir()):
        raise UsageError(f"output directory {target} already exists and is not empty")
    # a profile (--profile) completes the options: its arbitration model (else its model)
    # arbitrates, its endpoint, rate and prices apply
    settings, opts = command_settings("arbitrate", opts)
    chosen_model = opts.get("model") or opts.get("arbitration_model")
    if chosen_model is None and settings.values["model"].source == "profile":
        chosen_model = settings.get("model")
    given = {"model": chosen_model, "confidence_threshold": opts.get("threshold")}
    if existing:
        manifest = read_manifest(target)
        if manifest.kind != "arbitrate":
            raise UsageError(f"{target} is a {manifest.kind} run, not an arbitration")
        recorded = {
            "model": manifest.options.get("arbitration_model") or manifest.model,
            "confidence_threshold": manifest.options.get("confidence_threshold"),
        }
        merge_options(recorded, given, flag_names={"confidence_threshold": "--threshold"})
        model = str(recorded["model"])
        threshold = float(recorded["confidence_threshold"] or 0.65)
        rate = merge_rate(manifest.rate, {k: opts.get(k) for k in _RATE})
    else:
        model = chosen_model or source_manifest.model
        threshold = float(opts.get("threshold") or 0.65)
        rate = merge_rate(RateOptions(), {k: opts.get(k) for k in _RATE})
        manifest = msgspec.structs.replace(
            source_manifest,
            kind="arbitrate",
            created=now(),
            origin=str(source.resolve()),
            options={
                **source_manifest.options,
                "confidence_threshold": threshold,
                "arbitration": True,
                **({"arbitration_model": model} if model != source_manifest.model else {}),
            },
            rate=rate,
            sessions=[],
        )
    taxonomy = load_taxonomy(source_manifest.taxonomy.path if source_manifest.taxonomy else None)
    recorded_url = source_manifest.recorded_base_url()
    config = run_client_config(model, settings, opts, rate, recorded_base_url=recorded_url)
    budget = (
        Budget(rate.max_cost, spent=min(manifest.spent, rate.max_cost))
        if rate.max_cost is not None
        else None
    )
    client = LLMClient(config, transport=transport, budget=budget)
    files = RunFiles(target)
    try:
        if not existing:
            target.mkdir(parents=True, exist_ok=True)
            copy_side_files(source, target)
        else:
            files.repair()
        sharded = sharding(target, manifest, opts)
        if sharded is not None and transport is not None:
            raise UsageError("--engine ray sends over the network: it takes no transport")
        new_session(manifest)
        manifest.sessions[-1].message = f"arbitrate {source}"
        write_manifest(target, manifest)
        make_task = partial(arbitrate_task, taxonomy=taxonomy, threshold=threshold, source=source)
        state = RunState(spent_before=manifest.spent)
        if on_progress is not None:
            state.total = sum(1 for _ in RunFiles(source).lines(LABELED))
        started = time.monotonic()
        if sharded is not None:
            await client.aclose()  # the workers make their own clients
            outcome = await run_sharded(
                sharded,
                target,
                make_task=make_task,
                config=config,
                arbiter_config=None,
                rate=rate,
                retry_failed=False,
                dedup=False,
                budget=budget,
                on_progress=on_progress,
                state=state,
                control=control or RunControl(),
            )
        else:
            engine = Engine(
                task=make_task(client, None),
                store=files,
                clients=[client],
                concurrency=rate.concurrency,
                max_cost=rate.max_cost,
                retry_failed=False,  # the source run's failures are copied, not arbitrated
                on_progress=on_progress,
                state=state,
                control=control or RunControl(),
            )
            files.open(truncate_problems=False)
            outcome = await with_signals(engine.control, engine.run)
    finally:
        await client.aclose()
    record_session(target, manifest, outcome, started, status="finalizing")
    finalize(target, taxonomy)
    if opts.get("report", True):
        from sftlabel.reports import build_report  # plotly is imported only to draw a page

        build_report(target, target, taxonomy=taxonomy)
    record_session(target, manifest, outcome, started, status=outcome.status)
    result = _result(
        target,
        manifest=manifest,
        status=outcome.status,
        message=outcome.message,
        state=state,
        started=started,
    )
    if result.status != "completed":
        result.resume_hint = f"sftlabel arbitrate {source} -o {target} --resume"
    return result


def arbitrate_task(
    client: LLMClient,
    _arbiter: LLMClient | None,
    *,
    taxonomy: Taxonomy,
    threshold: float,
    source: Path,
) -> ArbitrateTask:
    """The arbitration task of a run with its client (in this process, or in a Ray worker)."""
    return ArbitrateTask(Labeler(client, taxonomy, confidence_threshold=threshold), source)


def _check(options: Mapping[str, Any]) -> dict[str, Any]:
    return check_keywords(options, _KNOWN, "arbitrate")
