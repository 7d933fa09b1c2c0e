"""Benchmark `sftlabel compare` on two synthetic 10^5-sample labeled.jsonl runs: time and memory.

Writes two runs of N samples each (default 100,000) under bench/data/compare/: realistic
records (a conversation of a few hundred characters, the nine taxonomy dimensions drawn from the
built-in taxonomy, confidences, a labeling_monitor with tokens and cost). Run B changes each
dimension of 20% of the samples, is shuffled (pairing must go by id) and each run has 1% of ids
the other lacks. Then runs `sftlabel compare A B --json -o report.md -o report.html` in a
subprocess and prints wall time, CPU, samples/s and the peak RSS, beside the RSS of a bare
`sftlabel --version` (interpreter + imports), so the per-sample cost shows.

    python bench/compare_scale.py              # 100,000 samples per run
    python bench/compare_scale.py --samples 1000000
    python bench/compare_scale.py --gold      # also `compare A --gold B`: the calibration's cost
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sftlabel.taxonomy import load_taxonomy

TARGET_RSS_MB = 500
"""Budget for two 10^5-sample runs (nothing in memory but compact per-sample tuples)."""

TEXT = (
    "How do I make this function handle concurrent writes safely? It currently opens the file, "
    "reads the JSON document, updates one key and writes it back, and under load we lose "
    "updates. Here is the code: def update(path, key, value): data = json.load(open(path)); "
)


def _labels(rng: random.Random, taxonomy, dims: list[str]) -> dict[str, object]:
    labels: dict[str, object] = {}
    for dim in dims:
        category = taxonomy.categories[dim]
        ids = category.ids
        if category.select == "single":
            labels[dim] = rng.choice(ids)
        else:
            labels[dim] = sorted(rng.sample(ids, rng.choice((0, 1, 1, 2, 2, 3))))
    labels["confidence"] = {d: round(rng.uniform(0.5, 1.0), 2) for d in dims}
    labels["unmapped"] = []
    return labels


def _perturb(rng: random.Random, taxonomy, dims: list[str], labels: dict) -> dict:
    other = json.loads(json.dumps(labels))
    for dim in dims:
        if rng.random() < 0.2:
            category = taxonomy.categories[dim]
            if category.select == "single":
                other[dim] = rng.choice(category.ids)
            else:
                tags = set(other[dim])
                tags ^= {rng.choice(category.ids)}
                other[dim] = sorted(tags)
    return other


def make_runs(root: Path, samples: int, seed: int = 0) -> tuple[Path, Path]:
    taxonomy = load_taxonomy()
    dims = taxonomy.dimensions()
    rng = random.Random(seed)
    run_a, run_b = root / "run_a", root / "run_b"
    for run in (run_a, run_b):
        run.mkdir(parents=True, exist_ok=True)
    lines_b: list[str] = []
    with (run_a / "labeled.jsonl").open("w", encoding="utf-8") as out_a:
        for index in range(samples):
            sid = f"sample-{index:07d}"
            labels = _labels(rng, taxonomy, dims)
            monitor = {
                "llm_calls": 2,
                "prompt_tokens": rng.randint(2000, 9000),
                "completion_tokens": rng.randint(100, 300),
                "cost": 0.001,
                "elapsed": round(rng.uniform(1, 6), 3),
            }
            record = {
                "id": sid,
                "source_id": sid,
                "source_format": "sharegpt",
                "turn_index": 1,
                "total_turns": 1,
                "messages": [
                    {"role": "user", "content": f"{TEXT} ({index})"},
                    {"role": "assistant", "content": TEXT[::-1] * 2},
                ],
                "index": index,
                "labels": labels,
                "labeling_monitor": monitor,
            }
            if rng.random() >= 0.01:  # 1% only in B
                out_a.write(json.dumps(record) + "\n")
            if rng.random() >= 0.01:  # 1% only in A
                record["labels"] = _perturb(rng, taxonomy, dims, labels)
                record["labeling_monitor"] = {**monitor, "llm_calls": rng.choice((2, 2, 3))}
                lines_b.append(json.dumps(record))
    rng.shuffle(lines_b)
    (run_b / "labeled.jsonl").write_text("\n".join(lines_b) + "\n", encoding="utf-8")
    return run_a, run_b


def run(command: list[str]) -> tuple[float, float, float, subprocess.CompletedProcess[str]]:
    """(wall s, cpu s, peak RSS MB, result) of one child process (os.wait4: its own rusage)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(command, child.returncode, out.read(), err.read())
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--root", type=Path, default=Path("bench/data/compare"))
    parser.add_argument("--keep", action="store_true", help="reuse the runs if they exist")
    parser.add_argument("--make-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--gold",
        action="store_true",
        help="also run `compare A --gold B` (B the gold run: the same comparison plus the "
        "confidence calibration) and print its CPU against the plain comparison",
    )
    args = parser.parse_args()
    root = args.root / str(args.samples)
    if args.make_only:
        make_runs(root, args.samples)
        return
    run_a, run_b = root / "run_a", root / "run_b"
    started = time.perf_counter()
    if not (args.keep and (run_b / "labeled.jsonl").exists()):
        # in a child process: a child forked from a big parent would start with its peak RSS
        maker = [sys.executable, __file__, "--make-only", "--samples", str(args.samples)]
        subprocess.run([*maker, "--root", str(args.root)], check=True)
    made = time.perf_counter() - started
    size = sum((r / "labeled.jsonl").stat().st_size for r in (run_a, run_b)) / 1024 / 1024
    sftlabel = [sys.executable, "-m", "sftlabel"]
    # the process before it reads anything: the CLI with every command, plotly imported
    imports = "from sftlabel.cli import build_app; build_app(); import plotly.offline"
    _, _, base_rss, _ = run([sys.executable, "-c", imports])
    command = [
        *sftlabel, "compare", str(run_a), str(run_b), "--json",
        "-o", str(root / "report.md"), "-o", str(root / "report.html"),
    ]  # fmt: skip
    elapsed, cpu, rss, done = run(command)
    if done.returncode != 0:
        sys.exit(f"compare failed ({done.returncode}):\n{done.stderr}")
    result = json.loads(done.stdout)
    pair = result["comparisons"][0]
    paired = pair["paired"]
    total = sum(r["records"] for r in result["runs"])
    print(f"runs              2 x {args.samples:,} samples, {size:,.0f} MiB (made in {made:.1f} s)")
    print(
        f"paired            {paired:,} (only in A {pair['unpaired']['a_only']:,}, only in B {pair['unpaired']['b_only']:,})"
    )
    print(
        f"agreement         all dimensions {pair['all_dimensions_exact']:.3f}, mean per dimension {pair['mean_dimension_exact']:.3f}"
    )
    print(f"wall time         {elapsed:.1f} s ({total / elapsed:,.0f} samples/s read and compared)")
    print(f"cpu               {cpu:.1f} s ({cpu / total * 1e6:.1f} µs per sample)")
    print(
        f"peak RSS          {rss:.0f} MB = {rss / TARGET_RSS_MB:.2f} x budget ({TARGET_RSS_MB} MB)"
    )
    print(f"  bare process    {base_rss:.0f} MB (interpreter, CLI and plotly imported)")
    print(
        f"  per sample      {(rss - base_rss) * 1024 * 1024 / total:,.0f} bytes above that per sample read"
    )
    html = (root / "report.html").stat().st_size / 1024 / 1024
    print(f"report.html       {html:.1f} MiB")
    if args.gold:
        gold = [*sftlabel, "compare", str(run_a), "--gold", str(run_b), "--json"]
        gold += ["-o", str(root / "gold.md"), "-o", str(root / "gold.html")]
        g_elapsed, g_cpu, g_rss, g_done = run(gold)
        if g_done.returncode != 0:
            sys.exit(f"compare --gold failed ({g_done.returncode}):\n{g_done.stderr}")
        calibrated = json.loads(g_done.stdout)["confidence_calibration"][0]
        print(
            f"--gold            wall {g_elapsed:.1f} s, cpu {g_cpu:.1f} s = {g_cpu / cpu:.3f} x "
            f"the plain compare, peak RSS {g_rss:.0f} MB ({calibrated['paired']:,} paired)"
        )


if __name__ == "__main__":
    main()
