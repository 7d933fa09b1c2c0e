"""``sftlabel.label`` / ``alabel``: taxonomy labels for every sample, into a resumable run."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec

from sftlabel.api import _batch
from sftlabel.api._endpoint import (
    command_settings,
    run_client_config,
)
from sftlabel.api._labelplan import (
    PathLike,
    Plan,
    check_label_keywords,
)
from sftlabel.api._labelplan import budget as run_budget
from sftlabel.api._labelplan import plan as make_plan
from sftlabel.api._ray import Placement, check_engine, run_sharded, sharding
from sftlabel.api._session import (
    ProgressCallback,
    RunResult,
    counters_of,
    exit_code,
    figures,
    new_session,
    record_session,
    run_sync,
    with_signals,
)
from sftlabel.config import Settings
from sftlabel.errors import UsageError
from sftlabel.labeling import Labeler, prompt_version
from sftlabel.llm import ClientConfig, LLMClient, redact_url
from sftlabel.runs import (
    DEDUP_INDEX,
    FAILURES,
    MANIFEST,
    ContentIndex,
    Dedup,
    Endpoint,
    Engine,
    LabelOptions,
    LabelTask,
    RunControl,
    RunFiles,
    RunManifest,
    RunState,
    check_not_input,
    count_labeled,
    finalize,
    now,
    sample_stream,
    taxonomy_ref,
    write_manifest,
)
from sftlabel.storage import Staged, is_remote, stage, stage_output
from sftlabel.taxonomy import Taxonomy, load_taxonomy


def label(
    inputs: Sequence[PathLike] | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_progress: ProgressCallback | None = None,
    control: RunControl | None = None,
    **options: Any,
) -> RunResult:
    """Label every sample of ``inputs`` (files or directories) on the taxonomy's dimensions.

    Keyword options mirror the CLI flags of ``sftlabel label`` in snake case: ``model``,
    ``base_url``, ``api_key``, ``output``, ``resume`` (a run directory to continue),
    ``concurrency``, ``rpm``, ``tpm``, ``timeout``, ``max_cost``, ``sparse``, ``max_chars``,
    ``limit``, ``shuffle``, ``seed``, ``confidence_threshold``, ``arbitration`` (False for
    ``--no-arbitration``), ``dedup`` (False for ``--no-dedup``), ``arbitration_model``,
    ``json_mode``, ``max_tokens``, ``taxonomy``,
    ``cache``, ``no_cache``, ``prices``, ``headers``, ``azure_deployment``, ``api_version``,
    ``keyvault``, ``secret``, ``config``, ``retry_failed`` (False for ``--skip-failed``),
    ``report`` (False: no dashboard), ``engine`` (``"ray"``: in shards on a Ray cluster,
    docs/scaling.md), ``ray_address``, ``shards``, ``batch`` (the provider's Batch API: see
    docs/batch.md), ``poll_interval``, ``batch_max_requests``, ``cancel`` (with ``resume``:
    cancel the run's running batches), ``batch_export`` (a directory) / ``batch_import`` (output
    files) for ``vllm run-batch``, ``on_batch_event`` (a callback for one line per batch event).
    ``transport`` is an httpx transport for tests and
    embedding. Returns a :class:`RunResult`; raises :class:`~sftlabel.SftlabelError` (with an
    ``exit_code``) for configuration errors.
    """
    return run_sync(
        lambda: alabel(
            inputs, transport=transport, on_progress=on_progress, control=control, **options
        )
    )


async def alabel(
    inputs: Sequence[PathLike] | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_progress: ProgressCallback | None = None,
    control: RunControl | None = None,
    **options: Any,
) -> RunResult:
    """The async form of :func:`label` (for notebooks and embedding)."""
    settings, opts = command_settings("label", check_label_keywords(options))
    if not inputs and opts.get("resume") is None and opts.get("inputs"):
        inputs = list(opts["inputs"])  # [label] inputs = [...] of the config file
    cache_dir = settings.get("cache_dir")
    key = "resume" if opts.get("resume") is not None else "output"
    url = os.fspath(opts[key]) if opts.get(key) is not None else None
    if url is None or not is_remote(url):
        return await _label(
            inputs, opts, settings, transport=transport, on_progress=on_progress, control=control
        )
    # a run directory in object storage: the run works on a local copy, uploaded when it ends
    with stage_output(
        url, cache_dir=Path(cache_dir) if cache_dir else None, fresh=key == "output"
    ) as run_copy:
        local = str(run_copy.output)
        try:
            result = await _label(
                inputs,
                {**opts, key: local},
                settings,
                transport=transport,
                on_progress=on_progress,
                control=control,
                run_copy=run_copy,
            )
        finally:
            if (run_copy.output / MANIFEST).exists():
                run_copy.sync()
    result.path = url
    if result.resume_hint:
        result.resume_hint = result.resume_hint.replace(local, url)
    return result


async def _label(
    inputs: Sequence[PathLike] | None,
    opts: dict[str, Any],
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None,
    on_progress: ProgressCallback | None,
    control: RunControl | None,
    run_copy: Staged | None = None,
) -> RunResult:
    """A label session on a local run directory (``run_copy``: of a remote one)."""
    plan = make_plan(inputs, opts, settings.get("model"))
    check_engine(opts)
    taxonomy = load_taxonomy(opts.get("taxonomy") or plan.taxonomy_path or settings.get("taxonomy"))
    recorded_taxonomy = plan.manifest.taxonomy if plan.manifest is not None else None
    if recorded_taxonomy is not None and recorded_taxonomy.hash != taxonomy_ref(taxonomy).hash:
        raise UsageError(
            f"the taxonomy changed since this run started ({recorded_taxonomy.path})",
            hint="resume with the run's taxonomy (--taxonomy), or start a new run",
        )
    recorded_url = plan.manifest.recorded_base_url() if plan.manifest else None
    config = run_client_config(
        plan.options.model, settings, opts, plan.rate, recorded_base_url=recorded_url
    )
    check_not_input(plan.root, plan.inputs)
    if plan.manifest is None and plan.root.exists() and any(plan.root.iterdir()):
        raise UsageError(
            f"output directory {plan.root} already exists and is not empty",
            hint=f"continue it with --resume {plan.root}, or choose another --output",
        )
    cache_dir = settings.get("cache_dir")
    with stage(
        plan.inputs,
        str(plan.root),
        lambda _: plan.root,
        cache_dir=Path(cache_dir) if cache_dir else None,
        token=run_copy.token if run_copy is not None else None,
    ) as staged:
        # remote inputs (az://, s3://, gs://) are read from a local staging copy; the run
        # records the URLs, so a resume stages them again
        local = [str(p) for p in staged.inputs]
        placement = None
        if staged.input_urls or run_copy is not None:
            # a Ray worker on another machine makes its own copies there
            where = run_copy or staged
            placement = Placement(
                relocate=_relocate,
                input_urls=staged.input_urls,
                output_url=run_copy.remote_output if run_copy is not None else None,
                token=where.token,
                cache_dir=str(where.staging.parent) if where.staging else None,
            )
        return await _run(
            plan,
            local_inputs=local,
            urls=staged.input_urls or None,
            placement=placement,
            publish=run_copy.sync if run_copy is not None else None,
            config=config,
            taxonomy=taxonomy,
            opts=opts,
            transport=transport,
            on_progress=on_progress,
            control=control,
        )


def _relocate(inputs: list[Path] | None, _root: Path) -> dict[str, Any]:
    """label_task's keywords for a Ray worker's own copy of remote inputs."""
    return {} if inputs is None else {"inputs": [str(p) for p in inputs]}


async def _run(
    plan: Plan,
    *,
    local_inputs: list[str],
    urls: list[str] | None = None,
    placement: Placement | None = None,
    publish: Callable[[], None] | None = None,
    config: ClientConfig,
    taxonomy: Taxonomy,
    opts: dict[str, Any],
    transport: httpx.AsyncBaseTransport | None,
    on_progress: ProgressCallback | None,
    control: RunControl | None,
) -> RunResult:
    # everything that can fail on the configuration has failed before the run directory exists
    budget = run_budget(plan)
    client = LLMClient(config, transport=transport, budget=budget)
    arbiter = None
    options_ = plan.options
    if options_.arbitration and options_.arbitration_model not in (None, options_.model):
        arbiter = LLMClient(
            replace(config, model=str(options_.arbitration_model)),
            transport=transport,
            budget=budget,  # one cap for both clients
        )
    files = RunFiles(plan.root)
    control = control or RunControl()
    batching = _batch.settings_for(
        opts, plan.rate, control, options_.model, f"sftlabel label --resume {plan.root}"
    )
    transports: list[Any] = []
    try:
        if batching.enabled and (opts.get("engine") or "local") != "local":
            raise UsageError(
                "--batch and --engine ray do not go together",
                hint="a batch run needs no workers: the provider does the work",
            )
        if batching.enabled or opts.get("cancel"):
            plan.root.mkdir(parents=True, exist_ok=True)
            transports = _batch.attach([client, arbiter], plan.root, batching, budget)
        if opts.get("cancel"):
            if plan.manifest is None:
                raise UsageError("--cancel needs --resume RUN (the run whose batches to cancel)")
            cancelled = await _batch.cancel(transports)
            result = _result(
                plan.root,
                manifest=plan.manifest,
                status="cancelled",
                message=f"cancelled {cancelled} running batch(es); `sftlabel label --resume "
                f"{plan.root}` submits what they had not answered again",
                state=RunState(),
                started=time.monotonic(),
            )
            result.exit_code, result.resume_hint = 0, None
            return result
        if plan.manifest is None:
            plan.root.mkdir(parents=True, exist_ok=True)
            manifest = RunManifest(
                kind="label",
                created=now(),
                inputs=plan.inputs,
                given_inputs=plan.given_inputs,
                endpoint=Endpoint(
                    url=redact_url(config.endpoint()),
                    base_url=redact_url(config.base_url) if config.base_url else None,
                    azure_deployment=config.azure_deployment,
                    api_version=config.api_version if config.azure else None,
                ),
                options=msgspec.structs.asdict(options_),
                rate=plan.rate,
                taxonomy=taxonomy_ref(taxonomy),
                prompt_version=prompt_version(taxonomy),
            )
        else:
            manifest = plan.manifest
            manifest.rate = plan.rate
            files.repair()
        sharded = sharding(plan.root, manifest, opts)
        if sharded is not None and transport is not None:
            raise UsageError("--engine ray sends over the network: it takes no transport")

        session_number = new_session(manifest)
        write_manifest(plan.root, manifest)
        make_task = partial(
            label_task,
            taxonomy=taxonomy,
            inputs=local_inputs,
            options=options_,
            session=session_number,
            urls=urls,
        )
        state = RunState(spent_before=manifest.spent)
        if on_progress is not None:
            state.total = sum(1 for _ in sample_stream(local_inputs, options_))
        started = time.monotonic()
        if sharded is not None:
            await client.aclose()  # the workers make their own clients
            if arbiter is not None:
                await arbiter.aclose()
            outcome = await run_sharded(
                sharded,
                plan.root,
                make_task=make_task,
                config=config,
                arbiter_config=arbiter.config if arbiter is not None else None,
                rate=plan.rate,
                retry_failed=bool(opts.get("retry_failed", True)),
                dedup=options_.dedup,
                budget=budget,
                on_progress=on_progress,
                state=state,
                control=control,
                placement=placement,
                publish=publish,
            )
        else:
            dedup = Dedup(ContentIndex(plan.root / DEDUP_INDEX)) if options_.dedup else None
            engine = Engine(
                task=make_task(client, arbiter),
                store=files,
                dedup=dedup,
                clients=[c for c in (client, arbiter) if c is not None],
                concurrency=_batch.BATCH_WINDOW if transports else plan.rate.concurrency,
                grouped=not transports,
                max_cost=plan.rate.max_cost,
                retry_failed=bool(opts.get("retry_failed", True)),
                on_progress=_batch.with_batches(on_progress, transports),
                state=state,
                control=control,
            )
            files.open()
            outcome = await with_signals(
                engine.control, lambda: _batch.run_with(transports, engine.run)
            )
            running = _batch.still_running(transports, f"sftlabel label --resume {plan.root}")
            if running and outcome.status != "completed":
                outcome.message = f"{outcome.message or outcome.status}; {running}"
    finally:
        await _batch.close(transports)
        await client.aclose()
        if arbiter is not None:
            await arbiter.aclose()
    unchanged = _nothing_new(manifest, state)
    record_session(plan.root, manifest, outcome, started, status="finalizing")
    if not unchanged:
        finalize(plan.root, taxonomy)
        if opts.get("report", True):
            from sftlabel.reports import build_report  # plotly is imported only to draw a page

            build_report(plan.root, plan.root, taxonomy=taxonomy)
    record_session(plan.root, manifest, outcome, started, status=outcome.status)
    return _result(
        plan.root,
        manifest=manifest,
        status=outcome.status,
        message=outcome.message,
        state=state,
        started=started,
    )


def label_task(
    client: LLMClient,
    arbiter: LLMClient | None,
    *,
    taxonomy: Taxonomy,
    inputs: list[str],
    options: LabelOptions,
    session: int,
    urls: list[str] | None = None,
) -> LabelTask:
    """The label task of a run with its clients (in this process, or in each Ray worker);
    ``urls``: what the local ``inputs`` are copies of (remote inputs)."""
    labeler = Labeler(
        client,
        taxonomy,
        confidence_threshold=options.confidence_threshold,
        arbitration=options.arbitration,
        arbitration_client=arbiter,
        json_mode=options.json_mode,
        max_tokens=options.max_tokens,
        temperature=options.temperature,
    )
    return LabelTask(labeler, inputs, options, session=session, urls=urls)


def _nothing_new(manifest: RunManifest, state: RunState) -> bool:
    """A resume that labeled and failed nothing after a session that finished its outputs: the
    outputs on disk are current, so finalizing again would only cost time."""
    previous = manifest.sessions[-2].status if len(manifest.sessions) > 1 else None
    return previous == "completed" and state.succeeded == 0 and state.failed == 0


def _result(
    root: Path,
    *,
    manifest: RunManifest,
    status: str,
    message: str | None,
    state: RunState,
    started: float,
) -> RunResult:
    files = RunFiles(root)
    labeled, duplicates = count_labeled(files)
    reasons: Counter[str] = Counter()
    for line in files.lines(FAILURES):
        reasons[str(msgspec.json.decode(line).get("reason") or "unknown")] += 1
    failed = sum(reasons.values())
    hint = None
    if status != "completed":
        hint = f"sftlabel label --resume {root}"
    return RunResult(
        kind=manifest.kind,
        path=str(root),
        status=status,
        exit_code=exit_code(status, failed, state.unreadable),
        message=message,
        labeled=labeled,
        duplicates=duplicates,
        failed=failed,
        skipped=state.skipped,
        retried=state.retried,
        unreadable=state.unreadable,
        problems=state.problems,
        spent=round(manifest.spent, 6),
        max_cost=manifest.rate.max_cost,
        session=figures(state, started),
        counters=counters_of(state),
        failures_by_reason=dict(reasons.most_common()),
        resume_hint=hint,
    )
