"""Effective configuration: CLI flag > environment > config file > default, with the source of each.

Config files are TOML with the keys below (``sftlabel.toml`` in the working directory, else
``config.toml`` in the user config directory, or the file named by ``SFTLABEL_CONFIG``)::

    model = "deepseek-v3.2"
    base_url = "https://api.example.com/v1"
    taxonomy = "./my-taxonomy"

Named profiles (``[profiles.gold]``, ``[profiles.production]``, ...) hold a model tier: model,
endpoint, key source, prices, rate options and arbitration model; ``profile=NAME`` selects one.
Precedence with a profile: flag > profile > environment > the command's table > top-level
config > default.

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

Source = Literal["flag", "profile", "env", "config", "default", "keyvault"]
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


class _Endpoint(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings a command's table may set for that command only (over the top-level ones)."""

    taxonomy: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    azure_endpoint: str | None = None
    azure_api_key: str | None = None
    cache_dir: str | None = None


class LabelDefaults(_Endpoint, kw_only=True, forbid_unknown_fields=True):
    """``[label]``: what ``sftlabel label`` runs when a flag is not given."""

    inputs: list[str] | None = None
    output_root: str | None = None
    """New run directories are made below this folder (``<output_root>/<time>_<model>``)."""
    azure_deployment: str | None = None
    api_version: str | None = None
    keyvault: str | None = None
    secret: str | None = None
    concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    timeout: float | None = None
    max_cost: float | None = None
    arbitration: bool | None = None
    arbitration_model: str | None = None
    json_mode: Literal["auto", "on", "off"] | None = None
    max_chars: int | None = None
    dedup: bool | None = None
    """False: send every sample, also the duplicates (``--no-dedup``)."""
    prices: str | None = None


class SoftlabelDefaults(_Endpoint, kw_only=True, forbid_unknown_fields=True):
    """``[softlabel]``: what ``sftlabel softlabel`` runs when a flag is not given."""

    input: str | list[str] | None = None
    """The RAW dataset: a folder, files, or an ``az://``/``s3://``/``gs://`` URL."""
    output: str | None = None
    azure_deployment: str | None = None
    api_version: str | None = None
    keyvault: str | None = None
    secret: str | None = None
    strategy: str | None = None
    context_turns: int | None = None
    rationales: bool | None = None
    top_logprobs: int | None = None
    logit_bias: float | None = None
    label_token_ids: str | None = None
    dedup: bool | None = None
    """False: send every turn, also the duplicates (``--no-dedup``)."""
    concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    timeout: float | None = None
    max_cost: float | None = None
    prices: str | None = None


class Profile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[profiles.NAME]``: a model tier (the strong model for gold annotation, a mid one for
    production, a light one for cost-sensitive batches), selected with ``--profile NAME``."""

    description: str | None = None
    model: str | None = None
    base_url: str | None = None
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    api_version: str | None = None
    api_key_env: str | None = None
    """The environment variable holding this tier's API key (the key never sits in the file);
    the Azure key when the profile sets ``azure_endpoint`` or ``azure_deployment``."""
    keyvault: str | None = None
    secret: str | None = None
    prices: str | None = None
    concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    timeout: float | None = None
    max_cost: float | None = None
    arbitration_model: str | None = None


PROFILE_KEYS = tuple(Profile.__struct_fields__)


class ConfigFile(_Endpoint, kw_only=True, forbid_unknown_fields=True):
    """The keys a config file may hold: the settings, per-command defaults and profiles."""

    label: LabelDefaults | None = None
    softlabel: SoftlabelDefaults | None = None
    profiles: dict[str, Any] | None = None
    """``{name: Profile}`` once loaded (:func:`load_config_file` checks each table itself, so
    an error names the profile)."""


COMMANDS = {"label": LabelDefaults, "softlabel": SoftlabelDefaults}

_PATH_DEFAULTS = frozenset({"inputs", "input", "output", "output_root", "prices"})
"""Job defaults that are paths: relative to the config file's folder."""


class Setting(msgspec.Struct, kw_only=True):
    value: str | None
    source: Source
    detail: str = ""
    """Which variable or file the value came from."""


class Settings(msgspec.Struct, kw_only=True):
    """The effective configuration."""

    values: dict[str, Setting]
    config_file: str | None = None
    command: str | None = None
    defaults: dict[str, Any] = {}
    """The command's job defaults from its config table (``[softlabel] input = ...``) and the
    selected profile."""
    profile: str | None = None
    """The selected profile's name."""
    profile_defaults: frozenset[str] = frozenset()
    """The keys of :attr:`defaults` that come from the profile (over the command's table)."""

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
            if setting.source == "profile":
                shown[key]["profile"] = self.profile
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
    """The config file in effect: explicit path, ``$SFTLABEL_CONFIG``, ``sftlabel.toml`` in the
    working directory or its nearest parent that has one, then the user config dir."""
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
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):  # the working directory, then its parents
        local = folder / CONFIG_NAME
        if local.is_file():
            return local
    user = Path(platformdirs.user_config_dir("sftlabel")) / "config.toml"
    return user if user.is_file() else None


def load_config_file(path: Path) -> ConfigFile:
    try:
        loaded = msgspec.toml.decode(path.read_bytes(), type=ConfigFile)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except msgspec.ValidationError as exc:
        text = str(exc)
        table = next((c for c in COMMANDS if f"$.{c}" in text), None)
        fields = COMMANDS[table].__struct_fields__ if table else ConfigFile.__struct_fields__
        where = f"[{table}] " if table else ""
        raise ConfigError(
            f"{path}: {text}", hint=f"known {where}keys: {', '.join(fields)}"
        ) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    for name, table in (loaded.profiles or {}).items():
        try:
            loaded.profiles[name] = msgspec.convert(table, Profile)  # type: ignore[index]
        except msgspec.ValidationError as exc:
            raise ConfigError(
                f"{path} [profiles.{name}]: {exc}",
                hint=f"known [profiles.NAME] keys: {', '.join(PROFILE_KEYS)}",
            ) from None
    return loaded


def defined_profiles(
    config_file: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """The profiles of the config file in effect: ``{name: {key: value}}`` (keys that are set)."""
    path = find_config_file(config_file, environ=environ, cwd=cwd)
    loaded = load_config_file(path) if path else None
    return {
        name: {k: v for k, v in msgspec.structs.asdict(profile).items() if v is not None}
        for name, profile in ((loaded.profiles if loaded else None) or {}).items()
    }


def _profile_values(
    loaded: ConfigFile | None,
    path: Path | None,
    name: str,
    env: Mapping[str, str],
) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """The settings (``FIELDS`` keys: value and where it came from) and the job options of
    profile ``name``."""
    profiles = (loaded.profiles if loaded is not None else None) or {}
    chosen = profiles.get(name)
    if chosen is None:
        where = f"in {path}" if path else "(no config file found)"
        defined = ", ".join(sorted(profiles))
        raise ConfigError(
            f"unknown profile {name!r} {where}",
            hint=f"defined profiles: {defined}"
            if defined
            else "define it as a [profiles.NAME] table of sftlabel.toml (see `sftlabel init`)",
        )
    assert path is not None
    values = {k: v for k, v in msgspec.structs.asdict(chosen).items() if v is not None}
    where = f"{path} [profiles.{name}]"
    settings: dict[str, tuple[str, str]] = {
        k: (str(values.pop(k)), where)
        for k in ("model", "base_url", "azure_endpoint")
        if k in values
    }
    values.pop("description", None)
    variable = values.pop("api_key_env", None)
    if variable is not None:
        key = env.get(variable)
        if not key:
            raise ConfigError(
                f"profile {name!r}: its api_key_env {variable} is not set in the environment",
                hint=f"export {variable}=..., or change api_key_env in {path}",
            )
        azure = "azure_endpoint" in settings or "azure_deployment" in values
        settings["azure_api_key" if azure else "api_key"] = (key, f"env {variable}, {where}")
    job = {k: _relative_to(path, k, v) for k, v in values.items()}
    return settings, job


def resolve_settings(
    flags: Mapping[str, str | os.PathLike[str] | None] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    command: str | None = None,
    profile: str | None = None,
) -> Settings:
    """Resolve every setting: flag > environment > config file > default. With ``command``,
    the config file's ``[command]`` table overrides its top-level settings for that command and
    gives the job defaults (:attr:`Settings.defaults`). With ``profile``, the config file's
    ``[profiles.NAME]`` table comes right after the flags: flag > profile > environment >
    ``[command]`` > top-level > default; its job options (rate, prices, deployment,
    arbitration model ...) override the command table's (only those the command has a table key
    for, when it has a table)."""
    env = os.environ if environ is None else environ
    flags = flags or {}
    unknown = set(flags) - set(FIELDS)
    if unknown:  # a programming error in a command, not a user error
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    path = find_config_file(config_file, environ=env, cwd=cwd)
    loaded = load_config_file(path) if path else None
    from_file = {k: getattr(loaded, k) for k in FIELDS} if loaded else {}
    table = getattr(loaded, command, None) if loaded is not None and command else None
    job: dict[str, Any] = {}
    from_table: set[str] = set()
    if table is not None:
        assert path is not None
        for key, value in msgspec.structs.asdict(table).items():
            if value is None:
                continue
            if key in FIELDS:
                from_file[key] = value  # [command] model = ... is that command's config value
                from_table.add(key)
            else:
                job[key] = _relative_to(path, key, value)
    from_profile: dict[str, tuple[str, str]] = {}
    profile_job: set[str] = set()
    if profile is not None:
        from_profile, extra = _profile_values(loaded, path, profile, env)
        allowed = COMMANDS[command].__struct_fields__ if command in COMMANDS else None
        for key, value in extra.items():
            if allowed is None or key in allowed:
                job[key] = value
                profile_job.add(key)
    defaults = _defaults()
    values: dict[str, Setting] = {}
    for key, field in FIELDS.items():
        flag = flags.get(key)
        if flag is not None:
            values[key] = Setting(value=os.fspath(flag), source="flag")
            continue
        if key in from_profile:
            value, detail = from_profile[key]
            values[key] = Setting(value=value, source="profile", detail=detail)
            continue
        env_name = next((name for name in field.env if env.get(name)), None)
        if env_name is not None:
            values[key] = Setting(value=env[env_name], source="env", detail=env_name)
        elif from_file.get(key) is not None:
            value = from_file[key]
            if key in ("taxonomy", "cache_dir") and path is not None:
                value = str((path.parent / value).resolve())  # relative to the file
            detail = f"{path} [{command}]" if key in from_table else str(path)
            values[key] = Setting(value=value, source="config", detail=detail)
        else:
            values[key] = Setting(value=defaults[key], source="default")
    return Settings(
        values=values,
        config_file=str(path) if path else None,
        command=command,
        defaults=job,
        profile=profile,
        profile_defaults=frozenset(profile_job),
    )


def _relative_to(path: Path, key: str, value: Any) -> Any:
    """A path-valued job default, relative to the config file's folder (URLs as they are)."""
    if key not in _PATH_DEFAULTS:
        return value

    def resolve(item: str) -> str:
        return item if "://" in item else str((path.parent / item).resolve())

    return [resolve(v) for v in value] if isinstance(value, list) else resolve(str(value))
