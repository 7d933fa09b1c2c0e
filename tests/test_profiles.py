"""Profiles for model tiers (``[profiles.NAME]``, ``--profile NAME``): precedence flag > profile
> environment > job table > defaults, errors, and what ``info`` shows; through the CLI and the
library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftlabel.config import resolve_settings
from sftlabel.errors import ConfigError

from .test_label_run import CALL1, labeler_rules, records

KEY = "sk-gold-key-do-not-print"


def _config(folder: Path, base_url: str = "http://127.0.0.1:9/v1") -> Path:
    path = folder / "sftlabel.toml"
    path.write_text(
        f"""model = "top-model"
cache_dir = "cache"

[label]
model = "table-model"
concurrency = 8
rpm = 100
arbitration = false

[profiles.gold]
description = "strong model for gold annotation"
model = "gold-model"
base_url = "{base_url}"
api_key_env = "GOLD_KEY"
concurrency = 3
arbitration_model = "gold-arbiter"

[profiles.cheap]
model = "cheap-model"
base_url = "{base_url}"
tpm = 500000
""",
        "utf-8",
    )
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("SFTLABEL_CONFIG", "SFTLABEL_MODEL", "SFTLABEL_BASE_URL", "LITELLM_BASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOLD_KEY", KEY)
    return tmp_path


def test_precedence_in_the_library(project: Path) -> None:
    _config(project)
    env = {"GOLD_KEY": KEY, "SFTLABEL_MODEL": "env-model"}
    plain = resolve_settings(environ=env, cwd=project, command="label")
    assert (plain.get("model"), plain.values["model"].source) == ("env-model", "env")
    assert plain.defaults["concurrency"] == 8 and plain.profile_defaults == frozenset()
    gold = resolve_settings(environ=env, cwd=project, command="label", profile="gold")
    assert (gold.get("model"), gold.values["model"].source) == ("gold-model", "profile")
    assert gold.values["model"].detail == f"{project / 'sftlabel.toml'} [profiles.gold]"
    assert gold.get("api_key") == KEY and gold.values["api_key"].detail.startswith("env GOLD_KEY")
    assert gold.defaults["concurrency"] == 3  # profile over [label]
    assert gold.defaults["rpm"] == 100  # the table still fills what the profile leaves
    assert gold.defaults["arbitration_model"] == "gold-arbiter"
    assert gold.profile_defaults == {"concurrency", "arbitration_model"}
    assert gold.redacted()["api_key"] == {
        "value": "<redacted>",
        "source": "profile",
        "profile": "gold",
        "from": f"env GOLD_KEY, {project / 'sftlabel.toml'} [profiles.gold]",
    }
    flag = resolve_settings({"model": "flag-model"}, environ=env, cwd=project, profile="gold")
    assert (flag.get("model"), flag.values["model"].source) == ("flag-model", "flag")
    soft = resolve_settings(environ=env, cwd=project, command="softlabel", profile="gold")
    assert "arbitration_model" not in soft.defaults  # softlabel has no such option


def test_profile_errors(project: Path) -> None:
    _config(project)
    with pytest.raises(ConfigError, match="unknown profile 'gold2'") as caught:
        resolve_settings(environ={"GOLD_KEY": KEY}, cwd=project, profile="gold2")
    assert caught.value.hint == "defined profiles: cheap, gold"
    with pytest.raises(ConfigError, match="api_key_env GOLD_KEY is not set"):
        resolve_settings(environ={}, cwd=project, profile="gold")
    (project / "sftlabel.toml").write_text('[profiles.gold]\nmodle = "x"\n', "utf-8")
    with pytest.raises(ConfigError, match="modle") as caught:
        resolve_settings(environ={}, cwd=project, profile="gold")
    assert "known [profiles.NAME] keys: description, model, base_url" in str(caught.value.hint)
    empty = project / "empty"
    empty.mkdir()
    (empty / "sftlabel.toml").write_text('model = "m"\n', "utf-8")
    with pytest.raises(ConfigError, match="unknown profile 'gold'") as caught:
        resolve_settings(environ={}, cwd=empty, profile="gold")
    assert "[profiles.NAME]" in str(caught.value.hint)


def test_cli_errors(cli, project: Path) -> None:
    _config(project)
    unknown = cli("label", "data.jsonl", "--profile", "nope")
    assert unknown.exit_code == 2
    assert "unknown profile 'nope'" in unknown.stderr and "cheap, gold" in unknown.stderr
    (project / "sftlabel.toml").write_text("[profiles.gold]\nrps = 3\n", "utf-8")
    bad = cli("info")
    assert bad.exit_code == 2 and "rps" in bad.stderr and "api_key_env" in bad.stderr


def test_label_and_arbitrate_with_profiles(
    cli, llm_server, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unsure = {**CALL1, "confidence": {**CALL1["confidence"], "difficulty": 0.4}}
    llm_server.configure(rules=labeler_rules(call1=unsure))
    _config(project, llm_server.base_url)
    data = records(2, project)
    monkeypatch.setenv("SFTLABEL_MODEL", "env-model")  # a profile wins over the environment
    result = cli("label", data, "-o", project / "run", "--profile", "gold", "--rpm", "500")
    assert result.exit_code == 0, result.stderr
    assert KEY not in result.stdout + result.stderr
    manifest = json.loads((project / "run" / "run.json").read_text("utf-8"))
    assert manifest["options"]["model"] == "gold-model"
    assert manifest["options"]["arbitration_model"] == "gold-arbiter"
    assert manifest["rate"]["concurrency"] == 3  # profile > [label] (8)
    assert manifest["rate"]["rpm"] == 500  # flag > table
    assert KEY not in (project / "run" / "run.json").read_text("utf-8")

    cheap = cli("label", data, "-o", project / "run2", "--profile", "cheap", "--model", "flag-m")
    assert cheap.exit_code == 0, cheap.stderr
    manifest = json.loads((project / "run2" / "run.json").read_text("utf-8"))
    assert manifest["options"]["model"] == "flag-m"  # flag > profile
    assert manifest["options"]["arbitration_model"] is None
    assert manifest["rate"]["tpm"] == 500000 and manifest["rate"]["concurrency"] == 8

    # the gold tier arbitrates the cheap run: its arbitration model, its rate options
    arbitrated = cli("arbitrate", project / "run2", "--profile", "gold")
    assert arbitrated.exit_code == 0, arbitrated.stderr
    manifest = json.loads((project / "run2_arbitrated" / "run.json").read_text("utf-8"))
    assert manifest["options"]["arbitration_model"] == "gold-arbiter"
    assert manifest["rate"]["concurrency"] == 3


def test_info_lists_profiles_and_sources(cli, project: Path) -> None:
    _config(project)
    data = json.loads(cli("info", "--json").stdout)
    assert set(data["profiles"]) == {"gold", "cheap"}
    assert data["profiles"]["gold"]["api_key_env"] == "GOLD_KEY"
    assert data["profile"] is None and data["config"]["model"]["source"] == "config"
    gold = json.loads(cli("info", "--json", "--profile", "gold").stdout)
    assert gold["config"]["model"] == {
        "value": "gold-model",
        "source": "profile",
        "profile": "gold",
        "from": f"{project / 'sftlabel.toml'} [profiles.gold]",
    }
    assert gold["config"]["api_key"]["value"] == "<redacted>"
    label = gold["defaults"]["label"]
    assert label["concurrency"]["source"] == "profile" and label["concurrency"]["value"] == 3
    assert label["rpm"]["source"] == "config"
    text = cli("info", "--profile", "gold")
    assert text.exit_code == 0, text.stderr
    assert "profile gold" in text.stdout and "gold (selected)" in text.stdout
    assert "cheap-model" in text.stdout
    assert KEY not in text.stdout


def test_the_example_tiers_of_init_load(cli, tmp_path: Path) -> None:
    from sftlabel.config import load_config_file

    target = tmp_path / "sftlabel.toml"
    assert cli("init", target).exit_code == 0
    lines, active = [], False
    for line in target.read_text("utf-8").splitlines():
        active = active or line.startswith("# [profiles.")
        lines.append(line[2:] if active and line.startswith("# ") else line)
    target.write_text("\n".join(lines) + "\n", "utf-8")
    loaded = load_config_file(target)
    assert list(loaded.profiles or {}) == ["gold", "production", "cheap"]


def test_endpoint_test_takes_a_profile(cli, llm_server, project: Path) -> None:
    llm_server.configure(rules=labeler_rules())
    _config(project, llm_server.base_url)
    result = cli("test", "--profile", "cheap", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["label_ready"]
    assert cli("test", "--profile", "nope").exit_code == 2


def test_generate_takes_a_profile(cli, llm_server, project: Path) -> None:
    """The gold tier writes the gold set: its model, endpoint and rate options."""
    from .test_generate import scenario_file

    _config(project, llm_server.base_url)
    result = cli("generate", scenario_file(project, 2), "-o", project / "gold", "--profile", "gold")
    assert result.exit_code == 0, result.stderr
    assert KEY not in result.stdout + result.stderr
    manifest = json.loads((project / "gold" / "run.json").read_text("utf-8"))
    assert manifest["options"]["model"] == "gold-model"
    assert manifest["rate"]["concurrency"] == 3
