"""`sftlabel review`: export for human review (CSV/TSV/xlsx, selections) and `--apply`."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sftlabel.model import TurnLabel
from sftlabel.reports import ReviewFileError, apply_review, open_run
from sftlabel.runs import LabelOptions, RunManifest, now, taxonomy_ref, write_manifest
from sftlabel.taxonomy import load_taxonomy

from .conftest import jsonl, shared, write_jsonl
from .test_label_run import label_args, labeler_rules

DIMS = [
    "intent",
    "language",
    "domain",
    "task",
    "difficulty",
    "concept",
    "agentic",
    "constraint",
    "context",
]


def deepseek() -> Path:
    return shared("baselines/labeled_deepseek_v4.json")


def sonnet() -> Path:
    return shared("baselines/labeled_sonnet_v4.json")


def baseline(path: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in json.loads(path.read_text("utf-8"))}


def read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 BOM for Excel"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter))


def write_csv(path: Path, rows: list[dict[str, str]], **kwargs: Any) -> Path:
    encoding = kwargs.pop("encoding", "utf-8-sig")
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), **kwargs)
        writer.writeheader()
        writer.writerows(rows)
    return path


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(path.relative_to(root).as_posix().encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


# --- export ----------------------------------------------------------------------------------


def test_export_of_a_baseline_has_one_row_per_sample(cli, tmp_path: Path) -> None:
    out = tmp_path / "review.csv"
    result = cli("review", deepseek(), "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "108 samples of 108" in result.stderr
    rows = read_csv(out)
    source = baseline(deepseek())
    assert len(rows) == 108
    assert list(rows[0]) == [
        "id",
        "query",
        "last_user_message",
        "reply",
        *DIMS,
        "min_confidence",
        "min_confidence_dim",
        "calls",
        "elapsed_s",
        "tokens",
        "note",
    ]
    for row in rows:
        labels = source[row["id"]]["labels"]
        assert row["intent"] == labels["intent"]
        assert row["language"] == "; ".join(labels["language"])
        lowest = min(labels["confidence"][d] for d in DIMS)
        assert float(row["min_confidence"]) == lowest
        assert labels["confidence"][row["min_confidence_dim"]] == lowest
        assert row["calls"] == str(source[row["id"]]["labeling_monitor"]["llm_calls"])
        assert "\n" not in row["query"] and 0 < len(row["query"]) <= 200
        assert row["note"] == ""
    first = source["gen-0000"]["conversations"][0]["value"]
    assert rows[0]["query"] == " ".join(first.split())[:200]


def test_tsv_by_name_and_stdout_without_bom(cli, tmp_path: Path) -> None:
    out = tmp_path / "review.tsv"
    assert cli("review", deepseek(), "-o", out).exit_code == 0
    rows = read_csv(out, delimiter="\t")
    assert len(rows) == 108 and rows[0]["id"] == "gen-0000"
    piped = cli("review", deepseek(), "-o", "-", "--format", "tsv")
    assert piped.exit_code == 0
    assert piped.stdout.startswith("id\tquery\tlast_user_message\treply\tintent")
    assert len(piped.stdout.splitlines()) == 109


def test_low_confidence_uses_the_threshold(cli, tmp_path: Path) -> None:
    out = tmp_path / "low.csv"
    result = cli("review", sonnet(), "-o", out, "--low-confidence", "--threshold", "0.75")
    assert result.exit_code == 0, result.stderr
    rows = read_csv(out)
    expected = {
        i for i, r in baseline(sonnet()).items() if min(r["labels"]["confidence"].values()) < 0.75
    }
    assert expected and {r["id"] for r in rows} == expected
    assert all(float(r["min_confidence"]) < 0.75 for r in rows)
    # without --threshold: 0.65 (the baseline has no run.json); one sample of sonnet is below
    default = cli("review", sonnet(), "-o", tmp_path / "d.csv", "--low-confidence")
    assert [r["min_confidence"] for r in read_csv(tmp_path / "d.csv")] == ["0.55"]
    assert "below the confidence threshold 0.65: 1" in default.stderr


def test_stratified_sample_is_proportional_seeded_and_in_run_order(cli, tmp_path: Path) -> None:
    def draw(seed: int, name: str) -> list[dict[str, str]]:
        out = tmp_path / name
        args = ("--sample", "20", "--stratify", "intent", "--seed", str(seed))
        result = cli("review", deepseek(), "-o", out, *args)
        assert result.exit_code == 0, result.stderr
        return read_csv(out)

    rows = draw(7, "a.csv")
    # 108 samples: build 57, learn 22, debug 14, decide 9, review 6 -> quotas 10.56, 4.07, 2.59,
    # 1.67, 1.11: floors 10+4+2+1+1 = 18, the two largest remainders (decide, debug) round up
    assert Counter(r["intent"] for r in rows) == {
        "build": 10,
        "learn": 4,
        "debug": 3,
        "decide": 2,
        "review": 1,
    }
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids)  # run order
    assert [r["id"] for r in draw(7, "b.csv")] == ids
    assert [r["id"] for r in draw(8, "c.csv")] != ids


def test_every_stratum_gets_at_least_one(cli, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    result = cli("review", deepseek(), "-o", out, "--sample", "5", "--stratify", "intent")
    assert result.exit_code == 0
    assert Counter(r["intent"] for r in read_csv(out)) == {
        "build": 1,
        "learn": 1,
        "debug": 1,
        "decide": 1,
        "review": 1,
    }
    few = cli("review", deepseek(), "-o", out, "--sample", "3", "--stratify", "intent")
    assert len(read_csv(out)) == 5
    assert "every stratum gets at least one" in few.stderr


def test_disagreements_side_by_side(cli, tmp_path: Path) -> None:
    out = tmp_path / "diff.csv"
    result = cli("review", deepseek(), "-o", out, "--disagreements-with", sonnet())
    assert result.exit_code == 0, result.stderr
    rows = read_csv(out)
    mine, theirs = baseline(deepseek()), baseline(sonnet())

    def differ(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
        return [
            d for d in DIMS if (set(a[d]) != set(b[d]) if isinstance(a[d], list) else a[d] != b[d])
        ]

    expected = {i for i in mine if differ(mine[i]["labels"], theirs[i]["labels"])}
    assert {r["id"] for r in rows} == expected
    assert f"{len(expected)} differ" in result.stderr
    header = list(rows[0])
    assert header[4:8] == ["intent", "intent (sonnet_v4)", "language", "language (sonnet_v4)"]
    for row in rows:
        other = theirs[row["id"]]["labels"]
        assert row["intent (sonnet_v4)"] == other["intent"]
        assert row["task (sonnet_v4)"] == "; ".join(other["task"])
        assert row["differs"].split("; ") == differ(mine[row["id"]]["labels"], other)
    both = cli(
        "review", deepseek(), "-o", out, "--disagreements-with", sonnet(), "--low-confidence",
        "--threshold", "0.8",
    )  # fmt: skip
    assert both.exit_code == 0
    for row in read_csv(out):
        assert float(row["min_confidence"]) < 0.8 and row["differs"]


def test_usage_errors_are_one_line(cli, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    result = cli("review", deepseek(), "-o", out, "--stratify", "intent")
    assert result.exit_code == 2 and "--stratify needs --sample" in result.stderr
    result = cli("review", deepseek(), "-o", out, "--sample", "3", "--stratify", "colour")
    assert result.exit_code == 2 and "cannot stratify by 'colour'" in result.stderr
    assert "intent" in result.stderr
    result = cli("review", tmp_path / "missing.json", "-o", out)
    assert result.exit_code == 1 and "no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_xlsx_export_and_apply(cli, tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    out = tmp_path / "review.xlsx"
    result = cli("review", deepseek(), "-o", out, "--sample", "10", "--stratify", "intent")
    assert result.exit_code == 0, result.stderr
    book = openpyxl.load_workbook(out)
    sheet = book["review"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:5] == ("id", "query", "last_user_message", "reply", "intent")
    assert len(rows) == 11
    assert isinstance(rows[1][rows[0].index("min_confidence")], float)
    header = rows[0]
    target_row = next(n for n, r in enumerate(rows[1:], 2) if r[4] == "build")
    sample_id = sheet.cell(target_row, 1).value
    sheet.cell(target_row, header.index("intent") + 1).value = "debug"
    sheet.cell(target_row, header.index("note") + 1).value = "it is a bug report"
    book.save(out)
    fixed = tmp_path / "fixed"
    applied = cli("review", "--apply", out, deepseek(), "-o", fixed)
    assert applied.exit_code == 0, applied.stderr
    record = next(r for r in jsonl((fixed / "labeled.jsonl").read_text()) if r["id"] == sample_id)
    assert record["labels"]["intent"] == "debug"
    assert record["labeling_monitor"]["review_note"] == "it is a bug report"


def test_xlsx_without_openpyxl_says_how_to_get_it(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openpyxl", None)
    result = cli("review", deepseek(), "-o", tmp_path / "r.xlsx")
    assert result.exit_code == 2
    assert "pip install 'sftlabel[xlsx]'" in result.stderr
    assert not (tmp_path / "r.xlsx").exists()


def test_a_query_that_looks_like_a_formula_stays_text(cli, tmp_path: Path) -> None:
    data = tmp_path / "labeled.jsonl"
    labels = {d: [] for d in DIMS} | {"intent": "learn", "difficulty": "beginner"}
    labels |= {"context": "snippet", "confidence": {"intent": 0.9}}
    record = {
        "id": "f1",
        "messages": [{"role": "user", "content": '=HYPERLINK("http://x")\n  sum?'}],
        "labels": labels,
    }
    write_jsonl(data, [record])
    assert cli("review", data, "-o", tmp_path / "r.csv").exit_code == 0
    assert read_csv(tmp_path / "r.csv")[0]["query"] == '\'=HYPERLINK("http://x") sum?'


# --- apply -----------------------------------------------------------------------------------


def test_round_trip_on_a_baseline_file(cli, tmp_path: Path) -> None:
    review = tmp_path / "review.csv"
    assert cli("review", deepseek(), "-o", review).exit_code == 0
    rows = read_csv(review)
    by_id = {r["id"]: r for r in rows}
    by_id["gen-0000"]["intent"] = "fix"  # an alias of debug
    by_id["gen-0000"]["language"] = "python; Rust"  # tags in any case
    by_id["gen-0001"]["difficulty"] = "advanced"
    by_id["gen-0002"]["note"] = "labels are fine"
    by_id["gen-0003"]["language"] = "css;html"  # same tags, other order: no change
    write_csv(review, rows)
    fixed = tmp_path / "fixed"
    before = deepseek().read_bytes()
    result = cli("review", "--apply", review, deepseek(), "-o", fixed)
    assert result.exit_code == 0, result.stderr
    assert deepseek().read_bytes() == before  # RUN is never modified
    for name in ("labeled.jsonl", "labeled.json", "stats.json", "dashboard.html", "run.json"):
        assert (fixed / name).exists(), name
    out = {r["id"]: r for r in jsonl((fixed / "labeled.jsonl").read_text("utf-8"))}
    source = baseline(deepseek())
    assert list(out) == list(source)
    first = out["gen-0000"]
    assert first["labels"]["intent"] == "debug"
    assert first["labels"]["language"] == ["python", "rust"]
    assert first["labels"]["confidence"]["intent"] == 1.0
    monitor = first["labeling_monitor"]
    assert monitor["human_reviewed"] is True
    confidence = source["gen-0000"]["labels"]["confidence"]
    assert monitor["review_changes"] == [
        {
            "dimension": "intent",
            "before": "learn",
            "after": "debug",
            "confidence_before": confidence["intent"],
        },
        {
            "dimension": "language",
            "before": ["python"],
            "after": ["python", "rust"],
            "confidence_before": confidence["language"],
        },
    ]
    assert out["gen-0002"]["labels"] == source["gen-0002"]["labels"]
    assert out["gen-0002"]["labeling_monitor"]["review_note"] == "labels are fine"
    assert out["gen-0003"] == source["gen-0003"]  # reordered tags are no change
    assert all(out[i] == source[i] for i in source if i not in ("gen-0000", "gen-0001", "gen-0002"))
    stats = json.loads((fixed / "stats.json").read_text("utf-8"))
    assert stats["total_samples"] == 108
    assert stats["tag_distributions"]["intent"]["debug"] == 15
    # the summary goes to stderr; stdout is for data
    assert "samples changed" in result.stderr and "2 of 108" in result.stderr
    assert result.stdout == ""
    assert "intent" in result.stderr and "notes recorded" in result.stderr
    ordered = json.loads((fixed / "labeled.json").read_text("utf-8"))
    assert [r["id"] for r in ordered] == list(source)


def test_every_bad_cell_is_reported_and_nothing_is_written(cli, tmp_path: Path) -> None:
    review = tmp_path / "review.csv"
    assert cli("review", deepseek(), "-o", review).exit_code == 0
    rows = read_csv(review)
    rows[0]["intent"] = "lern"  # row 2
    rows[1]["intent"] = "learn; build"  # single-select, two values (row 3)
    rows[2]["language"] = "python; pythn"  # row 4
    rows[3]["task"] = "web-frontend"  # a domain tag in task (row 5)
    rows[4]["difficulty"] = ""  # single-select emptied (row 6)
    rows[5]["id"] = "no-such-id"  # row 7
    rows[6]["concept"] = "???"  # row 8
    write_csv(review, rows)
    fixed = tmp_path / "fixed"
    result = cli("review", "--apply", review, deepseek(), "-o", fixed)
    assert result.exit_code != 0
    assert not fixed.exists() and not (tmp_path / "fixed.partial").exists()
    err = result.stderr
    assert "row 2, column intent: 'lern': 'lern' is not an intent tag (did you mean learn?)" in err
    assert "row 3, column intent: 'learn; build': intent is single-select" in err
    assert (
        "row 4, column language: 'python; pythn': 'pythn' is not a language tag "
        "(did you mean python?)" in err
    )
    assert (
        "row 5, column task: 'web-frontend': 'web-frontend' is not a task tag (it is a domain tag)"
        in err
    )
    assert "row 6, column difficulty: intent" not in err
    assert "row 6, column difficulty" in err and "got nothing" in err
    assert "row 7, column id: 'no-such-id': no such sample" in err
    assert "row 8, column concept: '???': '???' is not a concept tag" in err
    assert "7 bad cells; nothing was written" in err
    assert "Traceback" not in err


def test_excel_mangled_files_are_read(cli, tmp_path: Path) -> None:
    review = tmp_path / "review.csv"
    assert cli("review", deepseek(), "-o", review).exit_code == 0
    rows = read_csv(review)[:4]
    rows.reverse()  # sorted in the spreadsheet
    for row in rows:
        row["extra"] = ""
        row["query"] = "Ünïcödé ßtuff"  # cp1252 can hold this
        row["last_user_message"] = row["reply"] = "ok"
    rows[0]["difficulty"] = ' "expert" '
    rows[1]["language"] = "python\nsql"  # Alt+Enter in a cell
    # Excel in a German locale: semicolons, cp1252, CRLF, all fields quoted, a blank row
    write_csv(
        review, [*rows, dict.fromkeys(rows[0], "")], delimiter=";", encoding="cp1252",
        quoting=csv.QUOTE_ALL,
    )  # fmt: skip
    fixed = tmp_path / "fixed"
    result = cli("review", "--apply", review, deepseek(), "-o", fixed)
    assert result.exit_code == 0, result.stderr
    out = {r["id"]: r for r in jsonl((fixed / "labeled.jsonl").read_text("utf-8"))}
    assert out[rows[0]["id"]]["labels"]["difficulty"] == "expert"
    assert out[rows[1]["id"]]["labels"]["language"] == ["python", "sql"]


def test_existing_output_needs_overwrite(cli, tmp_path: Path) -> None:
    review = tmp_path / "review.csv"
    assert cli("review", deepseek(), "-o", review, "--sample", "3").exit_code == 0
    fixed = tmp_path / "fixed"
    assert cli("review", "--apply", review, deepseek(), "-o", fixed).exit_code == 0
    again = cli("review", "--apply", review, deepseek(), "-o", fixed)
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert "--overwrite" in again.stderr
    replaced = cli("review", "--apply", review, deepseek(), "-o", fixed, "--overwrite")
    assert replaced.exit_code == 0
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    refused = cli("review", "--apply", review, deepseek(), "-o", tmp_path / "notes", "--overwrite")
    assert refused.exit_code == 2 and "not a run directory" in refused.stderr
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"
    mixed = cli("review", "--apply", review, deepseek(), "-o", fixed, "--sample", "3")
    assert mixed.exit_code == 2 and "--apply takes no selection" in mixed.stderr


def make_run(root: Path, parts: dict[str, list[dict[str, Any]]]) -> Path:
    """A run directory by hand: parts with labeled.jsonl (LabeledSample lines) and failures."""
    taxonomy = load_taxonomy()
    root.mkdir()
    manifest = RunManifest(
        created=now(),
        inputs=[str(root / "gone")],  # the inputs need not exist any more
        endpoint="http://127.0.0.1:1/v1",
        options=LabelOptions(model="m", confidence_threshold=0.8),
        taxonomy=taxonomy_ref(taxonomy),
    )
    write_manifest(root, manifest)
    for part, records in parts.items():
        (root / part).mkdir(parents=True)
        write_jsonl(root / part / "labeled.jsonl", records)
        write_jsonl(root / part / "monitor.jsonl", [{"event": "x"}])
        failure = {"id": f"{part}-bad", "index": 99, "reason": "rejected", "error": "400"}
        write_jsonl(root / part / "failures.jsonl", [failure])
    return root


def labeled(sample_id: str, index: int, intent: str, low: float) -> dict[str, Any]:
    labels: dict[str, Any] = {d: [] for d in DIMS}
    labels |= {"intent": intent, "difficulty": "beginner", "context": "snippet"}
    labels["language"] = ["python"]
    labels["confidence"] = dict.fromkeys(DIMS, 0.95) | {"task": low}
    labels["unmapped"] = []
    return {
        "id": sample_id,
        "source_id": sample_id,
        "source_format": "sharegpt",
        "turn_index": 1,
        "total_turns": 1,
        "messages": [
            {"role": "user", "content": f"question {sample_id}"},
            {"role": "assistant", "content": "answer"},
        ],
        "index": index,
        "labels": labels,
        "labeling_monitor": {
            "llm_calls": 2,
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "elapsed": 1.25,
        },
    }


def test_a_run_directory_with_parts(cli, tmp_path: Path) -> None:
    run = make_run(
        tmp_path / "run",
        {
            "train/a": [labeled("s1", 0, "learn", 0.5), labeled("s2", 1, "build", 0.9)],
            "train/b": [labeled("s1", 0, "debug", 0.9)],  # the same id in another part
        },
    )
    digest = tree_digest(run)
    review = tmp_path / "review.csv"
    result = cli("review", run, "-o", review, "--low-confidence")
    assert result.exit_code == 0, result.stderr
    rows = read_csv(review)
    assert [(r["part"], r["id"]) for r in rows] == [("train/a", "s1")]  # threshold 0.8: run.json
    assert (rows[0]["calls"], rows[0]["elapsed_s"], rows[0]["tokens"]) == ("2", "1.25", "120")
    assert (rows[0]["min_confidence"], rows[0]["min_confidence_dim"]) == ("0.5", "task")
    rows[0]["task"] = "code-explanation"
    write_csv(review, rows)
    fixed = tmp_path / "fixed"
    applied = cli("review", "--apply", review, run, "-o", fixed)
    assert applied.exit_code == 0, applied.stderr
    assert tree_digest(run) == digest
    changed = jsonl((fixed / "train/a/labeled.jsonl").read_text())
    assert changed[0]["labels"]["task"] == ["code-explanation"]
    assert changed[1] == labeled("s2", 1, "build", 0.9)
    assert jsonl((fixed / "train/b/labeled.jsonl").read_text()) == [labeled("s1", 0, "debug", 0.9)]
    for part in ("train/a", "train/b"):
        assert (fixed / part / "failures.jsonl").read_text() == (
            run / part / "failures.jsonl"
        ).read_text()
        assert (fixed / part / "monitor.jsonl").exists()
        assert (fixed / part / "stats.json").exists() and (fixed / part / "labeled.json").exists()
    summary = json.loads((fixed / "summary_stats.json").read_text())
    assert (summary["success"], summary["failed"]) == (3, 2)
    manifest = json.loads((fixed / "run.json").read_text())
    assert manifest["sessions"][-1]["message"].startswith("review --apply")
    # without the part column, the id s1 is ambiguous
    for row in rows:
        del row["part"]
    write_csv(review, rows)
    ambiguous = cli("review", "--apply", review, run, "-o", tmp_path / "other")
    assert ambiguous.exit_code != 0 and "keep the part column" in ambiguous.stderr


def test_a_real_label_run_round_trip(cli, llm_server, tmp_path: Path) -> None:
    llm_server.configure(rules=labeler_rules())
    run = tmp_path / "run"
    result = cli(*label_args(llm_server, run, shared("pangu_test_samples.jsonl")))
    assert result.exit_code == 0, result.stderr
    review = tmp_path / "review.tsv"
    assert cli("review", run, "-o", review).exit_code == 0
    rows = read_csv(review, delimiter="\t")
    assert len(rows) == 18 and int(rows[0]["tokens"]) > 0 and rows[0]["calls"] == "2"
    rows[0]["concept"] = "recursion; algorithms"
    with review.open("w", encoding="utf-8", newline="") as handle:  # saved without BOM
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    fixed = tmp_path / "fixed"
    applied = cli("review", "--apply", review, run, "-o", fixed)
    assert applied.exit_code == 0, applied.stderr
    ordered = json.loads((fixed / "labeled.json").read_text("utf-8"))
    assert [r["index"] for r in ordered] == list(range(18))
    target = next(r for r in ordered if r["id"] == rows[0]["id"])
    assert sorted(target["labels"]["concept"]) == ["algorithms", "recursion"]
    stats = json.loads((fixed / "stats.json").read_text("utf-8"))
    assert stats["tag_distributions"]["concept"]["recursion"] == 1
    assert stats["total_llm_calls"] == 36  # the run's own figures stay


def test_library_api_reports_all_problems(tmp_path: Path) -> None:
    review = tmp_path / "r.csv"
    rows = [
        {"id": "gen-0000", "intent": "nope", "context": "snippet"},
        {"id": "gen-0001", "intent": "learn", "context": "x; y"},
    ]
    write_csv(review, rows)
    with pytest.raises(ReviewFileError) as info:
        apply_review(open_run(deepseek()), review, tmp_path / "out", taxonomy=load_taxonomy())
    assert [(p.row, p.column) for p in info.value.problems] == [(2, "intent"), (3, "context")]
    assert not (tmp_path / "out").exists()


# --- soft labels -----------------------------------------------------------------------------


def soft_output(root: Path, labels: dict[str, tuple[int, float]]) -> Path:
    (root / "train").mkdir(parents=True)
    records = []
    for message, (hard, soft) in labels.items():
        records.append(
            TurnLabel(
                conversationId="c1", messageId=message, split="train", bucket="short",
                hard_label=hard, soft_label=soft, rationale="needs\nthought", turnIndex=1,
            )
        )  # fmt: skip
    records.append(
        TurnLabel(
            conversationId="c2", messageId="m9", split="train", bucket="short",
            error="400 too long", reason="rejected",
        )
    )  # fmt: skip
    lines = b"".join(msgspec.json.encode(r) + b"\n" for r in records)
    (root / "train" / "short.jsonl").write_bytes(lines)
    return root


def test_soft_label_export(cli, tmp_path: Path) -> None:
    out = soft_output(tmp_path / "LABELED_a", {"m1": (1, 0.9), "m2": (0, 0.45), "m3": (0, 0.2)})
    other = soft_output(tmp_path / "LABELED_b", {"m1": (1, 0.8), "m2": (1, 0.55), "m3": (0, 0.1)})
    review = tmp_path / "soft.csv"
    result = cli("review", out, "-o", review)
    assert result.exit_code == 0, result.stderr
    rows = read_csv(review)
    assert list(rows[0])[:7] == [
        "conversationId", "messageId", "split", "bucket", "turnIndex", "hard_label", "soft_label",
    ]  # fmt: skip
    assert [r["messageId"] for r in rows] == ["m1", "m2", "m3", "m9"]
    assert rows[0]["rationale"] == "needs thought" and rows[3]["error"] == "400 too long"
    low = cli("review", out, "-o", review, "--low-confidence")
    assert low.exit_code == 0
    assert [r["messageId"] for r in read_csv(review)] == ["m2"]  # max(p, 1-p) < 0.65
    diff = cli("review", out, "-o", review, "--disagreements-with", other)
    assert diff.exit_code == 0, diff.stderr
    [row] = read_csv(review)
    assert (row["messageId"], row["hard_label"], row["hard_label (LABELED_b)"]) == ("m2", "0", "1")
    refused = cli("review", "--apply", review, out, "-o", tmp_path / "fixed")
    assert refused.exit_code == 2 and "taxonomy runs only" in refused.stderr


def test_rows_show_the_labeled_turn(cli, tmp_path: Path) -> None:
    data = tmp_path / "labeled.jsonl"
    labels = {d: [] for d in DIMS} | {"intent": "learn", "difficulty": "beginner"}
    labels |= {"context": "snippet", "confidence": {"intent": 0.9}}
    turns = []
    for k in (1, 2, 3):
        turns += [
            {"role": "user", "content": f"question {k}"},
            {"role": "assistant", "content": f"answer {k} " + "x" * 300},
        ]
    write_jsonl(data, [{"id": "c_t3", "messages": turns, "labels": labels}])
    assert cli("review", data, "-o", tmp_path / "r.csv").exit_code == 0
    row = read_csv(tmp_path / "r.csv")[0]
    assert row["query"] == "question 1"
    assert row["last_user_message"] == "question 3"
    assert row["reply"].startswith("answer 3 xxx") and len(row["reply"]) <= 200


def test_a_correction_reaches_the_duplicates_of_the_sample(cli, llm_server, tmp_path: Path) -> None:
    """A duplicate was labeled as a copy of its original (``duplicate_of``): correcting the
    original corrects the copies too, unless the reviewer corrected the copy itself."""
    llm_server.configure(rules=labeler_rules())
    conversation = [
        {"from": "human", "value": "How do I reverse a list in Python?"},
        {"from": "gpt", "value": "Use `items[::-1]`."},
    ]
    data = tmp_path / "data.jsonl"
    write_jsonl(data, [{"id": f"d{i}", "conversations": conversation} for i in range(3)])
    run = tmp_path / "run"
    result = cli(*label_args(llm_server, run, data))
    assert result.exit_code == 0, result.stderr
    records = {r["id"]: r for r in jsonl((run / "labeled.jsonl").read_text("utf-8"))}
    copies = [i for i, r in records.items() if r["labeling_monitor"].get("duplicate_of")]
    original = next(i for i in records if i not in copies)
    assert len(copies) == 2
    review = tmp_path / "review.csv"
    assert cli("review", run, "-o", review).exit_code == 0
    rows = read_csv(review)
    for row in rows:
        if row["id"] == original:
            row["concept"] = "recursion"
        elif row["id"] == copies[1]:
            row["concept"] = "algorithms"  # the reviewer's own word for this copy wins
    write_csv(review, rows)
    fixed = tmp_path / "fixed"
    applied = cli("review", "--apply", review, run, "-o", fixed)
    assert applied.exit_code == 0, applied.stderr
    assert "duplicates corrected with their original" in applied.stderr
    after = {r["id"]: r for r in json.loads((fixed / "labeled.json").read_text("utf-8"))}
    assert after[original]["labels"]["concept"] == ["recursion"]
    assert after[copies[0]]["labels"]["concept"] == ["recursion"]
    assert after[copies[0]]["labeling_monitor"]["review_changes"][0]["dimension"] == "concept"
    assert after[copies[0]]["labeling_monitor"]["review_copied_from"] == original
    assert after[copies[1]]["labels"]["concept"] == ["algorithms"]
    assert "review_copied_from" not in after[copies[1]]["labeling_monitor"]
