"""Configuration precedence: flag > environment > config file > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from sftlabel.config import resolve_settings
from sftlabel.errors import ConfigError


def test_precedence(tmp_path: Path) -> None:
    (tmp_path / "sftlabel.toml").write_text(
        'model = "from-file"\nbase_url = "http://file/v1"\n', "utf-8"
    )
    env = {"SFTLABEL_BASE_URL": "http://env/v1"}
    settings = resolve_settings({"model": "from-flag"}, environ=env, cwd=tmp_path)
    assert settings.values["model"].value == "from-flag"
    assert settings.values["model"].source == "flag"
    assert settings.values["base_url"].value == "http://env/v1"
    assert settings.values["base_url"].source == "env"
    no_flag = resolve_settings({}, environ={}, cwd=tmp_path)
    assert (no_flag.get("model"), no_flag.values["model"].source) == ("from-file", "config")
    assert no_flag.values["api_key"].source == "default"
    assert no_flag.config_file == str(tmp_path / "sftlabel.toml")


def test_first_matching_env_name_wins() -> None:
    settings = resolve_settings(
        environ={"LITELLM_KEY": "k2", "SFTLABEL_API_KEY": "k1"}, cwd=Path("/")
    )
    assert settings.values["api_key"].detail == "SFTLABEL_API_KEY"
    settings = resolve_settings(environ={"LITELLM_KEY": "k2"}, cwd=Path("/"))
    assert settings.values["api_key"].detail == "LITELLM_KEY"
    assert settings.redacted()["api_key"]["value"] == "<redacted>"


def test_relative_taxonomy_in_a_config_file_is_relative_to_the_file(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "x.toml"
    config.parent.mkdir()
    config.write_text('taxonomy = "../tax"\n', "utf-8")
    settings = resolve_settings(config_file=config, environ={}, cwd=tmp_path)
    assert settings.get("taxonomy") == str((tmp_path / "tax").resolve())


def test_unknown_key_in_config_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "sftlabel.toml").write_text('modle = "x"\n', "utf-8")
    with pytest.raises(ConfigError) as caught:
        resolve_settings(environ={}, cwd=tmp_path)
    assert "modle" in str(caught.value)
    assert caught.value.hint is not None and "model" in caught.value.hint


def test_invalid_toml_and_missing_explicit_file(tmp_path: Path) -> None:
    (tmp_path / "sftlabel.toml").write_text("model = \n", "utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve_settings(environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_settings(environ={"SFTLABEL_CONFIG": str(tmp_path / "none.toml")}, cwd=tmp_path)
