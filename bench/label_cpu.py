"""CPU per sample of `sftlabel label` (local engine), A/B between source trees, interleaved.

The fake server (tests/fake_llm_server.py) on 127.0.0.1 answers every call after LATENCY
seconds; N single-turn samples, --concurrency C, no arbitration, no cache (every sample is
sent), as bench/ray_throughput.py's local run. Each SRC is a directory holding an `sftlabel`
package (e.g. `src` of this checkout, or `git archive REV src taxonomy | tar -x -C /tmp/rev`, then /tmp/rev/src); the runs
alternate between them ROUNDS times, so a busy machine hurts each alike. CPU time (user + sys of
the label process, from rusage) is what it compares, not wall time: the machine may be shared.
Printed per run and as a median per SRC: CPU ms/sample of the client and of the server,
samples/s; with two SRCs the ratio of their medians.

    python bench/label_cpu.py [--samples 4000] [--concurrency 400] [--latency 0.2]
        [--rounds 2] [--profile OUT.prof] SRC [SRC ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.llm_server import FakeLLMServer  # noqa: E402

from label_throughput import RULES, make_data  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_once(
    src: Path, server: FakeLLMServer, data: Path, out: Path, args: argparse.Namespace
) -> tuple[float, float, float]:
    """(client CPU ms/sample, server CPU ms/sample, samples/s over the session)."""
    profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    command = [
        sys.executable, *profile, "-m", "sftlabel", "label", str(data), "--model",
        "gpt-4o-mini", "--base-url", server.base_url, "-o", str(out), "--no-cache",
        "--no-arbitration", "--concurrency", str(args.concurrency), "--json",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    assert server._process is not None
    server_before = _cpu_of(server._process.pid)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, env=env, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = _cpu_of(server._process.pid) - server_before
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(done.stderr.decode()[-3000:])
    result = json.loads(done.stdout.decode().strip().splitlines()[0])
    labeled = int(result["labeled"])
    assert labeled == args.samples, result
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    session = float(result["session"]["elapsed"])
    return cpu / labeled * 1000, server_cpu / labeled * 1000, labeled / session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("src", nargs="+", type=Path)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=400)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", default=None, help="cProfile output of the last run")
    args = parser.parse_args()
    figures: dict[Path, list[tuple[float, float, float]]] = {src: [] for src in args.src}
    with tempfile.TemporaryDirectory() as folder, FakeLLMServer(latency=args.latency) as server:
        tmp = Path(folder)
        server.configure(rules=RULES)
        data = make_data(tmp / "data.jsonl", args.samples)
        print(
            f"{args.samples} single-turn samples, --concurrency {args.concurrency}, "
            f"latency {args.latency * 1000:.0f} ms, load {os.getloadavg()[0]:.2f}"
        )
        for round_ in range(args.rounds):
            for index, src in enumerate(args.src):
                out = tmp / f"run{round_}-{index}"
                start = time.perf_counter()
                client, served, rate = run_once(src, server, data, out, args)
                figures[src].append((client, served, rate))
                print(
                    f"  {src}: client {client:6.2f} ms/sample, server {served:5.2f} ms/sample, "
                    f"{rate:6.1f} samples/s (wall {time.perf_counter() - start:.1f} s)",
                    flush=True,
                )
    print(f"{'median of':<40}{'client ms':>10}{'server ms':>10}{'samples/s':>10}")
    medians = {}
    for src, runs in figures.items():
        medians[src] = [statistics.median(column) for column in zip(*runs, strict=True)]
        client, served, rate = medians[src]
        print(f"{src!s:<40}{client:>10.2f}{served:>10.2f}{rate:>10.1f}")
    if len(args.src) == 2:
        first, second = (medians[src] for src in args.src)
        print(f"client CPU ratio {second[0] / first[0]:.2f} (second / first)")


if __name__ == "__main__":
    main()
