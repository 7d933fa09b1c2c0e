"""Token estimates (issue 17 item 5): calibration against o200k and CPU per request.

1. Calibration: every label prompt (call 1) of the shared data, both calls' system prompts and
   every softlabel prompt of copilot_raw, counted with o200k_base and cl100k_base; fits
   tokens = a x chars + b x (UTF-8 bytes - chars) by least squares and prints, per estimator,
   estimate / o200k over all texts and per text (5th, 50th, 95th percentile).
2. CPU: ``estimate_tokens`` on the label requests of the shared data (calls 1 and 2 of each
   sample, as the client sees them), for an OpenAI model (tiktoken) and another one
   (calibrated): the first call (which loads the encoder) and the mean per request after.

    python bench/token_estimate.py [--data ../shared/data] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sftlabel.labeling import build_messages  # noqa: E402
from sftlabel.llm import ChatRequest, estimate_tokens  # noqa: E402
from sftlabel.llm._estimate import (  # noqa: E402
    CHARS_PER_TOKEN,
    MARGIN,
    TOKENS_PER_EXTRA_BYTE,
    calibrated_tokens,
)
from sftlabel.llm._tokens import offline_encoding  # noqa: E402
from sftlabel.runs._label import sample_stream  # noqa: E402
from sftlabel.runs._manifest import LabelOptions  # noqa: E402
from sftlabel.runs._softlabel import turn_stream  # noqa: E402
from sftlabel.softlabel import classification_messages, get_strategy  # noqa: E402
from sftlabel.softlabel._strategies import StrategyOptions  # noqa: E402
from sftlabel.taxonomy import load_taxonomy  # noqa: E402


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    n = len(values)
    return f"p5 {values[n // 20]:.3f}  p50 {values[n // 2]:.3f}  p95 {values[-(n // 20) - 1]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    taxonomy = load_taxonomy()
    samples = []
    for name in ("raw_samples.json", "pangu_test_samples.jsonl"):
        samples += [s for _, s in sample_stream([str(args.data / name)], LabelOptions(model="x"))]
    requests = []
    texts: list[str] = []
    for sample in samples:
        for call, previous in ((1, None), (2, {"intent": "debug"})):
            messages = build_messages(taxonomy, call, sample, previous=previous)
            requests.append(messages)
            if call == 1:
                texts.append(messages[1]["content"])
    texts += [requests[0][0]["content"], requests[1][0]["content"]]
    strategy = get_strategy("user_message_only")
    soft = []
    for _, turn in turn_stream([args.data / "copilot_raw"]):
        soft = classification_messages(strategy, strategy.render(turn, StrategyOptions()))
        texts.append(soft[1]["content"])
    texts.append(soft[0]["content"])

    o200k = offline_encoding("o200k_base")
    cl100k = offline_encoding("cl100k_base")
    rows = []
    for text in texts:
        extra = len(text.encode("utf-8", "surrogatepass")) - len(text)
        rows.append(
            (len(text), extra, len(o200k.encode_ordinary(text)), len(cl100k.encode_ordinary(text)))
        )
    chars = sum(r[0] for r in rows)
    tokens = sum(r[2] for r in rows)
    print(f"calibration: {len(rows)} texts, {chars:,} chars, {tokens:,} o200k tokens")
    # least squares tokens = a*chars + b*extra, no intercept
    a11 = sum(r[0] ** 2 for r in rows)
    a12 = sum(r[0] * r[1] for r in rows)
    a22 = sum(r[1] ** 2 for r in rows)
    b1 = sum(r[0] * r[2] for r in rows)
    b2 = sum(r[1] * r[2] for r in rows)
    det = a11 * a22 - a12 * a12
    a, b = (b1 * a22 - b2 * a12) / det, (a11 * b2 - a12 * b1) / det
    print(
        f"  fit: chars / {1 / a:.3f} + {b:.4f} x extra UTF-8 bytes (shipped: chars / "
        f"{CHARS_PER_TOKEN} + {TOKENS_PER_EXTRA_BYTE} x extra, x {MARGIN} margin)"
    )
    estimators = {
        "len // 3 (before)": lambda r: r[0] // 3,
        "fit, no margin": lambda r: r[0] / CHARS_PER_TOKEN + r[1] * TOKENS_PER_EXTRA_BYTE,
        "calibrated (shipped)": None,
    }
    for name, estimator in estimators.items():
        if estimator is None:
            estimates = [calibrated_tokens(t) for t in texts]
        else:
            estimates = [estimator(r) for r in rows]
        ratio = sum(estimates) / tokens
        per = [e / max(r[2], 1) for e, r in zip(estimates, rows, strict=True)]
        print(f"  {name:22s} estimate / o200k: total {ratio:.3f}  per text {percentiles(per)}")
    print(
        f"  cl100k / o200k: total {sum(r[3] for r in rows) / tokens:.3f}  per text "
        f"{percentiles([r[3] / max(r[2], 1) for r in rows])}"
    )

    print(
        f"CPU of estimate_tokens, {len(requests)} label requests "
        f"(mean {sum(len(m[0]['content']) + len(m[1]['content']) for m in requests) / len(requests):,.0f} chars):"
    )
    for model in ("gpt-4o-mini", "gpt-4", "llama-3.1-70b"):
        built = [ChatRequest(model=model, messages=m) for m in requests]
        start = time.process_time()
        estimate_tokens(built[0])
        first = time.process_time() - start
        start = time.process_time()
        for _ in range(args.repeat):
            for request in built:
                estimate_tokens(request)
        per = (time.process_time() - start) / (args.repeat * len(built))
        exact = sum(
            len(o200k.encode_ordinary(m["content"])) + 3 for r in built for m in r.messages
        ) + 3 * len(built)
        total = sum(estimate_tokens(r) for r in built)
        print(
            f"  {model:14s} first call {first * 1e3:7.1f} ms, then {per * 1e6:7.1f} us/request; "
            f"estimate / o200k-with-format {total / exact:.3f}"
        )


if __name__ == "__main__":
    main()
