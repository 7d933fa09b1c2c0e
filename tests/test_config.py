"""Configuration precedence: flag > environment > config file > default."""

from __future__ import annotations

import json
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


# --- per-command job defaults ([label], [softlabel]) and `sftlabel init` -------------------


def test_softlabel_runs_the_job_of_the_config_file(
    cli, llm_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The promised command, verbatim: `sftlabel softlabel --no-rationales` in a folder whose
    sftlabel.toml names the dataset, the model and the endpoint."""
    import shutil

    from .conftest import shared

    project = tmp_path / "project"
    shutil.copytree(shared("copilot_raw/vscodedata_demo_20260101"), project / "RAW")
    (project / "sftlabel.toml").write_text(
        f'[softlabel]\ninput = "RAW"\nmodel = "gpt-4o-mini"\nbase_url = "{llm_server.base_url}"\n'
        'cache_dir = "cache"\n',
        "utf-8",
    )
    (project / "sub").mkdir()
    monkeypatch.chdir(project / "sub")  # found in a parent folder too
    for name in ("SFTLABEL_MODEL", "SFTLABEL_BASE_URL", "LITELLM_BASE", "SFTLABEL_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    result = cli("softlabel", "--no-rationales")
    assert result.exit_code == 0, result.stderr
    out = project / "LABELED_RAW"
    turns = sum(
        len(p.read_text("utf-8").splitlines())
        for p in out.rglob("*.jsonl")
        if p.name != "problems.jsonl"
    )
    assert turns == 158
    shown = cli("info", "--json")
    defaults = json.loads(shown.stdout)["defaults"]["softlabel"]
    assert defaults["input"]["value"] == str(project / "RAW")
    assert defaults["model"]["source"] == "config" and "[softlabel]" in defaults["model"]["from"]


def test_without_a_dataset_the_error_shows_a_config_snippet(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SFTLABEL_CONFIG", raising=False)
    result = cli("softlabel", "--no-rationales")
    assert result.exit_code == 2
    assert "[softlabel]" in result.stderr and 'input = "' in result.stderr


def test_an_unknown_key_in_a_command_table_names_the_key_and_the_file(cli, tmp_path: Path) -> None:
    config = tmp_path / "sftlabel.toml"
    config.write_text('[softlabel]\nimput = "RAW"\n', "utf-8")
    result = cli("info", "--config", config)
    assert result.exit_code == 2
    assert "imput" in result.stderr and str(config) in result.stderr
    assert "known [softlabel] keys" in result.stderr


def test_init_writes_a_commented_example_that_loads(cli, tmp_path: Path) -> None:
    from sftlabel.config import load_config_file

    target = tmp_path / "sftlabel.toml"
    assert cli("init", target).exit_code == 0
    text = target.read_text("utf-8")
    assert "[softlabel]" in text and "[label]" in text and "# input = " in text
    load_config_file(target)
    again = cli("init", target)
    assert again.exit_code == 2 and "--force" in again.stderr
    assert cli("init", target, "--force").exit_code == 0


def test_label_takes_inputs_and_output_root_from_its_table(
    cli, llm_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_label_run import labeler_rules, records

    llm_server.configure(rules=labeler_rules())
    records(2, tmp_path)
    (tmp_path / "sftlabel.toml").write_text(
        f'[label]\ninputs = ["data.jsonl"]\noutput_root = "my-runs"\nmodel = "gpt-4o-mini"\n'
        f'base_url = "{llm_server.base_url}"\narbitration = false\ncache_dir = "cache"\n',
        "utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SFTLABEL_CONFIG", raising=False)
    result = cli("label")
    assert result.exit_code == 0, result.stderr
    (run,) = (tmp_path / "my-runs").iterdir()
    manifest = json.loads((run / "run.json").read_text("utf-8"))
    assert manifest["inputs"] == [str(tmp_path / "data.jsonl")]
    assert manifest["options"]["arbitration"] is False
