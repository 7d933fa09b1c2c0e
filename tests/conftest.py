"""Shared test helpers: paths to the sample data and a CLI runner."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sftlabel.cli import build_app

from .llm_server import FakeLLMServer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared(relative: str) -> Path:
    """A file of ../shared/data, or skip the test when the shared folder is not beside the repo."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Run ``sftlabel ARGS...`` in-process; stdout and stderr are captured separately."""
    app = build_app()
    runner = CliRunner()

    def run(*args: str | Path, input: str | None = None) -> Result:
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return run


def write_jsonl(path: Path, records: Iterable[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def llm_server_session() -> Iterator[FakeLLMServer]:
    """One fake OpenAI-compatible server (tests/fake_llm_server.py) for the whole session."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def llm_server(llm_server_session: FakeLLMServer) -> FakeLLMServer:
    """The session's fake LLM server, reset (empty script, fresh stats, default settings)."""
    llm_server_session.reset()
    return llm_server_session
