"""Benchmark `sftlabel review` on a synthetic run of 10^6 labeled samples: time and peak RSS.

Builds (once) a `labeled.jsonl` of N samples shaped like a `label` run's (messages, 9 dimensions
with confidences, a monitor with calls, tokens, elapsed), then runs in a subprocess:

1. `review RUN -o out.csv --sample 1000 --stratify intent` (the issue's case);
2. `review RUN -o out.csv --low-confidence` (streams every row that passes);
3. `review RUN -o out.csv --disagreements-with RUN2 --sample 1000` (RUN2 held as tuples);
4. `review --apply sample.csv RUN -o FIXED` of a 1,000-row sample (a new run is written).

and prints wall time, throughput, CPU per sample and peak RSS of each, with the ratio to the
memory target (a sample must not grow with the run: under 200 MB for 10^6 samples, except (3),
which holds one compact tuple of tags per id of RUN2).

    python bench/review_scale.py                 # 10^6 samples in bench/data/
    python bench/review_scale.py --samples 100000
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

import msgspec

TARGET_RSS_MB = 200

INTENTS = [("build", 53), ("learn", 20), ("debug", 13), ("decide", 8), ("review", 6)]
LANGUAGES = ["python", "javascript", "typescript", "go", "rust", "java", "sql", "shell", "cpp"]
TASKS = ["feature-implementation", "bug-fixing", "code-explanation", "testing-task", "api-design"]
DIFFICULTY = ["beginner", "intermediate", "advanced", "expert"]
CONTEXT = ["snippet", "single-file", "multi-file", "repository"]
CONCEPTS = ["algorithms", "recursion", "concurrency", "data-structures", "iterators"]
DIMS = [
    "intent",
    "language",
    "domain",
    "task",
    "difficulty",
    "concept",
    "agentic",
    "constraint",
    "context",
]


def make_run(path: Path, samples: int, seed: int) -> None:
    rng = random.Random(seed)
    intents = [name for name, _ in INTENTS]
    weights = [weight for _, weight in INTENTS]
    encoder = msgspec.json.Encoder()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb", buffering=1 << 20) as out:
        for index in range(samples):
            question = (
                f"Sample {index}: how do I make this {rng.choice(LANGUAGES)} function faster? "
                + "It reads a file line by line and counts words. " * rng.randint(1, 6)
            )
            labels = {
                "intent": rng.choices(intents, weights)[0],
                "language": rng.sample(LANGUAGES, rng.randint(1, 2)),
                "domain": [],
                "task": rng.sample(TASKS, rng.randint(1, 2)),
                "difficulty": rng.choice(DIFFICULTY),
                "concept": rng.sample(CONCEPTS, rng.randint(0, 2)),
                "agentic": [],
                "constraint": [],
                "context": rng.choice(CONTEXT),
                "confidence": {d: round(rng.uniform(0.5, 1.0), 2) for d in DIMS},
                "unmapped": [],
            }
            record = {
                "id": f"s{index:07d}",
                "source_id": f"s{index:07d}",
                "source_format": "sharegpt",
                "turn_index": 1,
                "total_turns": 1,
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": "Use a Counter. " * rng.randint(5, 40)},
                ],
                "index": index,
                "labels": labels,
                "labeling_monitor": {
                    "llm_calls": 2,
                    "arbitrated": False,
                    "validation_issues": [],
                    "consistency_warnings": [],
                    "prompt_tokens": rng.randint(2000, 6000),
                    "completion_tokens": rng.randint(100, 300),
                    "elapsed": round(rng.uniform(0.5, 4.0), 3),
                },
            }
            out.write(encoder.encode(record) + b"\n")
    partial.replace(path)


def measure(name: str, args: list[str], samples: int) -> None:
    command = [sys.executable, "-m", "sftlabel", "review", *args]
    # RUSAGE_CHILDREN's ru_maxrss is the largest child so far: run each case in its own
    # helper process so the figure is this case's
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(done.returncode, wall, u.ru_utime + u.ru_stime, u.ru_maxrss)\n"
        "sys.stderr.write(done.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *command], capture_output=True, text=True, check=False
    )
    code, wall, cpu, rss_kb = done.stdout.split()
    if code != "0":
        sys.exit(f"{name}: review failed ({code}):\n{done.stderr}")
    wall_s, cpu_s, rss_mb = float(wall), float(cpu), int(rss_kb) / 1024
    print(f"\n{name}")
    print(f"  command         sftlabel review {' '.join(args)}")
    print(f"  wall time       {wall_s:.1f} s  ({samples / wall_s:,.0f} samples/s)")
    print(f"  cpu per sample  {cpu_s / samples * 1e6:.1f} µs")
    print(f"  peak RSS        {rss_mb:.0f} MB  = {rss_mb / TARGET_RSS_MB:.2f} x target")
    for line in done.stderr.strip().splitlines():
        print(f"  | {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=Path("bench/data"))
    args = parser.parse_args()
    run = args.data / f"review_{args.samples}.labeled.jsonl"
    other = args.data / f"review_{args.samples}_b.labeled.jsonl"
    for path, seed in ((run, 1), (other, 2)):
        if not path.exists():
            started = time.perf_counter()
            make_run(path, args.samples, seed)
            print(f"built {path} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    size = run.stat().st_size / 1024 / 1024
    print(f"run               {args.samples:,} samples, {size:,.0f} MiB ({run})")
    out = args.data / "review_out.csv"
    measure(
        "stratified sample",
        [str(run), "-o", str(out), "--sample", "1000", "--stratify", "intent"],
        args.samples,
    )
    measure(
        "low confidence (a dimension below 0.55: ~60% of the rows, streamed)",
        [str(run), "-o", str(out), "--low-confidence", "--threshold", "0.55"],
        args.samples,
    )
    measure(
        "disagreements with a second run, sampled",
        [
            str(run), "-o", str(out), "--disagreements-with", str(other),
            "--sample", "1000", "--stratify", "intent",
        ],
        args.samples,
    )  # fmt: skip
    # the round trip: the 1,000-row sample applied back (unchanged rows are copied as they are)
    sample = args.data / "review_sample.csv"
    measure("sample for apply", [str(run), "-o", str(sample), "--sample", "1000"], args.samples)
    measure(
        "apply the reviewed sample into a new run (labeled.json, stats, dashboard rebuilt)",
        ["--apply", str(sample), str(run), "-o", str(args.data / "review_fixed"), "--overwrite"],
        args.samples,
    )


if __name__ == "__main__":
    main()
