"""``sftlabel arbitrate``: re-ask the low-confidence dimensions of an existing run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.table import Table

from sftlabel.cli._common import stderr, stdout
from sftlabel.cli._endpoint import (
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
)
from sftlabel.config import resolve_settings
from sftlabel.runs import finalize, read_manifest
from sftlabel.runs._arbitrate import arbitrate_run
from sftlabel.taxonomy import load_taxonomy


def arbitrate(
    run: Annotated[
        Path, typer.Argument(help="The run directory to arbitrate.", show_default=False)
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="New run directory [default: `<RUN>_arbitrated`]",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float, typer.Option(min=0, max=1, help="Re-ask dimensions whose confidence is below this.")
    ] = 0.65,
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
    config: Annotated[Path | None, typer.Option(help="Config file (env SFTLABEL_CONFIG).")] = None,
) -> None:
    """Re-ask the low-confidence dimensions of an existing run, into a new run directory.

    Every dimension whose confidence is below `--threshold` is asked again (temperature 0.3,
    `--model` or the run's model); the more confident answer wins and `labeling_monitor` keeps
    both. Samples that need nothing and failures are copied. Reports what changed.
    """
    manifest = read_manifest(run)
    settings = resolve_settings(
        {"model": model, "base_url": base_url, "api_key": api_key}, config_file=config
    )
    chosen = model or manifest.options.model
    taxonomy = load_taxonomy(manifest.taxonomy.path)
    client_config = build_client_config(
        chosen,
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
    )
    target = output or run.with_name(run.name + "_arbitrated")
    report = anyio.run(
        lambda: arbitrate_run(
            run,
            target,
            taxonomy=taxonomy,
            client_config=client_config,
            threshold=threshold,
            concurrency=concurrency,
        )
    )
    finalize(target, taxonomy)
    table = Table(title=f"arbitration of {run} → {target}", title_justify="left", box=None)
    table.add_column("", style="dim")
    table.add_column("", justify="right")
    table.add_row("samples", f"{report.samples:,}")
    table.add_row(f"samples with a dimension below {threshold}", f"{report.arbitrated:,}")
    for dim, count in report.changed.most_common():
        table.add_row(f"  {dim}: changed", f"{count:,}")
    table.add_row("dimensions kept as they were", f"{report.kept_first:,}")
    table.add_row("arbitration calls failed (labels kept)", f"{report.failed:,}")
    stats = report.client
    table.add_row("requests (from cache)", f"{stats.requests:,} ({stats.cache_hits:,})")
    table.add_row("cost", f"${stats.cost:,.4f}" if stats.cost_known else "unknown")
    stdout.print(table)
    if report.aborted:
        stderr.print(f"aborted: {report.aborted}", style="bold red", markup=False)
        raise typer.Exit(3)
