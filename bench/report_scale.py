"""Benchmark `sftlabel report` on a synthetic labeled.jsonl of 10^6 samples.

Builds the file once (bench/data/labeled_1m.jsonl: realistic records with messages, labels drawn
from the taxonomy, confidences, unmapped values, monitors), then runs `sftlabel report --unmapped`
in a subprocess and prints wall time, throughput, CPU per sample, peak RSS and the size of the
dashboard (which must not grow with the number of samples).

    python bench/report_scale.py                  # 10^6 samples
    python bench/report_scale.py --samples 100000
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from sftlabel.taxonomy import load_taxonomy

TARGET_RSS_MB = 200
"""Memory must not depend on the number of samples (issue 15: 200 MB at 10^6 samples)."""
TARGET_WALL_S = 30
"""Issue 15: `report` on 10^6 samples under 30 s."""

WORDS = [
    "python",
    "function",
    "error",
    "database",
    "query",
    "async",
    "server",
    "deploy",
    "cache",
    "parse",
    "test",
    "build",
    "memory",
    "thread",
    "lock",
    "kubernetes",
    "docker",
    "api",
    "request",
    "response",
    "index",
    "schema",
    "migrate",
]


def make(path: Path, samples: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    taxonomy = load_taxonomy()
    tags = {cid: c.ids for cid, c in taxonomy.categories.items()}
    single = {cid for cid, c in taxonomy.categories.items() if c.select == "single"}
    novel = [f"novel-tag-{i}" for i in range(3000)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for i in range(samples):
            labels: dict[str, object] = {}
            for cid, ids in tags.items():
                if cid in single:
                    labels[cid] = rng.choice(ids)
                else:  # a long-tailed choice: the first tags are the frequent ones
                    k = rng.choice((0, 1, 1, 2, 3))
                    labels[cid] = sorted(
                        {ids[min(int(rng.expovariate(0.15)), len(ids) - 1)] for _ in range(k)}
                    )
            labels["confidence"] = {cid: round(rng.betavariate(8, 1.5), 2) for cid in tags}
            labels["unmapped"] = (
                [{"dimension": rng.choice(list(tags)), "value": rng.choice(novel)}]
                if rng.random() < 0.08
                else []
            )
            query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 60)))
            record = {
                "id": f"s{i:07d}",
                "source_id": f"s{i:07d}",
                "source_format": "sharegpt",
                "turn_index": 1,
                "total_turns": 1,
                "index": i,
                "messages": [
                    {"role": "user", "content": query},
                    {
                        "role": "assistant",
                        "content": " ".join(rng.choice(WORDS) for _ in range(80)),
                    },
                ],
                "labels": labels,
                "labeling_monitor": {
                    "llm_calls": 2 if rng.random() < 0.95 else 3,
                    "arbitrated": rng.random() < 0.05,
                    "validation_issues": [],
                    "consistency_warnings": [],
                    "prompt_tokens": rng.randint(3000, 9000),
                    "completion_tokens": rng.randint(150, 300),
                    "cost": 0.0004,
                },
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/out/report_scale"))
    args = parser.parse_args()
    data = args.data or Path(f"bench/data/labeled_{args.samples}.jsonl")
    if not data.exists():
        started = time.perf_counter()
        make(data, args.samples)
        print(f"built {data} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    size_mb = data.stat().st_size / 1024 / 1024
    command = [sys.executable, "-m", "sftlabel", "report", str(data), "-o", str(args.out),
               "--unmapped"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"report failed ({done.returncode}):\n{done.stderr}")
    cpu = (usage.ru_utime - before.ru_utime) + (usage.ru_stime - before.ru_stime)
    rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    page = args.out / "dashboard.html"
    print(f"input             {size_mb:,.0f} MiB, {args.samples:,} samples ({data})")
    print(f"wall time         {elapsed:.1f} s  ({args.samples / elapsed:,.0f} samples/s, "
          f"{size_mb / elapsed:.1f} MiB/s)")  # fmt: skip
    print(f"cpu               {cpu:.1f} s = {cpu / TARGET_WALL_S:.2f} x the wall-time bound "
          f"({cpu / args.samples * 1e6:.1f} µs per sample; on a shared machine the wall time "
          "is longer, compare this)")  # fmt: skip
    print(f"peak RSS          {rss_mb:,.0f} MiB  = {rss_mb / TARGET_RSS_MB:.2f} x bound")
    print(f"dashboard.html    {page.stat().st_size / 1024 / 1024:.2f} MiB")
    print(f"report.md         {(args.out / 'report.md').stat().st_size / 1024:.1f} KiB")
    print(f"unmapped.json     {(args.out / 'unmapped.json').stat().st_size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
