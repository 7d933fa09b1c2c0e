"""``sftlabel.softlabel`` / ``asoftlabel``: P(does not require reasoning) for every user turn,
into a ``LABELED_`` folder beside the raw dataset (which is never written)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec

from sftlabel.api import _batch
from sftlabel.api._endpoint import (
    check_keywords,
    client_config,
    command_settings,
    run_client_config,
)
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
)
from sftlabel.api._softrun import SoftOptions, relocate, run_local, soft_task
from sftlabel.errors import UsageError
from sftlabel.llm import (
    Budget,
    ChatRequest,
    LLMClient,
    estimate_tokens,
    redact_url,
    resolve_label_tokens,
)
from sftlabel.model import Problem
from sftlabel.runs import (
    MANIFEST,
    Endpoint,
    Estimate,
    RateOptions,
    RunControl,
    RunManifest,
    RunState,
    SoftOutput,
    build_metadata,
    default_output,
    expected_cache,
    first_seen,
    merge_options,
    merge_rate,
    now,
    read_manifest,
    summarize,
    turn_stream,
    write_manifest,
)
from sftlabel.softlabel import (
    DEFAULT_STRATEGY,
    StrategyOptions,
    classification_messages,
    get_strategy,
    rationale_messages,
)
from sftlabel.storage import Staged, stage

PathLike = str | os.PathLike[str]


FLAGS = {
    "rationales": "--rationales/--no-rationales",
    "resolve_missing": "--resolve-missing",
    "dedup": "--no-dedup",
}
_ANSWER = tuple(SoftOptions.__struct_fields__)
_RATE = tuple(RateOptions.__struct_fields__)
_KNOWN = {
    *_ANSWER,
    *_RATE,
    "output",
    "resume",
    "overwrite",
    "retry_failed",
    "input",
    "cancel",
    "batch_settle",
    "batch_max_requests",
    "on_batch_event",
    "batch_import",
    "engine",
    "ray_address",
    "shards",
}


def softlabel(
    inputs: Sequence[PathLike] | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_progress: ProgressCallback | None = None,
    control: RunControl | None = None,
    **options: Any,
) -> RunResult:
    """Soft-label every user turn of ``inputs`` (a RAW dataset folder, files, or fsspec URLs).

    Keyword options mirror ``sftlabel softlabel``'s flags in snake case (``model``,
    ``base_url``, ``output``, ``resume=True``, ``overwrite``, ``strategy``, ``context_turns``,
    ``rationales``, ``top_logprobs``, ``logit_bias``, ``label_token_ids``, ``resolve_missing``,
    ``limit``, ``dedup`` (False for ``--no-dedup``), ``concurrency``, ``rpm``, ``tpm``,
    ``max_cost``, ``batch``, ``poll_interval``, ``cancel``, ``batch_export``,
    ``batch_import``, ...: see docs/batch.md; ``engine="ray"`` with ``ray_address``,
    ``shards``: in shards on a Ray cluster, docs/scaling.md).
    """
    return run_sync(
        lambda: asoftlabel(
            inputs, transport=transport, on_progress=on_progress, control=control, **options
        )
    )


def _recorded(out: SoftOutput) -> RunManifest | None:
    """The output's manifest, or one rebuilt from an older output's labeling_metadata.json."""
    if (out.root / MANIFEST).is_file():
        manifest = read_manifest(out.root)
        if manifest.kind != "softlabel":
            raise UsageError(f"{out.root} is a {manifest.kind} run, not a softlabel output")
        return manifest
    metadata = out.read_metadata()
    if not metadata:
        return None
    recorded = dict(metadata.get("options") or {})
    recorded.pop("concurrency", None)
    recorded["model"] = metadata.get("model") or ""
    recorded["strategy"] = metadata.get("strategy") or DEFAULT_STRATEGY
    options = msgspec.structs.asdict(msgspec.convert(recorded, SoftOptions, strict=False))
    return RunManifest(
        kind="softlabel",
        created=str(metadata.get("created") or now()),
        inputs=list(metadata.get("inputs") or []),
        endpoint=Endpoint(url=str(metadata.get("endpoint") or "")),
        options=options,
    )


async def asoftlabel(
    inputs: Sequence[PathLike] | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_progress: ProgressCallback | None = None,
    control: RunControl | None = None,
    **options: Any,
) -> RunResult:
    """The async form of :func:`softlabel`."""
    settings, opts = command_settings("softlabel", _check(options))
    sources = _sources(inputs, opts)
    check_engine(opts)
    resume, overwrite = bool(opts.get("resume")), bool(opts.get("overwrite"))
    if overwrite and resume:
        raise UsageError("--overwrite and --resume exclude each other")
    given = {k: opts.get(k) for k in _ANSWER}
    cache_dir = settings.get("cache_dir")
    output = opts.get("output")
    with stage(
        sources,
        os.fspath(output) if output is not None else None,
        default_output,
        cache_dir=Path(cache_dir) if cache_dir else None,
    ) as staged:
        out = SoftOutput(staged.output, staged.inputs)
        out.check(overwrite=overwrite, resume=resume)
        recorded = _recorded(out) if resume else None
        if recorded is not None:
            merged = merge_options(recorded.options, given, flag_names=FLAGS)
            soft = msgspec.convert(merged, SoftOptions)
            rate = merge_rate(recorded.rate, {k: opts.get(k) for k in _RATE})
        else:
            model = given.get("model") or settings.get("model")
            if not model:
                raise UsageError("no model given", hint="pass --model NAME or set SFTLABEL_MODEL")
            given["model"] = model
            soft = SoftOptions(**{k: v for k, v in given.items() if v is not None})
            rate = merge_rate(RateOptions(), {k: opts.get(k) for k in _RATE})
        get_strategy(soft.strategy)  # an unknown strategy fails before anything is written
        recorded_url = recorded.recorded_base_url() if recorded else None
        config = run_client_config(soft.model, settings, opts, rate, recorded_base_url=recorded_url)
        spent = recorded.spent if recorded is not None else 0.0
        budget = (
            Budget(rate.max_cost, spent=min(spent, rate.max_cost))
            if rate.max_cost is not None
            else None
        )
        client = LLMClient(config, transport=transport, budget=budget)
        transports: list[Any] = []
        try:
            tokens = await resolve_label_tokens(client, soft.label_token_ids)
            manifest = recorded or RunManifest(
                kind="softlabel",
                created=now(),
                inputs=[str(p.resolve()) for p in staged.inputs],
                given_inputs=sources,
                endpoint=Endpoint(
                    url=redact_url(config.endpoint()),
                    base_url=redact_url(config.base_url) if config.base_url else None,
                    azure_deployment=config.azure_deployment,
                ),
                options=msgspec.structs.asdict(soft),
            )
            manifest.rate = rate
            if not manifest.given_inputs:
                manifest.given_inputs = sources
            control = control or RunControl()
            batching = _batch.settings_for(
                opts, rate, control, soft.model, "the same softlabel command with --resume"
            )
            if batching.enabled and (opts.get("engine") or "local") != "local":
                raise UsageError(
                    "--batch and --engine ray do not go together",
                    hint="a batch run needs no workers: the provider does the work",
                )
            out.root.mkdir(parents=True, exist_ok=True)
            if batching.enabled or opts.get("cancel"):
                transports = _batch.attach([client], out.root, batching, budget)
            if opts.get("cancel"):
                if recorded is None:
                    raise UsageError("--cancel needs --resume (the run whose batches to cancel)")
                cancelled = await _batch.cancel(transports)
                return RunResult(
                    kind="softlabel",
                    path=staged.display_output,
                    status="cancelled",
                    exit_code=0,
                    message=f"cancelled {cancelled} running batch(es); the same command with "
                    "--resume submits what they had not answered again",
                )
            out.repair()
            sharded = sharding(out.root, manifest, opts, layout=SoftOutput)
            if sharded is not None and transport is not None:
                raise UsageError("--engine ray sends over the network: it takes no transport")
            new_session(manifest)
            write_manifest(out.root, manifest)
            make_task = partial(
                soft_task, tokens=tokens, soft=soft, inputs=staged.inputs, root=out.root
            )
            state = RunState(spent_before=manifest.spent)
            if on_progress is not None:
                state.total = sum(1 for _ in turn_stream(staged.inputs, soft.limit))
            started = time.monotonic()
            out.open()
            if sharded is not None:
                await client.aclose()  # the workers make their own clients
                outcome = await run_sharded(
                    sharded,
                    out.root,
                    make_task=make_task,
                    config=config,
                    arbiter_config=None,
                    rate=rate,
                    retry_failed=bool(opts.get("retry_failed", True)),
                    dedup=soft.dedup,
                    budget=budget,
                    on_progress=on_progress,
                    state=state,
                    control=control,
                    layout=SoftOutput,
                    **_placement(staged),
                )
            else:
                outcome = await run_local(
                    make_task(client, None),
                    out,
                    client,
                    transports=transports,
                    rate=rate,
                    opts=opts,
                    state=state,
                    control=control,
                    dedup=soft.dedup,
                    on_progress=on_progress,
                )
        finally:
            await _batch.close(transports)
            await client.aclose()
        record_session(out.root, manifest, outcome, started, status="finalizing")
        if outcome.status == "completed":
            out.sort_files()
        out.write_metadata(build_metadata(manifest, out, tokens))
        record_session(out.root, manifest, outcome, started, status=outcome.status)
        out.write_metadata(build_metadata(manifest, out, tokens))
        staged.sync()
        counts = summarize(out)
    failed = int(counts["failed"])
    return RunResult(
        kind="softlabel",
        path=staged.display_output,
        status=outcome.status,
        exit_code=exit_code(outcome.status, failed, state.unreadable),
        message=outcome.message,
        labeled=int(counts["labeled"]),
        duplicates=int(counts["duplicates"]),
        failed=failed,
        skipped=state.skipped,
        retried=state.retried,
        unreadable=state.unreadable,
        problems=state.problems,
        spent=round(manifest.spent, 6),
        max_cost=rate.max_cost,
        session=figures(state, started),
        counters=counters_of(state),
        failures_by_reason=dict(counts["failure_reasons"]),
        resume_hint=None if outcome.status == "completed" else "the same command with --resume",
    )


RATIONALE_COMPLETION = 96
"""Completion tokens assumed per rationale for estimates."""


def softlabel_estimate(inputs: Sequence[PathLike] | None = None, **options: Any) -> Estimate:
    """What ``softlabel`` would send, without sending anything (``--dry-run``): turns,
    requests, prompt and completion tokens and the cost at the model's price."""
    settings, opts = command_settings("softlabel", {**_check(options), "no_keyvault": True})
    inputs = _sources(inputs, opts)
    model = opts.get("model") or settings.get("model") or ""
    strategy = get_strategy(opts.get("strategy") or DEFAULT_STRATEGY)
    rationales = opts.get("rationales") is not False
    view = StrategyOptions(context_turns=opts.get("context_turns") or 2)
    config = client_config(
        model, settings, no_cache=True, prices=opts.get("prices"), check_endpoint=False
    )
    turns = problems = unreadable = prompt = duplicates = 0

    def count(problem: Problem) -> None:
        nonlocal problems, unreadable
        problems += 1
        unreadable += problem.severity == "error"

    cache_dir = settings.get("cache_dir")
    with stage(
        [os.fspath(i) for i in inputs],
        None,
        default_output,
        cache_dir=Path(cache_dir) if cache_dir else None,
    ) as staged:
        dedup = opts.get("dedup") is not False
        with first_seen() as first:
            for _, turn in turn_stream(staged.inputs, opts.get("limit"), count):
                turns += 1
                text = strategy.render(turn, view)
                if dedup and not first(text):
                    duplicates += 1
                    continue
                tokens = estimate_tokens(
                    ChatRequest(model=model, messages=classification_messages(strategy, text))
                )
                prompt += tokens * (2 if rationales else 1)
    sent = turns - duplicates
    requests = sent * (2 if rationales else 1)
    completion = sent * (1 + (RATIONALE_COMPLETION if rationales else 0))
    static = {"classification": _static_tokens(model, classification_messages(strategy, ""))}
    if rationales:
        static["rationale"] = _static_tokens(model, rationale_messages(strategy, "", 1))
    cached, assumption = expected_cache(static, sent)
    prices = config.prices
    return Estimate(
        samples=turns,
        duplicates=duplicates,
        requests=requests,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=prices.cost(model, prompt, completion, cached) if model else None,
        problems=problems,
        unreadable=unreadable,
        cached_tokens=cached,
        cost_without_cache=prices.cost(model, prompt, completion) if model else None,
        batch_cost=prices.cost(model, prompt, completion, cached, batch=True) if model else None,
        cache_assumption=assumption,
    )


def _static_tokens(model: str, messages: list[dict[str, Any]]) -> int:
    """Tokens of the static part of a request: its system message."""
    return estimate_tokens(ChatRequest(model=model, messages=messages[:1]))


CONFIG_SNIPPET = """\
# sftlabel.toml (in this folder, a parent, or the user config dir; `sftlabel init` writes one)
[softlabel]
input = "./RAW_dataset"          # or "az://container/RAW_dataset"
model = "gpt-4o-mini"
base_url = "https://api.openai.com/v1"
rationales = false"""


def _sources(inputs: Sequence[PathLike] | None, opts: dict[str, Any]) -> list[str]:
    """The inputs given, else the config file's ``[softlabel] input``."""
    if inputs:
        return [os.fspath(i) for i in inputs]
    configured = opts.get("input")
    if configured:
        return [configured] if isinstance(configured, str) else [str(c) for c in configured]
    raise UsageError(
        "give the RAW dataset (a folder, files or a URL), or set it in a config file",
        hint=f"sftlabel softlabel ./RAW_dataset --model NAME, or\n{CONFIG_SNIPPET}",
    )


def _placement(staged: Staged) -> dict[str, Any]:
    """Where Ray workers make their own copies of a remote dataset or output (none: local)."""
    if not staged.input_urls and staged.remote_output is None:
        return {}
    placement = Placement(
        relocate=relocate,
        input_urls=staged.input_urls,
        output_url=staged.remote_output,
        token=staged.token,
        cache_dir=str(staged.staging.parent) if staged.staging else None,
    )
    return {"placement": placement, "publish": staged.sync if staged.remote_output else None}


def _check(options: Mapping[str, Any]) -> dict[str, Any]:
    return check_keywords(options, _KNOWN, "softlabel")
