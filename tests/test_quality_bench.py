"""The quality gate (bench/quality.py) runs end to end against the fake server, so it cannot rot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from sftlabel import load_taxonomy
from sftlabel.labeling._prompts import PROMPT_FORMAT

from .conftest import ROOT, SHARED_DATA, shared
from .llm_server import FakeLLMServer

DIMENSIONS = load_taxonomy().dimensions()
ANSWER = {
    "intent": "build",
    "language": ["python"],
    "domain": ["web-backend"],
    "task": ["feature-implementation"],
    "difficulty": "intermediate",
    "concept": [],
    "agentic": ["bash-execution"],
    "constraint": [],
    "context": "single-file",
    "confidence": dict.fromkeys(DIMENSIONS, 0.9),
    "unmapped": [{"dimension": "concept", "value": "crdt"}],
}


def _quality() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quality", ROOT / "bench" / "quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_quality_harness_labels_the_baselines_and_reports_both(
    llm_server: FakeLLMServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared("baselines/labeled_deepseek_v4.json")
    shared("baselines/labeled_sonnet_v4.json")
    llm_server.configure(default_content=json.dumps(ANSWER))
    quality = _quality()
    out = tmp_path / "out"
    code = quality.main(
        [
            "--base-url",
            llm_server.base_url,
            "--model",
            "gpt-4o-mini",
            "--baselines",
            str(SHARED_DATA / "baselines"),
            "--out",
            str(out),
            "--json",
            str(tmp_path / "quality.json"),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "labeled 108 of 108 samples (0 failed)" in printed
    for name in ("candidate vs deepseek_v4", "candidate vs sonnet_v4", "sonnet_v4 vs deepseek_v4"):
        assert name in printed
    for dimension in DIMENSIONS:
        assert f"\n{dimension} " in printed and f"  {dimension}: " in printed
    assert "mean exact  72.7%" in printed  # the baselines' own agreement, as LABELING.md says
    assert "unmapped rate" in printed and "arbitration rate" in printed
    assert "cost/sample $" in printed

    report = json.loads((tmp_path / "quality.json").read_text("utf-8"))
    mutual = report["pairs"]["sonnet_v4 vs deepseek_v4"]
    assert mutual["paired"] == 108 and round(mutual["mean_exact"], 3) == 0.727
    ours = report["pairs"]["candidate vs deepseek_v4"]
    assert set(ours["dimensions"]) == set(DIMENSIONS)
    assert ours["dimensions"]["intent"]["kappa"] is not None
    assert "f1" in ours["dimensions"]["language"]["tags"]["python"]
    assert report["runs"]["candidate"]["unmapped_rate"] == 1.0
    assert report["runs"]["candidate"]["arbitration_rate"] == 0.0
    assert report["prompt_version"].startswith(f"{PROMPT_FORMAT}-")
    assert 0 < report["prompt_tokens"]["call1_static"] < report["prompt_tokens"]["call1_mean"]

    # every labeled sample carries its local signals; plain Q&A tagged with a tool action is
    # flagged, an agentic sample with tool messages is not
    text = (out / "labeled_candidate.jsonl").read_text("utf-8")
    labeled = [json.loads(line) for line in text.splitlines()]
    assert len(labeled) == 108
    for record in labeled:
        signals = record["labeling_monitor"]["signals"]
        warned = any(
            "no tool calls or tool messages" in w
            for w in record["labeling_monitor"]["consistency_warnings"]
        )
        assert warned == (signals["tool_messages"] == 0 and signals["tool_calls"] == 0)
    assert any(r["labeling_monitor"]["signals"]["tool_messages"] for r in labeled)
