"""``sftlabel compare RUN --gold GOLD``: confidence calibration of taxonomy runs against gold,
checked against hand-computed figures, on the two baselines, at 80 columns and with hostile
values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sftlabel.errors import InputError
from sftlabel.reports._agreement import CalibrationAccumulator
from sftlabel.reports._compare_render import render_html, render_markdown
from sftlabel.reports.compare import compare_runs

from .conftest import shared

DIMS = ["intent", "language", "domain", "task", "difficulty", "concept", "agentic"]
DIMS += ["constraint", "context"]


def _record(sid: str, intent: str, language: list[str], confidence: dict[str, Any]) -> dict:
    return {
        "id": sid,
        "conversations": [{"from": "human", "value": f"q {sid}"}, {"from": "gpt", "value": "a"}],
        "labels": {
            "intent": intent,
            "language": language,
            "domain": [],
            "task": [],
            "difficulty": "intermediate",
            "concept": [],
            "agentic": [],
            "constraint": [],
            "context": "snippet",
            "confidence": confidence,
            "unmapped": [],
        },
    }


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records, ensure_ascii=False), "utf-8")
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Four samples. intent: confidences .95 (agrees), .95 (wrong), .75 (agrees), .55 (wrong).
    language (multi): s1 same set in another order (agrees), s2 both empty (agrees), s3 a subset
    (wrong), s4 no confidence."""
    run = [
        _record("s1", "debug", ["python", "sql"], {"intent": 0.95, "language": 0.9}),
        _record("s2", "build", [], {"intent": 0.95, "language": 0.8}),
        _record("s3", "learn", ["python"], {"intent": 0.75, "language": 0.99}),
        _record("s4", "review", ["go"], {"intent": 0.55}),
    ]
    gold = [
        _record("s4", "decide", ["go"], {}),
        _record("s3", "learn", ["python", "shell"], {}),
        _record("s2", "debug", [], {}),
        _record("s1", "debug", ["sql", "python"], {}),
        _record("s9", "debug", [], {}),  # only in gold
    ]
    other = [_record(r["id"], r["labels"]["intent"], [], {}) for r in run]
    return (
        _write(tmp_path / "labeled_run.json", run),
        _write(tmp_path / "labeled_gold.json", gold),
        _write(tmp_path / "labeled_other.json", other),
    )


def test_hand_computed_reliability_ece_and_thresholds(tiny: tuple[Path, Path, Path]) -> None:
    run, gold, _ = tiny
    result = compare_runs([run], gold=gold)
    assert result.reference == "gold"
    (cal,) = result.confidence_calibration
    assert (cal.run, cal.gold, cal.paired, cal.catch) == ("run", "gold", 4, 0.8)
    intent = next(d for d in cal.dimensions if d.name == "intent")
    assert (intent.samples, intent.errors, intent.without_confidence) == (4, 2, 0)
    assert intent.agreement == pytest.approx(0.5)
    assert intent.mean_confidence == pytest.approx(0.8)
    used = [
        (b.lower, b.count, b.mean_confidence, b.agreement, b.gap) for b in intent.bins if b.count
    ]
    assert used == [
        (0.5, 1, pytest.approx(0.55), 0.0, pytest.approx(0.55)),
        (0.7, 1, pytest.approx(0.75), 1.0, pytest.approx(-0.25)),
        (0.9, 2, pytest.approx(0.95), 0.5, pytest.approx(0.45)),
    ]
    # ECE = (1·0.55 + 1·0.25 + 2·0.45) / 4; Brier = (0.05² + 0.95² + 0.25² + 0.55²) / 4
    assert intent.ece == pytest.approx(0.425)
    assert intent.brier == pytest.approx(0.3175)
    # the .55 error is below 0.56 (cost 25%, half the errors); all of them below 0.96
    assert intent.recommended is not None
    assert intent.recommended.threshold == 0.96
    assert (intent.recommended.below, intent.recommended.errors_caught) == (4, 2)
    points = {p.threshold: p for p in intent.thresholds}
    assert (points[0.6].below, points[0.6].cost, points[0.6].caught) == (1, 0.25, 0.5)
    assert (points[0.95].below, points[0.95].errors_caught) == (2, 1)
    language = next(d for d in cal.dimensions if d.name == "language")
    assert (language.samples, language.errors, language.without_confidence) == (3, 1, 1)
    assert language.recommended is not None and language.recommended.threshold == 1.0
    half = compare_runs([run], gold=gold, catch=0.5).confidence_calibration[0]
    assert half.dimensions[0].recommended is not None
    assert half.dimensions[0].recommended.threshold == 0.56


def test_gold_not_the_reference_gives_the_same_figures(tiny: tuple[Path, Path, Path]) -> None:
    run, gold, other = tiny
    direct = compare_runs([run], gold=gold).confidence_calibration[0]
    result = compare_runs([run, other], gold=gold, reference="other")
    assert result.reference == "other"
    assert [p.b for p in result.comparisons] == ["other", "other"]  # run and gold vs other
    calibrated = {c.run: c for c in result.confidence_calibration}
    assert set(calibrated) == {"run", "other"}
    assert calibrated["run"] == direct


def test_accumulator_counts_equal_single_adds() -> None:
    one, many = CalibrationAccumulator(), CalibrationAccumulator()
    for p, outcome in [(0.9, 1), (0.9, 0), (0.9, 1), (0.2, 0)]:
        one.add(p, outcome)
    many.add_counts(0.9, 3, 2)
    many.add_counts(0.2, 1, 0)
    assert (many.n, many.ece(), many.table()) == (one.n, one.ece(), one.table())
    assert many.brier() == pytest.approx(one.brier())


def test_missing_gold_is_an_input_error(tiny: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run, _, _ = tiny
    with pytest.raises(InputError, match="no such file"):
        compare_runs([run], gold=tmp_path / "nowhere.json")


def test_reports_and_json(cli, tiny: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run, gold, _ = tiny
    md, page = tmp_path / "r.md", tmp_path / "r.html"
    result = cli("compare", run, "--gold", gold, "-o", md, "-o", page, "--catch", "0.5")
    assert result.exit_code == 0, result.stderr
    assert "confidence calibration: run against gold gold" in result.stdout
    assert "0.56*" in result.stdout
    text = md.read_text("utf-8")
    assert "**reliability: confidence bins**" in text
    assert "| intent | 0.9–1.0 | 2 | 0.950 | 50.0% | 0.450 |" in text
    html = page.read_text("utf-8")
    assert "reliability: run confidence vs agreement with gold" in html
    assert "<script src=" not in html
    data = json.loads(cli("compare", run, "--gold", gold, "--json").stdout)
    (cal,) = data["confidence_calibration"]
    intent = cal["dimensions"][0]
    assert intent["name"] == "intent" and intent["ece"] == pytest.approx(0.425)
    assert intent["recommended"]["threshold"] == 0.96
    bad = cli("compare", run, "--gold", gold, "--catch", "0")
    assert bad.exit_code == 2


def test_hostile_values_are_inert(tmp_path: Path) -> None:
    name = "x[red]|<b>`\x1b[31m"
    hostile: list[Any] = ["0.9", "NaN", True, [0.5], {"a": 1}, None, 5.0, -1.0]
    run = [
        _record(f"s{i}", "debug", ["<script>alert(1)</script>|"], {"intent": c, "language": c})
        for i, c in enumerate(hostile)
    ]
    gold = [_record(f"s{i}", "debug", ["go"], {}) for i in range(len(hostile))]
    run_path = _write(tmp_path / f"labeled_{name}.json", run)
    gold_path = _write(tmp_path / "labeled_gold.json", gold)
    result = compare_runs([run_path], gold=gold_path)
    (cal,) = result.confidence_calibration
    intent = cal.dimensions[0]
    # only numbers count (clamped into [0, 1] for the bins); bools, strings, lists... do not
    assert (intent.samples, intent.without_confidence) == (2, 6)
    assert intent.ece is not None and 0.0 <= intent.ece <= 1.0
    assert [b.count for b in intent.bins if b.count] == [1, 1]
    html = render_html(result)
    assert "<b>" not in html and "\x1b" not in html
    markdown = render_markdown(result)
    assert "x\\[red\\]\\|&lt;b&gt;" in markdown
    assert "<b>" not in markdown


def test_baselines_at_80_columns(tmp_path: Path) -> None:
    deepseek = shared("baselines/labeled_deepseek_v4.json")
    sonnet = shared("baselines/labeled_sonnet_v4.json")
    env = {**os.environ, "COLUMNS": "80"}
    command = [sys.executable, "-m", "sftlabel", "compare", str(deepseek), "--gold", str(sonnet)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "confidence calibration: deepseek_v4 against gold sonnet_v4" in out
    assert "reliability: confidence bins" in out and "ECE" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    for dim in DIMS:
        assert f"  {dim} " in out
    # the figures of the JSON are the ones printed, in full
    result = compare_runs([deepseek], gold=sonnet)
    (cal,) = result.confidence_calibration
    assert cal.paired == 108
    for dim in cal.dimensions:
        assert dim.samples == 108 and dim.ece is not None
        assert f"{dim.ece:.3f}" in out
    intent = cal.dimensions[0]
    assert (intent.name, intent.errors) == ("intent", 1)


def test_soft_runs_against_a_gold_soft_output(tmp_path: Path) -> None:
    from .test_compare import _soft_file
    from .test_report import soft_output

    gold = soft_output(tmp_path / "LABELED_gold")  # a strong model's output: its hard labels
    rows = [("c0", "m0", 0, 0.1), ("c0", "m1", 1, 0.9), ("c9", "m39", 1, 0.8), ("x", "y", 1, 0.5)]
    a = _soft_file(tmp_path / "a.jsonl", rows)
    b = _soft_file(tmp_path / "b.jsonl", rows[:1])
    result = compare_runs([a, b], gold=gold)
    first = result.gold[0]
    assert (first.run, first.gold, first.paired, first.unpaired.a_only) == (
        "a",
        "LABELED_gold",
        3,
        1,
    )
    assert first.hard_agreement == pytest.approx(2 / 3)
    assert first.calibration.turns == 3
