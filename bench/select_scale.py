"""Benchmark `sftlabel select` on a large synthetic run: records/s and peak RSS.

Builds bench/data/labeled_<N>.jsonl once (the records of bench/report_scale.py: messages,
labels drawn from the taxonomy, confidences, unmapped values, monitors), then runs three
queries in fresh subprocesses and prints wall time, records read per second (of wall and of
CPU time: the CPU figure holds on a shared machine) and the peak RSS of each, with the ratio to the memory target (which must not depend on N):

* ``filter``: two --where conditions, every match written as Sample JSONL (one pass counting,
  one pass writing);
* ``balance``: the same filter, 1,000 per intent, seeded (candidates in SQLite, two passes),
  in the source format (the synthetic samples have no raw input: rebuilt from their messages);
* ``dry-run``: counts only (one pass).

    python bench/select_scale.py                   # 10^6 samples
    python bench/select_scale.py --samples 200000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from report_scale import make  # bench/ is on sys.path when this file runs

TARGET_RSS_MB = 120
"""Constant memory: the peak must not grow with the number of records."""

_MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(usage.ru_maxrss, usage.ru_utime + usage.ru_stime, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run(name: str, args: list[str], records: int) -> dict[str, object]:
    sftlabel = shutil.which("sftlabel") or "sftlabel"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, sftlabel, "select", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    peak_kb, cpu = done.stderr.strip().splitlines()[-1].split()
    peak_mb = int(peak_kb) / 1024
    return {
        "scenario": name,
        "records": records,
        "wall_s": round(wall, 1),
        "records_per_s": round(records / wall),
        "cpu_s": round(float(cpu), 1),
        "records_per_cpu_s": round(records / float(cpu)),
        "peak_rss_mb": round(peak_mb, 1),
        "rss_ratio_to_target": round(peak_mb / TARGET_RSS_MB, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/out/select_scale"))
    args = parser.parse_args()
    data = args.data or Path(f"bench/data/labeled_{args.samples}.jsonl")
    if not data.exists():
        started = time.perf_counter()
        make(data, args.samples)
        print(f"built {data} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    where = ["--where", "intent in debug,build", "--where", "difficulty!=beginner"]
    results = [
        run("dry-run", [str(data), *where, "--dry-run", "--json"], args.samples),
        run(
            "filter",
            [str(data), *where, "-o", str(args.out / "f.jsonl"), "--format", "samples", "--force"],
            args.samples,
        ),
        run(
            "balance",
            [
                str(data),
                *where,
                "--balance",
                "intent",
                "--per-value",
                "1000",
                "--seed",
                "7",
                "-o",
                str(args.out / "balance.jsonl"),
                "--force",
            ],
            args.samples,
        ),
    ]
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
