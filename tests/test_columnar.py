"""Parquet and Arrow inputs (what Hugging Face ``datasets`` writes and the Hub serves)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sftlabel.formats import Reader
from sftlabel.model import Problem, Sample
from sftlabel.slicing import iter_samples

from .conftest import jsonl, write_jsonl

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def records() -> list[dict[str, Any]]:
    sharegpt = [
        {
            "id": f"sg-{i}",
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": f"question {i}"},
                {"from": "gpt", "value": f"<think>hmm {i}</think>answer {i}"},
                *([{"from": "human", "value": "more?"}, {"from": "gpt", "value": "yes"}] * (i % 3)),
            ],
            **({"source": "web"} if i % 2 else {}),
        }
        for i in range(40)
    ]
    messages = [
        {
            "id": f"oa-{i}",
            "messages": [
                {"role": "user", "content": f"do {i}"},
                {
                    "role": "assistant",
                    "content": None if i % 2 else "calling",
                    "tool_calls": [
                        {
                            "id": f"c{i}",
                            "type": "function",
                            "function": {"name": "run", "arguments": json.dumps({"n": i})},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": f"c{i}", "content": "done"},
                {"role": "assistant", "content": "finished", "reasoning_content": "ok"},
            ],
        }
        for i in range(40)
    ]
    return sharegpt + messages


def table(rows: list[dict[str, Any]]) -> Any:
    """A table with a column for every key of every row (as `datasets` infers its features)."""
    return pa.Table.from_batches([pa.RecordBatch.from_struct_array(pa.array(rows))])


def samples(*paths: Path) -> tuple[list[Sample], list[Problem]]:
    out: list[Sample] = []
    problems: list[Problem] = []
    for item in iter_samples(Reader().read(list(paths))):
        (problems if isinstance(item, Problem) else out).append(item)  # type: ignore[arg-type]
    return out, problems


def without_location(items: list[Sample]) -> list[Any]:
    return [msgspec.structs.replace(s, location=None) for s in items]


def test_parquet_gives_the_same_samples_as_its_jsonl_twin(tmp_path: Path) -> None:
    rows = records()
    twin = write_jsonl(tmp_path / "twin.jsonl", rows)
    # One file per shape, as `datasets` writes them (a column for every key of every row).
    pq.write_table(table(rows[:40]), tmp_path / "sharegpt.parquet", row_group_size=7)
    pq.write_table(table(rows[40:]), tmp_path / "messages.parquet")
    from_json, problems = samples(twin)
    assert problems == []
    from_parquet, problems = samples(tmp_path / "sharegpt.parquet", tmp_path / "messages.parquet")
    assert problems == []
    assert len(from_parquet) == len(from_json) == sum(1 + i % 3 for i in range(40)) + 80
    assert without_location(from_parquet) == without_location(from_json)
    assert from_parquet[0].location is not None
    assert from_parquet[0].location.index == 0
    assert str(from_parquet[-1].location).endswith("messages.parquet[39]")


def test_one_parquet_file_mixing_both_shapes(tmp_path: Path) -> None:
    rows = records()
    pq.write_table(table(rows), tmp_path / "mixed.parquet", row_group_size=16)
    from_json, _ = samples(write_jsonl(tmp_path / "twin.jsonl", rows))
    from_parquet, problems = samples(tmp_path / "mixed.parquet")
    assert problems == []
    assert without_location(from_parquet) == without_location(from_json)


def test_save_to_disk_and_push_to_hub_layouts(tmp_path: Path, cli) -> None:
    rows = records()
    data = table(rows)
    # save_to_disk of a DatasetDict: dataset_dict.json, one folder per split with Arrow streams
    saved = tmp_path / "saved"
    for split, part in (("train", data.slice(0, 60)), ("test", data.slice(60))):
        folder = saved / split
        folder.mkdir(parents=True)
        with (
            pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink,
            pa.ipc.new_stream(sink, part.schema) as writer,
        ):
            for batch in part.to_batches(max_chunksize=9):
                writer.write_batch(batch)
        (folder / "dataset_info.json").write_text(json.dumps({"features": {}}), "utf-8")
        (folder / "state.json").write_text(json.dumps({"_data_files": []}), "utf-8")
    (saved / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}), "utf-8")
    # push_to_hub: data/<split>-00000-of-00001.parquet and a README
    hub = tmp_path / "hub"
    (hub / "data").mkdir(parents=True)
    pq.write_table(data, hub / "data" / "train-00000-of-00001.parquet")
    (hub / "README.md").write_text("---\nconfigs: []\n---\n", "utf-8")

    expected, _ = samples(write_jsonl(tmp_path / "twin.jsonl", rows))
    for root, notes in ((saved, []), (hub, ["skipped-files"])):
        found, problems = samples(root)
        # the datasets metadata files are skipped silently, the README with a note
        assert [p.code for p in problems] == notes
        assert sorted(s.id for s in found) == sorted(s.id for s in expected)
    assert "1 not data files (README.md)" in samples(hub)[1][0].message

    result = cli("detect", saved, "--json")
    assert result.exit_code == 0, result.stderr
    assert sum(r["samples"] for r in jsonl(result.stdout)) == len(expected)
    (hub / "data" / "notes.txt").write_text("x", "utf-8")
    (hub / "data" / "dataset_info.json").write_text("{}", "utf-8")
    result = cli("detect", hub)
    note = " ".join(result.stderr.split())
    assert "skipped 3 file(s): 2 not data files (README.md, data/notes.txt)" in note
    assert "1 dataset metadata (data/dataset_info.json)" in note


def test_an_arrow_ipc_file_and_a_parquet_file_without_its_extension(tmp_path: Path) -> None:
    data = table(records()[:5])
    with (
        pa.OSFile(str(tmp_path / "file.arrow"), "wb") as sink,
        pa.ipc.new_file(sink, data.schema) as writer,
    ):
        writer.write_table(data)
    pq.write_table(data, tmp_path / "data.bin")
    for path in (tmp_path / "file.arrow", tmp_path / "data.bin"):
        found, problems = samples(path)
        assert problems == []
        assert len(found) == 5 + sum(1 + i % 3 for i in range(5)) - 5


def test_a_damaged_parquet_file_is_one_file_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 100)
    found, problems = samples(path)
    assert found == []
    assert [(p.severity, p.code, p.record_level) for p in problems] == [
        ("error", "unreadable-file", False)
    ]


def test_without_pyarrow_a_clear_install_hint(tmp_path: Path, cli, monkeypatch) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(table(records()[:2]), path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    found, problems = samples(path)
    assert found == []
    assert [(p.severity, p.code) for p in problems] == [("error", "needs-parquet")]
    assert "pip install 'sftlabel[parquet]'" in problems[0].message
    result = cli("detect", path)
    assert result.exit_code == 1
    assert "sftlabel[parquet]" in result.stdout
