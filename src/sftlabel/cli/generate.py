"""``sftlabel generate``: the gold-set generator (scenarios → ShareGPT conversations)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from sftlabel import api
from sftlabel.cli._common import stdout
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
from sftlabel.cli._examples import epilog
from sftlabel.cli._keyvault import KeyVaultOption, NoKeyVaultOption, SecretOption
from sftlabel.cli._progress import progress
from sftlabel.cli._runs import JsonOption, SkipFailedOption, finish, render_estimate

GENERATION = "Generation"


def example_text() -> str:
    """The example scenario file shipped with the package."""
    return files("sftlabel").joinpath("data/scenarios/example.yaml").read_text("utf-8")


def generate(
    scenarios: Annotated[
        Path | None,
        typer.Argument(
            help="Scenario file: YAML (a list, or `scenarios:`) or JSONL, one scenario each "
            "(not with --resume).",
            show_default=False,
            metavar="SCENARIOS",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Run directory [default: gold/<YYYYmmdd_HHMMSS>_<model>/]",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue a run: the scenario file and options come from its run.json; "
            "failed scenarios are asked again.",
            show_default=False,
        ),
    ] = None,
    skip_failed: SkipFailedOption = False,
    example: Annotated[
        bool,
        typer.Option(
            "--example", help="Print the example scenario file (all 9 dimensions) and exit."
        ),
    ] = False,
    temperature: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=2,
            help="Sampling temperature [default: 0.7].",
            rich_help_panel=GENERATION,
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            min=64,
            help="Answer length limit per conversation [default: 4096].",
            rich_help_panel=GENERATION,
            show_default=False,
        ),
    ] = None,
    json_mode: Annotated[
        Literal["auto", "on", "off"] | None,
        typer.Option(
            help="Ask for a JSON object (response_format); auto asks without it once the "
            "endpoint refuses it [default: auto].",
            rich_help_panel=GENERATION,
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Sampling seed sent to the endpoint.", rich_help_panel=GENERATION),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=0, help="Only the first N scenarios.", rich_help_panel=GENERATION),
    ] = None,
    taxonomy: Annotated[
        Path | None,
        typer.Option(
            help="Taxonomy the scenarios' labels and agentic hints are checked against "
            "(env SFTLABEL_TAXONOMY).",
            rich_help_panel=GENERATION,
        ),
    ] = None,
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
            help="Check the scenarios, estimate tokens, cost and time; send nothing.",
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
    config: Annotated[Path | None, typer.Option(help="Config file (env SFTLABEL_CONFIG).")] = None,
    profile: ProfileOption = None,
) -> None:
    """Generate a gold set: one ShareGPT conversation per scenario, written by a strong model.

    Each scenario (query, category, optional follow-ups, tools and agentic hints, the labels it
    should exhibit) becomes a single answer, a multi-turn conversation or an agentic trace with
    function_call/observation turns. Answers are checked (JSON, roles alternating, tool turns
    well-formed, readable as ShareGPT); unusable ones go to `failures.jsonl` with the reason.
    The run directory holds `conversations.jsonl`, `failures.jsonl` and `run.json`; it resumes
    like a label run, and `sftlabel label RUN` labels what it holds. Exit status: 0 all
    generated, 1 some scenarios failed, 2 usage error (a scenario file error names the file,
    the scenario and the field), 3 aborted, interrupted or stopped by --max-cost.
    """
    if example:
        stdout.file.write(example_text())
        stdout.file.flush()
        return
    options: dict[str, Any] = {
        "model": model,
        "base_url": base_url,
        "api_key": api_key,
        "output": output,
        "resume": resume,
        "retry_failed": not skip_failed,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "json_mode": json_mode,
        "seed": seed,
        "limit": limit,
        "taxonomy": taxonomy,
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
        "config": config,
        "profile": profile,
    }
    if dry_run:
        estimate = api.generate_dry_run(
            scenarios, **{k: v for k, v in options.items() if k != "resume"}
        )
        render_estimate(
            estimate,
            model=model,
            concurrency=concurrency,
            rpm=rpm,
            json_output=json_output,
            per_item="1 per scenario",
            item="scenarios",
        )
        return
    with progress("generating") as on_progress:
        result = api.generate(scenarios, on_progress=on_progress, **options)
    finish(result, json_output=json_output, what="conversation", done="generated")


generate.command_settings = {"epilog": epilog("generate")}  # type: ignore[attr-defined]
