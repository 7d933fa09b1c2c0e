"""``stats.json``: computed from a run's files (so it is right after any number of resumes)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import msgspec

from sftlabel.runs._files import FAILURES, LABELED, PROBLEMS, RunFiles
from sftlabel.runs._manifest import RunManifest
from sftlabel.taxonomy import Taxonomy


class _Labeled(msgspec.Struct):
    labels: dict[str, Any] = {}
    labeling_monitor: dict[str, Any] = {}


class _Pointer(msgspec.Struct):
    duplicate_of: Any = None


class _Duplicate(msgspec.Struct):
    labeling_monitor: _Pointer = msgspec.field(default_factory=_Pointer)


def count_labeled(files: RunFiles) -> tuple[int, int]:
    """Labeled samples of a run, and how many of them are copies of an identical earlier
    sample (``labeling_monitor.duplicate_of``)."""
    decode = msgspec.json.Decoder(_Duplicate).decode
    labeled = duplicates = 0
    for line in files.lines(LABELED):
        labeled += 1
        duplicates += decode(line).labeling_monitor.duplicate_of is not None
    return labeled, duplicates


class _Failed(msgspec.Struct):
    reason: str = "unknown"


class _Problem(msgspec.Struct):
    severity: str = "error"


def compute_stats(
    files: RunFiles, manifest: RunManifest, taxonomy: Taxonomy, part: str | None = None
) -> dict[str, Any]:
    """Totals, distributions and confidence of a run (or of one part of it: one input file of a
    directory run), in the shape of the baseline stats."""
    dims = taxonomy.dimensions()
    threshold = float(manifest.options.get("confidence_threshold", 0.65))
    decode_labeled = msgspec.json.Decoder(_Labeled).decode
    success = calls = arbitrated = issues = warnings = duplicates = 0
    prompt = completion = cached = 0
    cost = 0.0
    cost_known = True
    distributions: dict[str, Counter[str]] = {d: Counter() for d in dims}
    # running (count, sum, min, max) per dimension: memory does not grow with the run
    confidences: dict[str, list[float]] = {}
    low: Counter[str] = Counter()
    unmapped: Counter[str] = Counter()
    cross: dict[str, Counter[str]] = defaultdict(Counter)
    for line in files.lines(LABELED, part):
        record = decode_labeled(line)
        labels, monitor = record.labels, record.labeling_monitor
        success += 1
        duplicates += monitor.get("duplicate_of") is not None
        calls += int(monitor.get("llm_calls", 0))
        arbitrated += bool(monitor.get("arbitrated"))
        issues += len(monitor.get("validation_issues", []))
        warnings += len(monitor.get("consistency_warnings", []))
        prompt += int(monitor.get("prompt_tokens", 0))
        completion += int(monitor.get("completion_tokens", 0))
        cached += int(monitor.get("cached_tokens", 0))
        if monitor.get("cost") is None:
            cost_known = cost_known and bool(monitor.get("from_cache"))
        else:
            cost += float(monitor["cost"])
        for dim in dims:
            value = labels.get(dim)
            for tag in value if isinstance(value, list) else ([value] if value else []):
                distributions[dim][str(tag)] += 1
            score = labels.get("confidence", {}).get(dim)
            if isinstance(score, int | float):
                value = float(score)
                acc = confidences.get(dim)
                if acc is None:
                    confidences[dim] = [1.0, value, value, value]
                else:
                    acc[0] += 1
                    acc[1] += value
                    acc[2] = min(acc[2], value)
                    acc[3] = max(acc[3], value)
                if score < threshold:
                    low[dim] += 1
        for item in labels.get("unmapped", []):
            if isinstance(item, dict):
                unmapped[f"{item.get('dimension', '')}:{item.get('value', '')}"] += 1
            else:
                unmapped[str(item)] += 1
        cross[str(labels.get("intent"))][str(labels.get("difficulty"))] += 1
    failures: Counter[str] = Counter()
    for line in files.lines(FAILURES, part):
        reason = msgspec.json.decode(line, type=_Failed).reason
        failures[reason] += 1
    problems: Counter[str] = Counter()
    for line in files.lines(PROBLEMS) if part is None else ():
        problems[msgspec.json.decode(line, type=_Problem).severity] += 1
    failed = sum(failures.values())
    total = success + failed
    sessions = manifest.sessions
    elapsed = sum(s.elapsed for s in sessions)
    stats: dict[str, Any] = {
        "total_samples": total,
        "success": success,
        "failed": failed,
        "success_rate": round(success / total, 4) if total else 0.0,
        "duplicates": duplicates,
        "distinct_labeled": success - duplicates,
        "total_llm_calls": calls,
        "avg_calls_per_sample": round(calls / success, 3) if success else 0.0,
        "total_prompt_tokens": prompt,
        "total_completion_tokens": completion,
        "total_cached_tokens": cached,
        "cached_share": round(cached / prompt, 4) if prompt else 0.0,
        "total_tokens": prompt + completion,
        "cost_usd": round(cost, 6) if cost_known else None,
        "arbitrated_count": arbitrated,
        "arbitrated_rate": round(arbitrated / success, 4) if success else 0.0,
        "validation_issue_count": issues,
        "consistency_warning_count": warnings,
        "unmapped_tags": dict(unmapped.most_common()),
        "unmapped_unique_count": len(unmapped),
        "confidence_stats": {
            dim: {
                "mean": round(total_ / count, 3),
                "min": low_,
                "max": high,
                "below_threshold": low[dim],
            }
            for dim, (count, total_, low_, high) in confidences.items()
        },
        "low_confidence_frequency": dict(low.most_common()),
        "tag_distributions": {d: dict(c.most_common()) for d, c in distributions.items()},
        "intent_x_difficulty": {k: dict(v) for k, v in sorted(cross.items())},
        "failures_by_reason": dict(failures.most_common()),
        "input_problems": dict(problems),
        "model": manifest.model,
        "confidence_threshold": threshold,
    }
    if part is not None:
        stats["part"] = part
        return stats
    # what the run paid, over every session (the figure of run.json, the summary and the
    # budget stop line); the per-sample costs above leave out calls that were not kept
    stats["cost_usd"] = round(manifest.spent, 6) if cost_known or manifest.spent else None
    stats["sessions"] = len(sessions)
    stats["requests"] = sum(s.requests for s in sessions)
    stats["cache_hits"] = sum(s.cache_hits for s in sessions)
    stats["retries"] = sum(s.retries for s in sessions)
    stats["rate_limited_429"] = sum(s.rate_limited for s in sessions)
    stats["total_elapsed_seconds"] = round(elapsed, 3)
    stats["throughput_samples_per_second"] = round(total / elapsed, 3) if elapsed else None
    stats["inputs"] = manifest.inputs
    return stats
