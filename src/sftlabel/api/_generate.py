"""``sftlabel.generate`` / ``agenerate``: the gold-set generator — scenarios → ShareGPT
conversations, in a resumable run directory (the engine's window, cache, rate limits, budget,
signals and progress, like every run)."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
import msgspec

from sftlabel.api._endpoint import (
    check_keywords,
    client_config,
    command_settings,
    run_client_config,
)
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
from sftlabel.errors import UsageError
from sftlabel.generation import generation_messages, generation_prompt_version, load_scenarios
from sftlabel.llm import Budget, ChatRequest, LLMClient, estimate_tokens, redact_url
from sftlabel.runs import (
    FAILURES,
    Endpoint,
    Engine,
    Estimate,
    GenerateFiles,
    GenerateTask,
    RateOptions,
    RunControl,
    RunManifest,
    RunState,
    expected_cache,
    generate_estimate,
    merge_options,
    merge_rate,
    now,
    read_manifest,
    write_manifest,
)
from sftlabel.taxonomy import load_taxonomy

PathLike = str | os.PathLike[str]


class GenerateOptions(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Every option that changes a generated conversation (a resume must use the same)."""

    model: str
    temperature: float = 0.7
    max_tokens: int = 4096  # DEFAULT_MAX_TOKENS
    json_mode: Literal["auto", "on", "off"] = "auto"
    """Ask for a JSON object (``response_format``); ``auto`` asks without it once the endpoint
    refuses it."""
    seed: int | None = None
    limit: int | None = None


DEFAULT_MAX_TOKENS = 4096
FLAGS = {"json_mode": "--json-mode"}
_ANSWER = tuple(GenerateOptions.__struct_fields__)
_RATE = tuple(RateOptions.__struct_fields__)
_KNOWN = {*_ANSWER, *_RATE, "output", "resume", "retry_failed", "taxonomy", "timeout"}


def generate(
    scenarios: PathLike | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_progress: ProgressCallback | None = None,
    control: RunControl | None = None,
    **options: Any,
) -> RunResult:
    """Write one ShareGPT conversation per scenario of the file ``scenarios`` (YAML or JSONL)
    into the run directory ``output``; ``resume=RUN`` finishes an interrupted run (the
    scenario file comes from its run.json; failed scenarios are asked again unless
    ``retry_failed=False``). Keyword options mirror ``sftlabel generate``'s flags in snake case
    (``model``, ``base_url``, ``temperature``, ``max_tokens``, ``json_mode``, ``seed``,
    ``limit``, ``concurrency``, ``rpm``, ``tpm``, ``max_cost``, ``taxonomy`` ...)."""
    return run_sync(
        lambda: agenerate(
            scenarios, transport=transport, on_progress=on_progress, control=control, **options
        )
    )


class _Plan(msgspec.Struct, kw_only=True):
    root: Path
    scenarios: str
    options: GenerateOptions
    rate: RateOptions
    manifest: RunManifest | None


def _plan(scenarios: PathLike | None, opts: dict[str, Any], settings_model: str | None) -> _Plan:
    given = {k: opts.get(k) for k in _ANSWER}
    rate_given = {k: opts.get(k) for k in _RATE}
    resume = opts.get("resume")
    if resume is not None:
        root = Path(resume)
        manifest = read_manifest(root)
        if manifest.kind != "generate":
            raise UsageError(f"{root} is a {manifest.kind} run, not a generate run")
        recorded = manifest.inputs[0]
        if scenarios is not None and Path(scenarios).resolve() != Path(recorded):
            raise UsageError(
                f"{scenarios} is not this run's scenario file ({recorded})",
                hint=f"sftlabel generate --resume {root} (the file comes from its run.json)",
            )
        merged = merge_options(manifest.options, given, flag_names=FLAGS)
        return _Plan(
            root=root,
            scenarios=recorded,
            options=msgspec.convert(merged, GenerateOptions),
            rate=merge_rate(manifest.rate, rate_given),
            manifest=manifest,
        )
    if scenarios is None:
        raise UsageError(
            "give the scenario file (YAML or JSONL)",
            hint="sftlabel generate scenarios.yaml --model NAME -o gold/",
        )
    model = given.get("model") or settings_model
    if not model:
        raise UsageError("no model given", hint="pass --model NAME or set SFTLABEL_MODEL")
    given["model"] = model
    output = opts.get("output")
    root = Path(output) if output else default_root(model)
    if root.exists() and any(root.iterdir()):
        raise UsageError(
            f"output directory {root} already exists and is not empty",
            hint=f"continue it with --resume {root}, or choose another --output",
        )
    return _Plan(
        root=root,
        scenarios=str(Path(scenarios).resolve()),
        options=GenerateOptions(**{k: v for k, v in given.items() if v is not None}),
        rate=merge_rate(RateOptions(), rate_given),
        manifest=None,
    )


def default_root(model: str) -> Path:
    """``gold/<YYYYmmdd_HHMMSS>_<model>``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-") or "model"
    return Path("gold") / f"{dt.datetime.now():%Y%m%d_%H%M%S}_{slug}"


async def agenerate(
    scenarios: PathLike | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_progress: ProgressCallback | None = None,
    control: RunControl | None = None,
    **options: Any,
) -> RunResult:
    """The async form of :func:`generate`."""
    settings, opts = command_settings("generate", _check(options))
    plan = _plan(scenarios, opts, settings.get("model"))
    taxonomy = load_taxonomy(opts.get("taxonomy") or settings.get("taxonomy"))
    items = load_scenarios(plan.scenarios, taxonomy)
    recorded_url = plan.manifest.recorded_base_url() if plan.manifest else None
    config = run_client_config(
        plan.options.model, settings, opts, plan.rate, recorded_base_url=recorded_url
    )
    spent = plan.manifest.spent if plan.manifest is not None else 0.0
    cap = plan.rate.max_cost
    budget = Budget(cap, spent=min(spent, cap)) if cap is not None else None
    client = LLMClient(config, transport=transport, budget=budget)
    files = GenerateFiles(plan.root)
    try:
        if plan.manifest is None:
            plan.root.mkdir(parents=True, exist_ok=True)
            manifest = RunManifest(
                kind="generate",
                created=now(),
                inputs=[plan.scenarios],
                given_inputs=[os.fspath(scenarios)] if scenarios is not None else [],
                endpoint=Endpoint(
                    url=redact_url(config.endpoint()),
                    base_url=redact_url(config.base_url) if config.base_url else None,
                    azure_deployment=config.azure_deployment,
                    api_version=config.api_version if config.azure else None,
                ),
                options=msgspec.structs.asdict(plan.options),
                rate=plan.rate,
                prompt_version=generation_prompt_version(),
            )
        else:
            manifest = plan.manifest
            manifest.rate = plan.rate
            files.repair()
        session = new_session(manifest)
        write_manifest(plan.root, manifest)
        generator = {"model": plan.options.model, "prompt_version": manifest.prompt_version}
        task = GenerateTask(
            client,
            items,
            temperature=plan.options.temperature,
            max_tokens=plan.options.max_tokens,
            json_mode=plan.options.json_mode,
            seed=plan.options.seed,
            limit=plan.options.limit,
            session=session,
            metadata=generator,
        )
        state = RunState(spent_before=manifest.spent, total=len(task.scenarios))
        engine = Engine(
            task=task,
            store=files,
            clients=[client],
            concurrency=plan.rate.concurrency,
            max_cost=cap,
            retry_failed=bool(opts.get("retry_failed", True)),
            on_progress=on_progress,
            state=state,
            control=control or RunControl(),
        )
        started = time.monotonic()
        files.open()
        outcome = await with_signals(engine.control, engine.run)
    finally:
        await client.aclose()
    record_session(plan.root, manifest, outcome, started, status="finalizing")
    files.compact_failures()
    if outcome.status == "completed":
        files.sort()
    files.touch()
    record_session(plan.root, manifest, outcome, started, status=outcome.status)
    return _result(
        files,
        manifest=manifest,
        status=outcome.status,
        message=outcome.message,
        state=state,
        started=started,
    )


def _result(
    files: GenerateFiles,
    *,
    manifest: RunManifest,
    status: str,
    message: str | None,
    state: RunState,
    started: float,
) -> RunResult:
    generated, _ = files.done()
    reasons: Counter[str] = Counter()
    for line in files.lines(FAILURES):
        record = msgspec.json.decode(line)
        if record.get("id") not in generated:
            reasons[str(record.get("reason") or "unknown")] += 1
    failed = sum(reasons.values())
    return RunResult(
        kind="generate",
        path=str(files.root),
        status=status,
        exit_code=exit_code(status, failed, 0),
        message=message,
        labeled=len(generated),
        failed=failed,
        skipped=state.skipped,
        retried=state.retried,
        spent=round(manifest.spent, 6),
        max_cost=manifest.rate.max_cost,
        session=figures(state, started),
        counters=counters_of(state),
        failures_by_reason=dict(reasons.most_common()),
        resume_hint=None if status == "completed" else f"sftlabel generate --resume {files.root}",
    )


def generate_dry_run(scenarios: PathLike | None = None, **options: Any) -> Estimate:
    """What ``generate`` would send, without sending anything (``--dry-run``): one request
    per scenario, prompt tokens counted, completion tokens assumed per mode."""
    settings, opts = command_settings("generate", {**_check(options), "no_keyvault": True})
    if scenarios is None:
        raise UsageError("give the scenario file (YAML or JSONL)")
    model = opts.get("model") or settings.get("model") or ""
    taxonomy = load_taxonomy(opts.get("taxonomy") or settings.get("taxonomy"))
    items = load_scenarios(os.fspath(scenarios), taxonomy)
    limit = opts.get("limit")
    if limit is not None:
        items = items[:limit]
    max_tokens = int(opts.get("max_tokens") or DEFAULT_MAX_TOKENS)
    prompt, completion, _ = generate_estimate(items, model, max_tokens=max_tokens)
    config = client_config(
        model, settings, no_cache=True, prices=opts.get("prices"), check_endpoint=False
    )
    system = generation_messages(items[0])[:1] if items else []
    static = estimate_tokens(ChatRequest(model=model, messages=system)) if items else 0
    cached, assumption = expected_cache({"generation": static}, len(items))
    prices = config.prices
    return Estimate(
        samples=len(items),
        requests=len(items),
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=prices.cost(model, prompt, completion, cached) if model else None,
        problems=0,
        cached_tokens=cached,
        cost_without_cache=prices.cost(model, prompt, completion) if model else None,
        cache_assumption=assumption,
    )


def _check(options: Mapping[str, Any]) -> dict[str, Any]:
    return check_keywords(options, _KNOWN, "generate")
