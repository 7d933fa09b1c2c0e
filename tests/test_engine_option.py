"""``--engine``: the options and the install hint, without Ray (tests/test_ray.py runs it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .conftest import write_jsonl


def data(tmp_path: Path) -> Path:
    record = {
        "id": "a",
        "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}],
    }
    return write_jsonl(tmp_path / "in.jsonl", [record])


def test_engine_ray_without_ray_gives_the_install_hint_and_writes_nothing(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    run = tmp_path / "run"
    result = cli(
        "label", data(tmp_path), "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
        "-o", run, "--engine", "ray",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--engine ray needs Ray" in result.stderr
    assert "pip install 'sftlabel[ray]'" in result.stderr
    assert not run.exists()


def test_shards_need_the_ray_engine(cli, tmp_path: Path) -> None:
    result = cli(
        "label", data(tmp_path), "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
        "-o", tmp_path / "run", "--shards", "4",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--shards needs --engine ray" in result.stderr
    assert not (tmp_path / "run").exists()


def test_softlabel_takes_the_engine_options_with_the_same_hint(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = data(tmp_path)
    common = ("--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--label-token-ids", "0=1,1=2")
    out = tmp_path / "out"
    shards = cli("softlabel", source, *common, "-o", out, "--shards", "4")
    assert shards.exit_code == 2
    assert "--shards needs --engine ray" in shards.stderr
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = cli("softlabel", source, *common, "-o", out, "--engine", "ray")
    assert result.exit_code == 2
    assert "--engine ray needs Ray" in result.stderr
    assert "pip install 'sftlabel[ray]'" in result.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]
