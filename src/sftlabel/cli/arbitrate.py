"""``sftlabel arbitrate``: re-ask the low-confidence dimensions of an existing run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sftlabel import api
from sftlabel.cli._common import stderr
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
from sftlabel.cli._progress import progress
from sftlabel.cli._runs import JsonOption, finish


def arbitrate(
    run: Annotated[
        Path, typer.Argument(help="The run directory to arbitrate.", show_default=False)
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="New run directory [default: <RUN>_arbitrated]",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted arbitration in --output.")
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=1,
            help="Re-ask dimensions whose confidence is below this [default: 0.65].",
            show_default=False,
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            help="Hard cap in USD for the arbitration, over every session.",
            min=0,
            rich_help_panel=RATE,
        ),
    ] = None,
    json_output: JsonOption = False,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    header: HeaderOption = None,
    azure_deployment: AzureDeploymentOption = None,
    api_version: ApiVersionOption = None,
    timeout: TimeoutOption = None,
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
    concurrency: ConcurrencyOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    prices: PricesOption = None,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    shards: ShardsOption = None,
    config: Annotated[Path | None, typer.Option(help="Config file (env SFTLABEL_CONFIG).")] = None,
    profile: ProfileOption = None,
) -> None:
    """Re-ask the low-confidence dimensions of an existing run, into a new run directory.

    Every dimension whose confidence is below `--threshold` is asked again (temperature 0.3,
    `--model` or the run's model); the more confident answer wins and `labeling_monitor` keeps
    both. Samples that need nothing and failures are copied. The new run resumes like any
    other (`--resume`), with the same progress, budget and exit status as `label`.
    """
    with progress("arbitrating") as on_progress:
        result = api.arbitrate(
            run,
            on_progress=on_progress,
            output=output,
            resume=resume,
            threshold=threshold,
            max_cost=max_cost,
            model=model,
            base_url=base_url,
            api_key=api_key,
            headers=header,
            azure_deployment=azure_deployment,
            api_version=api_version,
            timeout=timeout,
            cache=cache,
            no_cache=no_cache,
            concurrency=concurrency,
            rpm=rpm,
            tpm=tpm,
            prices=prices,
            config=config,
            profile=profile,
            **engine_options(engine, ray_address, shards),
        )
    counters = result.counters
    changed = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("changed:")}
    stderr.print(
        f"{counters.get('arbitrated', 0):,} samples had a dimension below the threshold; "
        f"{counters.get('kept_first', 0):,} dimensions kept as they were"
        + (
            f"; {counters['arbitration_failed']:,} arbitrations failed (labels kept)"
            if counters.get("arbitration_failed")
            else ""
        ),
        markup=False,
    )
    for dim, count in sorted(changed.items(), key=lambda kv: -kv[1]):
        stderr.print(f"  {dim}: {count:,} changed", markup=False)
    finish(result, json_output=json_output)


arbitrate.command_settings = {"epilog": epilog("arbitrate")}  # type: ignore[attr-defined]
