"""``sftlabel label``: taxonomy labels for every sample, into a resumable run directory."""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

import anyio
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from sftlabel.cli._common import plural, progress, stderr, stdout
from sftlabel.cli._endpoint import (
    RATE,
    ApiKeyOption,
    ApiVersionOption,
    AzureDeploymentOption,
    BaseUrlOption,
    CacheOption,
    ConcurrencyOption,
    HeaderOption,
    ModelOption,
    NoCacheOption,
    PricesOption,
    RpmOption,
    TimeoutOption,
    TpmOption,
    build_client_config,
    check_budget,
)
from sftlabel.config import resolve_settings
from sftlabel.errors import UsageError
from sftlabel.llm import ClientConfig
from sftlabel.runs import (
    LabelJob,
    LabelOptions,
    RunState,
    estimate,
    execute,
    read_manifest,
    sample_stream,
    start,
)
from sftlabel.slicing import SparsePolicy
from sftlabel.taxonomy import Taxonomy, load_taxonomy

SAMPLES = "Samples"
LABELING = "Labeling"


def label(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files or directories to label (not with --resume).",
            show_default=False,
            metavar="PATH",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Run directory [default: `runs/<YYYYmmdd_HHMMSS>_<model>/`]",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue an interrupted run: inputs and options come from its run.json.",
            show_default=False,
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            help="Stop cleanly once this many USD are spent (resume to go on).",
            min=0,
            rich_help_panel=RATE,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Count samples and estimate tokens, cost and time; send nothing.",
            rich_help_panel=RATE,
        ),
    ] = False,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    header: HeaderOption = None,
    azure_deployment: AzureDeploymentOption = None,
    api_version: ApiVersionOption = "2024-10-21",
    timeout: TimeoutOption = 120.0,
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
    concurrency: ConcurrencyOption = 50,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    prices: PricesOption = None,
    sparse: Annotated[
        bool,
        typer.Option(
            "--sparse",
            help="Label a subset of long pyramids (see `slice --sparse`).",
            rich_help_panel=SAMPLES,
        ),
    ] = False,
    sparse_threshold: Annotated[
        int,
        typer.Option(
            min=1,
            rich_help_panel=SAMPLES,
            help="With --sparse: every slice up to this one is kept.",
        ),
    ] = SparsePolicy().threshold,
    sparse_ratio: Annotated[
        float,
        typer.Option(
            min=1.01,
            rich_help_panel=SAMPLES,
            help="With --sparse: then slices at threshold*ratio^k.",
        ),
    ] = SparsePolicy().ratio,
    max_chars: Annotated[
        int,
        typer.Option(
            min=1,
            rich_help_panel=SAMPLES,
            help="Shorten what the labeler sees to about N characters.",
        ),
    ] = 60_000,
    limit: Annotated[
        int | None, typer.Option(min=0, rich_help_panel=SAMPLES, help="Label at most N samples.")
    ] = None,
    shuffle: Annotated[
        bool,
        typer.Option(rich_help_panel=SAMPLES, help="Random order (with --limit: a random subset)."),
    ] = False,
    seed: Annotated[
        int, typer.Option(rich_help_panel=SAMPLES, help="Random seed for --shuffle.")
    ] = 0,
    taxonomy: Annotated[
        Path | None,
        typer.Option(help="Taxonomy directory (env SFTLABEL_TAXONOMY).", rich_help_panel=LABELING),
    ] = None,
    confidence_threshold: Annotated[
        float,
        typer.Option(
            min=0,
            max=1,
            rich_help_panel=LABELING,
            help="Re-ask dimensions whose confidence is below this.",
        ),
    ] = 0.65,
    no_arbitration: Annotated[
        bool,
        typer.Option(
            "--no-arbitration",
            rich_help_panel=LABELING,
            help="Do not re-ask low-confidence dimensions.",
        ),
    ] = False,
    arbitration_model: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=LABELING, help="Model for the arbitration calls [default: --model]."
        ),
    ] = None,
    json_mode: Annotated[
        Literal["auto", "on", "off"],
        typer.Option(
            rich_help_panel=LABELING,
            help="Ask for JSON output (response_format); auto falls back when refused.",
        ),
    ] = "auto",
    max_tokens: Annotated[
        int, typer.Option(min=16, rich_help_panel=LABELING, help="Answer length limit per call.")
    ] = 1024,
    config: Annotated[Path | None, typer.Option(help="Config file (env SFTLABEL_CONFIG).")] = None,
) -> None:
    """Label every sample on the taxonomy's 9 dimensions with two LLM calls each.

    Reads conversations (files or directory trees, any supported format), slices them into one
    sample per assistant reply, asks the endpoint for intent, language, domain, task and
    difficulty (call 1), then concept, agentic, constraint and context (call 2), validates the
    tags, re-asks low-confidence dimensions, and writes a run directory: `labeled.jsonl`,
    `labeled.json`, `stats.json`, `monitor.jsonl`, `failures.jsonl`, `problems.jsonl`, `run.json`
    and `dashboard.html`. Interrupted runs continue with `--resume RUN_DIR`; answers are cached, so
    nothing is paid twice. Exit status: 0 all labeled, 1 some failed, 2 usage error, 3 aborted.
    """
    settings = resolve_settings(
        {"model": model, "base_url": base_url, "api_key": api_key, "taxonomy": taxonomy},
        config_file=config,
    )
    if resume is not None:
        if inputs:
            raise UsageError("--resume takes the inputs from the run; do not pass PATH too")
        manifest = read_manifest(resume)
        paths, options = manifest.inputs, manifest.options
        root = resume
        tax = load_taxonomy(taxonomy or manifest.taxonomy.path)  # the run's own taxonomy
    else:
        if not inputs:
            raise UsageError(
                "give the files or directories to label", hint="sftlabel label ./data --model NAME"
            )
        chosen = settings.get("model")
        if not chosen:
            raise UsageError("no model given", hint="pass --model NAME or set SFTLABEL_MODEL")
        paths = [str(p) for p in inputs]
        options = LabelOptions(
            model=chosen,
            sparse=sparse,
            sparse_threshold=sparse_threshold,
            sparse_ratio=sparse_ratio,
            max_chars=max_chars,
            limit=limit,
            shuffle=shuffle,
            seed=seed,
            confidence_threshold=confidence_threshold,
            arbitration=not no_arbitration,
            arbitration_model=arbitration_model,
            json_mode=json_mode,
            max_tokens=max_tokens,
        )
        root = output or Path("runs") / f"{dt.datetime.now():%Y%m%d_%H%M%S}_{_slug(chosen)}"
        tax = load_taxonomy(settings.get("taxonomy"))
    client_config = build_client_config(
        options.model,
        settings,
        headers=header,
        azure_deployment=azure_deployment,
        api_version=api_version,
        timeout=timeout,
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        cache=cache,
        no_cache=no_cache,
        prices=prices,
        check_endpoint=not dry_run,
    )
    if dry_run:
        _dry_run(paths, options, tax, client_config, concurrency, rpm)
        return
    check_budget(client_config, max_cost)
    arbitration_config = None
    if (
        options.arbitration
        and options.arbitration_model
        and options.arbitration_model != options.model
    ):
        arbitration_config = replace(client_config, model=options.arbitration_model)
    job = LabelJob(
        root=root,
        inputs=paths,
        options=options,
        taxonomy=tax,
        client_config=client_config,
        concurrency=concurrency,
        max_cost=max_cost,
        arbitration_config=arbitration_config,
    )
    with progress("counting samples") as update:
        total = sum(1 for _ in sample_stream(paths, options))
        update(f"{total:,}")
    manifest = start(job, resume=resume is not None)
    stderr.print(f"run directory: {root}", markup=False)
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]labeling"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=stderr, transient=False, disable=not stderr.is_terminal) as bar:
        task = bar.add_task("label", total=total, detail="")

        def on_update(state: RunState) -> None:
            stats = state.client
            done = state.done_before + state.labeled + state.failed
            elapsed = max(1e-9, _elapsed(state))
            rate = (state.labeled + state.failed) / elapsed
            cost = f" ${stats.cost:,.4f}" if stats.cost_known else ""
            bar.update(
                task,
                completed=done,
                detail=f"{rate:.1f}/s · {stats.prompt_tokens + stats.completion_tokens:,} tok{cost}"
                f" · 429s {stats.rate_limited} · failed {state.failed}",
            )

        try:
            outcome = anyio.run(execute, job, manifest, on_update)
        except KeyboardInterrupt:
            stderr.print(
                f"interrupted: continue with `sftlabel label --resume {root}`",
                style="yellow",
                markup=False,
            )
            raise typer.Exit(3) from None
    _summary(root, outcome.state, outcome.status, outcome.message)
    if outcome.status == "aborted":
        raise typer.Exit(3)
    if outcome.status == "budget":
        stderr.print(
            f"stopped: {outcome.message}; continue with "
            f"`sftlabel label --resume {root} --max-cost N`",
            markup=False,
        )
        raise typer.Exit(3)
    raise typer.Exit(1 if outcome.state.failed else 0)


label.command_settings = {"no_args_is_help": True}  # type: ignore[attr-defined]


def _elapsed(state: RunState) -> float:
    return time.monotonic() - state.started


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-") or "model"


def _dry_run(
    paths: list[str],
    options: LabelOptions,
    tax: Taxonomy,
    config: ClientConfig,
    concurrency: int,
    rpm: float | None,
) -> None:
    with progress("reading"):
        result = estimate(paths, options, tax, config)
    per_call = 3.0
    seconds = result.requests * per_call / concurrency
    if rpm:
        seconds = max(seconds, result.requests / rpm * 60)
    table = Table(title="dry run: nothing was sent", title_justify="left", box=None)
    table.add_column("", style="dim")
    table.add_column("", justify="right")
    table.add_row("samples", f"{result.samples:,}")
    table.add_row("requests (2 per sample, before arbitration)", f"{result.requests:,}")
    table.add_row("prompt tokens (estimate)", f"{result.prompt_tokens:,}")
    table.add_row("completion tokens (estimate)", f"{result.completion_tokens:,}")
    table.add_row(
        f"cost ({options.model})",
        "unknown model price (see --prices)" if result.cost is None else f"${result.cost:,.2f}",
    )
    table.add_row(
        f"time at {concurrency} in flight, ~{per_call:g} s a call", f"{seconds / 60:,.1f} min"
    )
    if result.problems:
        table.add_row("input problems (see `sftlabel detect`)", f"{result.problems:,}")
    stdout.print(table)


def _summary(root: Path, state: RunState, status: str, message: str | None) -> None:
    stats = state.client
    lines = [
        f"{plural(state.labeled, 'sample')} labeled, {state.failed:,} failed"
        + (f", {state.skipped:,} already done" if state.skipped else ""),
        f"{stats.requests:,} requests ({stats.cache_hits:,} from cache), {stats.retries:,} retries,"
        f" {stats.rate_limited:,} rate-limited (429)",
        f"{stats.prompt_tokens:,} prompt + {stats.completion_tokens:,} completion tokens"
        + (f", ${stats.cost:,.4f}" if stats.cost_known else ", cost unknown for this model"),
    ]
    if state.problems:
        lines.append(f"{state.problems:,} input problems (problems.jsonl)")
    if message and status == "aborted":
        lines.append(f"aborted: {message}")
    lines.append(f"outputs in {root}/ (labeled.jsonl, stats.json, dashboard.html …)")
    for line in lines:
        stderr.print(line, markup=False)
