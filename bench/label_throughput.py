"""Benchmark `sftlabel label` against the fake server on 127.0.0.1 (tests/fake_llm_server.py).

Scenarios (targets from the label issue):
  bound     latency 200 ms, --concurrency 50, N single-turn samples, no arbitration:
            samples/s >= 90% of concurrency / (2 calls x latency); CPU <= 5 ms per sample
  ratelimit server limited to RPM requests/minute (answers 429 + Retry-After beyond),
            --concurrency 100: samples/s >= 90% of RPM/2/60 with < 5% of requests answered 429
  cache     the same command again (new output dir, same cache): no request at all
  resume    kill -9 mid-run, then --resume: re-sent requests <= the in-flight ones
  rpm       a provider-style token bucket of RPM answering 429 with Retry-After only (no
            x-ratelimit headers), --concurrency 100, single-turn samples (issue 12):
            0 failed, >= 0.95 of RPM/2/60 samples/s, <= 2% of requests 429
  rpm-headers  the same bucket with x-ratelimit-*-requests headers: >= 0.97, <= 1% 429
  storm     a 429 storm (Retry-After: 1) for STORM s every 2 x STORM s, --concurrency 50:
            0 failed, every sample exactly once
  outage    the port closed for OUTAGE s mid-run (connections refused), --concurrency 50:
            0 failed, every sample exactly once
  prefix    a provider-style prefix cache on the server (whole 256-character blocks, issue 17),
            latency 200 ms, --concurrency 50, on N single-turn samples and on multi-turn pyramids
            (75 generated code-feedback conversations of 2-6 rounds with code, plus the long
            traces of ../shared/data/raw_samples.json): prompt chars per sample, cached share,
            prompt cost per sample with a cache hit priced 0.1 and 0.5 x a miss (and as a ratio
            of the replaced system's figures), throughput >= 0.90 of concurrency / (2 x latency)

    python bench/label_throughput.py [--samples 2000] [--rpm 3000] [--storm 15] [--outage 120]
        [--scenarios bound,cache,resume,ratelimit,rpm,rpm-headers,storm,outage,prefix] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.llm_server import FakeLLMServer  # noqa: E402

CALL1 = {
    "intent": "learn", "language": ["python"], "domain": [], "task": ["code-explanation"],
    "difficulty": "beginner",
    "confidence": {"intent": 0.9, "language": 0.9, "domain": 0.9, "task": 0.9, "difficulty": 0.9},
    "unmapped": [],
}  # fmt: skip
CALL2 = {
    "concept": ["data-structures"], "agentic": [], "constraint": [], "context": "snippet",
    "confidence": {"concept": 0.9, "agentic": 0.9, "constraint": 0.9, "context": 0.9},
    "unmapped": [],
}  # fmt: skip
RULES = [
    {"match": "first labeling pass", "response": {"content": json.dumps(CALL2)}},
    {"match": "Label the last assistant reply", "response": {"content": json.dumps(CALL1)}},
]


def make_data(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            record = {
                "id": f"b{i}",
                "conversations": [
                    {"from": "human", "value": f"How do I reverse a list in Python? (variant {i})"},
                    {"from": "gpt", "value": "Use `items[::-1]` or `items.reverse()` in place."},
                ],
            }
            out.write(json.dumps(record) + "\n")
    return path


def label(server: FakeLLMServer, data: Path, run: Path, cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "sftlabel", "label", str(data), "--model", "gpt-4o-mini",
        "--base-url", server.base_url, "-o", str(run), "--cache", str(cache),
        "--no-arbitration", *extra,
    ]  # fmt: skip


def timed(command: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user+sys of the child) and exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        print(done.stderr[-2000:])
    return wall, cpu, done.returncode


def count_lines(path: Path) -> int:
    return sum(1 for line in path.open("rb") if line.strip()) if path.exists() else 0


def bound(tmp: Path, samples: int) -> None:
    latency, concurrency = 0.2, 50
    with FakeLLMServer(latency=latency) as server:
        server.configure(rules=RULES)
        data = make_data(tmp / "bound.jsonl", samples)
        wall, cpu, code = timed(
            label(
                server, data, tmp / "bound", tmp / "bound.sqlite", "--concurrency", str(concurrency)
            )
        )
        limit = concurrency / (2 * latency)
        rate = samples / wall
        print(
            f"[bound] {samples} samples, latency {latency * 1000:.0f} ms, concurrency {concurrency} (exit {code})"
        )
        print(
            f"  throughput   {rate:.1f} samples/s = {rate / limit:.2f} x bound ({limit:.0f}/s; target >= 0.90), whole process"
        )
        inner = json.loads((tmp / "bound" / "stats.json").read_text())[
            "throughput_samples_per_second"
        ]
        print(
            f"               {inner:.1f} samples/s = {inner / limit:.2f} x bound during the run (stats.json: without start-up)"
        )
        print(
            f"  cpu/sample   {cpu / samples * 1000:.2f} ms (target <= 5 ms; whole process incl. startup)"
        )
        print(f"  requests     {server.stats()['chat_requests']} (expected {2 * samples})")
        # same command again, a new run directory, the same cache: nothing is sent
        before = server.stats()["chat_requests"]
        wall, _, code = timed(
            label(server, data, tmp / "again", tmp / "bound.sqlite", "--concurrency", "50")
        )
        sent = server.stats()["chat_requests"] - before
        print(f"[cache] same command again: {sent} requests sent, {wall:.1f} s (exit {code})")


def resume(tmp: Path, samples: int) -> None:
    concurrency = 20
    with FakeLLMServer(latency=0.2) as server:
        server.configure(rules=RULES)
        data = make_data(tmp / "resume.jsonl", samples)
        run = tmp / "resume"
        command = label(server, data, run, tmp / "resume.sqlite", "--concurrency", str(concurrency))
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while count_lines(run / "labeled.jsonl") < samples // 3:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        done = len({json.loads(line)["id"] for line in (run / "labeled.jsonl").open()})
        sent = server.stats()["chat_requests"]
        resumed = [sys.executable, "-m", "sftlabel", "label", "--resume", str(run),
                   "--base-url", server.base_url, "--cache", str(tmp / "resume.sqlite"),
                   "--concurrency", str(concurrency)]  # fmt: skip
        _, _, code = timed(resumed)
        resent = server.stats()["chat_requests"] - sent
        needed = 2 * (samples - done)
        lines = count_lines(run / "labeled.jsonl")
        print(
            f"[resume] killed after {done} samples; resumed (exit {code}): {lines} labeled lines for {samples} samples"
        )
        print(
            f"  requests re-sent beyond the {needed} still needed: {resent - needed} (in flight at the kill: <= {concurrency * 2})"
        )


def ratelimit(tmp: Path, samples: int, rpm: int) -> None:
    with FakeLLMServer(latency=0.2, rpm=rpm) as server:
        server.configure(rules=RULES)
        data = make_data(tmp / "rl.jsonl", samples)
        wall, _, code = timed(
            label(server, data, tmp / "rl", tmp / "rl.sqlite", "--concurrency", "100")
        )
        stats = server.stats()
        total = stats["chat_requests"]
        rejected = stats["by_status"].get("429", 0)
        target = rpm / 2 / 60
        rate = samples / wall
        print(
            f"[ratelimit] server {rpm} requests/min, --concurrency 100, {samples} samples (exit {code})"
        )
        print(
            f"  throughput   {rate:.2f} samples/s = {rate / target:.2f} x the limit's {target:.1f}/s (target >= 0.90)"
        )
        print(f"  429 share    {rejected}/{total} = {rejected / total * 100:.1f}% (target < 5%)")


def outcome(server: FakeLLMServer, run: Path, samples: int) -> str:
    """Failures, duplicates and exactly-once figures of a finished run."""
    labeled = (
        [json.loads(line)["id"] for line in (run / "labeled.jsonl").open()]
        if (run / "labeled.jsonl").exists()
        else []
    )
    failed = count_lines(run / "failures.jsonl")
    stats = server.stats()
    once = len(labeled) == len(set(labeled)) == samples
    return (
        f"  outcome      {len(labeled)} labeled, {failed} failed, every sample exactly once: "
        f"{once}; duplicate bodies in flight at the server: {stats['duplicates_in_flight']}"
    )


def rpm_bucket(tmp: Path, samples: int, rpm: int, *, headers: bool) -> None:
    name = "rpm-headers" if headers else "rpm"
    with FakeLLMServer(latency=0.2) as server:
        server.configure(rules=RULES, bucket_rpm=rpm, bucket_burst=1.0, bucket_headers=headers)
        data = make_data(tmp / f"{name}.jsonl", samples)
        run = tmp / name
        wall, _, code = timed(
            label(server, data, run, tmp / f"{name}.sqlite", "--concurrency", "100")
        )
        stats = server.stats()
        total = stats["chat_requests"]
        rejected = stats["by_status"].get("429", 0)
        bound_rate = rpm / 2 / 60
        rate = samples / wall
        inner = json.loads((run / "stats.json").read_text())["throughput_samples_per_second"]
        target = "0.97, <= 1%" if headers else "0.95, <= 2%"
        print(
            f"[{name}] token bucket {rpm} RPM, Retry-After{' + x-ratelimit' if headers else ' only'}"
            f", --concurrency 100, {samples} samples (exit {code}; targets >= {target} 429)"
        )
        print(
            f"  throughput   {rate:.2f} samples/s = {rate / bound_rate:.3f} x bound "
            f"({bound_rate:.1f}/s), whole process; {inner / bound_rate:.3f} x during the run"
        )
        print(f"  429 share    {rejected}/{total} = {rejected / total * 100:.2f}%")
        print(outcome(server, run, samples))


def storm(tmp: Path, samples: int, seconds: float) -> None:
    with FakeLLMServer(latency=0.2) as server:
        server.configure(
            rules=RULES,
            storm={"every": 2 * seconds, "duration": seconds, "retry_after": 1},
        )
        data = make_data(tmp / "storm.jsonl", samples)
        run = tmp / "storm"
        wall, _, code = timed(label(server, data, run, tmp / "storm.sqlite", "--concurrency", "50"))
        stats = server.stats()
        print(
            f"[storm] 429 (Retry-After: 1) for {seconds:g} s every {2 * seconds:g} s, "
            f"--concurrency 50, {samples} samples (exit {code})"
        )
        bound_rate = 50 / (2 * 0.2)
        print(
            f"  throughput   {samples / wall:.1f} samples/s = {samples / wall / bound_rate:.2f} x "
            f"the unthrottled bound (the storms take half the time: <= 0.5 expected)"
        )
        print(
            f"  429s         {stats['storm_429']} storm 429s of {stats['chat_requests']} requests"
        )
        print(outcome(server, run, samples))


def outage(tmp: Path, samples: int, seconds: float) -> None:
    with FakeLLMServer(latency=0.2) as server:
        server.configure(rules=RULES)
        data = make_data(tmp / "outage.jsonl", samples)
        run = tmp / "outage"
        command = label(server, data, run, tmp / "outage.sqlite", "--concurrency", "50")
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while count_lines(run / "labeled.jsonl") < samples // 4 and process.poll() is None:
            time.sleep(0.02)
        server.outage(seconds, mode="refuse")
        _, stderr = process.communicate()
        wall = time.perf_counter() - start
        if process.returncode:
            print(stderr.decode()[-2000:])
        print(
            f"[outage] port closed for {seconds:g} s after a quarter of the run, --concurrency 50, "
            f"{samples} samples (exit {process.returncode})"
        )
        print(f"  wall         {wall:.1f} s (the outage's {seconds:g} s included)")
        print(outcome(server, run, samples))


PREFIX_BLOCK = 256
OLD_SYSTEM = {"single-turn": (39_667, 0.66), "multi-turn": (35_780, 0.87)}
"""Prompt chars per sample and cached share of the system sftlabel replaces (issue 17)."""
RAW_SAMPLES = ROOT.parent / "shared" / "data" / "raw_samples.json"
LONG_TRACE = 6  # replies from which a raw_samples conversation counts as a long trace
CODE_TOPICS = [
    ("parse a CSV file and sum a column", "python", "import csv\n\ndef total(path, column):\n    with open(path, newline='') as f:\n        return sum(float(row[column]) for row in csv.DictReader(f))\n"),
    ("debounce a function", "javascript", "function debounce(fn, ms) {\n  let timer;\n  return (...args) => {\n    clearTimeout(timer);\n    timer = setTimeout(() => fn(...args), ms);\n  };\n}\n"),
    ("read a file line by line", "go", "func lines(path string) ([]string, error) {\n\tf, err := os.Open(path)\n\tif err != nil {\n\t\treturn nil, err\n\t}\n\tdefer f.Close()\n\tvar out []string\n\ts := bufio.NewScanner(f)\n\tfor s.Scan() {\n\t\tout = append(out, s.Text())\n\t}\n\treturn out, s.Err()\n}\n"),
    ("find duplicate rows", "sql", "SELECT email, COUNT(*) AS n\nFROM users\nGROUP BY email\nHAVING COUNT(*) > 1\nORDER BY n DESC;\n"),
    ("share state between threads", "rust", "use std::sync::{Arc, Mutex};\nuse std::thread;\n\nfn main() {\n    let counter = Arc::new(Mutex::new(0));\n    let handles: Vec<_> = (0..8).map(|_| {\n        let c = Arc::clone(&counter);\n        thread::spawn(move || *c.lock().unwrap() += 1)\n    }).collect();\n    for h in handles { h.join().unwrap(); }\n}\n"),
]  # fmt: skip
FEEDBACK = [
    "This fails with an exception on an empty input. Can you fix it?",
    "Can you make it faster for large inputs and explain why it is faster?",
    "Please add type hints and a docstring, and handle the error cases.",
    "How would I write a unit test for this?",
    "It works, but the reviewer says it is hard to read. Can you refactor it?",
]


def make_code_feedback(path: Path, conversations: int = 75, seed: int = 17) -> Path:
    """A code-feedback-like multi-turn fixture: conversations of 2-6 user/assistant rounds,
    each turn with a code block (deterministic)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(conversations):
            topic, language, code = CODE_TOPICS[i % len(CODE_TOPICS)]
            turns = []
            for r in range(rng.choice([2, 2, 3, 3, 3, 4, 4, 5, 6])):
                ask = (
                    f"I need to {topic} (case {i}). Here is my attempt:\n```{language}\n{code}```"
                    if r == 0
                    else f"{rng.choice(FEEDBACK)} (round {r + 1} of case {i})"
                )
                body = "\n".join(
                    f"// step {n}: {rng.random():.6f}" for n in range(rng.randint(3, 12))
                )
                answer = (
                    f"Here is a version that addresses that (round {r + 1}):\n```{language}\n{code}{body}\n```\n"
                    + "Explanation: " + " ".join(rng.choice(["the loop", "the guard", "the buffer", "each call", "the error path", "the test"]) + " " + rng.choice(["is now explicit.", "avoids a copy.", "handles empty input.", "is checked first."]) for _ in range(rng.randint(4, 14)))
                )  # fmt: skip
                turns += [{"from": "human", "value": ask}, {"from": "gpt", "value": answer}]
            out.write(json.dumps({"id": f"cf{i}", "conversations": turns}) + "\n")
    return path


def long_traces(path: Path) -> Path:
    """The conversations of raw_samples.json with at least LONG_TRACE replies, as JSON lines."""
    records = json.loads(RAW_SAMPLES.read_text(encoding="utf-8"))
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            turns = record.get("conversations") or []
            if sum(t.get("from") == "gpt" for t in turns) >= LONG_TRACE:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def prefix(tmp: Path, samples: int, latency: float = 0.2) -> None:
    concurrency = 50
    inputs = {"single-turn": [make_data(tmp / "prefix-single.jsonl", samples)]}
    multi = [make_code_feedback(tmp / "prefix-cf.jsonl")]
    if RAW_SAMPLES.exists():
        multi.append(long_traces(tmp / "prefix-traces.jsonl"))
    else:
        print(f"  ({RAW_SAMPLES} missing: multi-turn input without the long traces)")
    inputs["multi-turn"] = multi
    for name, files in inputs.items():
        with FakeLLMServer(latency=latency) as server:
            server.configure(rules=RULES, prefix_cache_block=PREFIX_BLOCK)
            run = tmp / f"prefix-{name}"
            command = label(server, files[0], run, tmp / f"prefix-{name}.sqlite")
            command[4:4] = [str(f) for f in files[1:]]
            wall, _, code = timed([*command, "--concurrency", str(concurrency)])
            stats = server.stats()
            written = run / "stats.json" if len(files) == 1 else run / "summary_stats.json"
            done = json.loads(written.read_text())
            count = done["total_samples"]
            chars, cached = stats["prompt_chars"], stats["cached_chars"]
            share = cached / chars if chars else 0.0
            bound_rate = concurrency / (2 * latency)
            old_chars, old_share = OLD_SYSTEM[name]
            print(
                f"[prefix] {name}: {count} samples ({len(files)} file(s)), {stats['chat_requests']}"
                f" requests, blocks of {PREFIX_BLOCK} chars, latency {latency * 1000:.0f} ms,"
                f" --concurrency {concurrency} (exit {code})"
            )
            print(f"  prompt chars {chars / count:,.0f} per sample, {share * 100:.1f}% cached")
            for hit in (0.1, 0.5):
                cost = (chars - cached + hit * cached) / count
                old = old_chars * (old_share * hit + 1 - old_share)
                print(
                    f"  cost at hit = {hit:g} x miss: {cost:,.0f} per sample = {cost / old:.2f} x "
                    f"the replaced system's {old:,.0f}"
                    + (
                        f" (target <= {0.85 if name == 'single-turn' else 0.5})"
                        if hit == 0.1
                        else ""
                    )
                )
            inner = done["throughput_samples_per_second"]
            print(
                f"  throughput   {count / wall / bound_rate:.2f} x bound ({bound_rate:.0f}/s), whole"
                f" process; {inner / bound_rate:.2f} x during the run (target >= 0.90)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--rpm", type=int, default=3000)
    parser.add_argument("--storm", type=float, default=15.0, help="storm seconds")
    parser.add_argument("--outage", type=float, default=120.0, help="outage seconds")
    parser.add_argument(
        "--latency",
        type=float,
        default=0.2,
        help="prefix: server latency (a longer one shows the order's own limit on a busy CPU)",
    )
    parser.add_argument(
        "--scenarios", default="bound,resume,ratelimit,rpm,rpm-headers,storm,outage"
    )
    args = parser.parse_args()
    chosen = set(args.scenarios.split(","))
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if "bound" in chosen or "cache" in chosen:
            bound(tmp, args.samples)
        if "resume" in chosen:
            resume(tmp, min(args.samples, 600))
        if "ratelimit" in chosen:
            ratelimit(tmp, args.samples, args.rpm)
        if "rpm" in chosen:
            rpm_bucket(tmp, min(args.samples, 1000), args.rpm, headers=False)
        if "rpm-headers" in chosen:
            rpm_bucket(tmp, min(args.samples, 1000), args.rpm, headers=True)
        if "storm" in chosen:
            storm(tmp, args.samples, args.storm)
        if "outage" in chosen:
            outage(tmp, args.samples, args.outage)
        if "prefix" in chosen:
            prefix(tmp, args.samples, args.latency)


if __name__ == "__main__":
    main()
