"""Endpoint, rate and cache options shared by every command that calls a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sftlabel.config import Settings
from sftlabel.errors import UsageError
from sftlabel.llm import ClientConfig, PriceTable, Secret

CONNECTION = "Endpoint"
RATE = "Rate and budget"

ModelOption = Annotated[
    str | None,
    typer.Option(help="Model name (env SFTLABEL_MODEL).", rich_help_panel=CONNECTION),
]

BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        help="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 "
        "(env SFTLABEL_BASE_URL, LITELLM_BASE).",
        rich_help_panel=CONNECTION,
    ),
]

ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        help="API key (env SFTLABEL_API_KEY, LITELLM_KEY; AZURE_OPENAI_API_KEY for Azure).",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]

HeaderOption = Annotated[
    list[str] | None,
    typer.Option(
        "--header",
        help="Extra request header 'Name: value' (repeatable).",
        rich_help_panel=CONNECTION,
    ),
]

AzureDeploymentOption = Annotated[
    str | None,
    typer.Option(
        help="Azure OpenAI deployment (uses AZURE_OPENAI_ENDPOINT).", rich_help_panel=CONNECTION
    ),
]

ApiVersionOption = Annotated[
    str, typer.Option(help="Azure OpenAI API version.", rich_help_panel=CONNECTION)
]

TimeoutOption = Annotated[
    float,
    typer.Option(help="Seconds to wait for an answer.", min=1, rich_help_panel=CONNECTION),
]

CacheOption = Annotated[
    Path | None,
    typer.Option(
        help="Response cache file [default: `<cache dir>/responses.sqlite`].",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]

NoCacheOption = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        help="Do not read or write the response cache.",
        rich_help_panel=CONNECTION,
    ),
]

ConcurrencyOption = Annotated[
    int, typer.Option(help="Requests in flight at most.", min=1, rich_help_panel=RATE)
]

RpmOption = Annotated[
    float | None, typer.Option(help="Requests per minute at most.", min=1, rich_help_panel=RATE)
]

TpmOption = Annotated[
    float | None,
    typer.Option(
        help="Tokens per minute at most (prompt estimate + max tokens).",
        min=1,
        rich_help_panel=RATE,
    ),
]

PricesOption = Annotated[
    Path | None,
    typer.Option(
        help="JSON/TOML file of model prices overriding the built-in table.",
        rich_help_panel=RATE,
    ),
]


def build_client_config(
    model: str,
    settings: Settings,
    *,
    headers: list[str] | None,
    azure_deployment: str | None,
    api_version: str,
    timeout: float,
    concurrency: int,
    rpm: float | None,
    tpm: float | None,
    cache: Path | None,
    no_cache: bool,
    prices: Path | None,
    check_endpoint: bool = True,
) -> ClientConfig:
    """The client configuration from the resolved settings and the command's options."""
    extra: dict[str, str] = {}
    for item in headers or []:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {item!r} is not 'Name: value'")
        extra[name.strip()] = value.strip()
    azure = azure_deployment is not None
    key = settings.get("api_key")
    if azure:
        key = settings.get("azure_api_key") or key
    cache_path = None
    if not no_cache:
        cache_path = cache or Path(settings.get("cache_dir") or ".") / "responses.sqlite"
    config = ClientConfig(
        model=model,
        base_url=settings.get("base_url"),
        api_key=Secret(key) if key else None,
        headers=extra,
        azure_endpoint=settings.get("azure_endpoint"),
        azure_deployment=azure_deployment,
        api_version=api_version,
        timeout=timeout,
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        cache_path=cache_path,
        prices=PriceTable.with_overrides(prices),
    )
    if check_endpoint:
        config.endpoint()  # fail early and clearly when no endpoint is configured
    return config


def check_budget(config: ClientConfig, max_cost: float | None) -> None:
    """``--max-cost`` needs the model's price: without one every call counts as $0 and the
    budget would never stop the run."""
    if max_cost is not None and config.prices.lookup(config.model) is None:
        raise UsageError(
            f"--max-cost needs the price of model {config.model!r}, which the price table "
            "does not know",
            hint="pass --prices FILE with its input/output USD per million tokens",
        )
