"""Opening RUN arguments of report/review/compare (sftlabel.reports.open_run)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from sftlabel.errors import InputError
from sftlabel.model import TurnLabel
from sftlabel.reports import open_run

BASELINES = Path("../shared/data/baselines")


def test_baseline_file_opens_with_its_stats() -> None:
    run = open_run(BASELINES / "labeled_deepseek_v4.json")
    assert run.kind == "taxonomy"
    assert run.name == "deepseek_v4"
    assert run.stats is not None and run.stats["total_samples"] == 108
    records = list(run.taxonomy_records())
    assert len(records) == 108
    assert len({r.id for r in records}) == 108
    assert records[0].query  # the first user message of the raw ShareGPT record
    assert set(records[0].labels) >= {"intent", "confidence", "unmapped"}


def test_soft_label_folder(tmp_path: Path) -> None:
    out = tmp_path / "LABELED_demo"
    (out / "train").mkdir(parents=True)
    ok = TurnLabel(
        conversationId="c1", messageId="m1", split="train", bucket="short",
        hard_label=1, soft_label=0.8, rationale=None,
    )  # fmt: skip
    bad = TurnLabel(
        conversationId="c1", messageId="m2", split="train", bucket="short",
        error="400 too long", reason="rejected",
    )  # fmt: skip
    lines = b"".join(msgspec.json.encode(r) + b"\n" for r in (ok, bad))
    (out / "train" / "short.jsonl").write_bytes(lines)
    (out / "labeling_metadata.json").write_text('{"model": "m"}')
    run = open_run(out)
    assert run.kind == "soft" and run.model == "m"
    records = list(run.soft_records())
    assert [part for part, _ in records] == ["train/short", "train/short"]
    assert [r.failed for _, r in records] == [False, True]
    assert b'"hard_label"' not in lines.splitlines()[1]  # a failed turn has no label fields


def test_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('[{"a": 1}]')
    with pytest.raises(InputError, match="neither taxonomy labels nor soft labels"):
        open_run(tmp_path / "x.json")
    with pytest.raises(InputError, match="no labeled data"):
        open_run(tmp_path)
