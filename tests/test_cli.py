"""The command line, through its public surface."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sftlabel import __version__

from .conftest import jsonl, shared, write_jsonl

BUILTINS = [
    "detect", "slice", "label", "softlabel", "arbitrate", "report", "review", "compare",
    "info", "test",
]  # fmt: skip


def test_version(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"sftlabel {__version__}"


def test_help_lists_every_builtin_command(cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for name in BUILTINS:
        assert name in result.stdout


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sftlabel", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"sftlabel {__version__}"


def test_slice_acceptance_counts(cli) -> None:
    result = cli("slice", shared("raw_samples.json"), "-o", "-")
    assert result.exit_code == 0
    samples = jsonl(result.stdout)
    assert len(samples) == 215
    assert "215 samples" in result.stderr
    pangu = cli("slice", shared("pangu_test_samples.jsonl"), "-o", "-")
    assert len(jsonl(pangu.stdout)) == 18


def test_slice_sample_shape(cli) -> None:
    samples = {
        s["id"]: s for s in jsonl(cli("slice", shared("raw_samples.json"), "-o", "-").stdout)
    }
    single = samples["gen-0000"]
    assert single["source_id"] == "gen-0000"
    assert (single["turn_index"], single["total_turns"]) == (1, 1)
    assert [m["role"] for m in single["messages"]] == ["user", "assistant"]
    second = samples["gen-0077_t2"]
    assert second["turn_index"] == 2
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert second["metadata"]["category"] == "agentic-debug-advanced"


def test_slice_sparse_maps_every_skipped_slice_to_a_labeled_one(cli) -> None:
    full = {s["id"] for s in jsonl(cli("slice", shared("raw_samples.json"), "-o", "-").stdout)}
    result = cli("slice", shared("raw_samples.json"), "-o", "-", "--sparse")
    assert result.exit_code == 0
    sparse = jsonl(result.stdout)
    labeled = {s["id"] for s in sparse}
    assert len(labeled) < len(full)
    inherited = {skipped: s["id"] for s in sparse for skipped in s.get("inherited_by", [])}
    assert labeled | set(inherited) == full
    assert not labeled & set(inherited)
    for skipped, source in inherited.items():
        assert skipped.rsplit("_t", 1)[0] == source.rsplit("_t", 1)[0]
        assert int(skipped.rsplit("_t", 1)[1]) < int(source.rsplit("_t", 1)[1])
    assert f"{len(inherited)} slices skipped" in result.stderr


def test_slice_limit_shuffle_and_output_file(cli, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = cli(
        "slice", shared("raw_samples.json"), "-o", out, "--limit", "7", "--shuffle", "--seed", "3"
    )
    assert first.exit_code == 0
    picked = [s["id"] for s in jsonl(out.read_text("utf-8"))]
    assert len(picked) == 7
    again = cli(
        "slice", shared("raw_samples.json"), "-o", "-", "--limit", "7", "--shuffle", "--seed", "3"
    )
    assert [s["id"] for s in jsonl(again.stdout)] == picked
    other = cli(
        "slice", shared("raw_samples.json"), "-o", "-", "--limit", "7", "--shuffle", "--seed", "4"
    )
    assert [s["id"] for s in jsonl(other.stdout)] != picked
    head = cli("slice", shared("raw_samples.json"), "-o", "-", "--limit", "3")
    assert [s["id"] for s in jsonl(head.stdout)] == ["gen-0000", "gen-0001", "gen-0002"]
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_slice_max_chars_marks_truncated_samples(cli, tmp_path: Path) -> None:
    long_turns = []
    for i in range(6):
        long_turns += [
            {"from": "human", "value": f"question {i} " + "q" * 300},
            {"from": "gpt", "value": f"answer {i} " + "a" * 300},
        ]
    path = write_jsonl(tmp_path / "long.jsonl", [{"id": "long", "conversations": long_turns}])
    result = cli("slice", path, "-o", "-", "--max-chars", "1500")
    samples = {s["id"]: s for s in jsonl(result.stdout)}
    last = samples["long_t6"]
    assert last["truncation"]["original_chars"] > 1500
    assert last["truncation"]["kept_chars"] <= 1500
    contents = [m["content"] for m in last["messages"]]
    assert contents[0].startswith("question 0")
    assert contents[-1].startswith("answer 5")
    assert contents[-2].startswith("question 5")
    assert last["truncation"]["omitted_messages"] == 12 - len(contents)
    assert "truncation" not in samples["long_t1"]
    assert "truncated" in result.stderr


def test_detect_names_every_shared_format(cli) -> None:
    result = cli(
        "detect",
        "--json",
        shared("raw_samples.json"),
        shared("pangu_test_samples.jsonl"),
        shared("copilot_raw"),
    )
    assert result.exit_code == 0
    reports = jsonl(result.stdout)
    by_name = {Path(r["path"]).name: r for r in reports}
    assert by_name["raw_samples.json"]["formats"] == {"sharegpt": 108}
    assert by_name["raw_samples.json"]["samples"] == 215
    assert by_name["pangu_test_samples.jsonl"]["formats"] == {"pangu": 12}
    assert by_name["pangu_test_samples.jsonl"]["samples"] == 18
    copilot = [r for r in reports if "copilot_raw" in r["path"]]
    assert len(copilot) == 9
    assert all(set(r["formats"]) == {"copilot"} for r in copilot)
    variants = {
        d["id"]: d["variants"] for d in by_name["pangu_test_samples.jsonl"]["record_details"]
    }
    assert variants["pangu-004"] == ["pseudo-multi-turn", "fast-thinking", "slow-thinking"]
    assert variants["pangu-005"] == [
        "multi-turn",
        "fast-thinking",
        "slow-thinking",
        "inline-tool-calls",
    ]


def test_detect_human_output_lists_pangu_variants_per_record(cli) -> None:
    result = cli("detect", shared("pangu_test_samples.jsonl"))
    assert result.exit_code == 0
    assert "pangu (12)" in result.stdout
    assert "pseudo-multi-turn" in result.stdout
    assert "pangu-012" in result.stdout


def test_detect_exit_code_is_1_when_records_are_unreadable(cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": [\n', "utf-8")
    result = cli("detect", "--json", path)
    assert result.exit_code == 1
    [report] = jsonl(result.stdout)
    assert report["unreadable"] == 1
    assert report["problems"][-1]["location"] == {"path": str(path), "line": 2}


def test_missing_input_is_one_clean_error_line(cli, tmp_path: Path) -> None:
    result = cli("slice", tmp_path / "nope.jsonl", "-o", "-")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no such file or directory")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_info_json_taxonomy_counts(cli) -> None:
    result = cli("info", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["version"] == __version__
    categories = data["taxonomy"]["categories"]
    counts = {name: c["count"] for name, c in categories.items()}
    assert counts == {
        "intent": 5,
        "language": 75,
        "domain": 38,
        "task": 21,
        "difficulty": 4,
        "concept": 25,
        "agentic": 23,
        "constraint": 20,
        "context": 10,
    }
    assert sum(counts.values()) == data["taxonomy"]["total"] == 221
    assert {name: c["select"] for name, c in categories.items() if c["select"] == "single"} == {
        "intent": "single",
        "difficulty": "single",
        "context": "single",
    }
    builtin = {(p["group"], p["name"]) for p in data["plugins"] if p["builtin"]}
    assert {("sftlabel.commands", name) for name in BUILTINS} <= builtin
    assert {("sftlabel.formats", f) for f in ("sharegpt", "pangu", "openai", "copilot")} <= builtin


def test_info_redacts_secrets_and_shows_sources(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("SFTLABEL_API_KEY", secret)
    monkeypatch.setenv("LITELLM_BASE", "http://127.0.0.1:4000/v1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sftlabel.toml").write_text(
        'model = "deepseek-v3.2"\nazure_api_key = "az-secret-999"\n', "utf-8"
    )
    for args in (("info", "--json"), ("info",)):
        result = cli(*args)
        assert result.exit_code == 0
        assert secret not in result.output
        assert "az-secret-999" not in result.output
    config = json.loads(cli("info", "--json").stdout)["config"]
    assert config["api_key"] == {"value": "<redacted>", "source": "env", "from": "SFTLABEL_API_KEY"}
    assert config["base_url"]["source"] == "env" and config["base_url"]["from"] == "LITELLM_BASE"
    assert config["model"]["value"] == "deepseek-v3.2" and config["model"]["source"] == "config"
    assert config["azure_api_key"]["value"] == "<redacted>"
    assert config["cache_dir"]["source"] == "default"


def test_info_with_a_broken_custom_taxonomy_is_one_error_line(cli, tmp_path: Path) -> None:
    (tmp_path / "taxonomy.yaml").write_text(
        'version: "1"\ncategories:\n  intent: {name: Intent, select: single}\n', "utf-8"
    )
    result = cli("info", "--taxonomy", tmp_path)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: invalid taxonomy")
    assert "tags/intent.yaml is missing" in result.stderr


def test_shell_completion_completes_commands_and_options() -> None:
    """What `sftlabel --install-completion` installs: the shell asks the program itself."""
    executable = Path(sys.executable).with_name("sftlabel")

    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            "_SFTLABEL_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        }
        done = subprocess.run(
            [str(executable)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        return done.stdout.split()

    assert "softlabel" in complete("sftlabel sof")
    assert "--no-rationales" in complete("sftlabel softlabel --no-r")
    shown = subprocess.run(
        [str(executable), "--show-completion", "bash"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0 and "_SFTLABEL_COMPLETE" in shown.stdout
