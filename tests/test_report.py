"""``sftlabel report``: dashboards and report.md from a run's records (taxonomy and soft labels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sftlabel.model import TurnLabel
from sftlabel.reports import analyse_unmapped, build_report, open_run
from sftlabel.taxonomy import load_taxonomy

from .conftest import write_jsonl

BASELINES = Path("../shared/data/baselines")
SONNET = BASELINES / "labeled_sonnet_v4.json"
DEEPSEEK = BASELINES / "labeled_deepseek_v4.json"

DIMS = ("intent", "language", "domain", "task", "difficulty", "concept", "agentic", "constraint")


def baseline(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


def labeled(
    n: int,
    *,
    prefix: str = "s",
    intent: str = "build",
    confidence: float = 0.9,
    unmapped: list[Any] | None = None,
    calls: int = 2,
) -> list[dict[str, Any]]:
    """``n`` records of a label run's labeled.jsonl."""
    return [
        {
            "id": f"{prefix}{i}",
            "source_id": f"{prefix}{i}",
            "source_format": "sharegpt",
            "turn_index": 1,
            "total_turns": 1,
            "index": i,
            "messages": [
                {"role": "user", "content": f"question {prefix}{i} about python"},
                {"role": "assistant", "content": "answer"},
            ],
            "labels": {
                "intent": intent,
                "language": ["python"],
                "domain": ["web-backend"],
                "task": ["feature-implementation"],
                "difficulty": "beginner" if i % 2 else "advanced",
                "concept": [],
                "agentic": [],
                "constraint": [],
                "context": "snippet",
                "confidence": dict.fromkeys((*DIMS, "context"), confidence),
                "unmapped": unmapped or [],
            },
            "labeling_monitor": {
                "llm_calls": calls,
                "arbitrated": False,
                "prompt_tokens": 1000,
                "completion_tokens": 100,
                "cost": 0.001,
            },
        }
        for i in range(n)
    ]


def failure(sample_id: str, reason: str) -> dict[str, Any]:
    return {"id": sample_id, "index": 99, "reason": reason, "error": "boom", "sample": {}}


def run_dir(root: Path, *, threshold: float = 0.65, parts: bool = True) -> Path:
    """A directory run with two parts (one with failures) and a run.json, no stats.json."""
    root.mkdir(parents=True)
    manifest = {
        "created": "2026-11-22T10:00:00+00:00",
        "inputs": ["data/"],
        "endpoint": "http://127.0.0.1/v1",
        "options": {"model": "test-model", "confidence_threshold": threshold},
        "taxonomy": {"name": "x", "version": "1", "path": "/nonexistent", "hash": "0"},
        "sessions": [{"started": "x", "elapsed": 10.0, "requests": 40, "cost": 0.04}],
    }
    (root / "run.json").write_text(json.dumps(manifest))
    if not parts:
        write_jsonl(root / "labeled.jsonl", labeled(10))
        return root
    for name in ("train/a", "train/b"):
        (root / name).mkdir(parents=True)
    write_jsonl(root / "train/a/labeled.jsonl", labeled(12, prefix="a", confidence=0.5))
    write_jsonl(root / "train/b/labeled.jsonl", labeled(6, prefix="b", intent="debug"))
    write_jsonl(
        root / "train/b/failures.jsonl",
        [failure("b9", "rejected"), failure("b10", "rejected"), failure("b11", "no-json")],
    )
    return root


def test_baseline_file_report_goes_to_o(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli("report", baseline(DEEPSEEK), "-o", out)
    assert result.exit_code == 0, result.stderr
    page = (out / "dashboard.html").read_text("utf-8")
    assert "<script src=" not in page and "Plotly.newPlot" in page
    assert page.count("Plotly.newPlot") >= 15
    for heading in ("Tag distributions", "Confidence", "Intent × difficulty", "Taxonomy coverage"):
        assert heading in page
    assert "gen-0000" not in page  # aggregates only: no per-sample data in the page
    report = (out / "report.md").read_text("utf-8")
    for heading in ("## Overview", "## Confidence", "## Top tags", "## Unmapped", "## Examples"):
        assert heading in report
    assert "| samples | 108 |" in report
    assert "| tokens | 1,302,588 |" in report  # from stats_deepseek_v4.json: records have none
    assert "Model `deepseek" in report
    assert "`gen-0000`" in report  # an example with its id and query
    assert f"wrote {out / 'dashboard.html'}" in result.stderr
    assert not (BASELINES / "dashboard.html").exists()


def test_a_bare_file_defaults_to_a_folder_in_the_current_directory(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = baseline(SONNET).resolve()
    monkeypatch.chdir(tmp_path)
    result = cli("report", source)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "sonnet_v4_report" / "dashboard.html").exists()
    assert (tmp_path / "sonnet_v4_report" / "report.md").exists()


def test_unmapped_on_the_sonnet_baseline(cli, tmp_path: Path) -> None:
    result = cli("report", baseline(SONNET), "-o", tmp_path, "--unmapped")
    assert result.exit_code == 0, result.stderr
    assert "distributed-systems" in result.stdout and "alias of architecture" not in result.stdout
    assert "ignore" in result.stdout
    findings = json.loads((tmp_path / "unmapped.json").read_text("utf-8"))
    by_value = {(f["dimension"], f["value"]): f for f in findings}
    assert len(findings) == 33
    top = findings[0]
    assert (top["value"], top["count"], len(top["examples"])) == ("distributed-systems", 2, 2)
    assert top["share"] == pytest.approx(2 / 108, abs=1e-6)
    # a value the taxonomy already knows as an alias, one asked in the wrong dimension
    assert by_value[("", "distributed-systems")]["target"] == "concept:architecture"
    wrong = by_value[("concept", "observable")]
    assert (wrong["recommendation"], wrong["target"]) == ("ignore", "constraint:observable")
    assert by_value[("language", "csv")]["reason"].startswith("rare")
    report = (tmp_path / "report.md").read_text("utf-8")
    assert "| concept | observable | 1 | 0.93% | ignore |" in report


def test_unmapped_recommendations(tmp_path: Path) -> None:
    records = [
        *labeled(40, prefix="q", unmapped=[{"dimension": "domain", "value": "quantum-computing"}]),
        *labeled(2, prefix="h", unmapped=[{"dimension": "task", "value": "helm-deployment"}]),
        *labeled(1, prefix="j", unmapped=["language:javascrpt"]),
        *labeled(1, prefix="r", unmapped=[{"dimension": "concept", "value": "rare-thing"}]),
        *labeled(1000, prefix="n"),
    ]
    path = write_jsonl(tmp_path / "labeled.jsonl", records)
    result = build_report(path, tmp_path / "out")
    assert result.taxonomy is not None
    found = {(f.dimension, f.value): f for f in result.unmapped}
    add = found[("domain", "quantum-computing")]
    assert (add.action, add.count, add.share) == ("add", 40, pytest.approx(40 / 1044))
    assert len(add.examples) == 2 and add.examples[0].startswith("question q0")
    assert (
        found[("task", "helm-deployment")].action,
        found[("task", "helm-deployment")].target,
    ) == (
        "alias",
        "deployment",
    )
    spelled = found[("language", "javascrpt")]
    assert (spelled.action, spelled.target) == ("alias", "javascript")
    assert "ratio 0.95" in spelled.reason
    assert found[("concept", "rare-thing")].action == "ignore"
    # the library entry point gives the same answers from the summary
    again = analyse_unmapped(result.taxonomy, load_taxonomy(), limit=1)
    assert [(f.value, f.action) for f in again] == [("quantum-computing", "add")]


def test_directory_run_gets_part_dashboards_and_the_run_threshold(cli, tmp_path: Path) -> None:
    run = run_dir(tmp_path / "run", threshold=0.6)
    result = cli("report", run)
    assert result.exit_code == 0, result.stderr
    for part in ("train/a", "train/b"):
        page = (run / part / "dashboard.html").read_text("utf-8")
        assert f"sftlabel report: run: {part}" in page
    page = (run / "dashboard.html").read_text("utf-8")
    assert "(all files)" in page and "failures by reason (3)" in page
    report = (run / "report.md").read_text("utf-8")
    assert "| samples | 21 |" in report and "| failed | 3 |" in report
    assert "| train/b | 6 | 3 | 66.7% |" in report
    assert "| rejected | 2 |" in report
    assert "Threshold 0.6." in report
    assert "| intent | 0.633 | 0.50 | 12 | 66.7% |" in report  # 12 of 18 at 0.5 < 0.6
    assert "Low success: 85.7%" in report and "Weak dimension intent" in report
    assert "Low success: 85.7%" in result.stderr
    assert "| elapsed | 10.0 s |" in report and "| cost | $0.0400 |" in report
    # an explicit threshold wins over the run's
    cli("report", run, "--threshold", "0.4")
    assert "Threshold 0.4." in (run / "report.md").read_text("utf-8")


def test_labeled_file_inside_a_run_dir_writes_there(cli, tmp_path: Path) -> None:
    run = run_dir(tmp_path / "run", parts=False)
    result = cli("report", run / "labeled.jsonl")
    assert result.exit_code == 0, result.stderr
    assert (run / "dashboard.html").exists() and (run / "report.md").exists()
    report = (run / "report.md").read_text("utf-8")
    assert "| calls / sample | 2.00 |" in report


def test_many_calls_per_sample_is_an_observation(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "labeled.jsonl", labeled(5, calls=4))
    result = build_report(path, tmp_path / "out")
    assert any(note.startswith("Many calls per sample: 4.00") for note in result.observations)


def soft_output(root: Path) -> Path:
    """A LABELED_ folder: two splits, censored and resolved turns, one failed turn."""
    turns = []
    for i in range(40):
        soft = i / 40
        turns.append(
            TurnLabel(
                conversationId=f"c{i // 4}",
                messageId=f"m{i}",
                split="train" if i < 30 else "val",
                bucket="short",
                hard_label=int(soft >= 0.5),
                soft_label=soft,
                rationale="needs no reasoning" if soft >= 0.5 else "multi-step derivation",
                p0=1 - soft,
                p1=soft,
                token=str(int(soft >= 0.5)),
                method="censored" if i % 10 == 0 else "top_logprobs",
                censored=["0"] if i % 10 == 0 else [],
                strategy="logprobs",
                model="soft-model",
                index=i,
                monitor={"llm_calls": 1, "prompt_tokens": 50, "completion_tokens": 1},
            )
        )
    turns.append(
        TurnLabel(
            conversationId="c99", messageId="m99", split="val", bucket="short",
            error="400 too long", reason="rejected", index=40,
        )
    )  # fmt: skip
    for split in ("train", "val"):
        (root / split).mkdir(parents=True, exist_ok=True)
        lines = b"".join(msgspec.json.encode(t) + b"\n" for t in turns if t.split == split)
        (root / split / "short.jsonl").write_bytes(lines)
    (root / "labeling_metadata.json").write_text(json.dumps({"model": "soft-model"}))
    return root


def test_soft_label_output(cli, tmp_path: Path) -> None:
    out = soft_output(tmp_path / "LABELED_demo")
    result = cli("report", out)
    assert result.exit_code == 0, result.stderr
    page = (out / "dashboard.html").read_text("utf-8")
    for title in ("soft-label histogram", "share of hard label 1 by split", "self-consistency"):
        assert title in page
    assert "calibration gap" not in page  # soft vs its own hard label is not calibration
    assert "label tokens missing from top_logprobs (4 turns)" in page
    report = (out / "report.md").read_text("utf-8")
    assert "| turns | 41 |" in report and "| failed | 1 |" in report
    assert "| train | short | 30 | 0 | 33.3% |" in report
    assert "| val | short | 10 | 1 | 100.0% |" in report
    assert "| '0' missing | 4 |" in report and "| method censored | 4 |" in report
    assert "| rejected | 1 |" in report
    assert "| 0.9–1.0 | 4 | 0.938 | 100.0% |" in report
    assert "Model `soft-model`" in report
    assert "- Failed turns: 2.4% (threshold 2%); rejected 1." in report
    # open_run sees it again as a soft run: the report files are not mistaken for data
    assert open_run(out).kind == "soft"
    assert cli("report", out).exit_code == 0


def test_open_opens_the_dashboard(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    run = run_dir(tmp_path / "run", parts=False)
    assert cli("report", run, "--open").exit_code == 0
    assert opened == [(run / "dashboard.html").resolve().as_uri()]


def test_errors_are_one_line(cli, tmp_path: Path) -> None:
    result = cli("report", tmp_path / "missing")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "no such file" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "file").write_text("x")
    result = cli("report", run_dir(tmp_path / "run", parts=False), "-o", tmp_path / "file")
    assert result.exit_code == 2 and "is a file" in result.stderr


def test_soft_hard_label_disagreement_is_an_observation(tmp_path: Path) -> None:
    turns = [
        TurnLabel(
            conversationId="c", messageId=f"m{i}", split="train", bucket="short",
            hard_label=1, soft_label=0.2 if i < 3 else 0.9, method="top_logprobs",
        )
        for i in range(10)
    ]  # fmt: skip
    path = tmp_path / "short.jsonl"
    path.write_bytes(b"".join(msgspec.json.encode(t) + b"\n" for t in turns))
    result = build_report(path, tmp_path / "out")
    assert result.soft is not None and result.soft.disagree == 3
    assert any("disagree on 30.0% of the turns" in note for note in result.observations)
    assert any(note.startswith("Lopsided hard labels: 100.0%") for note in result.observations)


def test_parts_share_one_plotly_and_the_global_page_links_and_compares_them(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    for name, intent in (("train/x", "build"), ("train/y", "build"), ("test/x", "debug")):
        (run / name).mkdir(parents=True)
        write_jsonl(run / name / "labeled.jsonl", labeled(8, prefix=name[-1], intent=intent))
    result = build_report(run)
    shared = run / "plotly.min.js"
    assert shared in result.written and "sftlabelTemplate" in shared.read_text("utf-8")
    part = (run / "train/x/dashboard.html").read_text("utf-8")
    assert "src='../../plotly.min.js'" in part and len(part) < 100_000  # not 4.8 MB each
    page = (run / "dashboard.html").read_text("utf-8")
    assert "src='plotly.min.js'" in page
    for name in ("train/x", "train/y", "test/x"):
        assert f"href='{name}/dashboard.html'" in page
    assert "Split vs split drift" in page and "test vs train" in page
    report = (run / "report.md").read_text("utf-8")
    # intent: test is all debug, train all build -> distance 1
    assert "| test vs train | 1.00 |" in report
    # an unchanged page is not written again (a no-op resume stays cheap)
    before = (run / "train/x/dashboard.html").stat().st_mtime_ns
    build_report(run)
    assert (run / "train/x/dashboard.html").stat().st_mtime_ns == before


def test_single_file_dashboard_embeds_plotly_and_shows_the_none_share(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "labeled.jsonl", labeled(4))
    build_report(path, tmp_path / "out")
    page = (tmp_path / "out" / "dashboard.html").read_text("utf-8")
    assert "<script type='text/javascript' src=" not in page and len(page) > 4_000_000
    # concept/agentic/constraint are empty lists in every record
    assert "concept: 0 of 25 tags used; (none) 100.0%" in page
    report = (tmp_path / "out" / "report.md").read_text("utf-8")
    assert "(none) 100%" in report


def test_a_big_run_read_by_several_processes_gives_the_same_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spans of the files counted by worker processes and merged in order: the same counts and
    the same examples (ties of confidence and records without ids included) as one process."""
    from sftlabel.reports import _scan

    monkeypatch.setattr(_scan, "SPAN_BYTES", 4096)
    monkeypatch.setattr(_scan, "PARALLEL_BYTES", 0)
    root = run_dir(tmp_path / "run")
    records = labeled(300, prefix="c", confidence=0.7, unmapped=["intent:novel-thing"])
    for i, record in enumerate(records):
        record["labels"]["confidence"]["intent"] = [0.3, 0.7, 0.3, 0.9][i % 4]
        record["labels"]["difficulty"] = ["beginner", "advanced", "expert"][i % 3]
        if i % 7 == 0:
            del record["id"]  # known by its place in the run
    write_jsonl(root / "train/a/labeled.jsonl", records)
    one = build_report(root, tmp_path / "one", jobs=1, unmapped_json=True)
    two = build_report(root, tmp_path / "two", jobs=2, unmapped_json=True)
    assert one.taxonomy is not None and two.taxonomy is not None
    assert one.taxonomy.samples == two.taxonomy.samples == 306
    assert [(e.id, e.min_confidence) for e in two.taxonomy.examples] == [
        (e.id, e.min_confidence) for e in one.taxonomy.examples
    ]
    assert any(e.min_confidence == 0.3 for e in one.taxonomy.examples)
    for name in ("report.md", "unmapped.json", "dashboard.html", "train/a/dashboard.html"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
