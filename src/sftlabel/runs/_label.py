"""The label task on the engine: one item is one sample; two calls, validation, arbitration.

Records go to the run directory (:class:`~sftlabel.runs.RunFiles`): ``labeled.jsonl`` and a
``monitor.jsonl`` trace per labeled sample, ``failures.jsonl`` and a trace per failed one, in the
sample's part. A sample whose rendering (what the model sees) equals an earlier one's gets that
sample's labels with ``labeling_monitor.duplicate_of`` and no request (the engine's dedup).
:func:`finalize` writes the ordered ``labeled.json`` and ``stats.json`` (the API layer draws the
dashboards afterwards: this package never imports the reports).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from sftlabel.formats import Reader
from sftlabel.labeling import Labeler, LabelingFailed, build_messages
from sftlabel.llm import ChatRequest, ClientConfig, estimate_tokens
from sftlabel.model import Failure, LabeledSample, Problem, Sample
from sftlabel.runs._dedup import first_seen
from sftlabel.runs._engine import ItemFailed, Written
from sftlabel.runs._files import FAILURES, LABELED, MONITOR, STATS, SUMMARY_STATS, RunFiles
from sftlabel.runs._manifest import LabelOptions, read_manifest
from sftlabel.runs._paths import PartMap
from sftlabel.runs._stats import compute_stats
from sftlabel.slicing import SparsePolicy, iter_samples
from sftlabel.taxonomy import Taxonomy

SHARED_MONITOR = (
    "arbitrated",
    "validation_issues",
    "consistency_warnings",
    "arbitration",
    "signals",
)
"""What a duplicate copies of its original's monitor (about the labels, not the requests)."""

MIN_CACHED_PREFIX = 1024
"""The shortest prefix the providers cache (OpenAI, Anthropic; DeepSeek caches shorter ones)."""
COMPLETION_ESTIMATE = 180
"""Completion tokens assumed per labeling call for estimates (a JSON answer)."""

_encoder = msgspec.json.Encoder()
_EMPTY = Sample(id="", source_id="", source_format="", turn_index=1, total_turns=1, messages=[])


def sample_stream(
    inputs: list[str], options: LabelOptions, on_problem: Callable[[Problem], None] | None = None
) -> Iterator[tuple[int, Sample]]:
    """``(index, sample)`` in input order, exactly as the run sees them (deterministic)."""
    policy = (
        SparsePolicy(threshold=options.sparse_threshold, ratio=options.sparse_ratio)
        if options.sparse
        else None
    )
    index = 0
    for item in iter_samples(
        Reader().read(inputs),
        sparse=policy,
        max_chars=options.max_chars,
        limit=options.limit,
        shuffle=options.shuffle,
        seed=options.seed,
    ):
        if isinstance(item, Problem):
            if on_problem is not None:
                on_problem(item)
            continue
        yield index, item
        index += 1


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class LabelTask:
    """Taxonomy labels for every sample of the inputs."""

    kind = "label"
    noun = "sample"

    def __init__(
        self,
        labeler: Labeler,
        inputs: list[str],
        options: LabelOptions,
        *,
        session: int = 1,
        urls: list[str] | None = None,
    ) -> None:
        self.labeler = labeler
        self.inputs = inputs
        self.options = options
        self.session = session
        self.part_of = PartMap(inputs)
        # remote inputs are read from a local copy; records name them by their URLs
        self._urls = sorted(zip(inputs, urls or [], strict=False), key=lambda p: -len(p[0]))

    def items(self, on_problem: Callable[[Problem], None]) -> Iterator[tuple[int, Sample]]:
        stream = sample_stream(self.inputs, self.options, on_problem)
        if not self._urls:
            return stream
        return ((index, self._named(sample)) for index, sample in stream)

    def _named(self, sample: Sample) -> Sample:
        """The sample with its location named by the URL its local copy came from."""
        where = sample.location
        if where is None:
            return sample
        for local, url in self._urls:
            if _under(where.path, local):
                shown = url + where.path[len(local) :]
                return msgspec.structs.replace(
                    sample, location=msgspec.structs.replace(where, path=shown)
                )
        return sample

    def _local(self, path: str) -> str:
        for local, url in self._urls:
            if _under(path, url):
                return local + path[len(url) :]
        return path

    def key(self, item: tuple[int, Sample]) -> Hashable:
        return item[1].id

    def group(self, item: tuple[int, Sample]) -> Hashable | None:
        """The slices of one conversation form a group (prefix caching: the engine sends the
        last, longest slice first and the others once it is answered)."""
        sample = item[1]
        return sample.source_id if sample.total_turns > 1 else None

    def shard_key(self, item: tuple[int, Sample]) -> Hashable:
        """What decides a sample's shard (``--engine ray``). With dedup: what every duplicate
        of it and every slice of its conversation share (the system prompt, the tools and the
        messages up to the first assistant reply: equal content means equal messages), so
        duplicates meet in one shard, where the first in input order is the original as in a
        local run, and a conversation's slices stay together (prefix caching). Without: its
        conversation, or its id."""
        sample = item[1]
        if not self.options.dedup:
            return self.group(item) or sample.id
        first = next(
            (i for i, m in enumerate(sample.messages) if m.role == "assistant"),
            len(sample.messages) - 1,
        )
        opening = [(m.role, m.name, m.content) for m in sample.messages[: first + 1]]
        data = _encoder.encode((sample.system, sample.tools, opening))
        return hashlib.blake2b(data, digest_size=16).hexdigest()

    def content(self, item: tuple[int, Sample]) -> bytes:
        """What the model sees of a sample, as the fields its prompts are rendered from: the
        rendered sample and its local signals are a function of these alone (ids, reasoning,
        metadata, split ... are never shown), and hashing them costs 0.05 ms a sample where
        rendering costs 1 ms. Samples that differ only in what the renderer drops (a system
        prompt past its 2,000 shown characters, tool schemas beyond their names) are kept
        apart: a missed duplicate, never a wrong copy."""
        return sample_content(item[1])

    def duplicate(self, item: tuple[int, Sample], original: Any, share: Any) -> Written:
        """The labels of ``original`` (an earlier sample with the same content), no request."""
        index, sample = item
        shared = share.get("monitor", {})
        monitor: dict[str, Any] = {
            "duplicate_of": original,
            "llm_calls": 0,
            **{k: shared[k] for k in SHARED_MONITOR if k in shared},
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cached_tokens": 0,
            "cost": 0.0,
            "calls": [],
        }
        record = LabeledSample(
            **msgspec.structs.asdict(sample),
            index=index,
            labels=share["labels"],
            labeling_monitor=monitor,
        )
        trace = {"id": sample.id, "index": index, "status": "labeled", **monitor}
        return Written([(LABELED, record), (MONITOR, trace)], part=self._part(sample))

    def _part(self, sample: Sample) -> str:
        where = sample.location
        return self.part_of(self._local(where.path) if where is not None else None)

    async def process(self, item: tuple[int, Sample]) -> Written:
        index, sample = item
        try:
            result = await self.labeler.label(sample)
        except LabelingFailed as exc:
            raise ItemFailed(exc.reason, str(exc), endpoint_fault=_endpoint_fault(exc)) from None
        record = LabeledSample(
            **msgspec.structs.asdict(sample),
            index=index,
            labels=result.labels,
            labeling_monitor=result.monitor,
        )
        trace = {"id": sample.id, "index": index, "status": "labeled", **result.monitor}
        monitor = result.monitor
        share = {
            "labels": result.labels,
            "monitor": {k: monitor[k] for k in SHARED_MONITOR if k in monitor},
        }
        return Written([(LABELED, record), (MONITOR, trace)], part=self._part(sample), share=share)

    def failure(self, item: tuple[int, Sample], exc: ItemFailed) -> Written:
        index, sample = item
        failure = Failure(
            id=sample.id,
            index=index,
            reason=exc.reason,
            error=exc.message,
            sample=sample,
            session=self.session,
        )
        trace: dict[str, Any] = {
            "id": sample.id,
            "index": index,
            "status": "failed",
            "reason": exc.reason,
            "error": exc.message,
        }
        return Written([(FAILURES, failure), (MONITOR, trace)], part=self._part(sample))


def sample_content(sample: Sample) -> bytes:
    """The dedup key's content of a sample (:meth:`LabelTask.content`)."""
    messages = [
        (m.role, m.name, m.content, [(c.name, c.arguments) for c in m.tool_calls])
        for m in sample.messages
    ]
    return _encoder.encode((sample.system, sample.tools, sample.truncation, messages))


def _endpoint_fault(exc: LabelingFailed) -> bool:
    """A rejection that may be the endpoint's (unknown model, wrong path, unsupported
    parameter), as opposed to this sample's content."""
    if exc.reason != "rejected":
        return False
    return getattr(exc, "cause", "endpoint") != "content"


def finalize(root: Path, taxonomy: Taxonomy) -> dict[str, Any]:
    """Compact ``failures.jsonl``, write ``labeled.json`` (input order) and ``stats.json`` — per
    input file for a run that mirrors its inputs, plus ``summary_stats.json`` at the root."""
    files = RunFiles(root)
    manifest = read_manifest(root)
    files.compact_failures()
    parts = files.parts()
    # the parts on disk decide (the recorded inputs may no longer exist where the run was made)
    mirror = any(parts) if parts else PartMap(manifest.inputs).mirror
    files.touch()
    if not mirror:
        files.write_ordered_array()
        stats = compute_stats(files, manifest, taxonomy)
        _write_json(root / STATS, stats)
        return stats
    per_file: dict[str, dict[str, Any]] = {}
    for part in files.parts():
        files.write_ordered_array(part)
        stats = compute_stats(files, manifest, taxonomy, part=part)
        _write_json(root / part / STATS, stats)
        per_file[part] = {
            k: stats[k]
            for k in ("total_samples", "success", "failed", "success_rate", "duplicates")
        }
    summary = compute_stats(files, manifest, taxonomy)
    summary["files"] = per_file
    _write_json(root / SUMMARY_STATS, summary)
    return summary


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(data), indent=2) + b"\n")


class Estimate(msgspec.Struct, kw_only=True):
    samples: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    """At the model's price, with ``cached_tokens`` at its cached-input price."""
    problems: int
    unreadable: int = 0
    duplicates: int = 0
    """Items with the content of an earlier one: labeled once, not sent (none with
    ``dedup=False``); ``requests`` and the tokens count the others only."""
    cached_tokens: int = 0
    """Prompt tokens expected from the provider's prefix cache (see ``cache_assumption``)."""
    cost_without_cache: float | None = None
    batch_cost: float | None = None
    """The same requests through the Batch API (``--batch``: batch prices, within 24 h)."""
    cache_assumption: str = ""


def expected_cache(static: dict[str, int], items: int) -> tuple[int, str]:
    """Prompt tokens a prefix cache is expected to serve when every request of a kind starts
    with the same static part (``static``: its tokens per kind of request, sent once per item):
    every request after a kind's first reads its static part from the cache, when that part is
    long enough for providers to cache it at all; the item's own part is assumed never cached."""
    cacheable = {kind: tokens for kind, tokens in static.items() if tokens >= MIN_CACHED_PREFIX}
    cached = sum(tokens * max(items - 1, 0) for tokens in cacheable.values())
    parts = ", ".join(f"{kind}: {tokens:,} tokens" for kind, tokens in static.items())
    return cached, (
        f"the static prompt prefix of each kind of request ({parts}) is read from the "
        f"provider's prefix cache by every request after the first when it has at least "
        f"{MIN_CACHED_PREFIX:,} tokens (OpenAI's and Anthropic's minimum); the items' own text "
        "never is"
    )


def estimate(
    inputs: list[str], options: LabelOptions, taxonomy: Taxonomy, client_config: ClientConfig
) -> Estimate:
    """What a run would send, without sending anything (two calls per sample, no arbitration)."""
    samples = problems = unreadable = prompt = 0
    system_tokens = {
        call: estimate_tokens(
            ChatRequest(model=options.model, messages=build_messages(taxonomy, call, _EMPTY)[:1])
        )
        for call in (1, 2)
    }

    def count_problem(problem: Problem) -> None:
        nonlocal problems, unreadable
        problems += 1
        unreadable += problem.severity == "error"

    duplicates = 0
    with first_seen() as first:
        for _, sample in sample_stream(inputs, options, count_problem):
            samples += 1
            if options.dedup and not first(sample_content(sample)):
                duplicates += 1
                continue
            messages = build_messages(taxonomy, 1, sample)[1:]
            user = estimate_tokens(ChatRequest(model=options.model, messages=messages))
            prompt += system_tokens[1] + system_tokens[2] + 2 * user + 60
    sent = samples - duplicates
    completion = sent * 2 * COMPLETION_ESTIMATE
    prices = client_config.prices
    cached, assumption = expected_cache(
        {"call 1": system_tokens[1], "call 2": system_tokens[2]}, sent
    )
    return Estimate(
        samples=samples,
        duplicates=duplicates,
        requests=sent * 2,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=prices.cost(options.model, prompt, completion, cached),
        problems=problems,
        unreadable=unreadable,
        cached_tokens=cached,
        cost_without_cache=prices.cost(options.model, prompt, completion),
        batch_cost=prices.cost(options.model, prompt, completion, cached, batch=True),
        cache_assumption=assumption,
    )
