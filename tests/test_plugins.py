"""Commands and formats are entry-point plugins; a broken plugin never breaks the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_MODULE = '''
import typer

def hello(name: str = "world") -> None:
    """Say hello (a third-party command)."""
    typer.echo(f"hello {name}")


class LinesFormat:
    name = "question-answer"
    description = '{"question": ..., "answer": ...}'
    priority = 50

    def matches(self, record):
        return "question" in record and "answer" in record

    def parse(self, record, ctx):
        from sftlabel.model import Conversation, Message
        return Conversation(
            id=str(record.get("id", "")),
            source_format=self.name,
            messages=[Message(role="user", content=record["question"]),
                      Message(role="assistant", content=record["answer"])],
        )

FORMAT = LinesFormat()
'''

ENTRY_POINTS = """
[sftlabel.commands]
hello = demo_plugin:hello
broken = demo_plugin_missing:command
detect = demo_plugin:hello

[sftlabel.formats]
question-answer = demo_plugin:FORMAT
"""


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """A fake installed distribution 'demo-plugin' with a good, a broken and a clashing command."""
    (tmp_path / "demo_plugin.py").write_text(PLUGIN_MODULE, "utf-8")
    info = tmp_path / "demo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: demo-plugin\nVersion: 1.0\n", "utf-8"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS, "utf-8")
    return tmp_path


def run(plugin_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(plugin_path), **env}
    return subprocess.run(
        [sys.executable, "-m", "sftlabel", *args],
        capture_output=True,
        text=True,
        env=environ,
        check=False,
    )


def test_broken_plugin_warns_once_and_the_rest_works(plugin_path: Path) -> None:
    done = run(plugin_path, "hello", "--name", "plugins")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello plugins"
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2  # the broken import, and the name that clashes with a built-in
    assert any("'broken'" in w and "ModuleNotFoundError" in w for w in warnings)
    assert any("'detect'" in w and "already taken" in w for w in warnings)
    assert "Traceback" not in done.stderr
    assert run(plugin_path, "--version").returncode == 0


def test_builtin_wins_a_name_clash(plugin_path: Path, tmp_path: Path) -> None:
    record = tmp_path / "x.jsonl"
    record.write_text('{"messages": [{"role": "user", "content": "a"}]}\n', "utf-8")
    done = run(plugin_path, "detect", "--json", str(record))
    assert json.loads(done.stdout)["formats"] == {"openai": 1}


def test_third_party_format_plugin_is_used(plugin_path: Path, tmp_path: Path) -> None:
    record = tmp_path / "pc.jsonl"
    record.write_text('{"id": "p1", "question": "hi", "answer": "yo"}\n', "utf-8")
    done = run(plugin_path, "slice", str(record), "-o", "-")
    assert done.returncode == 0, done.stderr
    sample = json.loads(done.stdout)
    assert (sample["id"], sample["source_format"]) == ("p1", "question-answer")


def test_allow_list_disables_third_party_plugins(plugin_path: Path) -> None:
    done = run(plugin_path, "info", "--json", SFTLABEL_LOAD_PLUGINS="")
    assert done.returncode == 0, done.stderr
    plugins = {(p["group"], p["name"]): p for p in json.loads(done.stdout)["plugins"]}
    assert plugins[("sftlabel.commands", "hello")]["status"] == "disabled"
    assert plugins[("sftlabel.commands", "info")]["status"] == "loaded"
    assert "warning:" not in done.stderr
    enabled = run(plugin_path, "hello", SFTLABEL_LOAD_PLUGINS="demo-plugin")
    assert enabled.stdout.strip() == "hello world"


def test_info_reports_failed_plugins(plugin_path: Path) -> None:
    done = run(plugin_path, "info", "--json")
    plugins = {(p["group"], p["name"], p["dist"]): p for p in json.loads(done.stdout)["plugins"]}
    broken = plugins[("sftlabel.commands", "broken", "demo-plugin")]
    assert broken["status"] == "failed"
    assert "ModuleNotFoundError" in broken["error"]
