"""Settings → client configuration, for every command that calls a model (library and CLI).

Precedence: an explicit argument (a CLI flag) > environment > config file > defaults; a key read
from Key Vault replaces the API key. Errors name the actual source of a setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sftlabel.config import Settings, resolve_settings
from sftlabel.errors import UsageError
from sftlabel.llm import ClientConfig, PriceTable, Secret
from sftlabel.llm._keyvault import fetch_secret

DEFAULT_API_VERSION = "2024-10-21"


def settings_for(
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    taxonomy: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    keyvault: str | None = None,
    secret: str | None = None,
    no_keyvault: bool = False,
    azure: bool = False,
    command: str | None = None,
    profile: str | None = None,
) -> Settings:
    """The effective settings, with the Key Vault key applied when a vault is configured."""
    settings = resolve_settings(
        {"model": model, "base_url": base_url, "api_key": api_key, "taxonomy": taxonomy},
        config_file=config,
        command=command,
        profile=profile,
    )
    apply_vault_key(settings, keyvault, secret, no_keyvault=no_keyvault, azure=azure)
    return settings


def command_settings(command: str, opts: dict[str, Any]) -> tuple[Settings, dict[str, Any]]:
    """The settings of a run command and its options completed by the selected profile
    (``profile``) and the config file's ``[command]`` table (an option given explicitly always
    wins)."""
    settings = resolve_settings(
        {
            "model": opts.get("model"),
            "base_url": opts.get("base_url"),
            "api_key": opts.get("api_key"),
            "taxonomy": opts.get("taxonomy"),
        },
        config_file=opts.get("config"),
        command=command,
        profile=opts.get("profile"),
    )
    merged = dict(opts)
    for key, value in settings.defaults.items():
        if merged.get(key) is None:
            merged[key] = value
    apply_vault_key(
        settings,
        merged.get("keyvault"),
        merged.get("secret"),
        no_keyvault=bool(merged.get("no_keyvault")),
        azure=merged.get("azure_deployment") is not None,
    )
    return settings, merged


def apply_vault_key(
    settings: Settings,
    vault: str | None,
    secret: str | None,
    *,
    no_keyvault: bool,
    azure: bool,
) -> None:
    """Put the API key read from Key Vault into ``settings`` (when a vault is configured and not
    switched off): the Azure key for an Azure deployment, the API key otherwise."""
    vault = vault or os.environ.get("SFTLABEL_KEYVAULT")
    secret = secret or os.environ.get("SFTLABEL_KEYVAULT_SECRET")
    if no_keyvault or vault is None:
        return
    if not secret:
        raise UsageError("--keyvault needs --secret NAME (the secret holding the API key)")
    key = fetch_secret(vault, secret)
    settings.override("azure_api_key" if azure else "api_key", key, "keyvault", f"{vault}/{secret}")


def parse_headers(headers: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    if headers is None:
        return {}
    if isinstance(headers, Mapping):
        return {str(k): str(v) for k, v in headers.items()}
    extra: dict[str, str] = {}
    for item in headers:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {item!r} is not 'Name: value'")
        extra[name.strip()] = value.strip()
    return extra


def key_source(settings: Settings, azure: bool) -> str | None:
    """Where the API key came from, for the 401 hint: ``LITELLM_KEY``, ``--api-key``, the
    config file, the Key Vault secret."""
    name = "azure_api_key" if azure and settings.get("azure_api_key") else "api_key"
    setting = settings.values.get(name)
    if setting is None or not setting.value:
        return None
    if setting.source == "flag":
        return "--api-key"
    if not setting.detail:
        return None
    return {
        "config": f"the config file {setting.detail}",
        "profile": f"profile {settings.profile}: {setting.detail}",
        "keyvault": f"the Key Vault secret {setting.detail}",
    }.get(setting.source, setting.detail)


def client_config(
    model: str,
    settings: Settings,
    *,
    base_url: str | None = None,
    headers: Sequence[str] | Mapping[str, str] | None = None,
    azure_deployment: str | None = None,
    api_version: str | None = None,
    timeout: float = 120.0,
    concurrency: int = 50,
    rpm: float | None = None,
    tpm: float | None = None,
    cache: str | os.PathLike[str] | None = None,
    no_cache: bool = False,
    prices: str | os.PathLike[str] | None = None,
    check_endpoint: bool = True,
) -> ClientConfig:
    """The client configuration from the resolved settings and a command's options.
    ``base_url`` overrides the settings' one (a resumed run's recorded endpoint)."""
    azure = azure_deployment is not None
    key = settings.get("api_key")
    if azure:
        key = settings.get("azure_api_key") or key
    cache_path = None
    if not no_cache:
        cache_path = (
            Path(cache) if cache else Path(settings.get("cache_dir") or ".") / "responses.sqlite"
        )
    config = ClientConfig(
        model=model,
        base_url=base_url or settings.get("base_url"),
        api_key=Secret(key) if key else None,
        headers=parse_headers(headers),
        azure_endpoint=settings.get("azure_endpoint"),
        azure_deployment=azure_deployment,
        api_version=api_version or DEFAULT_API_VERSION,
        timeout=timeout,
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        cache_path=cache_path,
        prices=PriceTable.with_overrides(Path(prices) if prices else None),
        api_key_source=key_source(settings, azure) if key else None,
    )
    if check_endpoint:
        config.endpoint()  # fail early and clearly when no endpoint is configured
    return config


def check_budget(config: ClientConfig, max_cost: float | None) -> None:
    """``max_cost`` needs the model's price: without one every call counts as $0 and the
    budget would never stop the run."""
    if max_cost is not None and config.prices.lookup(config.model) is None:
        raise UsageError(
            f"--max-cost needs the price of model {config.model!r}, which the price table "
            "does not know",
            hint="pass --prices FILE with its input/output USD per million tokens",
        )


ENDPOINT_KEYS = frozenset(
    {
        "model",
        "base_url",
        "api_key",
        "headers",
        "azure_deployment",
        "api_version",
        "keyvault",
        "secret",
        "no_keyvault",
        "cache",
        "no_cache",
        "prices",
        "config",
        "profile",
    }
)
"""The keyword options every run function takes for its endpoint (as the CLI's flags)."""


def check_keywords(options: Mapping[str, Any], known: set[str], command: str) -> dict[str, Any]:
    """``options`` if every key is an option of ``command``; a :class:`UsageError` naming the
    unknown ones otherwise."""
    unknown = sorted(set(options) - known - ENDPOINT_KEYS)
    if unknown:
        raise UsageError(
            f"unknown option(s) {', '.join(unknown)}",
            hint=f"options mirror the flags of `sftlabel {command} --help` in snake case",
        )
    return dict(options)


def run_client_config(
    model: str,
    settings: Settings,
    opts: Mapping[str, Any],
    rate: Any,
    *,
    recorded_base_url: str | None = None,
) -> ClientConfig:
    """The client of a run: the endpoint options, the run's rate options (``RateOptions``), and
    the endpoint a resumed run recorded unless another one is given."""
    config = client_config(
        model,
        settings,
        base_url=opts.get("base_url") or recorded_base_url,
        headers=opts.get("headers"),
        azure_deployment=opts.get("azure_deployment"),
        api_version=opts.get("api_version"),
        timeout=rate.timeout,
        concurrency=rate.concurrency,
        rpm=rate.rpm,
        tpm=rate.tpm,
        cache=opts.get("cache"),
        no_cache=bool(opts.get("no_cache")),
        prices=opts.get("prices"),
    )
    check_budget(config, rate.max_cost)
    return config
