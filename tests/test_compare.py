"""``sftlabel compare``: agreement statistics checked against hand-computed values, the two
baseline runs, soft-label runs and every output format."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sftlabel.errors import InputError, UsageError
from sftlabel.model import TurnLabel
from sftlabel.reports._agreement import (
    AlphaAccumulator,
    CalibrationAccumulator,
    cohen_kappa,
    jaccard,
    jaccard_pair_sum,
    krippendorff_alpha,
    ranks,
    spearman,
)
from sftlabel.reports._compare_render import render_html, render_markdown
from sftlabel.reports.compare import CompareResult, compare_runs, load_gold

from .conftest import shared, write_jsonl

DIMS = ["intent", "language", "domain", "task", "difficulty", "concept", "agentic"]
DIMS += ["constraint", "context"]


# --------------------------------------------------------------------------- fixtures


def _record(sid: str, intent: str, language: list[str], conf: float, **monitor: Any) -> dict:
    labels: dict[str, Any] = {
        "intent": intent,
        "language": language,
        "domain": [],
        "task": ["code-explanation"],
        "difficulty": "intermediate",
        "concept": [],
        "agentic": [],
        "constraint": [],
        "context": "snippet",
        "confidence": dict.fromkeys(DIMS, 0.9) | {"intent": conf},
        "unmapped": [],
    }
    return {
        "id": sid,
        "messages": [{"role": "user", "content": f"question {sid}"}],
        "labels": labels,
        "labeling_monitor": {"llm_calls": 2, **monitor},
    }


# run A: s1 only here; B: s7 only there and a different order. Paired: s2..s6.
A_ROWS = [
    ("s1", "review", ["java"], 0.1),
    ("s2", "build", ["python"], 0.9),
    ("s3", "build", ["python", "sql"], 0.8),
    ("s4", "learn", [], 0.7),
    ("s5", "debug", ["go"], 0.6),
    ("s6", "learn", ["rust"], 0.5),
]
B_ROWS = [
    ("s6", "build", ["rust", "c"], 1.0),
    ("s7", "decide", [], 1.0),
    ("s3", "learn", ["python"], 1.0),
    ("s2", "build", ["python"], 1.0),
    ("s5", "debug", ["c"], 1.0),
    ("s4", "learn", [], 1.0),
]


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    """A: a run directory with stats.json; B: a labeled.jsonl file whose monitors have the
    figures; C: agrees with A on every paired sample, lacks s1."""
    run_a = tmp_path / "run_a"
    run_a.mkdir()
    write_jsonl(run_a / "labeled.jsonl", [_record(*row) for row in A_ROWS])
    stats = {"total_llm_calls": 12, "total_tokens": 600, "cost_usd": 0.06, "model": "model-a"}
    (run_a / "stats.json").write_text(json.dumps(stats))
    monitor = {"prompt_tokens": 150, "completion_tokens": 50, "cost": 0.04, "elapsed": 2.0}
    b_file = tmp_path / "run_b" / "labeled.jsonl"
    b_file.parent.mkdir()
    write_jsonl(
        b_file,
        [
            _record(*row, **monitor) | {"labeling_monitor": {"llm_calls": 3, **monitor}}
            for row in B_ROWS
        ],
    )
    c_file = tmp_path / "labeled_c.jsonl"
    write_jsonl(c_file, [_record(*row) for row in A_ROWS[1:]])
    return {"a": run_a, "b": b_file, "c": c_file}


def _dim(result: CompareResult, name: str, pair: int = 0) -> Any:
    return next(d for d in result.comparisons[pair].dimensions if d.name == name)


# --------------------------------------------------------------------------- the statistics


def test_cohen_kappa_by_hand() -> None:
    # 3 of 5 agree; both marginals build 2, learn 2, debug 1: p_e = 9/25 -> kappa 0.375
    table = {("b", "b"): 1, ("b", "l"): 1, ("l", "l"): 1, ("d", "d"): 1, ("l", "b"): 1}
    assert cohen_kappa(table) == pytest.approx(0.375)
    assert cohen_kappa({("x", "x"): 4}) is None  # one value everywhere: 0/0
    assert cohen_kappa({}) is None
    assert cohen_kappa({("x", "x"): 2, ("y", "y"): 3}) == pytest.approx(1.0)


def test_krippendorff_alpha_reference_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units,
    # nominal alpha 0.743 (also what the `krippendorff` package gives: 0.7434210526315790).
    coders = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = [[c[u] for c in coders if c[u] is not None] for u in range(12)]
    assert krippendorff_alpha(units) == pytest.approx(0.7434210526315790, abs=1e-12)
    assert krippendorff_alpha([["a", "a"], ["a", "a"]]) is None  # no variation: undefined
    assert krippendorff_alpha([["a"], ["b"]]) is None  # nothing pairable


def test_jaccard_alpha_by_hand() -> None:
    py, sql, go, c, rust = "python", "sql", "go", "c", "rust"
    units = [
        [frozenset({py}), frozenset({py})],
        [frozenset({py, sql}), frozenset({py})],
        [frozenset(), frozenset()],
        [frozenset({go}), frozenset({c})],
        [frozenset({rust}), frozenset({rust, c})],
    ]
    # observed: 2·(0 + .5 + 0 + 1 + .5) = 4; Σ n_c n_k J = 23 of n² = 100 -> 1 − 9·4/77
    assert krippendorff_alpha(units, "jaccard") == pytest.approx(41 / 77)
    assert jaccard(frozenset(), frozenset()) == 1.0
    assert jaccard(frozenset({py}), frozenset()) == 0.0
    with pytest.raises(ValueError, match="unknown metric"):
        AlphaAccumulator("ordinal")


def test_jaccard_pair_sum_matches_brute_force() -> None:
    rng = random.Random(1)
    tags = [f"t{i}" for i in range(30)]
    for _ in range(40):
        counts: dict[frozenset[str], int] = {}
        for _ in range(rng.randint(1, 60)):
            size = rng.choice([0, 0, 1, 2, 3, 5, 13, 15])  # 13, 15: paired one by one
            counts[frozenset(rng.sample(tags, size))] = rng.randint(1, 5)
        brute = sum(n * m * jaccard(a, b) for a, n in counts.items() for b, m in counts.items())
        assert jaccard_pair_sum(counts) == pytest.approx(brute, rel=1e-9)


def test_ranks_spearman_and_calibration() -> None:
    assert ranks([0.5, 0.1, 0.5, 0.9]) == [2.5, 1.0, 2.5, 4.0]
    assert spearman([0.9, 0.2, 0.7, 0.4], [0.8, 0.1, 0.3, 0.45]) == pytest.approx(0.8)
    acc = CalibrationAccumulator()
    for p, y in [(0.9, 1), (0.2, 0), (0.7, 0), (0.4, 0), (1.0, 1)]:
        acc.add(p, y)
    assert acc.brier() == pytest.approx((0.01 + 0.04 + 0.49 + 0.16 + 0) / 5)
    assert acc.ece() == pytest.approx((0.1 + 0.2 + 0.7 + 0.4 + 0.0) / 5)
    table = acc.table()
    assert len(table) == 10 and table[9].count == 2  # 1.0 falls in the last bin
    assert CalibrationAccumulator().brier() is None


# --------------------------------------------------------------------------- taxonomy runs


def test_two_runs_by_hand(runs: dict[str, Path]) -> None:
    result = compare_runs([runs["a"], runs["b"]])
    assert result.kind == "taxonomy" and result.reference == "run_b"
    pair = result.comparisons[0]
    assert (pair.a, pair.b, pair.paired) == ("run_a", "run_b", 5)
    assert (pair.unpaired.a_only, pair.unpaired.b_only) == (1, 1)
    assert pair.unpaired.a_only_examples == ["s1"] and pair.unpaired.b_only_examples == ["s7"]

    intent = _dim(result, "intent")
    assert intent.select == "single"
    assert intent.exact == pytest.approx(0.6)
    assert intent.kappa == pytest.approx(0.375)
    assert intent.partial is None and intent.jaccard is None
    assert intent.confidence_a == pytest.approx(0.7)  # s2..s6 only: s1's 0.1 is unpaired
    assert intent.confidence_b == pytest.approx(1.0)
    assert {(d.a, d.b, d.count, tuple(d.examples)) for d in intent.disagreements} == {
        ("build", "learn", 1, ("s3",)),
        ("learn", "build", 1, ("s6",)),
    }
    assert intent.confusion == {
        "build": {"build": 1, "learn": 1},
        "learn": {"learn": 1, "build": 1},
        "debug": {"debug": 1},
    }

    language = _dim(result, "language")
    assert language.select == "multi" and language.kappa is None
    assert language.exact == pytest.approx(0.4)
    assert language.partial == pytest.approx(0.8)  # s2, s3, s4 (both empty), s6
    assert language.jaccard == pytest.approx(0.6)  # (1 + .5 + 1 + 0 + .5) / 5
    tags = {t.tag: t for t in language.tags}
    assert (tags["python"].precision, tags["python"].recall, tags["python"].f1) == (1, 1, 1)
    assert (tags["sql"].precision, tags["sql"].recall, tags["sql"].f1) == (0, None, 0)
    assert (tags["c"].support, tags["c"].predicted, tags["c"].recall) == (2, 0, 0)
    assert tags["rust"].f1 == 1.0
    assert language.micro_precision == pytest.approx(0.6)
    assert language.micro_recall == pytest.approx(0.6)
    assert language.macro_f1 == pytest.approx(0.4)

    difficulty = _dim(result, "difficulty")
    assert difficulty.exact == 1.0 and difficulty.kappa is None  # one value everywhere
    assert _dim(result, "domain").jaccard == 1.0  # both empty everywhere: agreement

    assert pair.all_dimensions_exact == pytest.approx(0.4)  # s2 and s4
    assert pair.mean_dimension_exact == pytest.approx((0.6 + 0.4 + 7) / 9)
    alpha = {a.dimension: a for a in result.alpha}
    assert alpha["intent"].alpha == pytest.approx(28 / 64)
    assert alpha["language"].alpha == pytest.approx(41 / 77)
    assert alpha["language"].distance == "jaccard" and alpha["intent"].units == 5
    assert result.matrices == []  # only with three runs or more


def test_resources_and_ratios(runs: dict[str, Path]) -> None:
    result = compare_runs([runs["a"], runs["b"]])
    a, b = result.runs
    assert a.model == "model-a"
    assert (a.resources.source, a.resources.calls, a.resources.tokens) == ("stats", 12, 600)
    assert (b.resources.source, b.resources.calls, b.resources.tokens) == ("monitors", 18, 1200)
    assert b.resources.cost_usd == pytest.approx(0.24)
    assert b.resources.latency_mean == pytest.approx(2.0)
    ratios = {r.metric: r for r in result.comparisons[0].resources}
    assert ratios["calls per sample"].ratio == pytest.approx(2 / 3)
    assert ratios["tokens per sample"].ratio == pytest.approx(0.5)
    assert ratios["cost per sample (USD)"].ratio == pytest.approx(0.25)
    assert ratios["latency per sample (s)"].ratio is None  # A has no latency


def test_reference_by_name_and_path(runs: dict[str, Path]) -> None:
    by_name = compare_runs([runs["a"], runs["b"]], reference="run_a")
    assert by_name.reference == "run_a"
    assert by_name.comparisons[0].a == "run_b"
    # the precision of B against A is A's recall against B
    tags = {t.tag: t for t in _dim(by_name, "language").tags}
    assert tags["c"].precision == 0 and tags["sql"].recall == 0
    by_path = compare_runs([runs["b"]], reference=str(runs["a"]))
    assert [r.name for r in by_path.runs] == ["run_b", "run_a"]
    assert by_path.reference == "run_a"
    # alpha of two runs (from the comparison's pair counts) does not depend on the reference
    alpha = {a.dimension: a.alpha for a in by_name.alpha}
    assert alpha["intent"] == pytest.approx(28 / 64)
    assert alpha["language"] == pytest.approx(41 / 77)
    with pytest.raises(UsageError, match="neither the name of a run nor a path"):
        compare_runs([runs["a"], runs["b"]], reference="nope")
    with pytest.raises(UsageError, match="two runs or more"):
        compare_runs([runs["a"]])


def test_three_runs_matrix_and_alpha(runs: dict[str, Path]) -> None:
    result = compare_runs([runs["a"], runs["b"], runs["c"]])
    assert result.reference == "run_b"
    assert [(p.a, p.b) for p in result.comparisons] == [("run_a", "run_b"), ("c", "run_b")]
    matrix = {m.metric: m for m in result.matrices}["all_dimensions_exact"]
    assert matrix.runs == ["run_a", "run_b", "c"]
    assert matrix.values[0] == pytest.approx([1.0, 0.4, 1.0])
    assert matrix.values[2] == pytest.approx([1.0, 0.4, 1.0])
    assert matrix.values[1][2] == pytest.approx(0.4)
    alpha = {a.dimension: a for a in result.alpha}
    # units s2..s6 with three values; s1 and s7 have one and do not count. By hand:
    # disagreement 2 + 2 in s3 and s6; n = 15, n_build = n_learn = 6, n_debug = 3:
    # alpha = 1 − 14·4 / (225 − 81)
    assert alpha["intent"].units == 5
    assert alpha["intent"].alpha == pytest.approx(1 - 56 / 144)


def test_identical_runs_agree_completely(tmp_path: Path) -> None:
    baseline = shared("baselines/labeled_sonnet_v4.json")
    copy = tmp_path / "labeled_copy.json"
    shutil.copy(baseline, copy)
    shutil.copy(shared("baselines/stats_sonnet_v4.json"), tmp_path / "stats_copy.json")
    result = compare_runs([baseline, copy])
    pair = result.comparisons[0]
    assert pair.paired == 108 and pair.all_dimensions_exact == 1.0
    for dim in pair.dimensions:
        assert dim.exact == 1.0
        if dim.select == "single":
            assert dim.kappa == 1.0
        else:
            assert dim.jaccard == 1.0 and dim.partial == 1.0
        assert dim.micro_f1 == 1.0 and not dim.disagreements
    assert all(a.alpha == 1.0 for a in result.alpha)
    assert all(r.ratio == 1.0 for r in pair.resources)


def test_baselines(tmp_path: Path) -> None:
    deepseek = shared("baselines/labeled_deepseek_v4.json")
    sonnet = shared("baselines/labeled_sonnet_v4.json")
    result = compare_runs([deepseek, sonnet])
    pair = result.comparisons[0]
    assert [r.name for r in result.runs] == ["deepseek_v4", "sonnet_v4"]
    assert [r.model for r in result.runs] == ["deepseek-v3.2", "claude-sonnet-4-6"]
    assert pair.paired == 108 and pair.unpaired.a_only == pair.unpaired.b_only == 0
    assert pair.all_dimensions_exact == pytest.approx(13 / 108)
    intent, difficulty, context = (_dim(result, d) for d in ("intent", "difficulty", "context"))
    assert intent.exact == pytest.approx(107 / 108)
    # Cohen's kappa, computed independently from the two files (p_o − p_e) / (1 − p_e)
    assert intent.kappa == pytest.approx(0.9858379228953579)
    assert difficulty.kappa == pytest.approx(0.7277580071174377)
    assert context.kappa == pytest.approx(0.6065804935370153)
    # Krippendorff's alpha: nominal values as the `krippendorff` package gives them; Jaccard
    # values from a brute-force O(n²) computation of D_o / D_e
    alpha = {a.dimension: a.alpha for a in result.alpha}
    assert alpha["intent"] == pytest.approx(0.9859025637663104)
    assert alpha["difficulty"] == pytest.approx(0.7276655986886222)
    assert alpha["language"] == pytest.approx(0.8501014205674774)
    assert alpha["constraint"] == pytest.approx(0.428238620370039)
    top = _dim(result, "difficulty").disagreements[0]
    assert (top.a, top.b, top.count) == ("intermediate", "advanced", 10)
    ratios = {r.metric: r.ratio for r in pair.resources}
    assert ratios["calls per sample"] == pytest.approx(216 / 219)
    assert ratios["prompt tokens per sample"] == pytest.approx(1280859 / 1527381)
    assert ratios["wall seconds per sample"] == pytest.approx(521.7 / 357.2)
    # the confidence means are those of stats.json (all 108 samples are paired)
    stats = json.loads(shared("baselines/stats_deepseek_v4.json").read_text())
    for dim in pair.dimensions:
        assert dim.confidence_a == pytest.approx(
            stats["confidence_stats"][dim.name]["mean"], abs=6e-4
        )


def test_duplicate_ids_and_failures_are_counted(tmp_path: Path) -> None:
    run = tmp_path / "dup"
    run.mkdir()
    write_jsonl(
        run / "labeled.jsonl", [_record(*A_ROWS[1]), _record(*A_ROWS[1]), _record(*A_ROWS[2])]
    )
    (run / "run.json").write_text("{}")
    write_jsonl(run / "failures.jsonl", [{"id": "s9", "index": 3, "reason": "rejected"}])
    other = write_jsonl(tmp_path / "labeled_other.jsonl", [_record(*A_ROWS[1])])
    result = compare_runs([run, other])
    info = result.runs[0]
    assert (info.records, info.duplicates, info.failed) == (2, 1, 1)
    assert result.comparisons[0].paired == 1


def test_mixed_kinds_and_gold_for_taxonomy_are_refused(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    soft = _soft_file(tmp_path / "soft.jsonl", SOFT_A)
    with pytest.raises(UsageError, match="cannot compare taxonomy labels with soft labels"):
        compare_runs([runs["a"], soft])
    with pytest.raises(UsageError, match="cannot compare taxonomy labels with soft labels"):
        compare_runs([runs["a"], runs["b"]], gold=soft)  # a taxonomy run's gold is a run


# --------------------------------------------------------------------------- soft labels

SOFT_A = [
    ("c1", "m1", 1, 0.9),
    ("c1", "m2", 0, 0.2),
    ("c2", "m1", 1, 0.7),
    ("c2", "m2", 0, 0.4),
    ("c3", "m1", None, None),  # failed
    ("c4", "m1", 1, 0.95),  # only in A
]
SOFT_B = [
    ("c3", "m1", 1, 0.6),  # failed in A: unpaired
    ("c2", "m2", 0, 0.45),
    ("c1", "m1", 1, 0.8),
    ("c2", "m1", 0, 0.3),
    ("c1", "m2", 0, 0.1),
]


def _soft_file(path: Path, rows: list[tuple[str, str, int | None, float | None]]) -> Path:
    lines = []
    for conversation, message, hard, soft in rows:
        if hard is None:
            record = TurnLabel(
                conversationId=conversation, messageId=message, split="train", bucket="b",
                error="400", reason="rejected", monitor={"llm_calls": 1},
            )  # fmt: skip
        else:
            record = TurnLabel(
                conversationId=conversation, messageId=message, split="train", bucket="b",
                hard_label=hard, soft_label=soft, rationale=None,
                monitor={"llm_calls": 1, "prompt_tokens": 100, "completion_tokens": 1},
            )  # fmt: skip
        lines.append(msgspec.json.encode(record) + b"\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines))
    return path


def test_soft_runs_by_hand(tmp_path: Path) -> None:
    _soft_file(tmp_path / "LABELED_a" / "train" / "b.jsonl", SOFT_A)
    (tmp_path / "LABELED_a" / "labeling_metadata.json").write_text('{"model": "soft-a"}')
    b = _soft_file(tmp_path / "soft_b.jsonl", SOFT_B)
    result = compare_runs([tmp_path / "LABELED_a", b])
    assert result.kind == "soft" and result.comparisons == []
    run_a, run_b = result.runs
    assert (run_a.name, run_a.model, run_a.records, run_a.failed) == ("LABELED_a", "soft-a", 5, 1)
    assert run_a.resources.calls == 6 and run_b.resources.tokens == 505
    pair = result.soft_comparisons[0]
    assert pair.paired == 4
    assert (pair.unpaired.a_only_examples, pair.unpaired.b_only_examples) == (["c4/m1"], ["c3/m1"])
    assert pair.hard_agreement == pytest.approx(0.75)
    assert pair.kappa == pytest.approx(0.5)  # p_e = (2·1 + 2·3) / 16
    assert pair.confusion == {"0": {"0": 2, "1": 0}, "1": {"0": 1, "1": 1}}
    assert [(d.a, d.b, d.count, d.examples) for d in pair.disagreements] == [
        ("1", "0", 1, ["c2/m1"])
    ]
    assert pair.pearson == pytest.approx(0.2225 / math.sqrt(0.29 * 0.261875))
    assert pair.spearman == pytest.approx(0.8)
    assert pair.mean_abs_difference == pytest.approx((0.1 + 0.1 + 0.4 + 0.05) / 4)
    assert pair.calibration.against == "soft_b"
    assert pair.calibration.brier == pytest.approx(0.7 / 4)
    assert pair.calibration.ece == pytest.approx(1.4 / 4)
    assert sum(map(sum, pair.soft_grid)) == 4 and pair.soft_grid[9][8] == 1
    assert [a.dimension for a in result.alpha] == ["hard_label"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".tsv"])
def test_soft_runs_against_gold(tmp_path: Path, suffix: str) -> None:
    rows = [("c1", "m1", 1), ("c1", "m2", 0), ("c2", "m1", 1), ("c2", "m2", 1), ("c9", "m9", 0)]
    gold = tmp_path / f"gold{suffix}"
    if suffix == ".jsonl":
        write_jsonl(
            gold, [{"conversationId": c, "messageId": m, "hard_label": h} for c, m, h in rows]
        )
    else:
        sep = "\t" if suffix == ".tsv" else ","
        lines = [sep.join(("conversationId", "messageId", "hard_label"))]
        lines += [sep.join((c, m, str(h))) for c, m, h in rows]
        gold.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    a = _soft_file(tmp_path / "a.jsonl", SOFT_A)
    b = _soft_file(tmp_path / "b.jsonl", SOFT_B)
    result = compare_runs([a, b], gold=gold)
    first = result.gold[0]
    assert (first.run, first.paired, first.unpaired.a_only, first.unpaired.b_only) == ("a", 4, 1, 1)
    assert first.hard_agreement == pytest.approx(0.75)
    assert first.kappa == pytest.approx(0.5)
    assert first.calibration.brier == pytest.approx(0.5 / 4)
    assert first.calibration.ece == pytest.approx(1.2 / 4)
    assert [g.run for g in result.gold] == ["a", "b"]


def test_bad_gold_file(tmp_path: Path) -> None:
    bad = tmp_path / "gold.csv"
    bad.write_text("conversationId,messageId,hard_label\nc1,m1,maybe\n")
    with pytest.raises(InputError, match=r"gold.csv:2: hard_label must be 0 or 1"):
        load_gold(bad)
    missing = tmp_path / "g.jsonl"
    write_jsonl(missing, [{"messageId": "m", "hard_label": 1}])
    with pytest.raises(InputError, match="without conversationId"):
        load_gold(missing)


# --------------------------------------------------------------------------- outputs and CLI


def test_cli_terminal_json_and_reports(cli, runs: dict[str, Path], tmp_path: Path) -> None:
    md, page = tmp_path / "report.md", tmp_path / "report.html"
    result = cli("compare", runs["a"], runs["b"], runs["c"], "-o", md, "-o", page)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "5 samples paired by id; 1 only in run_a, 1 only in run_b" in out
    assert "Only in run_a, e.g.: s1" in out and "Only in run_b, e.g.: s7" in out
    assert "agreement per dimension" in out and "Krippendorff's alpha" in out
    assert f"wrote {md}" in result.stderr
    text = md.read_text("utf-8")
    assert "## run_a vs run_b" in text and "per-tag precision" in text
    assert "| intent | single | 60.0% |" in text
    html = page.read_text("utf-8")
    assert html.startswith("<!DOCTYPE html>") and "Plotly.newPlot" in html
    assert "<script src=" not in html  # plotly.js is embedded

    as_json = cli("compare", runs["a"], runs["b"], "--json")
    data = json.loads(as_json.stdout)
    assert data["schema"] == "sftlabel.compare/1"
    assert set(data) == {
        "schema", "kind", "reference", "runs", "dimensions", "comparisons",
        "soft_comparisons", "matrices", "alpha", "gold", "confidence_calibration",
    }  # fmt: skip
    comparison = data["comparisons"][0]
    assert comparison["unpaired"]["a_only_examples"] == ["s1"]
    intent = comparison["dimensions"][0]
    assert intent["name"] == "intent" and intent["kappa"] == pytest.approx(0.375)


def test_cli_errors(cli, runs: dict[str, Path], tmp_path: Path) -> None:
    wrong = cli("compare", runs["a"], runs["b"], "-o", tmp_path / "report.pdf")
    assert wrong.exit_code == 2 and "unknown report format" in wrong.stderr
    missing = cli("compare", runs["a"], tmp_path / "nowhere")
    assert missing.exit_code == 1 and "no such file or directory" in missing.stderr
    one = cli("compare", runs["a"])
    assert one.exit_code == 2 and "two runs or more" in one.stderr


def test_reports_render_soft_and_gold(tmp_path: Path) -> None:
    a = _soft_file(tmp_path / "a.jsonl", SOFT_A)
    b = _soft_file(tmp_path / "b.jsonl", SOFT_B)
    c = _soft_file(tmp_path / "c.jsonl", SOFT_B)
    gold = write_jsonl(
        tmp_path / "gold.jsonl", [{"conversationId": "c1", "messageId": "m1", "hard_label": 1}]
    )
    result = compare_runs([a, b, c], gold=gold)
    assert {m.metric for m in result.matrices} == {"hard_agreement"}
    assert result.matrices[0].values[1][2] == 1.0
    text = render_markdown(result)
    assert "Brier score" in text and "against the gold labels (gold.jsonl)" in text
    html = render_html(result)
    assert html.count("Plotly.newPlot") >= 5


def test_baseline_html_renders(cli, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = cli(
        "compare",
        shared("baselines/labeled_deepseek_v4.json"),
        shared("baselines/labeled_sonnet_v4.json"),
        "-o",
        page,
    )
    assert result.exit_code == 0, result.stderr
    html = page.read_text("utf-8")
    # agreement + confidence bars, 3 confusion heat maps, 6 per-tag F1 charts
    assert html.count("Plotly.newPlot") == 11
    assert "context: deepseek_v4 (rows)" in html


def test_a_big_run_read_by_several_processes_gives_the_same_comparison(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spans of the runs read by worker processes (rows sent back as codes) and merged in
    record order: the same pairs, duplicates (across spans), ids by place for records without
    one, and odd values (a number for a tag, a dict in a tag list, confidences that are not
    numbers) as one process, and as the same records read from a JSON array."""
    from sftlabel.reports import _scan

    rng = random.Random(7)
    records = []
    for i in range(400):
        record = _record(
            f"s{i % 350}",  # ids 0..49 twice: the later copy is a duplicate
            rng.choice(["review", "build", "learn"]),
            rng.sample(["python", "sql", "go"], rng.randint(0, 2)),
            rng.choice([0.25, 0.5, 0.75]),
            cost=0.25,
            elapsed=0.5,
        )
        if i % 11 == 0:
            del record["id"]  # known by its place in the run
        if i % 13 == 0:
            record["labels"]["domain"] = [{"odd": 1}, "web"]
        if i % 17 == 0:
            record["labels"]["difficulty"] = 3
        if i % 19 == 0:
            record["labels"]["confidence"]["context"] = "high"
        if i % 23 == 0:
            record["labels"]["confidence"] = "n/a"
        records.append(record)
    run_a = write_jsonl(tmp_path / "labeled_a.jsonl", records)
    rng.shuffle(records)
    run_b = write_jsonl(tmp_path / "labeled_b.jsonl", records)
    as_array = tmp_path / "labeled_array.json"
    as_array.write_text(json.dumps(records))

    def compared(*paths: Path, jobs: int) -> dict[str, Any]:
        found = compare_runs(list(paths), jobs=jobs).to_builtins()
        found.pop("reference")
        for run in found["runs"]:
            run.pop("path")
            run.pop("name")
        for pair in found["comparisons"]:
            pair.pop("a")
            pair.pop("b")
        return found

    one = compared(run_a, run_b, jobs=1)
    monkeypatch.setattr(_scan, "SPAN_BYTES", 4096)
    monkeypatch.setattr(_scan, "PARALLEL_BYTES", 0)
    two = compared(run_a, run_b, jobs=2)
    assert two == one
    assert compared(run_a, as_array, jobs=2) == one
    assert [(r["records"], r["duplicates"]) for r in one["runs"]] == [(360, 40), (360, 40)]
    assert one["runs"][0]["resources"]["cost_usd"] == 400 * 0.25
    assert one["comparisons"][0]["paired"] < 360  # records without ids pair by place only
