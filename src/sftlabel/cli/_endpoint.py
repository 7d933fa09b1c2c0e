"""Endpoint, rate and cache options shared by every command that calls a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sftlabel.api import client_config
from sftlabel.api._endpoint import check_budget
from sftlabel.config import Settings
from sftlabel.llm import ClientConfig

CONNECTION = "Endpoint"
RATE = "Rate and budget"

ProfileOption = Annotated[
    str | None,
    typer.Option(
        help="Model tier from the config file's [profiles.NAME] table: model, endpoint, key, "
        "prices, rate options and arbitration model (a flag still wins over it).",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]

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
    str | None,
    typer.Option(
        help="Azure OpenAI API version [default: 2024-10-21].",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]

TimeoutOption = Annotated[
    float | None,
    typer.Option(
        help="Seconds to wait for an answer [default: 120].",
        min=1,
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
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
    int | None,
    typer.Option(
        help="Requests in flight at most [default: 50].",
        min=1,
        rich_help_panel=RATE,
        show_default=False,
    ),
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
    api_version: str | None,
    timeout: float | None,
    concurrency: int | None,
    rpm: float | None,
    tpm: float | None,
    cache: Path | None,
    no_cache: bool,
    prices: Path | None,
    check_endpoint: bool = True,
) -> ClientConfig:
    """The client configuration of a command that calls a model (see
    :func:`sftlabel.api.client_config`)."""
    return client_config(
        model,
        settings,
        headers=headers,
        azure_deployment=azure_deployment,
        api_version=api_version,
        timeout=timeout or 120.0,
        concurrency=concurrency or 50,
        rpm=rpm,
        tpm=tpm,
        cache=cache,
        no_cache=no_cache,
        prices=prices,
        check_endpoint=check_endpoint,
    )


__all__ = ["build_client_config", "check_budget"]
