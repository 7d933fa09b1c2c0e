"""Benchmark a label run over many one-record files: run directory size and finalize cost.

A directory of N one-record JSONL files is labeled against the fake server on 127.0.0.1
(tests/fake_llm_server.py, no latency), then the finished run is finalized again
(``sftlabel.runs._label.finalize``: labeled.json and stats.json per part, the part dashboards and
the global one, report.md) and reported again (``build_report`` alone), each in a subprocess
timed for wall and CPU. Targets (issue 15): run directory under 60 MB and finalize under 10 s
for 1,000 files; cost must grow with the data, not the number of files.

    python bench/report_parts.py                # 1,000 files
    python bench/report_parts.py --files 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.label_throughput import RULES, label, timed  # noqa: E402
from tests.llm_server import FakeLLMServer  # noqa: E402

TARGET_MB = 60
TARGET_FINALIZE_S = 10

FINALIZE = """
import sys
from pathlib import Path
from sftlabel.runs._label import finalize
from sftlabel.taxonomy import load_taxonomy
finalize(Path(sys.argv[1]), load_taxonomy())
"""
REPORT = """
import sys
from pathlib import Path
from sftlabel.reports import build_report
build_report(Path(sys.argv[1]), Path(sys.argv[1]))
"""


def make_files(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        record = {
            "id": f"f{i}",
            "conversations": [
                {"from": "human", "value": f"How do I reverse a list in Python? (file {i})"},
                {"from": "gpt", "value": "Use `items[::-1]` or `items.reverse()` in place."},
            ],
        }
        (folder / f"part_{i:05d}.jsonl").write_text(json.dumps(record) + "\n", "utf-8")
    return folder


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="work in this new directory and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder) if args.keep is None else args.keep
        data = make_files(tmp / "data", args.files)
        run = tmp / "run"
        with FakeLLMServer() as server:
            server.configure(rules=RULES)
            wall, cpu, code = timed(
                label(server, data, run, tmp / "cache.sqlite", "--concurrency", "50")
            )
            print(f"label run         {args.files:,} one-record files: {wall:.1f} s wall, "
                  f"{cpu:.1f} s CPU (exit {code}; includes the finalize at its end)")  # fmt: skip
            wall, cpu, code = timed(
                [sys.executable, "-m", "sftlabel", "label", "--resume", str(run),
                 "--base-url", server.base_url, "--cache", str(tmp / "cache.sqlite")]
            )  # fmt: skip
            print(f"no-op resume      {wall:.1f} s wall, {cpu:.1f} s CPU (exit {code})")
        total = size_mb(run)
        pages = list(run.rglob("dashboard.html"))
        print(f"run directory     {total:,.1f} MB = {total / TARGET_MB:.2f} x bound "
              f"({len(pages):,} dashboards, {size_mb(run) / max(len(pages), 1) * 1024:.0f} KB "
              "per dashboard on average incl. data)")  # fmt: skip
        wall, cpu, code = timed([sys.executable, "-c", FINALIZE, str(run)])
        print(f"finalize          {wall:.1f} s wall = {wall / TARGET_FINALIZE_S:.2f} x bound, "
              f"{cpu:.1f} s CPU (exit {code})")  # fmt: skip
        wall, cpu, code = timed([sys.executable, "-c", REPORT, str(run)])
        print(f"build_report      {wall:.1f} s wall, {cpu:.1f} s CPU (exit {code})")
        print("(wall times on a shared machine: compare the CPU times)")


if __name__ == "__main__":
    main()
