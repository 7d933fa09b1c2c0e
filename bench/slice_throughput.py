"""Benchmark `sftlabel slice` on a large mixed corpus: throughput and peak memory.

Targets (issue 13): at least 20,000 samples/s on a 2-core machine and a peak RSS under
150 MB while streaming a ~700 MB corpus. Prints measured figures and their ratio to the targets.

    python bench/make_corpus.py --size-mb 700      # once
    python bench/slice_throughput.py bench/data/corpus.jsonl
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

TARGET_SAMPLES_PER_S = 20_000
TARGET_RSS_MB = 150


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("corpus", type=Path)
    parser.add_argument(
        "--output", default=os.devnull, help="where the samples go (default: discard)"
    )
    parser.add_argument("extra", nargs="*", help="extra arguments for sftlabel slice")
    args = parser.parse_args()
    size_mb = args.corpus.stat().st_size / 1024 / 1024
    command = [
        sys.executable,
        "-m",
        "sftlabel",
        "slice",
        str(args.corpus),
        "-o",
        args.output,
        *args.extra,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        sys.exit(f"slice failed ({done.returncode}):\n{done.stderr}")
    match = re.search(r"([\d,]+) samples? written", done.stderr)
    samples = int(match.group(1).replace(",", "")) if match else 0
    cpu = (usage.ru_utime - before.ru_utime) + (usage.ru_stime - before.ru_stime)
    rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    rate = samples / elapsed
    print(f"corpus            {size_mb:,.0f} MiB ({args.corpus})")
    print(f"samples           {samples:,}")
    print(f"wall time         {elapsed:.1f} s  ({size_mb / elapsed:.1f} MiB/s)")
    print(f"cpu per sample    {cpu / max(samples, 1) * 1e6:.1f} µs")
    print(f"throughput        {rate:,.0f} samples/s  = {rate / TARGET_SAMPLES_PER_S:.2f} x target")
    budget = rss_mb / TARGET_RSS_MB
    print(f"peak RSS          {rss_mb:.0f} MB  = {budget:.2f} x budget ({TARGET_RSS_MB} MB)")
    print(done.stderr.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
