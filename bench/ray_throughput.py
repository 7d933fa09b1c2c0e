"""Benchmark `sftlabel label` with the local engine and with `--engine ray`, side by side.

The fake server (tests/fake_llm_server.py) on 127.0.0.1 answers every call after LATENCY
seconds; N single-turn samples, --concurrency C, no arbitration, no cache (every sample is
sent). Printed per engine: samples/s over the whole command and over the session (the command
minus Ray's start), CPU seconds per sample summed over every process of the run (the driver,
Ray's daemons and its workers; the fake server excluded), the fake server's own CPU per sample
(it shares the machine's cores: on 2 cores, with the client at c ms and the server at s ms per
sample, no engine can beat 2 / (c + s) samples/s) and the ratio ray / local.
Target (issue 18): >= 1.6 x the local samples/s on a 2-core machine.

    python bench/ray_throughput.py [--samples 8000] [--concurrency 400] [--latency 0.2]
        [--shards N] [--rpm 3000 --rpm-samples 1500]

With --rpm: then a provider-style token bucket of RPM on the server (429 + Retry-After beyond
it), `--engine ray --shards 2 --rpm RPM --concurrency 100`: samples/s as a share of the bound
RPM / 2 / 60 and the share of requests answered 429 (targets: >= 0.9 and <= 2%).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.llm_server import FakeLLMServer  # noqa: E402

from label_throughput import RULES, make_data  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds, start time) of every process (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        found[int(entry.name)] = (int(fields[1]), cpu, fields[19])
    return found


def _cpu_of(pid: int) -> float:
    """CPU seconds of one process so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class TreeCPU:
    """CPU seconds of a process and all its descendants, sampled while it runs (a process
    that ends between two samples is counted up to its last sample)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seen: dict[tuple[int, str], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            table = _processes()
            tree = {self.pid}
            grew = True
            while grew:
                grew = False
                for pid, (parent, _, _) in table.items():
                    if parent in tree and pid not in tree:
                        tree.add(pid)
                        grew = True
            for pid in tree:
                if pid in table:
                    _, cpu, started = table[pid]
                    self.seen[(pid, started)] = cpu
            time.sleep(0.2)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.seen.values())


def run(command: list[str]) -> tuple[float, float, dict[str, object]]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    cpu = TreeCPU(process.pid)
    out, err = process.communicate()
    wall = time.perf_counter() - start
    cpu_seconds = cpu.stop()
    if process.returncode != 0:
        print(err.decode()[-2000:])
    return wall, cpu_seconds, json.loads(out.decode().strip().splitlines()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--concurrency", type=int, default=400)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--shards", type=int, default=None)
    parser.add_argument("--rpm", type=int, default=None)
    parser.add_argument("--rpm-samples", type=int, default=1500)
    args = parser.parse_args()
    if args.samples:  # --samples 0: only the --rpm scenario
        throughput(args)
    if args.rpm:
        rate_limited(args.rpm, args.rpm_samples)


def rate_limited(rpm: int, samples: int) -> None:
    with tempfile.TemporaryDirectory() as folder, FakeLLMServer(latency=0.2) as server:
        tmp = Path(folder)
        server.configure(rules=RULES, bucket_rpm=rpm)
        data = make_data(tmp / "data.jsonl", samples)
        command = [
            sys.executable, "-m", "sftlabel", "label", str(data), "--model", "gpt-4o-mini",
            "--base-url", server.base_url, "-o", str(tmp / "run"), "--no-cache",
            "--no-arbitration", "--concurrency", "100", "--json", "--engine", "ray",
            "--shards", "2", "--rpm", str(rpm),
        ]  # fmt: skip
        _, _, result = run(command)
        stats = server.stats()
    by_status = stats["by_status"]
    requests = sum(by_status.values())
    session = float(result["session"]["elapsed"])  # type: ignore[index]
    rate = int(result["labeled"]) / session  # type: ignore[call-overload]
    bound = rpm / 2 / 60
    print(
        f"--rpm {rpm}, 2 workers, {samples} samples: {rate:.1f} samples/s = "
        f"{rate / bound:.2f} x the bound ({bound:.1f}/s, the session incl. its ramp-up); "
        f"{by_status.get('429', 0)} of {requests} requests answered 429 "
        f"({by_status.get('429', 0) / max(requests, 1):.1%})"
    )


def throughput(args: argparse.Namespace) -> None:
    figures: dict[str, tuple[float, float, float]] = {}
    server_cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder, FakeLLMServer(latency=args.latency) as server:
        tmp = Path(folder)
        server.configure(rules=RULES)
        data = make_data(tmp / "data.jsonl", args.samples)
        engines = {"local": [], "ray": ["--engine", "ray"]}
        if args.shards:
            engines["ray"] += ["--shards", str(args.shards)]
        for name, extra in engines.items():
            command = [
                sys.executable, "-m", "sftlabel", "label", str(data), "--model", "gpt-4o-mini",
                "--base-url", server.base_url, "-o", str(tmp / name), "--no-cache",
                "--no-arbitration", "--concurrency", str(args.concurrency), "--json", *extra,
            ]  # fmt: skip
            before = _cpu_of(server._process.pid)
            wall, cpu, result = run(command)
            server_cpu[name] = (_cpu_of(server._process.pid) - before) / args.samples * 1000
            labeled = int(result["labeled"])  # type: ignore[call-overload]
            session = float(result["session"]["elapsed"])  # type: ignore[index]
            assert labeled == args.samples, result
            figures[name] = (labeled / wall, labeled / session, cpu / labeled * 1000)
    bound = args.concurrency / (2 * args.latency)
    print(
        f"{args.samples} single-turn samples, --concurrency {args.concurrency}, "
        f"latency {args.latency * 1000:.0f} ms (bound {bound:,.0f} samples/s), "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'engine':<8}{'samples/s':>12}{'session/s':>12}{'CPU ms/sample':>15}"
        f"{'server ms/sample':>18}"
    )
    for name, (rate, session_rate, cpu_ms) in figures.items():
        print(
            f"{name:<8}{rate:>12.1f}{session_rate:>12.1f}{cpu_ms:>15.2f}{server_cpu[name]:>18.2f}"
        )
    local, ray = figures["local"], figures["ray"]
    print(
        f"ratio ray/local: {ray[0] / local[0]:.2f}x samples/s over the command, "
        f"{ray[1] / local[1]:.2f}x over the session (target >= 1.6x)"
    )


if __name__ == "__main__":
    main()
