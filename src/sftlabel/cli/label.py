"""``sftlabel label``: taxonomy labels for every sample, into a resumable run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from sftlabel import api
from sftlabel.cli._batch import (
    BatchExportOption,
    BatchImportOption,
    BatchMaxRequestsOption,
    BatchOption,
    CancelOption,
    PollIntervalOption,
    print_event,
)
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
    ProfileOption,
    RpmOption,
    TimeoutOption,
    TpmOption,
)
from sftlabel.cli._engine import EngineOption, RayAddressOption, ShardsOption, engine_options
from sftlabel.cli._examples import epilog
from sftlabel.cli._keyvault import KeyVaultOption, NoKeyVaultOption, SecretOption
from sftlabel.cli._progress import progress
from sftlabel.cli._runs import JsonOption, NoDedupOption, SkipFailedOption, finish, render_estimate
from sftlabel.slicing import SparsePolicy

SAMPLES = "Samples"
LABELING = "Labeling"


def label(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Files or directories to label, or fsspec URLs (az://, s3://, gs://) with the "
            "matching extra (not with --resume).",
            show_default=False,
            metavar="PATH",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Run directory, or an fsspec URL (az://, s3://, gs://: the run works on a "
            "local copy, uploaded when it ends) [default: runs/<YYYYmmdd_HHMMSS>_<model>/]",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Continue a run (a directory or an fsspec URL): inputs and options come from "
            "its run.json; failed samples are tried again.",
            metavar="RUN",
            show_default=False,
        ),
    ] = None,
    skip_failed: SkipFailedOption = False,
    max_cost: Annotated[
        float | None,
        typer.Option(
            help="Hard cap in USD for the whole run, over every session (resume to go on).",
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
    json_output: JsonOption = False,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    header: HeaderOption = None,
    azure_deployment: AzureDeploymentOption = None,
    api_version: ApiVersionOption = None,
    keyvault: KeyVaultOption = None,
    secret: SecretOption = None,
    no_keyvault: NoKeyVaultOption = False,
    timeout: TimeoutOption = None,
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
    concurrency: ConcurrencyOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    prices: PricesOption = None,
    sparse: Annotated[
        bool | None,
        typer.Option(
            "--sparse",
            help="Label a subset of long pyramids (see `slice --sparse`).",
            rich_help_panel=SAMPLES,
            show_default=False,
        ),
    ] = None,
    sparse_threshold: Annotated[
        int | None,
        typer.Option(
            min=1,
            rich_help_panel=SAMPLES,
            help=f"With --sparse: every slice up to this one is kept [default: "
            f"{SparsePolicy().threshold}].",
            show_default=False,
        ),
    ] = None,
    sparse_ratio: Annotated[
        float | None,
        typer.Option(
            min=1.01,
            rich_help_panel=SAMPLES,
            help=f"With --sparse: then slices at threshold*ratio^k [default: "
            f"{SparsePolicy().ratio:g}].",
            show_default=False,
        ),
    ] = None,
    max_chars: Annotated[
        int | None,
        typer.Option(
            min=1,
            rich_help_panel=SAMPLES,
            help="Shorten what the labeler sees to about N characters [default: 60000].",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=0, rich_help_panel=SAMPLES, help="Label at most N samples.")
    ] = None,
    shuffle: Annotated[
        bool | None,
        typer.Option(
            "--shuffle",
            rich_help_panel=SAMPLES,
            help="Random order (with --limit: a random subset).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(rich_help_panel=SAMPLES, help="Random seed for --shuffle [default: 0]."),
    ] = None,
    taxonomy: Annotated[
        Path | None,
        typer.Option(help="Taxonomy directory (env SFTLABEL_TAXONOMY).", rich_help_panel=LABELING),
    ] = None,
    confidence_threshold: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=1,
            rich_help_panel=LABELING,
            help="Re-ask dimensions whose confidence is below this [default: 0.65].",
            show_default=False,
        ),
    ] = None,
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
        Literal["auto", "on", "off"] | None,
        typer.Option(
            rich_help_panel=LABELING,
            help="Ask for JSON output (response_format); auto falls back when refused "
            "[default: auto].",
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            min=16,
            rich_help_panel=LABELING,
            help="Answer length limit per call [default: 1024].",
            show_default=False,
        ),
    ] = None,
    no_dedup: NoDedupOption = False,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    shards: ShardsOption = None,
    batch: BatchOption = None,
    poll_interval: PollIntervalOption = None,
    cancel: CancelOption = False,
    batch_max_requests: BatchMaxRequestsOption = None,
    batch_export: BatchExportOption = None,
    batch_import: BatchImportOption = None,
    config: Annotated[Path | None, typer.Option(help="Config file (env SFTLABEL_CONFIG).")] = None,
    profile: ProfileOption = None,
) -> None:
    """Label every sample on the taxonomy's 9 dimensions with two LLM calls each.

    Reads conversations (files or directory trees, any supported format), slices them into one
    sample per assistant reply, asks for intent, language, domain, task and difficulty (call 1),
    then concept, agentic, constraint and context (call 2), validates the tags, re-asks
    low-confidence dimensions, and writes a run directory (`labeled.jsonl`, `labeled.json`,
    `stats.json`, `monitor.jsonl`, `failures.jsonl`, `problems.jsonl`, `run.json`,
    `dashboard.html`). `--resume RUN_DIR` continues a run and retries its failed samples;
    answers are cached, so nothing is paid twice. Exit status: 0 all labeled and all input
    read, 1 some samples failed or input records were unreadable, 2 usage error, 3 aborted,
    interrupted or stopped by --max-cost.
    """
    options: dict[str, Any] = {
        "model": model,
        "base_url": base_url,
        "api_key": api_key,
        "output": output,
        "resume": resume,
        "retry_failed": not skip_failed,
        "max_cost": max_cost,
        "headers": header,
        "azure_deployment": azure_deployment,
        "api_version": api_version,
        "keyvault": keyvault,
        "secret": secret,
        "no_keyvault": no_keyvault,
        "timeout": timeout,
        "cache": cache,
        "no_cache": no_cache,
        "concurrency": concurrency,
        "rpm": rpm,
        "tpm": tpm,
        "prices": prices,
        "sparse": sparse,
        "sparse_threshold": sparse_threshold,
        "sparse_ratio": sparse_ratio,
        "max_chars": max_chars,
        "limit": limit,
        "shuffle": shuffle,
        "seed": seed,
        "taxonomy": taxonomy,
        "confidence_threshold": confidence_threshold,
        "arbitration": False if no_arbitration else None,
        "arbitration_model": arbitration_model,
        "json_mode": json_mode,
        "max_tokens": max_tokens,
        "dedup": False if no_dedup else None,
        "batch": batch,
        "poll_interval": poll_interval,
        "cancel": cancel,
        "batch_max_requests": batch_max_requests,
        "batch_export": str(batch_export.resolve()) if batch_export else None,
        "batch_import": batch_import,
        "on_batch_event": print_event,
        "config": config,
        "profile": profile,
        **engine_options(engine, ray_address, shards),
    }
    if dry_run:
        ignored = ("resume", "engine", "ray_address", "shards")
        estimate = api.label_estimate(
            inputs or [], **{k: v for k, v in options.items() if k not in ignored}
        )
        render_estimate(
            estimate, model=model, concurrency=concurrency, rpm=rpm, json_output=json_output
        )
        return
    with progress("labeling") as on_progress:
        result = api.label(inputs, on_progress=on_progress, **options)
    finish(result, json_output=json_output)


label.command_settings = {"epilog": epilog("label")}  # type: ignore[attr-defined]
