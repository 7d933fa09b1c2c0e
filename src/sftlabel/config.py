"""Effective configuration: CLI flag > environment > config file > default, with the source of each.

Config files are TOML with the keys below (``sftlabel.toml`` in the working directory, else
``config.toml`` in the user config directory, or the file named by ``SFTLABEL_CONFIG``)::

    model = "deepseek-v3.2"
    base_url = "https://api.example.com/v1"
    taxonomy = "./my-taxonomy"

Secrets (API keys) are never shown: :meth:`Settings.redacted` replaces them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import platformdirs

from sftlabel.errors import ConfigError

Source = Literal["flag", "env", "config", "default", "keyvault"]
CONFIG_ENV = "SFTLABEL_CONFIG"
CONFIG_NAME = "sftlabel.toml"
REDACTED = "<redacted>"


class Field(msgspec.Struct, frozen=True, kw_only=True):
    env: tuple[str, ...]
    help: str
    secret: bool = False


FIELDS: dict[str, Field] = {
    "taxonomy": Field(env=("SFTLABEL_TAXONOMY",), help="taxonomy directory (default: built-in)"),
    "model": Field(env=("SFTLABEL_MODEL",), help="model name sent to the endpoint"),
    "base_url": Field(
        env=("SFTLABEL_BASE_URL", "LITELLM_BASE"),
        help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1",
    ),
    "api_key": Field(
        env=("SFTLABEL_API_KEY", "LITELLM_KEY"), help="API key for base_url", secret=True
    ),
    "azure_endpoint": Field(env=("AZURE_OPENAI_ENDPOINT",), help="Azure OpenAI resource endpoint"),
    "azure_api_key": Field(env=("AZURE_OPENAI_API_KEY",), help="Azure OpenAI API key", secret=True),
    "cache_dir": Field(env=("SFTLABEL_CACHE_DIR",), help="response cache directory"),
}


class ConfigFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The keys a config file may hold."""

    taxonomy: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    azure_endpoint: str | None = None
    azure_api_key: str | None = None
    cache_dir: str | None = None


class Setting(msgspec.Struct, kw_only=True):
    value: str | None
    source: Source
    detail: str = ""
    """Which variable or file the value came from."""


class Settings(msgspec.Struct, kw_only=True):
    """The effective configuration."""

    values: dict[str, Setting]
    config_file: str | None = None

    def get(self, key: str) -> str | None:
        return self.values[key].value

    def override(self, key: str, value: str, source: Source, detail: str = "") -> None:
        """Replace a setting with a value found later (a secret read from Key Vault)."""
        self.values[key] = Setting(value=value, source=source, detail=detail)

    def redacted(self) -> dict[str, dict[str, Any]]:
        """Every setting with its source, secrets replaced by ``<redacted>``."""
        shown: dict[str, dict[str, Any]] = {}
        for key, setting in self.values.items():
            value = setting.value
            if FIELDS[key].secret and value:
                value = REDACTED
            elif key in URL_SETTINGS and value:
                from sftlabel.llm import redact_url  # here: config is imported first

                value = redact_url(value)  # credentials in userinfo or the query
            shown[key] = {"value": value, "source": setting.source}
            if setting.detail:
                shown[key]["from"] = setting.detail
        return shown


URL_SETTINGS = frozenset({"base_url", "azure_endpoint"})


def default_cache_dir() -> str:
    return platformdirs.user_cache_dir("sftlabel")


def _defaults() -> dict[str, str | None]:
    return dict.fromkeys(FIELDS) | {"cache_dir": default_cache_dir()}


def find_config_file(
    explicit: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """The config file in effect: explicit path, ``$SFTLABEL_CONFIG``, ./sftlabel.toml, user dir."""
    env = os.environ if environ is None else environ
    chosen = explicit or env.get(CONFIG_ENV)
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise ConfigError(
                f"config file not found: {path}",
                hint=f"fix the path, or unset {CONFIG_ENV}" if not explicit else "fix the path",
            )
        return path
    local = (cwd or Path.cwd()) / CONFIG_NAME
    if local.is_file():
        return local
    user = Path(platformdirs.user_config_dir("sftlabel")) / "config.toml"
    return user if user.is_file() else None


def load_config_file(path: Path) -> ConfigFile:
    try:
        return msgspec.toml.decode(path.read_bytes(), type=ConfigFile)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except msgspec.ValidationError as exc:
        known = ", ".join(FIELDS)
        raise ConfigError(f"{path}: {exc}", hint=f"known keys: {known}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def resolve_settings(
    flags: Mapping[str, str | os.PathLike[str] | None] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve every setting: flag > environment > config file > default."""
    env = os.environ if environ is None else environ
    flags = flags or {}
    unknown = set(flags) - set(FIELDS)
    if unknown:  # a programming error in a command, not a user error
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    path = find_config_file(config_file, environ=env, cwd=cwd)
    from_file = msgspec.structs.asdict(load_config_file(path)) if path else {}
    defaults = _defaults()
    values: dict[str, Setting] = {}
    for key, field in FIELDS.items():
        flag = flags.get(key)
        if flag is not None:
            values[key] = Setting(value=os.fspath(flag), source="flag")
            continue
        env_name = next((name for name in field.env if env.get(name)), None)
        if env_name is not None:
            values[key] = Setting(value=env[env_name], source="env", detail=env_name)
        elif from_file.get(key) is not None:
            value = from_file[key]
            if key in ("taxonomy", "cache_dir") and path is not None:
                value = str((path.parent / value).resolve())  # relative to the file
            values[key] = Setting(value=value, source="config", detail=str(path))
        else:
            values[key] = Setting(value=defaults[key], source="default")
    return Settings(values=values, config_file=str(path) if path else None)
