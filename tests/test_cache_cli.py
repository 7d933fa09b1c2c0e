"""``sftlabel cache``: stats, clear [--older-than], show KEY / --run RUN."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from sftlabel.llm import ResponseCache, cache_key
from sftlabel.plugins import COMMANDS_GROUP, load_group


def answer(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()


def make_cache(path: Path) -> list[str]:
    cache = ResponseCache(path)
    keys = []
    for i, model in enumerate(["m1", "m1", "m2"]):
        key = cache_key("http://127.0.0.1/v1/chat/completions", f"body {i}".encode())
        cache.put(key, model, answer(f"answer {i}"))
        keys.append(key)
    cache.close()
    # the first answer is 40 days old
    db = sqlite3.connect(path)
    db.execute(
        "UPDATE responses SET created = ? WHERE key = ?", (time.time() - 40 * 86400, keys[0])
    )
    db.commit()
    db.close()
    return keys


def test_cache_is_a_plugin_command() -> None:
    assert "cache" in load_group(COMMANDS_GROUP).objects


def test_stats(cli, tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite"
    make_cache(path)
    result = cli("cache", "stats", "--cache", path, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["entries"] == 3
    assert [(m["model"], m["entries"]) for m in data["models"]] == [("m1", 2), ("m2", 1)]
    text = cli("cache", "stats", "--cache", path)
    assert "entries" in text.stdout and "m2" in text.stdout


def test_missing_cache_is_an_error_and_not_created(cli, tmp_path: Path) -> None:
    path = tmp_path / "none.sqlite"
    result = cli("cache", "stats", "--cache", path)
    assert result.exit_code == 1 and "no response cache" in result.stderr
    assert not path.exists()


def test_clear_older_than_then_everything(cli, tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite"
    keys = make_cache(path)
    result = cli("cache", "clear", "--older-than", "30d", "--cache", path)
    assert result.exit_code == 0, result.stderr
    assert "deleted 1 cached answer older than 30d" in result.stderr
    cache = ResponseCache(path)
    assert len(cache) == 2 and cache.get(keys[0]) is None and cache.get(keys[1]) is not None
    cache.close()
    assert cli("cache", "clear", "--older-than", "soon", "--cache", path).exit_code == 2
    result = cli("cache", "clear", "--model", "m2", "--cache", path)
    assert "deleted 1 cached answer of model m2" in result.stderr
    result = cli("cache", "clear", "--cache", path)
    assert "deleted 1 cached answer from" in result.stderr


def test_show_key_and_run(cli, tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite"
    keys = make_cache(path)
    result = cli("cache", "show", keys[1][:10], "--cache", path)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["choices"][0]["message"]["content"] == "answer 1"
    assert keys[1] in result.stderr
    assert cli("cache", "show", "zz", "--cache", path).exit_code == 2
    assert cli("cache", "show", "--cache", path).exit_code == 2
    # a run of model m1 whose session covers now: the recent m1 answer, not the old one
    run = tmp_path / "run"
    run.mkdir()
    started = datetime.fromtimestamp(time.time() - 3600, UTC).isoformat()
    manifest = {"options": {"model": "m1"}, "sessions": [{"started": started}]}
    (run / "run.json").write_text(json.dumps(manifest))
    result = cli("cache", "show", "--run", run, "--cache", path, "--json")
    assert result.exit_code == 0, result.stderr
    assert [e["key"] for e in json.loads(result.stdout)] == [keys[1]]
    table = cli("cache", "show", "--run", run, "--cache", path)
    assert "answer 1" in table.stdout and "1 answer cached by" in table.stderr
