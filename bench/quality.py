"""The label-quality gate: label the 108 baseline samples through any endpoint and measure
agreement with BOTH baselines, next to the baselines' agreement with each other.

    python bench/quality.py --base-url http://127.0.0.1:8080/v1 --model M [--concurrency 8]
        [--api-key-env OPENAI_API_KEY] [--price IN,OUT] [--no-arbitration] [--json-mode auto]
        [--taxonomy DIR] [--baselines DIR] [--limit N] [--out DIR] [--name NAME] [--json FILE]

The baselines (../shared/data/baselines: deepseek-v3.2 and claude-sonnet-4.6, prompts v4) label
each record whole, so each record is labeled as its last slice (the whole conversation up to the
last reply) and paired with the baselines by record id. Printed, per dimension: exact agreement,
partial agreement (multi-select: a common tag or both empty), Cohen's kappa (single-select; for
multi-select the mean per-tag kappa), micro and macro F1 against each baseline (the baseline as
truth), and the same figures between the two baselines; per-tag F1; the unmapped rate and the
arbitration rate of every run; tokens and cost per sample; the prompt version and the static
prompt's size in tokens (tiktoken o200k_base).

Run it before and after every change of the prompts or the taxonomy, with the same model, and
compare: docs/labeling.md ("The quality gate"). tests/test_quality_bench.py runs it against the
fake server so that it keeps working.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import msgspec

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINES = ROOT.parent / "shared" / "data" / "baselines"
BASELINES = ("deepseek_v4", "sonnet_v4")
BASELINE_MUTUAL_EXACT = 0.727
"""The baselines' own mean exact agreement over the nine dimensions (LABELING.md)."""

from sftlabel.errors import SftlabelError  # noqa: E402
from sftlabel.formats import Reader  # noqa: E402
from sftlabel.labeling import (  # noqa: E402
    Labeler,
    LabelingFailed,
    build_messages,
    prompt_version,
    static_prompt,
)
from sftlabel.llm import ClientConfig, LLMClient, Price, PriceTable, Secret  # noqa: E402
from sftlabel.llm._tokens import offline_encoding  # noqa: E402
from sftlabel.model import Conversation, LabeledSample, Sample  # noqa: E402
from sftlabel.reports._agreement import cohen_kappa  # noqa: E402
from sftlabel.reports.compare import CompareResult, PairReport, compare_runs  # noqa: E402
from sftlabel.slicing import slice_conversation  # noqa: E402
from sftlabel.taxonomy import Taxonomy, load_taxonomy  # noqa: E402

_encoder = msgspec.json.Encoder()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("SFTLABEL_BASE_URL"))
    parser.add_argument("--model", default=os.environ.get("SFTLABEL_MODEL"))
    parser.add_argument(
        "--api-key-env",
        default="SFTLABEL_API_KEY",
        help="environment variable holding the API key (never printed)",
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--price", help="USD per 1M input,output tokens (for the cost figure)")
    parser.add_argument("--no-arbitration", action="store_true")
    parser.add_argument("--json-mode", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--max-chars", type=int, help="shorten samples to about N characters")
    parser.add_argument("--taxonomy", type=Path)
    parser.add_argument("--baselines", type=Path, default=DEFAULT_BASELINES)
    parser.add_argument("--limit", type=int, help="label only the first N records")
    parser.add_argument("--out", type=Path, help="directory for the labels (default: a temp dir)")
    parser.add_argument("--name", default="candidate", help="name of this run in the report")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--tags", type=int, default=8, help="tags shown per dimension (0: none)")
    args = parser.parse_args(argv)
    if not args.base_url or not args.model:
        parser.error("--base-url and --model are required (or SFTLABEL_BASE_URL, SFTLABEL_MODEL)")
    return args


# --------------------------------------------------------------------------- labeling


def baseline_samples(path: Path, max_chars: int | None) -> list[Sample]:
    """Each baseline record as its last slice, with the record's id."""
    samples: list[Sample] = []
    for item in Reader().read([path]):
        if not isinstance(item, Conversation):
            continue
        last: Sample | None = None
        for piece in slice_conversation(item, max_chars=max_chars):
            if isinstance(piece, Sample):
                last = piece
        if last is not None:
            samples.append(msgspec.structs.replace(last, id=item.id))
    return samples


async def label_all(
    samples: list[Sample], args: argparse.Namespace, taxonomy: Taxonomy
) -> tuple[list[LabeledSample], list[dict[str, Any]], float]:
    key = os.environ.get(args.api_key_env)
    prices = PriceTable()
    if args.price:
        rate_in, rate_out = (float(x) for x in args.price.split(","))
        prices = PriceTable({args.model.lower(): Price(input=rate_in, output=rate_out)})
    config = ClientConfig(
        model=args.model,
        base_url=args.base_url,
        api_key=Secret(key) if key else None,
        concurrency=args.concurrency,
        timeout=args.timeout,
        prices=prices,
    )
    labeled: list[LabeledSample | None] = [None] * len(samples)
    failures: list[dict[str, Any]] = []
    started = time.monotonic()
    limiter = anyio.CapacityLimiter(args.concurrency)
    done = [0]
    async with LLMClient(config) as client:
        labeler = Labeler(
            client,
            taxonomy,
            arbitration=not args.no_arbitration,
            json_mode=args.json_mode,
            max_tokens=args.max_tokens,
        )

        async def one(index: int, sample: Sample) -> None:
            async with limiter:
                try:
                    result = await labeler.label(sample)
                except LabelingFailed as exc:
                    failures.append({"id": sample.id, "reason": exc.reason, "error": str(exc)})
                    return
            fields = msgspec.structs.asdict(sample)
            labeled[index] = LabeledSample(
                **fields, index=index, labels=result.labels, labeling_monitor=result.monitor
            )
            done[0] += 1
            if done[0] % 10 == 0 or done[0] == len(samples):
                print(f"labeled {done[0]}/{len(samples)}", file=sys.stderr, flush=True)

        async with anyio.create_task_group() as group:
            for index, sample in enumerate(samples):
                group.start_soon(one, index, sample)
    return [s for s in labeled if s is not None], failures, time.monotonic() - started


# --------------------------------------------------------------------------- figures


def _pair(result: CompareResult, a: str) -> PairReport:
    return next(p for p in result.comparisons if p.a == a)


def _tag_kappa(pair: PairReport, dimension: str) -> float | None:
    """Multi-select: the mean over tags of Cohen's kappa of "has the tag" (None if undefined)."""
    dim = next(d for d in pair.dimensions if d.name == dimension)
    if dim.kappa is not None or dim.select == "single":
        return dim.kappa
    kappas = []
    for tag in dim.tags:
        fp = tag.predicted - tag.true_positives
        fn = tag.support - tag.true_positives
        tn = pair.paired - tag.true_positives - fp - fn
        value = cohen_kappa({(1, 1): tag.true_positives, (1, 0): fp, (0, 1): fn, (0, 0): tn})
        if value is not None:
            kappas.append(value)
    return sum(kappas) / len(kappas) if kappas else None


def _rates(records: list[dict[str, Any]]) -> dict[str, float | None]:
    n = len(records)
    if not n:
        return {"unmapped_rate": None, "unmapped_per_sample": None, "arbitration_rate": None}
    unmapped = [len(r.get("labels", {}).get("unmapped") or []) for r in records]
    arbitrated = [bool((r.get("labeling_monitor") or {}).get("arbitrated")) for r in records]
    return {
        "unmapped_rate": sum(1 for u in unmapped if u) / n,
        "unmapped_per_sample": sum(unmapped) / n,
        "arbitration_rate": sum(arbitrated) / n,
    }


def figures(
    ours: Path, baselines: dict[str, Path], taxonomy: Taxonomy, name: str
) -> dict[str, Any]:
    """Agreement of ``ours`` with each baseline and of the baselines with each other."""
    first, second = BASELINES
    paths = [ours, baselines[first], baselines[second]]
    against_first = compare_runs(paths, reference=str(baselines[first]), taxonomy=taxonomy)
    against_second = compare_runs(paths, reference=str(baselines[second]), taxonomy=taxonomy)
    pairs = {
        f"{name} vs {first}": _pair(against_first, name),
        f"{name} vs {second}": _pair(against_second, name),
        f"{second} vs {first}": _pair(against_first, second),
    }
    out: dict[str, Any] = {"pairs": {}, "dimensions": taxonomy.dimensions()}
    for label, pair in pairs.items():
        out["pairs"][label] = {
            "paired": pair.paired,
            "mean_exact": pair.mean_dimension_exact,
            "all_nine_exact": pair.all_dimensions_exact,
            "dimensions": {
                d.name: {
                    "select": d.select,
                    "exact": d.exact,
                    "partial": d.partial,
                    "kappa": _tag_kappa(pair, d.name),
                    "micro_f1": d.micro_f1,
                    "macro_f1": d.macro_f1,
                    "tags": {t.tag: {"f1": t.f1, "support": t.support} for t in d.tags},
                }
                for d in pair.dimensions
            },
        }
    return out


def _load(path: Path) -> list[dict[str, Any]]:
    text = path.read_text("utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    return data if isinstance(data, list) else []


def _pct(value: float | None) -> str:
    return "   —  " if value is None else f"{100 * value:5.1f}%"


def _num(value: float | None) -> str:
    return "  —  " if value is None else f"{value:5.2f}"


def render(report: dict[str, Any], tags: int) -> str:
    pairs = report["pairs"]
    labels = list(pairs)
    size = report["prompt_tokens"]
    lines = [
        f"prompt version {report['prompt_version']}, taxonomy {report['taxonomy']}, "
        f"model {report['model']}",
        "prompt tokens per call (o200k_base): "
        + "; ".join(
            f"call {c}: static {size[f'call{c}_static']}, with the sample mean "
            f"{size[f'call{c}_mean'] or 0:.0f} max {size[f'call{c}_max'] or 0}"
            for c in (1, 2)
        ),
        f"labeled {report['labeled']} of {report['samples']} samples "
        f"({report['failed']} failed) in {report['elapsed']:.1f} s",
        "",
        "agreement per dimension (exact / partial / kappa / micro-F1; the baseline is the truth):",
    ]
    header = f"{'dimension':<11}" + "".join(f" | {label:^33}" for label in labels)
    lines += [header, "-" * len(header)]
    for dim in report["dimensions"]:
        cells = []
        for label in labels:
            d = pairs[label]["dimensions"][dim]
            cells.append(
                f"{_pct(d['exact'])} {_pct(d['partial'])} {_num(d['kappa'])} {_num(d['micro_f1'])}"
            )
        lines.append(f"{dim:<11}" + "".join(f" | {c:^33}" for c in cells))
    lines.append("-" * len(header))
    mean = "".join(f" | {'mean exact ' + _pct(pairs[k]['mean_exact']):^33}" for k in labels)
    every = "".join(f" | {'all nine ' + _pct(pairs[k]['all_nine_exact']):^33}" for k in labels)
    lines += [f"{'':<11}{mean}", f"{'':<11}{every}"]
    lines.append(
        f"(the baselines' own mean exact agreement in LABELING.md: {100 * BASELINE_MUTUAL_EXACT:.1f}%)"
    )
    if tags:
        ours = [k for k in labels if not k.startswith(BASELINES[1] + " vs")]
        lines += ["", f"per-tag F1 ({' / '.join(ours)}; support in brackets, top {tags}):"]
        for dim in report["dimensions"]:
            first = pairs[ours[0]]["dimensions"][dim]["tags"]
            second = pairs[ours[1]]["dimensions"][dim]["tags"]
            names = sorted(
                set(first) | set(second),
                key=lambda t: -max(first.get(t, {}).get("support", 0), 0),
            )[:tags]
            shown = [
                f"{t} {_num(first.get(t, {}).get('f1')).strip()}/"
                f"{_num(second.get(t, {}).get('f1')).strip()}"
                f" [{first.get(t, {}).get('support', 0)}]"
                for t in names
            ]
            lines.append(f"  {dim}: " + (", ".join(shown) if shown else "(no tags)"))
    lines += ["", "run figures:"]
    for run, facts in report["runs"].items():
        cost = facts.get("cost_per_sample")
        tokens = facts.get("tokens_per_sample")
        lines.append(
            f"  {run:<12} unmapped rate {_pct(facts['unmapped_rate'])} "
            f"({facts['unmapped_per_sample'] or 0:.2f} per sample), "
            f"arbitration rate {_pct(facts['arbitration_rate'])}, "
            f"tokens/sample {'—' if tokens is None else f'{tokens:.0f}'}, "
            f"cost/sample {'—' if cost is None else f'${cost:.5f}'}"
        )
    return "\n".join(lines)


def _run_facts(records: list[dict[str, Any]], stats: dict[str, Any] | None) -> dict[str, Any]:
    facts: dict[str, Any] = _rates(records)
    n = len(records) or 1
    monitors = [r.get("labeling_monitor") or {} for r in records]
    tokens = [m.get("prompt_tokens", 0) + m.get("completion_tokens", 0) for m in monitors]
    if any(tokens):
        facts["tokens_per_sample"] = sum(tokens) / n
    elif stats and isinstance(stats.get("total_tokens"), int | float):
        facts["tokens_per_sample"] = stats["total_tokens"] / n
    costs = [m.get("cost") for m in monitors]
    if records and all(isinstance(c, int | float) for c in costs):
        facts["cost_per_sample"] = sum(costs) / n
    return facts


def prompt_sizes(
    samples: list[Sample], labeled: list[LabeledSample], taxonomy: Taxonomy
) -> dict[str, Any]:
    """Static prompt tokens per call and whole-prompt tokens per call over the samples
    (tiktoken o200k_base, counted locally: the same figure whatever the endpoint)."""
    encoding = offline_encoding("o200k_base")
    labels = {s.id: s.labels for s in labeled}
    sizes: dict[str, Any] = {}
    for call in (1, 2):
        sizes[f"call{call}_static"] = len(encoding.encode(static_prompt(taxonomy, call)))
        totals = []
        for sample in samples:
            previous = None
            if call == 2:
                first = labels.get(sample.id, {})
                previous = {d: first.get(d) for d in taxonomy.dimensions(1)}
            messages = build_messages(taxonomy, call, sample, previous=previous)
            totals.append(sum(len(encoding.encode(m["content"])) for m in messages))
        sizes[f"call{call}_mean"] = sum(totals) / len(totals) if totals else None
        sizes[f"call{call}_max"] = max(totals, default=None)
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    taxonomy = load_taxonomy(args.taxonomy)
    baselines = {name: args.baselines / f"labeled_{name}.json" for name in BASELINES}
    missing = [str(p) for p in baselines.values() if not p.is_file()]
    if missing:
        print(f"baseline files not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    samples = baseline_samples(baselines[BASELINES[0]], args.max_chars)[: args.limit]
    try:
        labeled, failures, elapsed = anyio.run(label_all, samples, args, taxonomy)
    except SftlabelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    out = args.out or Path(os.environ.get("TMPDIR", "/tmp")) / f"sftlabel-quality-{os.getpid()}"
    out.mkdir(parents=True, exist_ok=True)
    ours = out / f"labeled_{args.name}.jsonl"
    ours.write_bytes(b"".join(_encoder.encode(s) + b"\n" for s in labeled))
    report: dict[str, Any] = {
        "prompt_version": prompt_version(taxonomy),
        "taxonomy": f"{taxonomy.name} v{taxonomy.version}",
        "prompt_tokens": prompt_sizes(samples, labeled, taxonomy),
        "model": args.model,
        "samples": len(samples),
        "labeled": len(labeled),
        "failed": len(failures),
        "failures": failures,
        "elapsed": elapsed,
        "output": str(ours),
    }
    if labeled:
        report |= figures(ours, baselines, taxonomy, args.name)
    else:
        report |= {"pairs": {}, "dimensions": taxonomy.dimensions()}
    report["runs"] = {args.name: _run_facts(_load(ours), None)}
    for name, path in baselines.items():
        stats_file = path.with_name(f"stats_{name}.json")
        stats = json.loads(stats_file.read_text("utf-8")) if stats_file.is_file() else None
        report["runs"][name] = _run_facts(_load(path), stats)
    if report["pairs"]:
        print(render(report, args.tags))
    else:
        print(f"no sample was labeled ({len(failures)} failed): nothing to compare")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return 0 if labeled and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
