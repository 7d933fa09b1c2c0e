"""`sftlabel select`: choose labeled samples by tag expressions and export them (issue 20.1)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from sftlabel.api import SelectQuery, select
from sftlabel.errors import UsageError

from .conftest import jsonl, shared, write_jsonl
from .llm_server import FakeLLMServer

BASELINE = "baselines/labeled_deepseek_v4.json"


def _labels(intent: str = "learn", difficulty: str = "beginner", **extra: Any) -> dict[str, Any]:
    labels: dict[str, Any] = {
        "intent": intent,
        "language": ["python"],
        "domain": [],
        "task": ["code-explanation"],
        "difficulty": difficulty,
        "concept": [],
        "agentic": [],
        "constraint": [],
        "context": "snippet",
        "confidence": {"intent": 0.9, "difficulty": 0.8, "language": 0.95},
        "unmapped": [],
    }
    labels.update(extra)
    return labels


def _run(tmp_path: Path, records: list[dict[str, Any]], name: str = "run") -> Path:
    run = tmp_path / name
    run.mkdir()
    write_jsonl(run / "labeled.jsonl", records)
    return run


def _ids(path: Path) -> list[str]:
    return [str(r["id"]) for r in jsonl(path.read_text("utf-8"))]


# -- acceptance: the DeepSeek baseline -------------------------------------------------------


def test_baseline_where_and_where_equals_a_hand_filter_in_sharegpt_form(cli, tmp_path) -> None:
    source = shared(BASELINE)
    records = json.loads(source.read_text("utf-8"))
    hand = [
        r
        for r in records
        if r["labels"]["intent"] == "debug" and r["labels"]["difficulty"] in ("advanced", "expert")
    ]
    assert hand  # the baseline holds some
    out = tmp_path / "chosen.jsonl"
    result = cli(
        "select",
        source,
        "--where",
        "intent=debug",
        "--where",
        "difficulty in advanced,expert",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.stderr
    written = jsonl(out.read_text("utf-8"))
    expected = [
        {k: v for k, v in r.items() if k not in ("labels", "labeling_monitor")} for r in hand
    ]
    assert written == expected  # ShareGPT records, as they were, without the labels
    detected = cli("detect", out, "--json", "--records")
    assert detected.exit_code == 0, detected.stderr
    report = json.loads(detected.stdout)
    assert report["formats"] == {"sharegpt": len(hand)}
    assert [r["id"] for r in report["record_details"]] == [r["id"] for r in hand]
    manifest = json.loads((tmp_path / "chosen.manifest.json").read_text("utf-8"))
    assert manifest["query"]["where"] == ["intent=debug", "difficulty in advanced,expert"]
    assert manifest["counts"]["matched"] == manifest["counts"]["chosen"] == len(hand)
    intent = sum(1 for r in records if r["labels"]["intent"] == "debug")
    assert manifest["counts"]["per_expression"]["intent=debug"] == intent


def test_baseline_samples_and_parquet_formats(tmp_path) -> None:
    source = shared(BASELINE)
    query = SelectQuery(where=["intent=debug"])
    summary = select(source, tmp_path / "s.jsonl", query, fmt="samples")
    samples = jsonl((tmp_path / "s.jsonl").read_text("utf-8"))
    assert len(samples) == summary.chosen == summary.per_expression["intent=debug"]
    assert {s["labels"]["intent"] for s in samples} == {"debug"}
    assert all(s["source_format"] == "sharegpt" and s["messages"] for s in samples)
    pq = pytest.importorskip("pyarrow.parquet")
    select(source, tmp_path / "p.parquet", query, fmt="parquet")
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.num_rows == summary.chosen
    assert set(table.column("intent").to_pylist()) == {"debug"}
    assert "confidence_intent" in table.column_names
    assert isinstance(table.column("language").to_pylist()[0], list)


# -- acceptance: a pyramid run made by `label` against the fake server -----------------------

CALL2 = {
    "concept": [],
    "agentic": [],
    "constraint": [],
    "context": "snippet",
    "confidence": {"concept": 0.8, "agentic": 0.95, "constraint": 0.9, "context": 0.85},
    "unmapped": [],
}


def _call1(intent: str) -> dict[str, Any]:
    payload = {
        "intent": intent,
        "language": ["python"],
        "domain": [],
        "task": ["code-explanation"],
        "difficulty": "intermediate",
        "confidence": {"intent": 0.9, "language": 0.9, "domain": 0.9, "task": 0.9},
        "unmapped": [],
    }
    payload["confidence"]["difficulty"] = 0.9
    return {"content": json.dumps(payload)}


PANGU = {
    "id": "pyr-1",
    "meta_prompt": ["你是一个有用的编程助手"],
    "data": [
        {"role": "user", "content": "first question /no_think"},
        {"role": "assistant", "content": "[unused16][unused17]REPLY-ONE plain answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "[unused16]thinking two[unused17]REPLY-TWO answer"},
        {"role": "user", "content": "third question: why does it crash? /no_think"},
        {"role": "assistant", "content": "[unused16]thinking three[unused17]REPLY-THREE fix"},
        {"role": "user", "content": "fourth question"},
        {"role": "assistant", "content": "[unused16][unused17]REPLY-FOUR done"},
    ],
}


def test_a_selected_t3_slice_is_the_raw_conversation_up_to_its_third_reply(
    cli, llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "pyramid.jsonl", [PANGU])
    llm_server.configure(
        rules=[
            {"match": "first labeling pass", "response": {"content": json.dumps(CALL2)}},
            {"match": "REPLY-FOUR", "response": _call1("build")},
            {"match": "REPLY-THREE", "response": _call1("debug")},
            {"match": "Label the last assistant reply", "response": _call1("learn")},
        ]
    )
    run = tmp_path / "run"
    labeled = cli(
        "label",
        data,
        "--model",
        "gpt-4o-mini",
        "--base-url",
        llm_server.base_url,
        "-o",
        run,
        "--cache",
        tmp_path / "cache.sqlite",
    )
    assert labeled.exit_code == 0, labeled.stderr
    out = tmp_path / "debug.jsonl"
    result = cli("select", run, "--where", "intent=debug", "-o", out)
    assert result.exit_code == 0, result.stderr
    [record] = jsonl(out.read_text("utf-8"))
    assert record == {**PANGU, "id": "pyr-1_t3", "data": PANGU["data"][:6]}  # markers as they were
    assert "rebuilt" not in result.stderr
    # the raw input gone: the slice is rebuilt from the normalized messages (and counted)
    data.unlink()
    again = select(run, tmp_path / "again.jsonl", SelectQuery(where=["intent=debug"]))
    assert again.rebuilt == 1
    [rebuilt] = jsonl((tmp_path / "again.jsonl").read_text("utf-8"))
    assert rebuilt["id"] == "pyr-1_t3" and len(rebuilt["data"]) == 6
    assert rebuilt["data"][5]["content"] == "[unused16]thinking three[unused17]REPLY-THREE fix"


# -- expressions -----------------------------------------------------------------------------


def _small_run(tmp_path: Path) -> Path:
    records = [
        {"id": "a", "index": 0, "labels": _labels("debug", "advanced", agentic=["test-running"])},
        {"id": "b", "index": 1, "labels": _labels("build", "expert", language=["go", "python"])},
        {"id": "c", "index": 2, "labels": _labels("learn", "beginner", language=[])},
        {
            "id": "d",
            "index": 3,
            "labels": _labels(
                "debug",
                "intermediate",
                confidence={"intent": 0.4, "difficulty": 0.9},
                unmapped=[{"dimension": "language", "value": "cuda"}],
            ),
        },
    ]
    for r in records:
        r["conversations"] = [
            {"from": "human", "value": f"q {r['id']}"},
            {"from": "gpt", "value": f"a {r['id']}"},
        ]
    return _run(tmp_path, records)


@pytest.mark.parametrize(
    ("where", "ids"),
    [
        (["intent=debug"], ["a", "d"]),
        (["intent!=debug"], ["b", "c"]),
        (["difficulty in advanced,expert"], ["a", "b"]),
        (["difficulty not in advanced,expert"], ["c", "d"]),
        (["agentic has test-running"], ["a"]),
        (["language lacks python"], ["c"]),
        (["language=none"], ["c"]),
        (["language has go,rust"], ["b"]),
        (["unmapped has any"], ["d"]),
        (["unmapped lacks language"], ["a", "b", "c"]),
        (["confidence.intent<0.5"], ["d"]),
        (["intent=debug", "difficulty=advanced"], ["a"]),
        (["intent=Debugging"], None),  # not a tag and not an alias: an error
    ],
)
def test_where_expressions(tmp_path: Path, where: list[str], ids: list[str] | None) -> None:
    run = _small_run(tmp_path)
    if ids is None:
        with pytest.raises(UsageError):
            select(run, tmp_path / "o.jsonl", SelectQuery(where=where))
        return
    select(run, tmp_path / "o.jsonl", SelectQuery(where=where))
    assert _ids(tmp_path / "o.jsonl") == ids


def test_min_confidence_overall_and_per_dimension(tmp_path: Path) -> None:
    run = _small_run(tmp_path)
    select(run, tmp_path / "o.jsonl", SelectQuery(min_confidence=["0.85"]))
    assert _ids(tmp_path / "o.jsonl") == []  # every record has a dimension at 0.8 or lower
    select(run, tmp_path / "p.jsonl", SelectQuery(min_confidence=["intent=0.5"]))
    assert _ids(tmp_path / "p.jsonl") == ["a", "b", "c"]


def test_unknown_names_and_values_say_what_was_meant(cli, tmp_path: Path) -> None:
    run = _small_run(tmp_path)
    result = cli("select", run, "--where", "intnt=debug", "--dry-run")
    assert result.exit_code == 2
    assert "unknown dimension 'intnt'" in result.stderr and "'intent'" in result.stderr
    result = cli("select", run, "--where", "difficulty=advnced", "--dry-run")
    assert result.exit_code == 2 and "'advanced'" in result.stderr
    result = cli("select", run, "--where", "intent ~ debug", "--dry-run")
    assert result.exit_code == 2 and "cannot read --where" in result.stderr
    result = cli("select", run, "--balance", "language", "--per-value", "1", "--dry-run")
    assert result.exit_code == 2 and "multi-select" in result.stderr


# -- quotas and determinism ------------------------------------------------------------------


def _big_run(tmp_path: Path, name: str, order_seed: int | None = None) -> Path:
    intents = ["debug", "build", "learn", "review", "decide"]
    records = [
        {"id": f"s{i:04d}", "index": i, "labels": _labels(intents[i % 5] if i % 7 else "debug")}
        for i in range(500)
    ]
    if order_seed is not None:
        random.Random(order_seed).shuffle(records)
    return _run(tmp_path, records, name)


def test_balance_per_value_is_deterministic_and_independent_of_file_order(tmp_path: Path) -> None:
    query = SelectQuery(balance="intent", per_value=10, seed=7)
    first = select(_big_run(tmp_path, "a"), tmp_path / "a.jsonl", query)
    shuffled = select(_big_run(tmp_path, "b", order_seed=3), tmp_path / "b.jsonl", query)
    assert first.chosen == shuffled.chosen == 50
    assert sorted(_ids(tmp_path / "a.jsonl")) == sorted(_ids(tmp_path / "b.jsonl"))
    assert {v: c["chosen"] for v, c in first.per_value["intent"].items()} == dict.fromkeys(
        ("build", "debug", "decide", "learn", "review"), 10
    )
    other = select(
        tmp_path / "a", tmp_path / "c.jsonl", SelectQuery(balance="intent", per_value=10, seed=8)
    )
    assert sorted(_ids(tmp_path / "c.jsonl")) != sorted(_ids(tmp_path / "a.jsonl"))
    assert other.chosen == 50


def test_mix_file_shares_and_limit(tmp_path: Path) -> None:
    run = _big_run(tmp_path, "a")
    mix = tmp_path / "mix.yaml"
    mix.write_text("dimension: intent\nshares: {debug: 0.5, build: 0.3, learn: 0.2}\n", "utf-8")
    summary = select(run, tmp_path / "m.jsonl", SelectQuery(mix=mix, limit=40))
    assert summary.chosen == 40
    chosen = {v: c.get("chosen", 0) for v, c in summary.per_value["intent"].items()}
    assert (chosen["debug"], chosen["build"], chosen["learn"], chosen["review"]) == (20, 12, 8, 0)
    limited = select(run, tmp_path / "l.jsonl", SelectQuery(limit=25, seed=1))
    assert limited.chosen == 25 and len(_ids(tmp_path / "l.jsonl")) == 25
    # --balance with --limit alone: ceil(12 / 5) = 3 per intent, then the 12 of lowest priority
    capped = select(run, tmp_path / "c.jsonl", SelectQuery(balance="intent", limit=12))
    assert capped.chosen == 12 == len(_ids(tmp_path / "c.jsonl"))
    assert all(c["quota"] == 3 and c["chosen"] <= 3 for c in capped.per_value["intent"].values())


# -- output safety ---------------------------------------------------------------------------


def test_refuses_to_overwrite_without_force_and_never_writes_the_run(cli, tmp_path: Path) -> None:
    run = _small_run(tmp_path)
    out = tmp_path / "o.jsonl"
    assert cli("select", run, "-o", out).exit_code == 0
    again = cli("select", run, "-o", out)
    assert again.exit_code == 2 and "--force" in again.stderr
    assert cli("select", run, "-o", out, "--force").exit_code == 0
    clobber = cli("select", run, "-o", run / "labeled.jsonl", "--force")
    assert clobber.exit_code == 2 and "file of the run" in clobber.stderr
    assert sorted(p.name for p in run.iterdir()) == ["labeled.jsonl"]
    assert not list(tmp_path.glob(".sftlabel-select-*"))  # the scratch folder is gone


def test_dry_run_counts_on_stdout_and_json(cli, tmp_path: Path) -> None:
    run = _small_run(tmp_path)
    result = cli("select", run, "--where", "intent=debug", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "intent=debug" in result.stdout and "2 chosen of 2 matching" in result.stderr
    assert not list(tmp_path.glob("*.jsonl"))
    as_json = cli("select", run, "--where", "intent=debug", "--dry-run", "--json")
    summary = json.loads(as_json.stdout)
    assert summary["schema"] == "sftlabel.select/1" and summary["dry_run"] is True
    assert summary["counts"]["per_expression"] == {"intent=debug": 2}
    assert summary["counts"]["per_value"]["intent"]["debug"] == {"matched": 2, "chosen": 2}


def test_hostile_values_stay_inert(cli, tmp_path: Path) -> None:
    hostile = '=HYPERLINK("http://x")<script>alert(1)</script>\x1b[2J\u202e'
    run = _run(tmp_path, [{"id": hostile, "index": 0, "labels": _labels(hostile)}])
    result = cli("select", run, "-o", tmp_path / "o.jsonl", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    assert "\u202e" not in result.stdout + result.stderr
    written = cli("select", run, "-o", tmp_path / "o.jsonl")
    assert written.exit_code == 0
    manifest = json.loads((tmp_path / "o.manifest.json").read_text("utf-8"))
    assert hostile in manifest["counts"]["per_value"]["intent"]  # data, as JSON: inert
    assert "\x1b" not in (tmp_path / "o.manifest.json").read_text("utf-8")


# -- soft labels -----------------------------------------------------------------------------


def test_soft_label_ranges(tmp_path: Path) -> None:
    out = tmp_path / "LABELED_demo" / "test"
    out.mkdir(parents=True)
    turns = [
        {
            "conversationId": f"c{i}",
            "messageId": f"m{i}",
            "split": "test",
            "bucket": "short",
            "hard_label": int(p >= 0.5),
            "soft_label": p,
            "rationale": "r",
            "turnIndex": 1,
            "method": "top_logprobs",
            "index": i,
        }
        for i, p in enumerate([0.1, 0.85, 0.95, 0.5])
    ]
    turns.append(
        {
            "conversationId": "cx",
            "messageId": "mx",
            "split": "test",
            "bucket": "short",
            "error": "gave up",
            "reason": "retries-exhausted",
            "index": 4,
        }
    )
    write_jsonl(out / "short.jsonl", turns)
    summary = select(
        tmp_path / "LABELED_demo",
        tmp_path / "soft.jsonl",
        SelectQuery(where=["p_no_reasoning>=0.8"]),
    )
    assert [r["messageId"] for r in jsonl((tmp_path / "soft.jsonl").read_text("utf-8"))] == [
        "m1",
        "m2",
    ]
    assert summary.skipped_failed == 1
    select(tmp_path / "LABELED_demo", tmp_path / "r.jsonl", SelectQuery(where=["p_reasoning>0.8"]))
    assert [r["messageId"] for r in jsonl((tmp_path / "r.jsonl").read_text("utf-8"))] == ["m0"]
    with pytest.raises(UsageError, match="not a soft-label field") as error:
        select(tmp_path / "LABELED_demo", None, SelectQuery(where=["soft_labl>0.5"]), dry_run=True)
    assert "'soft_label'" in str(error.value.hint)


def test_a_multi_part_run_comes_back_as_its_raw_records(
    cli, llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    inputs = tmp_path / "data"
    inputs.mkdir()
    write_jsonl(inputs / "pangu.jsonl", [PANGU])
    chats = [
        {
            "id": f"c{i}",
            "conversations": [
                {"from": "human", "value": f"q{i}"},
                {"from": "gpt", "value": f"a{i}"},
            ],
        }
        for i in range(2)
    ]
    (inputs / "chats.json").write_text(json.dumps(chats), "utf-8")
    llm_server.configure(
        rules=[
            {"match": "first labeling pass", "response": {"content": json.dumps(CALL2)}},
            {"match": "Label the last assistant reply", "response": _call1("learn")},
        ]
    )
    run = tmp_path / "run"
    labeled = cli(
        "label",
        inputs,
        "--model",
        "gpt-4o-mini",
        "--base-url",
        llm_server.base_url,
        "-o",
        run,
        "--cache",
        tmp_path / "cache.sqlite",
    )
    assert labeled.exit_code == 0, labeled.stderr
    out = tmp_path / "all.json"
    summary = select(run, out, SelectQuery())
    assert summary.chosen == 6 and summary.rebuilt == 0
    written = json.loads(out.read_text("utf-8"))  # a .json name: one array
    assert chats[0] in written and chats[1] in written
    cuts = sorted((r for r in written if "data" in r), key=lambda r: len(r["data"]))
    assert [len(r["data"]) for r in cuts] == [2, 4, 6, 8]
    assert cuts[-1] == {**PANGU, "id": "pyr-1_t4"}


def test_an_unreadable_line_is_counted_not_chosen(tmp_path: Path) -> None:
    run = _small_run(tmp_path)
    with (run / "labeled.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"id": "cut-by-kill", "labels": {"int\n')
    summary = select(run, tmp_path / "o.jsonl", SelectQuery())
    assert (summary.records, summary.unreadable, summary.chosen) == (4, 1, 4)


def test_copilot_slices_come_back_as_cut_turn_records(
    cli, llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    source = shared("copilot_raw/vscodedata_demo_20260101/test/short_3_to_5_turns.json")
    data = tmp_path / "test" / source.name
    data.parent.mkdir()
    data.write_bytes(source.read_bytes())
    llm_server.configure(
        rules=[
            {"match": "first labeling pass", "response": {"content": json.dumps(CALL2)}},
            {"match": "Label the last assistant reply", "response": _call1("learn")},
        ]
    )
    run = tmp_path / "run"
    labeled = cli(
        "label",
        data,
        "--model",
        "gpt-4o-mini",
        "--base-url",
        llm_server.base_url,
        "-o",
        run,
        "--cache",
        tmp_path / "cache.sqlite",
    )
    assert labeled.exit_code == 0, labeled.stderr
    summary = select(run, tmp_path / "c.jsonl", SelectQuery(limit=5, seed=3))
    assert summary.chosen == 5 and summary.rebuilt == 0
    raw = {r["conversationId"]: r for r in json.loads(source.read_text("utf-8"))}
    for record in jsonl((tmp_path / "c.jsonl").read_text("utf-8")):
        conversation, _, turn = record["conversationId"].rpartition("_t")
        original = raw[conversation]
        assert record == {
            **original,
            "conversationId": record["conversationId"],
            "turnsArray": original["turnsArray"][: int(turn)],
        }


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(UsageError, match="needs pyarrow") as error:
        select(_small_run(tmp_path), tmp_path / "o.parquet", SelectQuery(), fmt="parquet")
    assert "sftlabel[parquet]" in str(error.value.hint)
