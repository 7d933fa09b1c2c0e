"""Benchmark reading Parquet: peak RSS stays flat however large the file (target: 1 GB of parquet
under 200 MB peak RSS), and the throughput of `sftlabel slice` on it.

Writes a Parquet file of ShareGPT-style and messages-style rows (the corpus of make_corpus.py)
in row groups of --row-group-rows rows (`datasets` writes 1,000-row groups by default; pyarrow's
write_table defaults to 1 Mi rows, which makes one row group of a whole file), then slices it in
a child process and reports the child's peak RSS. Needs pyarrow (`pip install 'sftlabel[parquet]'`).

    python bench/parquet_stream.py --size-mb 1024
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_corpus import templates

TARGET_RSS_MB = 200


def write(path: Path, size_mb: float, row_group_rows: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [r for r in templates() if "conversations" in r or "messages" in r]
    target = size_mb * 1024 * 1024
    rows = 0
    writer = None
    batch: list[dict[str, object]] = []
    try:
        while True:
            for record in records:
                batch.append({**record, "id": f"{record['id']}-{rows}"})
                rows += 1
                if len(batch) >= row_group_rows:
                    table = pa.Table.from_batches(
                        [pa.RecordBatch.from_struct_array(pa.array(batch))]
                    )
                    if writer is None:
                        writer = pq.ParquetWriter(path, table.schema)
                    writer.write_table(table.cast(writer.schema))
                    batch.clear()
                    if path.stat().st_size >= target:
                        return rows
    finally:
        if writer is not None:
            writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=float, default=1024.0)
    parser.add_argument("--row-group-rows", type=int, default=1000)
    parser.add_argument("-o", "--output", type=Path, default=Path("bench/data/corpus.parquet"))
    parser.add_argument("--reuse", action="store_true", help="read an existing file as it is")
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not (args.reuse and args.output.exists()):
        start = time.perf_counter()
        rows = write(args.output, args.size_mb, args.row_group_rows)
        print(f"wrote             {rows:,} rows in {time.perf_counter() - start:.0f} s")
    size_mb = args.output.stat().st_size / 1024 / 1024
    command = [sys.executable, "-m", "sftlabel", "slice", str(args.output), "-o", os.devnull]
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
    print(
        f"parquet           {size_mb:,.0f} MiB ({args.output}), row groups of {args.row_group_rows:,} rows"
    )
    print(f"samples           {samples:,}")
    print(f"wall time         {elapsed:.1f} s  ({size_mb / elapsed:.1f} MiB/s)")
    print(
        f"throughput        {samples / elapsed:,.0f} samples/s, {samples / max(cpu, 1e-9):,.0f} per CPU-second"
    )
    print(
        f"peak RSS          {rss_mb:.0f} MB  = {rss_mb / TARGET_RSS_MB:.2f} x budget ({TARGET_RSS_MB} MB)"
    )
    print(done.stderr.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
