"""Benchmark `sftlabel softlabel` against the fake server on 127.0.0.1 (tests/fake_llm_server.py).

Targets (softlabel issue), latency 200 ms, --concurrency 50:
  --no-rationales   turns/s >= 90% of concurrency / latency            (one request per turn)
  rationales        turns/s >= 90% of concurrency / (2 x latency)      (two requests per turn)
  memory            peak RSS flat in the number of turns (N and 4N turns compared)

Turns/s are given during the run (``elapsed_seconds`` of the session in labeling_metadata.json:
from the first request to the last record) and for the whole process (start-up, counting turns
and writing the metadata included).

    python bench/softlabel_throughput.py [--turns 3000] [--latency 0.2] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.llm_server import FakeLLMServer  # noqa: E402


def make_raw(root: Path, conversations: int, turns_per: int = 5) -> Path:
    """A Copilot RAW dataset: train/short_3_to_5_turns.json with `conversations` records."""
    dataset = root / "bench_raw"
    (dataset / "train").mkdir(parents=True)
    records = [
        {
            "conversationId": f"c{c}",
            "bucket": "short_3_to_5_turns",
            "turnCount": turns_per,
            "turnsArray": [
                {
                    "turnIndex": t + 1,
                    "messageId": f"c{c}-m{t}",
                    "userMessage": f"How do I reverse a list in Python? (conversation {c}, turn {t})",
                    "modelMessage": "Use `items[::-1]`, or `items.reverse()` to do it in place.",
                }
                for t in range(turns_per)
            ],
        }
        for c in range(conversations)
    ]
    (dataset / "train" / "short_3_to_5_turns.json").write_text(json.dumps(records), "utf-8")
    return dataset


def run(
    server: FakeLLMServer, dataset: Path, out: Path, concurrency: int, *extra: str
) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds, peak RSS (KiB) of one `sftlabel softlabel` process."""
    command = [
        sys.executable, "-m", "sftlabel", "softlabel", str(dataset), "-o", str(out),
        "--model", "smol", "--base-url", server.base_url, "--no-cache",
        "--concurrency", str(concurrency), *extra,
    ]  # fmt: skip
    # a wrapper process, so that ru_maxrss is this run's alone (RUSAGE_CHILDREN keeps the max of
    # every child ever waited for)
    wrapper = (
        "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
        "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(u.ru_utime + u.ru_stime, u.ru_maxrss, file=sys.stderr); sys.exit(code)"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stderr[-2000:])
        raise SystemExit(f"softlabel exited {done.returncode}")
    cpu, rss = done.stderr.strip().splitlines()[-1].split()
    return wall, float(cpu), int(rss)


def elapsed_in_run(out: Path) -> float:
    meta = json.loads((out / "labeling_metadata.json").read_text("utf-8"))
    return float(meta["sessions"][-1]["elapsed_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    conversations = max(args.turns // 5, 1)
    turns = conversations * 5
    bound = args.concurrency / args.latency
    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer(latency=args.latency) as server:
        root = Path(tmp)
        dataset = make_raw(root / "a", conversations)
        print(
            f"{turns:,} turns, latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}"
        )
        for label, extra, requests_per_turn in (
            ("--no-rationales", ["--no-rationales"], 1),
            ("rationales", [], 2),
        ):
            server.reset()
            out = root / f"out{requests_per_turn}"
            wall, cpu, _ = run(server, dataset, out, args.concurrency, *extra)
            in_run = elapsed_in_run(out)
            target = bound / requests_per_turn
            sent = server.stats()["chat_requests"]
            print(
                f"{label:16} {turns / in_run:7.1f} turns/s in the run = {turns / in_run / target:.2f}x bound "
                f"({target:.0f}/s); whole process {turns / wall:.1f}/s = {turns / wall / target:.2f}x; "
                f"CPU {cpu / turns * 1000:.2f} ms/turn; {sent / turns:.2f} requests/turn"
            )
        # memory: peak RSS for N and 4N turns (a fresh process each, --no-rationales)
        small = make_raw(root / "small", max(conversations // 4, 1))
        big = make_raw(root / "big", conversations)
        server.reset()
        _, _, rss_small = run(server, small, root / "m1", args.concurrency, "--no-rationales")
        _, _, rss_big = run(server, big, root / "m2", args.concurrency, "--no-rationales")
        print(
            f"peak RSS {rss_small / 1024:.0f} MB for {max(conversations // 4, 1) * 5:,} turns, "
            f"{rss_big / 1024:.0f} MB for {turns:,} turns (ratio {rss_big / rss_small:.2f})"
        )


if __name__ == "__main__":
    main()
