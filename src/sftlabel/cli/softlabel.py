"""``sftlabel softlabel``: P(does not require reasoning) for every user turn, into LABELED_."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
from sftlabel.softlabel import DEFAULT_STRATEGY

TASK = "Soft labels"


def softlabel(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="A RAW dataset folder (`train|val|test/<bucket>.json`), conversation files or "
            "directories; fsspec URLs (az://, s3://, gs://) with the matching extra [default: "
            "`input` of the config file's [softlabel] table].",
            show_default=False,
            metavar="[INPUT]...",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Output folder [default: `LABELED_<dataset>` beside the input].",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output folder.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Finish an existing output: label the missing turns and retry the failed ones.",
        ),
    ] = False,
    skip_failed: SkipFailedOption = False,
    json_output: JsonOption = False,
    strategy: Annotated[
        str | None,
        typer.Option(
            help=f"What the model sees: {DEFAULT_STRATEGY} (the default) or with_context "
            "or with_response or a plugin (`sftlabel info`).",
            rich_help_panel=TASK,
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    context_turns: Annotated[
        int | None,
        typer.Option(
            min=0, help="with_context: previous turns shown [default: 2].", rich_help_panel=TASK
        ),
    ] = None,
    rationales: Annotated[
        bool | None,
        typer.Option(
            "--rationales/--no-rationales",
            help="Also ask for a 2-4 sentence rationale of each label (a second call per turn) "
            "[default: --rationales].",
            rich_help_panel=TASK,
            show_default=False,
        ),
    ] = None,
    top_logprobs: Annotated[
        int | None,
        typer.Option(
            min=1, max=20, help="Alternatives read per position [default: 5].", rich_help_panel=TASK
        ),
    ] = None,
    logit_bias: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=100,
            help="Bias added to both label tokens (0: none) [default: 5].",
            rich_help_panel=TASK,
        ),
    ] = None,
    label_token_ids: Annotated[
        str | None,
        typer.Option(
            help="Token ids of '0' and '1' for this model, e.g. 0=15,1=16 [default: from the "
            "server's tokenizer, or tiktoken for OpenAI models].",
            rich_help_panel=TASK,
            show_default=False,
        ),
    ] = None,
    resolve_missing: Annotated[
        bool | None,
        typer.Option(
            "--resolve-missing",
            show_default=False,
            help="When a label token is missing from top_logprobs, ask once more with a large "
            "bias on both label tokens to read its logprob.",
            rich_help_panel=TASK,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=0, help="Label at most N turns.", rich_help_panel=TASK)
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            help="Hard cap in USD for the whole output, over every session (--resume to go on).",
            min=0,
            rich_help_panel=RATE,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Count turns and requests; send nothing.", rich_help_panel=RATE
        ),
    ] = False,
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
    """Soft-label every user turn with P(the message does NOT require reasoning).

    One classification per turn (max_tokens=1, logprobs, a logit bias on the '0'/'1' tokens):
    `hard_label` is the generated token, `soft_label` = P("1") / (P("0") + P("1")). With
    rationales (the default) a second call explains the label. A RAW dataset folder
    `<dataset>/train|val|test/<bucket>.json` is written to `LABELED_<dataset>/` beside it
    (`<split>/<bucket>.jsonl` + `labeling_metadata.json`); the input is never written. Exit
    status: 0 all labeled and all input read, 1 some turns failed or input records were
    unreadable, 2 usage error, 3 aborted, interrupted or stopped by --max-cost.
    """
    options: dict[str, Any] = {
        "model": model,
        "base_url": base_url,
        "api_key": api_key,
        "output": output,
        "overwrite": overwrite,
        "resume": resume,
        "retry_failed": not skip_failed,
        "strategy": strategy,
        "context_turns": context_turns,
        "rationales": rationales,
        "top_logprobs": top_logprobs,
        "logit_bias": logit_bias,
        "label_token_ids": label_token_ids,
        "resolve_missing": resolve_missing,
        "limit": limit,
        "dedup": False if no_dedup else None,
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
        estimate = api.softlabel_estimate(inputs, **options)
        render_estimate(
            estimate,
            model=model,
            concurrency=concurrency,
            rpm=rpm,
            json_output=json_output,
            per_item=f"{estimate.requests // max(estimate.samples - estimate.duplicates, 1) or 1}"
            " per turn sent",
            item="turns",
        )
        return
    with progress("soft-labeling") as on_progress:
        result = api.softlabel(inputs, on_progress=on_progress, **options)
    finish(result, json_output=json_output, what="turn")


softlabel.command_settings = {"epilog": epilog("softlabel")}  # type: ignore[attr-defined]
