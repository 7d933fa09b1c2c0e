"""CPU of escaping delimiter and role-marker look-alikes (issue 17 item 6).

Renders both labeling calls of every sample of the shared data and the softlabel prompts of
every copilot_raw turn, with the escaping and with it replaced by the identity, and prints the
CPU per sample / turn and the ratio; then the escaping alone on long texts (60,000 characters:
ASCII, mixed, CJK).

    python bench/defuse_cost.py [--data ../shared/data] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sftlabel.labeling import _prompts  # noqa: E402
from sftlabel.labeling._defuse import Defuser  # noqa: E402
from sftlabel.runs._label import sample_stream  # noqa: E402
from sftlabel.runs._manifest import LabelOptions  # noqa: E402
from sftlabel.runs._softlabel import turn_stream  # noqa: E402
from sftlabel.softlabel import _prompts as soft_prompts  # noqa: E402
from sftlabel.softlabel import _strategies, get_strategy  # noqa: E402
from sftlabel.softlabel._strategies import StrategyOptions  # noqa: E402
from sftlabel.taxonomy import load_taxonomy  # noqa: E402


def cpu(work, repeat: int) -> float:
    start = time.process_time()
    for _ in range(repeat):
        work()
    return (time.process_time() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    samples = []
    for name in ("raw_samples.json", "pangu_test_samples.jsonl"):
        samples += [s for _, s in sample_stream([str(args.data / name)], LabelOptions(model="x"))]
    turns = [t for _, t in turn_stream([args.data / "copilot_raw"])]
    strategy = get_strategy("with_context")
    options = StrategyOptions()

    def label() -> None:
        for sample in samples:
            _prompts.build_messages(taxonomy, 1, sample)
            _prompts.build_messages(taxonomy, 2, sample, previous={"intent": "debug"})

    def soft() -> None:
        for turn in turns:
            soft_prompts.classification_messages(strategy, strategy.render(turn, options))

    label()  # warm the caches (static prompts, the invisible-character table)
    with_escaping = (cpu(label, args.repeat) / len(samples), cpu(soft, args.repeat) / len(turns))
    saved = (_prompts.defuse, _prompts.defuse_delimiters, soft_prompts.defuse_delimiters)
    _prompts.defuse = _prompts.defuse_delimiters = soft_prompts.defuse_delimiters = str  # type: ignore[assignment]
    _strategies.defuse, saved_strategy = str, _strategies.defuse  # type: ignore[assignment]
    without = (cpu(label, args.repeat) / len(samples), cpu(soft, args.repeat) / len(turns))
    _prompts.defuse, _prompts.defuse_delimiters, soft_prompts.defuse_delimiters = saved
    _strategies.defuse = saved_strategy
    for name, count, ours, plain in (
        ("label, 2 calls per sample", len(samples), with_escaping[0], without[0]),
        ("softlabel with_context, per turn", len(turns), with_escaping[1], without[1]),
    ):
        print(
            f"{name:34s} ({count} of them): {ours * 1e3:.3f} ms with escaping, "
            f"{plain * 1e3:.3f} ms without ({ours / plain:.2f}x)"
        )
    defuse = Defuser(("SAMPLE", "TURN"), _prompts.ROLE_MARKERS, edges=True)
    corpus = json.dumps([s.messages[-1].content for s in samples], ensure_ascii=False)
    texts = {
        "ASCII": corpus.encode("ascii", "ignore").decode()[:60_000],
        "mixed": corpus[:60_000],
        "CJK": ("我的服务在高并发下偶尔出现死锁，帮我看看。\n" * 3000)[:60_000],
    }
    for name, text in texts.items():
        per = cpu(lambda text=text: defuse(text), args.repeat * 4)
        print(f"escaping 60,000 characters, {name:5s}: {per * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
